# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The modules with backend vds, end to end over the fake transport: secrets, hostile values, TLS."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends import vds
from ansible_collections.storage.vds.plugins.modules import vds_portal, vds_portal_group, vds_portal_info
from ansible_collections.storage.vds.tests.fakes.pypsrp.exceptions import AuthenticationError

from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1

from .conftest import PASSWORD, STATE, invocations, read, write_state

# Quotes, a subexpression, a statement separator, a newline: each would change a script built by
# formatting. The IQN variant has no whitespace, which an iSCSI name cannot hold.
HOSTILE_NAME = "array'; Remove-Item -Recurse C:\\ ; $(Stop-Computer) \"`\n# x"
HOSTILE_IQN = "iqn.1991-05.com.microsoft:t1';$(stop-computer);\"`x"


def hostile_state(path):
    data = copy.deepcopy(STATE)
    data["subsystems"][0]["name"] = HOSTILE_NAME
    data["subsystems"][0]["targets"][0]["iqn"] = HOSTILE_IQN
    return write_state(path, data)


def test_the_password_never_shows(fake, run_module, state_path, vds_args):
    runs = [
        run_module(vds_portal_info, vds_args),
        run_module(vds_portal, dict(vds_args, target=IQN1, portal="10.0.0.4", tag=2), check_mode=True, diff=True),
        run_module(vds_portal, dict(vds_args, target=IQN1, portal="10.0.0.4", tag=2), diff=True),
        run_module(vds_portal, dict(vds_args, target=IQN1, portal="10.0.0.9", tag=2)),  # fails: unknown portal
    ]
    data = read(state_path)
    data["subsystems"][0]["max_groups_per_target"] = 2
    write_state(state_path, data)
    runs.append(run_module(vds_portal_group, dict(vds_args, target=IQN1, portals=["[fd00::1]"])))  # warns
    assert [run.failed for run in runs] == [False, False, False, True, False]
    assert runs[-1].result["warnings"]
    for run in runs:
        assert PASSWORD not in run.output
        assert not [line for line in run.log if PASSWORD in line]
        assert run.log, "the invocation is logged"
    # It did reach the transport: the runs authenticated with it.
    assert {entry["options"]["password"] for entry in fake.JOURNAL if entry["event"] == "wsman"} == {PASSWORD}


def test_a_library_that_leaks_the_password_is_masked(fake, run_module, vds_args):
    fake.FAULTS["open"] = AuthenticationError("logon failure for Administrator / %s" % PASSWORD)
    run = run_module(vds_portal_info, vds_args)
    assert run.failed and "did not accept the credentials" in run.result["msg"]
    assert PASSWORD not in run.output


def test_credentials_from_the_environment(fake, run_module, state_path, monkeypatch):
    monkeypatch.setenv("VDS_HOST", str(state_path))
    monkeypatch.setenv("VDS_USERNAME", "svc-vds")
    monkeypatch.setenv("VDS_PASSWORD", PASSWORD)
    run = run_module(vds_portal_info, {"backend": "vds"})
    assert not run.failed
    assert PASSWORD not in run.output and not [line for line in run.log if PASSWORD in line]
    options = fake.JOURNAL[0]["options"]
    assert (options["server"], options["username"], options["password"]) == (str(state_path), "svc-vds", PASSWORD)


def test_hostile_values_reach_the_host_only_as_data(fake, run_module, tmp_path):
    path = hostile_state(tmp_path / "hostile.json")
    args = {"backend": "vds", "vds_host": str(path), "subsystem": HOSTILE_NAME, "target": HOSTILE_IQN}
    runs = [run_module(vds_portal_group, dict(args, tag=1, portals=["10.0.0.1", "10.0.0.4"])),
            run_module(vds_portal, dict(args, portal="10.0.0.3", tag=1)),
            run_module(vds_portal_info, {"backend": "vds", "vds_host": str(path), "subsystem": HOSTILE_NAME})]
    assert [run.failed for run in runs] == [False, False, False]
    assert read(path)["subsystems"][0]["targets"][0]["groups"][0]["portals"] == [
        "10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260", "10.0.0.3:3260"]
    assert runs[2].result["subsystems"][0]["name"] == HOSTILE_NAME
    scripts = set(vds.SCRIPTS.values()) | set(vds.FIRST_SCRIPTS.values())
    sent = invocations(fake.JOURNAL)
    assert sent and all(entry["script"] in scripts for entry in sent)
    subsystem_parameters = [entry["parameters"]["Subsystem"] for entry in sent if "Subsystem" in entry["parameters"]]
    assert subsystem_parameters and set(subsystem_parameters) == {HOSTILE_NAME}
    for entry in sent:
        others = [value for name, value in entry["parameters"].items() if name not in ("Subsystem", "Source")]
        # The IQN is matched where the module runs: only provider ids and numbers travel.
        assert not [value for value in others if isinstance(value, str) and ("'" in value or "$" in value)]


@pytest.mark.parametrize("option, value", [
    ("portal", "10.0.0.1\n; Remove-Item C:\\"),
    ("portal", "10.0.0.1'$(x)"),
    ("target", "iqn.1991-05.com.microsoft:t1\n$(x)"),
])
def test_malformed_values_fail_before_anything_is_sent(fake, run_module, vds_args, option, value):
    args = dict(vds_args, target=IQN1, portal="10.0.0.1", tag=1)
    args[option] = value
    run = run_module(vds_portal, args)
    assert run.failed and repr(value) in run.result["msg"]
    assert fake.JOURNAL == []


def test_tls_and_certificate_validation_are_on_by_default(fake, run_module, vds_args, tmp_path):
    run_module(vds_portal_info, vds_args)
    options = fake.JOURNAL[0]["options"]
    assert (options["ssl"], options["port"], options["cert_validation"]) == (True, 5986, True)

    fake.JOURNAL.clear()
    run_module(vds_portal_info, dict(vds_args, vds_ca_cert=str(tmp_path / "ca.pem")))
    assert fake.JOURNAL[0]["options"]["cert_validation"] == str(tmp_path / "ca.pem")

    fake.JOURNAL.clear()
    run_module(vds_portal_info, dict(vds_args, vds_cert_validation=False))
    assert fake.JOURNAL[0]["options"]["cert_validation"] is False


def test_basic_auth_needs_tls(fake, run_module, vds_args):
    run = run_module(vds_portal_info, dict(vds_args, vds_auth="basic", vds_ssl=False))
    assert run.failed and "auth 'basic'" in run.result["msg"] and "use ssl=True" in run.result["msg"]
    assert [entry["event"] for entry in fake.JOURNAL] == []


def test_certificate_auth_needs_its_files(fake, run_module, vds_args):
    run = run_module(vds_portal_info, dict(vds_args, vds_auth="certificate"))
    assert run.failed and "vds_certificate_pem" in run.result["msg"]


def test_vds_host_is_required(fake, run_module):
    run = run_module(vds_portal_info, {"backend": "vds"})
    assert run.failed and "vds_host" in run.result["msg"]


def test_without_pypsrp_the_module_says_what_to_install(fake, run_module, vds_args, monkeypatch):
    monkeypatch.setattr(vds, "PYPSRP_IMPORT_ERROR", "Traceback (most recent call last):\nModuleNotFoundError")
    run = run_module(vds_portal_info, vds_args)
    assert run.failed
    assert "Failed to import the required Python library (pypsrp)" in run.result["msg"]
    assert "for backend=vds" in run.result["msg"]
    assert fake.JOURNAL == []
