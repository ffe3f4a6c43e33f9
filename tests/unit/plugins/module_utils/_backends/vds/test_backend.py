# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""VdsBackend over the fake runspace: the protocol, the parity with the simulator, the errors."""

from __future__ import annotations

import copy
import json
import shutil
import typing as t

import pytest
import requests.exceptions

from ansible_collections.storage.vds.plugins.module_utils._backends import vds
from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend
from ansible_collections.storage.vds.plugins.module_utils._vds import module_tasks
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine, describe_subsystem
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BackendUnavailable,
    HResultError,
    NotFoundError,
    ValidationError,
    VdsError,
)
from ansible_collections.storage.vds.tests.fakes.pypsrp import _host
from ansible_collections.storage.vds.tests.fakes.pypsrp.exceptions import (
    AuthenticationError,
    WinRMTransportError,
    WSManFaultError,
)

from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2

from .conftest import PASSWORD, STATE, invocations, read, write_state


def backend_for(path, **options) -> vds.VdsBackend:
    return vds.VdsBackend(vds.Connection(host=str(path), username="Administrator", password=PASSWORD, **options))


def answer_with(monkeypatch, method: str, answer: dict[str, t.Any]) -> None:
    """Make the fake class answer ``method`` with a crafted document."""
    monkeypatch.setattr(_host.Runspace, "facade_" + method, lambda self, *args: copy.deepcopy(answer))


# --- protocol ----------------------------------------------------------------------------------


def test_one_session_compiles_once_and_calls_with_parameters(fake, state_path):
    with backend_for(state_path) as backend:
        backend.snapshot()
        backend.snapshot("array-a")
    events = [entry["event"] for entry in fake.JOURNAL]
    assert events == ["wsman", "open", "invoke", "compile", "invoke", "invoke", "close"]
    assert fake.JOURNAL[1]["apartment_state"] == fake.complex_objects.ApartmentState.MTA
    first, second, close = invocations(fake.JOURNAL)
    # The first call brings the class with it: one invocation compiles (or loads) and reads.
    assert (first["script"], first["parameters"]) == (vds.FIRST_SCRIPTS["Snapshot"],
                                                      {"Subsystem": None, "Source": vds.CSHARP_SOURCE})
    assert (second["script"], second["parameters"]) == (vds.SCRIPTS["Snapshot"], {"Subsystem": "array-a"})
    assert (close["script"], close["parameters"]) == (vds.SCRIPTS["Close"], {})


def test_nothing_is_opened_until_the_first_call(fake, state_path):
    backend_for(state_path).close()
    assert fake.JOURNAL == []


def test_snapshot_is_what_the_simulator_holds(fake, state_path):
    with backend_for(state_path) as backend:
        remote = backend.snapshot()
    local = SimulatorBackend(str(state_path)).snapshot()
    assert [describe_subsystem(s) for s in remote.subsystems] == [describe_subsystem(s) for s in local.subsystems]


def test_snapshot_decoding(fake, state_path, monkeypatch):
    portal = {"id": "p1", "address_type": 1, "ip": "10.0.0.1", "port": 3260, "status": 1}
    answer_with(monkeypatch, "Snapshot", {"names": ["array-z"], "subsystems": [{
        "id": "s", "name": "array-z",
        "portals": [portal,
                    dict(portal, id="p2", address_type=2, ip="fd00::0:1", status=42),
                    dict(portal, id="p3", address_type=0, ip="san-a.example.com"),
                    dict(portal, id="p4", address_type=3, ip="", port=0)],
        "targets": [{"id": "t", "iqn": "IQN.1991-05.COM.Microsoft:T1", "alias": None,
                     "groups": [{"id": "g", "tag": 7, "portals": ["p1", "p2", "p3", "p4", "gone"]}]}]}]})
    with backend_for(state_path) as backend:
        subsystem = backend.snapshot().subsystems[0]
    # Host names and empty addresses cannot be declared: they are left out, and so are unknown members.
    portals = [(str(p.address), p.status) for p in subsystem.portals]
    assert portals == [("10.0.0.1:3260", "online"), ("[fd00::1]:3260", "unknown")]
    target = subsystem.targets[0]
    assert (target.iqn, target.alias) == ("iqn.1991-05.com.microsoft:t1", "")
    assert target.groups[0].sorted_portals() == ["10.0.0.1:3260", "[fd00::1]:3260"]


@pytest.mark.parametrize("answer", [["not json"], [], ["[1]"], ['{"no": "ok"}'], ["{}", "{}"]])
def test_an_unexpected_answer_is_an_error(fake, state_path, monkeypatch, answer):
    run = _host.Runspace.run

    def garbled(self, script, parameters):
        output, errors, warnings = run(self, script, parameters)
        return (answer, errors, warnings) if "Snapshot" in script else (output, errors, warnings)

    monkeypatch.setattr(_host.Runspace, "run", garbled)
    with backend_for(state_path) as backend:
        with pytest.raises(VdsError, match="instead of one JSON object"):
            backend.snapshot()


def test_a_malformed_snapshot_is_an_error(fake, state_path, monkeypatch):
    answer_with(monkeypatch, "Snapshot", {"names": [], "subsystems": [{"id": "s"}]})
    with backend_for(state_path) as backend:
        with pytest.raises(VdsError, match="unexpected answer"):
            backend.snapshot()


# --- the same engine on both backends ----------------------------------------------------------

CASES: dict[str, tuple[str, dict[str, t.Any], list[dict[str, t.Any]], int]] = {
    # name: (task, parameters, faults, max_groups_per_target)
    "move a portal": ("portal", {"target": IQN1, "portal": "10.0.0.2", "tag": 2}, [], 0),
    "status only": ("portal", {"target": IQN1, "portal": "10.0.0.1", "tag": 1, "status": "offline"}, [], 0),
    "purge a group": ("portal_group", {"target": IQN1, "tag": 1, "portals": ["10.0.0.4"], "purge_portals": True},
                      [], 0),
    "create a group": ("portal_group", {"target": IQN2, "portals": ["10.0.0.4", "[fd00::1]"]}, [], 0),
    "delete a group": ("portal_group", {"target": IQN1, "tag": 2, "state": "absent"}, [], 0),
    "busy, then done": ("portal", {"target": IQN1, "portal": "10.0.0.4", "tag": 1},
                        [{"operation": "AddPortal", "hresult": "VDS_E_ANOTHER_CALL_IN_PROGRESS", "times": 2}], 0),
    "corrupt cache": ("portal", {"target": IQN1, "portal": "10.0.0.4", "tag": 1},
                      [{"operation": "QueryPortalGroups", "hresult": "VDS_E_PROVIDER_CACHE_CORRUPT"}], 0),
    "failed add is put back": ("portal", {"target": IQN1, "portal": "10.0.0.3", "tag": 1},
                               [{"operation": "AddPortal", "hresult": "VDS_E_OBJECT_EXISTS", "phase": "wait"}], 0),
    "unknown HRESULT": ("portal", {"target": IQN1, "portal": "10.0.0.1", "state": "absent"},
                        [{"operation": "RemovePortal", "hresult": "0x80070015"}], 0),
    "group cap": ("portal_group", {"target": IQN1, "portals": ["10.0.0.4"]}, [], 2),
    "vanished group": ("portal", {"target": IQN1, "portal": "10.0.0.4", "tag": 1},
                       [{"operation": "AddPortal", "hresult": "VDS_E_OBJECT_DELETED"}], 0),
    "cancel refused": ("portal", {"target": IQN1, "portal": "10.0.0.4", "tag": 1},
                       [{"operation": "Cancel", "hresult": "VDS_E_NOT_SUPPORTED"}], 0),
}


def run_case(backend, task: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
    engine = Engine(backend, 30, sleep=lambda seconds: None)
    try:
        return getattr(module_tasks, task)(engine, params)
    except VdsError as error:
        return {"failed": str(error), "steps_done": error.details.get("steps_done"),
                "hresult": error.details.get("hresult")}
    finally:
        backend.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_engine_gets_the_same_outcome_as_on_the_simulator(fake, tmp_path, case):
    task, params, faults, cap = CASES[case]
    data = copy.deepcopy(STATE)
    data["faults"] = faults
    data["subsystems"][0]["max_groups_per_target"] = cap
    local = write_state(tmp_path / "local.json", data)
    remote = tmp_path / "remote.json"
    shutil.copy(local, remote)

    expected = run_case(SimulatorBackend(str(local)), task, params)
    actual = run_case(backend_for(remote), task, params)
    assert actual == expected
    # The same provider calls, faults consumed and final state: the fake adds no call of its own.
    assert read(remote) == read(local)


def test_a_timeout_asks_to_cancel_and_reads_again(fake, state_path):
    data = read(state_path)
    data["latency_ms"] = 1000
    write_state(state_path, data)
    with backend_for(state_path, wait_timeout=0.3) as backend:
        engine = Engine(backend, 0.3)
        with pytest.raises(VdsError, match="not finished within wait_timeout=0.3s") as failure:
            module_tasks.portal(engine, {"target": IQN1, "portal": "10.0.0.4", "tag": 1})
    assert failure.value.details["cancelled"] is True
    assert 20 <= failure.value.details["progress"] < 100  # the host's last QueryStatus
    assert "state read again: 10.0.0.4:3260 is in no group" in str(failure.value)
    assert read(state_path)["calls"]["Cancel"] == 1


# --- errors ----------------------------------------------------------------------------------


def test_a_failed_vds_call_names_the_com_method(fake, state_path):
    data = read(state_path)
    data["faults"] = [{"operation": "QueryPortalGroups", "hresult": "VDS_E_ACCESS_DENIED"}]
    write_state(state_path, data)
    with backend_for(state_path) as backend:
        with pytest.raises(HResultError) as failure:
            backend.snapshot()
    assert failure.value.hresult == 0x80042427
    assert failure.value.details["vds_call"] == "IVdsIscsiTarget::QueryPortalGroups"
    assert "Administrators or Backup Operators" in str(failure.value)


def test_unknown_subsystem_names_those_there_are(fake, state_path):
    with backend_for(state_path) as backend:
        with pytest.raises(NotFoundError, match=r"^subsystem 'array-x' does not exist; known subsystems: array-a$"):
            backend.snapshot("array-x")
        with pytest.raises(NotFoundError, match="known subsystems: array-a"):
            backend.recover_cache("array-x")
        backend.recover_cache("array-a")
        backend.recover_cache(None)
    assert read(state_path)["calls"] == {"Reenumerate": 2, "Refresh": 2}


def test_arguments_vds_refuses(fake, state_path):
    with backend_for(state_path) as backend:
        with pytest.raises(HResultError, match="E_INVALIDARG"):
            backend.create_group("any", tag=3)
        with pytest.raises(HResultError, match="E_INVALIDARG"):
            backend.set_portal_status("any", "failed")
        with pytest.raises(VdsError, match="no operation no-such-handle was started in this session"):
            backend.query_status(vds.Operation("no-such-handle", "AddPortal"))
    assert invocations(fake.JOURNAL) == []  # nothing reached the host


def test_powershell_errors_are_reported(fake, state_path):
    fake.FAULTS["Snapshot"] = "Exception calling \"Snapshot\": The RPC server is unavailable."
    with backend_for(state_path) as backend:
        with pytest.raises(VdsError, match="VDS Snapshot on .*: PowerShell failed: .*RPC server is unavailable"):
            backend.snapshot()


def test_a_compiler_error_fails_and_closes_the_session(fake, state_path):
    fake.FAULTS["Add-Type"] = "Add-Type: c:\\temp\\x.cs(1) : error CS1002: ; expected"
    backend = backend_for(state_path)
    with pytest.raises(VdsError, match="VDS Snapshot on .*: PowerShell failed: .*CS1002.*also loads or compiles the VDS interop class"):
        backend.snapshot()
    backend.close()
    # Without the class nothing on the host holds a reference: no Close invocation, the pool closed once.
    assert [entry["event"] for entry in fake.JOURNAL] == ["wsman", "open", "invoke", "close"]


@pytest.mark.parametrize("fault, kind, text", [
    (AuthenticationError("Failed to authenticate the user Administrator with ntlm"), "authentication",
     "did not accept the credentials"),
    (WinRMTransportError("http", 401, "Unauthorized"), "authentication", "answered HTTP 401"),
    (WinRMTransportError("http", 500, "Internal error"), "transport", "answered HTTP 500"),
    (WSManFaultError("2150858770", "win1", "The WS-Management service cannot process the request", "", "", ""),
     "winrm", "WinRM on .* failed"),
    (requests.exceptions.SSLError("certificate verify failed: self-signed certificate"), "certificate",
     "could not be verified .*vds_ca_cert.*vds_cert_validation=false"),
    (requests.exceptions.ConnectTimeout("timed out"), "connection", r"cannot reach .*vds_connection_timeout=30s"),
    (requests.exceptions.ConnectionError("Connection refused"), "connection", "cannot reach"),
    (requests.exceptions.TooManyRedirects("loop"), "transport", "HTTP to .* failed"),
])
def test_transport_failures(fake, state_path, fault, kind, text):
    fake.FAULTS["open"] = fault
    with backend_for(state_path) as backend:
        with pytest.raises(BackendUnavailable, match=text) as failure:
            backend.snapshot()
    assert failure.value.details["vds_failure"] == kind
    assert failure.value.details["vds_endpoint"] == "https://%s:5986/wsman" % state_path


def test_transport_failure_during_a_call(fake, state_path):
    with backend_for(state_path) as backend:
        backend.snapshot()
        fake.FAULTS["Snapshot"] = requests.exceptions.ReadTimeout("read timed out")
        with pytest.raises(BackendUnavailable, match="VDS Snapshot: cannot reach"):
            backend.snapshot()


def test_the_password_is_scrubbed_from_foreign_messages(fake, state_path):
    fake.FAULTS["open"] = AuthenticationError("user Administrator with password %s refused" % PASSWORD)
    with backend_for(state_path) as backend:
        with pytest.raises(BackendUnavailable) as failure:
            backend.snapshot()
    assert PASSWORD not in str(failure.value) and "********" in str(failure.value)
    assert PASSWORD not in json.dumps(failure.value.details)
    assert PASSWORD not in repr(backend.connection)


def test_option_combinations_pypsrp_refuses(fake, state_path):
    with backend_for(state_path, auth="basic", ssl=False) as backend:
        with pytest.raises(ValidationError, match="vds_\\* options do not work together: .*auth 'basic'"):
            backend.snapshot()


def test_close_goes_on_when_the_class_cannot_answer(fake, state_path):
    backend = backend_for(state_path)
    backend.snapshot()
    fake.FAULTS["Close"] = "the runspace is broken"
    backend.close()
    assert [entry["event"] for entry in fake.JOURNAL][-1] == "close"


# --- connection options --------------------------------------------------------------------


def test_connection_from_module_parameters():
    connection = vds.Connection.from_params({
        "vds_host": " win1.example.com ", "vds_port": None, "vds_username": "svc", "vds_password": "x",
        "vds_auth": "kerberos", "vds_ssl": True, "vds_cert_validation": True, "vds_ca_cert": "/etc/ca.pem",
        "vds_connection_timeout": 12})
    assert connection.endpoint == "https://win1.example.com:5986/wsman"
    assert connection.wsman_options() == {
        "server": "win1.example.com", "port": 5986, "username": "svc", "password": "x", "ssl": True,
        "auth": "kerberos", "cert_validation": "/etc/ca.pem", "connection_timeout": 12}


def test_certificate_validation_is_on_unless_turned_off():
    assert vds.Connection("h").wsman_options()["cert_validation"] is True
    assert vds.Connection("h", ca_cert="/ca.pem").wsman_options()["cert_validation"] == "/ca.pem"
    assert vds.Connection("h", cert_validation=False, ca_cert="/ca.pem").wsman_options()["cert_validation"] is False


def test_connection_ports_and_certificate_auth():
    assert vds.Connection("fd00::9", ssl=False).endpoint == "http://[fd00::9]:5985/wsman"
    assert vds.Connection("h", port=15986).endpoint == "https://h:15986/wsman"
    options = vds.Connection("h", auth="certificate", certificate_pem="/c.pem",
                             certificate_key_pem="/k.pem").wsman_options()
    assert (options["certificate_pem"], options["certificate_key_pem"]) == ("/c.pem", "/k.pem")


@pytest.mark.parametrize("params, message", [
    ({}, "vds_host is required"),
    ({"vds_host": "  "}, "vds_host is required"),
    ({"vds_host": "h", "vds_port": 0}, "vds_port 0 is outside"),
    ({"vds_host": "h", "vds_connection_timeout": 0}, "vds_connection_timeout 0"),
    ({"vds_host": "h", "vds_auth": "digest"}, "vds_auth 'digest' is not one of"),
])
def test_connection_refuses_bad_options(params, message):
    with pytest.raises(ValidationError, match=message):
        vds.Connection.from_params(params)
