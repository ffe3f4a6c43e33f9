# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The wire to the Windows host: round trips and compiles per module run, counted by the fake transport."""

from __future__ import annotations

import hashlib
import json
import pathlib
import time
import typing as t

import pytest
import requests.exceptions

from ansible_collections.storage.vds.plugins.module_utils._backends import vds
from ansible_collections.storage.vds.plugins.module_utils._vds import module_tasks
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import BackendUnavailable
from ansible_collections.storage.vds.plugins.modules import vds_portal_group
from ansible_collections.storage.vds.tests.fakes.pypsrp import _host
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1 as IQN

from .conftest import PASSWORD

ADDRESSES = ["10.0.1.%d:3260" % number for number in range(1, 13)]


@pytest.fixture
def host(tmp_path: pathlib.Path) -> str:
    """A host with one group holding the first of twelve portals."""
    path = tmp_path / "wire.json"
    path.write_text(json.dumps({
        "version": 1, "latency_ms": 0, "faults": [],
        "subsystems": [{"name": "array-w", "max_groups_per_target": 0,
                        "portals": [{"address": address, "status": "online"} for address in ADDRESSES],
                        "targets": [{"iqn": IQN, "alias": "w", "groups": [{"tag": 1, "portals": ADDRESSES[:1]}]}]}],
    }), encoding="utf-8")
    return str(path)


def run(host: str, portals: t.Sequence[str], wait_timeout: int = 30) -> tuple[dict[str, int], dict[str, t.Any]]:
    """One module run's worth of work; what it cost on the wire."""
    before = _host.counters(host)
    with vds.VdsBackend(vds.Connection(host=host, username="Administrator", password=PASSWORD,
                                       wait_timeout=wait_timeout)) as backend:
        result = module_tasks.portal_group(Engine(backend, wait_timeout), {"target": IQN, "tag": 1, "portals": list(portals)})
    after = _host.counters(host)
    return {key: after[key] - before.get(key, 0) for key in after}, result


def test_the_fake_counts_invocations_and_compiles(fake, host):
    assert _host.counters(host) == {"invocations": 0, "compiles": 0}
    with vds.VdsBackend(vds.Connection(host=host, username="Administrator", password=PASSWORD)) as backend:
        backend.snapshot()
        backend.snapshot()
    counts = _host.counters(host)
    assert counts["invocations"] == len([entry for entry in fake.JOURNAL if entry["event"] == "invoke"])
    assert counts["compiles"] == len([entry for entry in fake.JOURNAL if entry["event"] == "compile"]) == 1


def test_the_fake_charges_latency_and_compile_time(fake, host, monkeypatch):
    monkeypatch.setenv(_host.LATENCY_VARIABLE, "40")
    monkeypatch.setenv(_host.COMPILE_VARIABLE, "300")
    start = time.monotonic()
    counts, _result = run(host, ADDRESSES[:1])
    elapsed = time.monotonic() - start
    floor = counts["invocations"] * 0.040 + counts["compiles"] * 0.300
    assert floor <= elapsed < floor + 0.5


def steps_and_counts(host: str, portals: t.Sequence[str]) -> tuple[int, dict[str, int]]:
    counts, result = run(host, portals)
    return len(result["steps"]), counts


def test_a_step_costs_one_round_trip(fake, host):
    """The first call brings the class, the host waits on each operation, Close ends: k steps cost k + 2."""
    assert steps_and_counts(host, ADDRESSES[:1]) == (0, {"invocations": 2, "compiles": 1})
    assert steps_and_counts(host, ADDRESSES[:2]) == (1, {"invocations": 1 + 2, "compiles": 0})
    assert steps_and_counts(host, ADDRESSES[:12]) == (10, {"invocations": 10 + 2, "compiles": 0})
    assert steps_and_counts(host, ADDRESSES[:12]) == (0, {"invocations": 2, "compiles": 0})
    assert not [entry for entry in fake.JOURNAL if entry["event"] == "invoke"
                and ("QueryStatus" in entry["script"] or "::Wait(" in entry["script"])]


# --- the assembly the host keeps ---------------------------------------------------------------


def kept(host: str) -> pathlib.Path:
    name = hashlib.sha256(vds.CSHARP_SOURCE.encode("utf-8")).hexdigest()
    return pathlib.Path(_host.assembly_folder(host)) / (name + ".dll")


def test_five_runs_on_one_host_compile_once(fake, host):
    compiles = [run(host, ADDRESSES[:1])[0]["compiles"] for _run in range(5)]
    assert compiles == [1, 0, 0, 0, 0]
    assert [entry["event"] for entry in fake.JOURNAL].count("load") == 4
    assert kept(host).read_bytes().startswith(b"MZ")
    trusted = {"owner": "S-1-5-32-544", "writers": ["S-1-5-32-544", "S-1-5-18"]}
    assert _host.read_acl(_host.assembly_folder(host)) == trusted


@pytest.mark.parametrize("damage", ["changed", "hash changed", "missing", "hash missing"])
def test_an_assembly_that_does_not_match_its_hash_is_compiled_again(fake, host, damage):
    run(host, ADDRESSES[:1])
    assembly = kept(host)
    recorded = pathlib.Path(str(assembly) + ".sha256")
    if damage == "changed":
        assembly.write_bytes(assembly.read_bytes() + b" tampered")
    elif damage == "hash changed":
        recorded.write_text("0" * 64, encoding="utf-8")
    elif damage == "missing":
        assembly.unlink()
    else:
        recorded.unlink()
    counts, result = run(host, ADDRESSES[:1])
    assert counts == {"invocations": 2, "compiles": 1} and result["changed"] is False
    # Compiled again and kept again: the next run loads it.
    assert hashlib.sha256(assembly.read_bytes()).hexdigest() == recorded.read_text(encoding="utf-8")
    assert run(host, ADDRESSES[:1])[0] == {"invocations": 2, "compiles": 0}


@pytest.mark.parametrize("owner, writers", [
    ("S-1-5-32-544", ["S-1-5-32-544", "S-1-5-18", "S-1-5-32-545"]),   # Users may write
    ("S-1-5-21-1-2-3-1001", ["S-1-5-32-544", "S-1-5-18"]),             # another account owns it
])
def test_a_folder_others_may_write_is_never_used(fake, host, owner, writers):
    run(host, ADDRESSES[:1])
    folder = _host.assembly_folder(host)
    _host.write_acl(folder, owner, writers)
    loads = [entry["event"] for entry in fake.JOURNAL].count("load")
    for _run in range(2):
        with vds.VdsBackend(vds.Connection(host=host, username="Administrator", password=PASSWORD)) as backend:
            backend.snapshot()
        assert len(backend.warnings) == 1
        assert "may be written by others than Administrators and SYSTEM" in backend.warnings[0]
        assert "compiled in memory and not kept" in backend.warnings[0]
    assert [entry["event"] for entry in fake.JOURNAL].count("load") == loads  # the file there is never loaded
    compiles = [entry for entry in fake.JOURNAL if entry["event"] == "compile"]
    assert [entry["kept"] for entry in compiles[-2:]] == [None, None]


def test_the_bootstrap_loads_only_verified_bytes_from_a_folder_it_checked():
    """The bootstrap runs only on Windows: its text is what can be checked here."""
    text = vds.BOOTSTRAP
    assert "[System.Reflection.Assembly]::Load($bytes)" in text
    assert "LoadFrom" not in text and "LoadFile" not in text
    # The bytes loaded are the bytes hashed, and the hash is compared before Load.
    read = text.index("$bytes = [System.IO.File]::ReadAllBytes($cached)")
    compared = text.index("if ((& $hex $bytes) -eq [System.IO.File]::ReadAllText($cached + '.sha256').Trim())")
    assert read < compared < text.index("[System.Reflection.Assembly]::Load($bytes)", compared)
    # Named by the SHA-256 of the source.
    assert "$name = & $hex ([System.Text.Encoding]::UTF8.GetBytes($Source))" in text
    assert "$cached = Join-Path $folder ($name + '.dll')" in text
    # The folder: under ProgramData, made with a protected ACL for Administrators and SYSTEM, checked every run.
    assert "Join-Path $env:ProgramData 'StorageVds'" in text
    assert "$trusted = @('S-1-5-32-544', 'S-1-5-18')" in text
    assert "SetAccessRuleProtection($true, $false)" in text
    assert text.index("Get-Acl -LiteralPath $folder") < text.index("$cached = Join-Path")
    assert "if ($trusted -notcontains $owner -or $others.Count -gt 0) {" in text
    # Not kept: compiled in memory as before.
    assert text.rstrip().endswith("Add-Type -TypeDefinition $Source -Language CSharp\n        }\n    }\n}")
    assert text.count("{") == text.count("}") and text.count("(") == text.count(")")


# --- faults on the wire --------------------------------------------------------------------------


def test_a_connection_lost_before_the_answer_may_have_taken_effect(fake, host):
    run(host, ADDRESSES[:1])
    fake.FAULTS["AddPortal answered"] = requests.exceptions.ConnectionError("Connection aborted: reset by peer")
    before = _host.counters(host)["invocations"]
    with pytest.raises(BackendUnavailable) as failure:
        run(host, ADDRESSES[:3])
    message = str(failure.value)
    assert message.startswith("AddPortal 10.0.1.2:3260 -> group 1 of %s: " % IQN)
    assert "the step may have taken effect on the host" in message
    assert "run the task again" in message and "reset by peer" in message
    assert failure.value.details["vds_failure"] == "connection"
    assert failure.value.details["steps_done"] == []
    # Nothing more is sent over a connection that failed: not the second step, not Close.
    assert _host.counters(host)["invocations"] - before == 2
    fake.FAULTS.clear()
    # The step did take effect: the rerun reads the real state and does only what is left.
    counts, result = run(host, ADDRESSES[:3])
    assert [(step["action"], step["portal"]) for step in result["steps"]] == [("add_portal", "10.0.1.3:3260")]
    assert counts == {"invocations": 3, "compiles": 0}
    assert run(host, ADDRESSES[:3])[1]["changed"] is False


def test_a_connection_lost_before_the_start_was_sent_fails_the_same_way(fake, host):
    run(host, ADDRESSES[:1])
    fake.FAULTS["AddPortal"] = requests.exceptions.ConnectionError("Connection refused")
    with pytest.raises(BackendUnavailable, match="AddPortal 10.0.1.2:3260 -> group 1 of .*may have taken effect"):
        run(host, ADDRESSES[:2])
    fake.FAULTS.clear()
    assert [step["portal"] for step in run(host, ADDRESSES[:2])[1]["steps"]] == ["10.0.1.2:3260"]


# --- the same through the module -------------------------------------------------------------------


def module_args(host: str, portals: t.Sequence[str]) -> dict[str, t.Any]:
    return {"backend": "vds", "vds_host": host, "vds_username": "Administrator", "vds_password": PASSWORD,
            "target": IQN, "tag": 1, "portals": list(portals)}


def test_the_module_warns_of_a_folder_others_may_write(fake, run_module, host):
    run(host, ADDRESSES[:1])
    _host.write_acl(_host.assembly_folder(host), "S-1-5-32-544", ["S-1-5-32-544", "S-1-5-18", "S-1-1-0"])
    outcome = run_module(vds_portal_group, module_args(host, ADDRESSES[:2]))
    assert not outcome.failed and outcome.result["changed"] is True
    assert [warning for warning in outcome.warnings if "others who may write: S-1-1-0" in warning]


def test_the_module_fails_cleanly_when_the_connection_drops_during_a_step(fake, run_module, host):
    run(host, ADDRESSES[:1])
    fake.FAULTS["AddPortal answered"] = requests.exceptions.ConnectionError("Connection aborted")
    outcome = run_module(vds_portal_group, module_args(host, ADDRESSES[:2]))
    assert outcome.failed and "Traceback" not in outcome.output
    assert "AddPortal 10.0.1.2:3260 -> group 1 of %s" % IQN in outcome.result["msg"]
    assert "may have taken effect on the host" in outcome.result["msg"]
    fake.FAULTS.clear()
    rerun = run_module(vds_portal_group, module_args(host, ADDRESSES[:2]))
    assert not rerun.failed and rerun.result["changed"] is False
