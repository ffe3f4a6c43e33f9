# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The simulator's files: where it writes (symlinks), what it leaves behind, what it refuses to read, its
journal, and what a process killed at any moment leaves."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import time
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends import _simulator_changes, simulator
from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend, read_state
from ansible_collections.storage.vds.plugins.module_utils._vds import errors
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import S_OK, StateFileError
from ansible_collections.storage.vds.plugins.module_utils._vds.module_tasks import portal_group

from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1 as IQN

P1, P2 = "10.0.0.1:3260", "10.0.0.2:3260"


def small_state() -> dict[str, t.Any]:
    return {"version": 1, "count_reads": True,
            "subsystems": [{"name": "array-a", "portals": [{"address": P1}, {"address": P2}],
                            "targets": [{"iqn": IQN, "groups": [{"tag": 1, "portals": [P1]}]}]}]}


def add_p2(path: pathlib.Path) -> None:
    """One AddPortal of P2 to group 1, through the path given."""
    backend = SimulatorBackend(str(path))
    subsystem = backend.snapshot().subsystems[0]
    portal = next(portal for portal in subsystem.portals if str(portal.address) == P2)
    operation = backend.add_portal(subsystem.targets[0].groups[0].id, portal.id)
    assert backend.result(operation).operation_hresult == S_OK
    backend.close()


def test_a_symlinked_state_file_is_written_through_to_its_target(tmp_path: pathlib.Path) -> None:
    real = tmp_path / "arrays" / "real.json"
    real.parent.mkdir()
    real.write_text(json.dumps(small_state()), encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    add_p2(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text(encoding="utf-8"))["subsystems"][0]["targets"][0]["groups"][0]["portals"] == [
        P1, P2]
    # The lock and any temporary file live beside the file written, not beside the link.
    assert sorted(os.listdir(real.parent)) == ["real.json", "real.json.lock"]
    assert sorted(os.listdir(tmp_path)) == ["arrays", "link.json"]


def test_a_missing_state_file_leaves_no_lock_file(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(StateFileError, match="simulator state file %s does not exist" % missing):
        SimulatorBackend(str(missing)).snapshot()
    assert os.listdir(tmp_path) == []


def test_a_dangling_symlink_is_a_missing_state_file_named_as_given(tmp_path: pathlib.Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "gone.json")
    with pytest.raises(StateFileError, match="simulator state file %s does not exist" % link):
        SimulatorBackend(str(link)).snapshot()
    assert os.listdir(tmp_path) == ["link.json"]


@pytest.mark.parametrize("text", ["[" * 100000, '{"a":' * 100000, '[{"a":' * 50000])
def test_deeply_nested_json_is_not_valid_json(tmp_path: pathlib.Path, text: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(text, encoding="utf-8")
    expected = "simulator state file %s is not valid JSON: arrays or objects are nested too deeply" % path
    with pytest.raises(StateFileError) as refused:
        SimulatorBackend(str(path)).snapshot()
    assert str(refused.value) == expected
    with pytest.raises(StateFileError) as refused:
        read_state(str(path))
    assert str(refused.value) == expected


# --- the steps of one execution: journalled whatever the file's size, folded in once -------------

MANY = ["10.0.1.%d:3260" % number for number in range(1, 41)]


def many_portals_state() -> dict[str, t.Any]:
    """A small file (under 16 KiB) that the journal of a few calls does not outgrow."""
    data = small_state()
    data["subsystems"][0]["portals"] += [{"address": address} for address in MANY]
    return data


@pytest.fixture
def rewrites(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every content the simulator writes the state file with, in order."""
    written: list[bytes] = []
    real_write = _simulator_changes.write_file

    def recording(path: str, raw: bytes, mode: int, shown: str, flush: bool) -> None:
        written.append(raw)
        real_write(path, raw, mode, shown, flush)

    monkeypatch.setattr(_simulator_changes, "write_file", recording)
    return written


def test_an_execution_rewrites_a_small_file_once_and_each_call_is_durable_when_it_returns(
        tmp_path: pathlib.Path, rewrites: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(many_portals_state()), encoding="utf-8")
    held_after_each_call: list[int] = []
    real_add = SimulatorBackend.add_portal

    def add_and_look(backend: SimulatorBackend, group_id: str, portal_id: str) -> t.Any:
        operation = real_add(backend, group_id, portal_id)
        # What a process killed now would leave: the file and the journal's complete lines.
        held_after_each_call.append(len(group_1(read_state(str(path)))))
        return operation

    monkeypatch.setattr(SimulatorBackend, "add_portal", add_and_look)
    with SimulatorBackend(str(path)) as backend:
        result = portal_group(Engine(backend, 30), {"target": IQN, "tag": 1, "portals": [P1] + MANY[:8],
                                                    "purge_portals": False, "state": "present"})
        # The steps have ended: the file alone shows the state again, before the backend is closed.
        assert sorted(os.listdir(tmp_path)) == ["state.json", "state.json.lock"]
    assert result["changed"] and len(result["steps"]) == 8
    assert held_after_each_call == list(range(2, 10))
    assert len(rewrites) == 2  # the counted read, then the journal of the steps folded in once
    data = json.loads(path.read_text(encoding="utf-8"))
    assert group_1(data) == [P1] + MANY[:8] and data["calls"] == {"AddPortal": 8, "Snapshot": 1}


def test_outside_an_execution_each_call_rewrites_a_small_file(tmp_path: pathlib.Path,
                                                              rewrites: list[bytes]) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(many_portals_state()), encoding="utf-8")
    backend = SimulatorBackend(str(path))
    group, portals = ids_of(backend)
    for address in MANY[:3]:
        assert backend.result(backend.add_portal(group, portals[address])).operation_hresult == S_OK
        assert group_1(json.loads(path.read_text(encoding="utf-8")))[-1] == address
    assert not journal_of(path).exists()
    assert len(rewrites) == 4  # the counted read, then each call


def test_inside_an_execution_the_file_alone_is_current_whenever_the_caller_must_wait(tmp_path: pathlib.Path) -> None:
    data = many_portals_state()
    data["latency_ms"] = 1000
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    clock = [1000.0]
    backend = SimulatorBackend(str(path), now=lambda: clock[0], sleep=lambda seconds: None)
    group, portals = ids_of(backend)
    with backend.executing():
        operation = backend.add_portal(group, portals[MANY[0]])
        assert journal_of(path).exists()                        # the call is durable in the journal
        assert "operations" not in json.loads(path.read_text(encoding="utf-8"))
        assert backend.query_status(operation).hresult == errors.VDS_E_OPERATION_PENDING
        # Told to wait: the journal is folded in, so an edit made now by hand works on the current state.
        assert not journal_of(path).exists()
        [record] = json.loads(path.read_text(encoding="utf-8"))["operations"]
        assert record["id"] == operation.id
        clock[0] += 1.0
        assert backend.result(operation).operation_hresult == S_OK
        failing = backend.add_portal(group, portals[MANY[0]])   # already there: fails when it completes
        clock[0] += 1.0
        assert backend.result(failing).operation_hresult == errors.VDS_E_OBJECT_EXISTS
    assert not journal_of(path).exists()
    assert group_1(json.loads(path.read_text(encoding="utf-8"))) == [P1, MANY[0]]


def test_a_failed_call_inside_an_execution_leaves_the_file_current(tmp_path: pathlib.Path) -> None:
    data = many_portals_state()
    data["faults"] = [{"operation": "RemovePortal", "hresult": "VDS_E_PROVIDER_FAILURE"}]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    backend = SimulatorBackend(str(path))
    group, portals = ids_of(backend)
    with backend.executing():
        assert backend.result(backend.add_portal(group, portals[MANY[1]])).operation_hresult == S_OK
        assert journal_of(path).exists()
        with pytest.raises(errors.HResultError):
            backend.remove_portal(group, portals[P1])
        # The caller may wait and retry: the file alone already shows both calls.
        assert not journal_of(path).exists()
        on_file = json.loads(path.read_text(encoding="utf-8"))
        assert group_1(on_file) == [P1, MANY[1]] and on_file["faults"] == []
        assert on_file["calls"] == {"AddPortal": 1, "RemovePortal": 1, "Snapshot": 1}


def test_another_caller_sees_each_call_of_an_execution_on_a_small_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(many_portals_state()), encoding="utf-8")
    owner, reader = SimulatorBackend(str(path)), SimulatorBackend(str(path))
    group, portals = ids_of(owner)

    def seen() -> set[str]:
        return {str(address) for address in reader.snapshot().subsystems[0].targets[0].groups[0].portals}

    assert seen() == {P1}
    with owner.executing():
        for count, address in enumerate(MANY[:3], start=1):
            assert owner.result(owner.add_portal(group, portals[address])).operation_hresult == S_OK
            assert set(seen()) == {P1, *MANY[:count]}
    assert not journal_of(path).exists()


# --- the journal of a large state file ---------------------------------------------------------


@pytest.fixture
def journaled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every state file counts as large: calls go to the journal."""
    monkeypatch.setattr(simulator, "WRITE_THROUGH_BYTES", 0)


def journal_of(path: pathlib.Path) -> pathlib.Path:
    return path.parent / (path.name + ".journal")


def group_1(data: dict[str, t.Any]) -> list[str]:
    return data["subsystems"][0]["targets"][0]["groups"][0]["portals"]


def ids_of(backend: SimulatorBackend) -> t.Tuple[str, dict[str, str]]:
    """The id of group 1 and the ids of the portals, by address."""
    subsystem = backend.snapshot().subsystems[0]
    return subsystem.targets[0].groups[0].id, {str(portal.address): portal.id for portal in subsystem.portals}


@pytest.mark.usefixtures("journaled")
def test_calls_on_a_large_file_go_to_the_journal_and_close_folds_it_in(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    before = path.read_bytes()
    backend = SimulatorBackend(str(path))
    group, portals = ids_of(backend)
    assert backend.result(backend.add_portal(group, portals[P2])).operation_hresult == S_OK
    # The file is as it was; the journal holds a header and one line per call (the read, the add).
    assert path.read_bytes() == before
    lines = journal_of(path).read_bytes().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["journal"] == 1
    assert group_1(read_state(str(path))) == [P1, P2]
    assert read_state(str(path))["calls"] == {"Snapshot": 1, "AddPortal": 1}
    backend.close()
    assert sorted(os.listdir(tmp_path)) == ["state.json", "state.json.lock"]
    data = json.loads(path.read_text(encoding="utf-8"))
    assert group_1(data) == [P1, P2] and data["calls"] == {"AddPortal": 1, "Snapshot": 1}


@pytest.mark.usefixtures("journaled")
def test_each_instance_sees_the_calls_another_one_journaled(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    first, second = SimulatorBackend(str(path)), SimulatorBackend(str(path))
    group, portals = ids_of(first)
    first.result(first.add_portal(group, portals[P2]))
    assert {str(address) for address in second.snapshot().subsystems[0].targets[0].groups[0].portals} == {P1, P2}
    other_group, other_portals = ids_of(second)
    assert second.result(second.remove_portal(other_group, other_portals[P1])).operation_hresult == S_OK
    assert {str(address) for address in first.snapshot().subsystems[0].targets[0].groups[0].portals} == {P2}
    first.close()
    second.close()
    assert group_1(json.loads(path.read_text(encoding="utf-8"))) == [P2]
    assert not journal_of(path).exists()


@pytest.mark.usefixtures("journaled")
def test_a_journal_line_cut_short_is_a_call_that_did_not_happen(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    backend = SimulatorBackend(str(path))
    group, portals = ids_of(backend)
    backend.result(backend.add_portal(group, portals[P2]))
    complete = journal_of(path).read_bytes()
    # What a process killed in the middle of its write leaves behind.
    with open(journal_of(path), "ab") as journal:
        journal.write(b'[["count","RemovePortal",1],["remove","array-a","%s",1,"%s"' % (IQN.encode(), P1.encode()))
    assert group_1(read_state(str(path))) == [P1, P2]
    assert "RemovePortal" not in read_state(str(path))["calls"]
    later = SimulatorBackend(str(path))
    assert {str(address) for address in later.snapshot().subsystems[0].targets[0].groups[0].portals} == {P1, P2}
    # The next writer cut the torn line off before appending its own.
    assert journal_of(path).read_bytes().startswith(complete)
    assert all(json.loads(line) for line in journal_of(path).read_bytes().splitlines())
    later.close()
    assert group_1(json.loads(path.read_text(encoding="utf-8"))) == [P1, P2]


@pytest.mark.usefixtures("journaled")
def test_a_journal_of_another_content_of_the_file_is_ignored_and_removed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    # A journal already folded into the file (its writer died before removing it) names the old content.
    journal_of(path).write_bytes(json.dumps({"journal": 1, "state": "0" * 64}).encode() + b"\n"
                                 + b'[["remove","array-a","%s",1,"%s"]]\n' % (IQN.encode(), P1.encode()))
    assert group_1(read_state(str(path))) == [P1]
    backend = SimulatorBackend(str(path))
    backend.snapshot()
    backend.close()
    assert group_1(json.loads(path.read_text(encoding="utf-8"))) == [P1]
    assert not journal_of(path).exists()


@pytest.mark.usefixtures("journaled")
def test_a_journal_line_the_simulator_did_not_write_is_reported(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    backend = SimulatorBackend(str(path))
    backend.snapshot()
    with open(journal_of(path), "ab") as journal:
        journal.write(b'[["explode"]]\n')
    expected = ("simulator journal %s: line 3 is not a change this simulator wrote; the journal holds calls not yet "
                "in the state file: remove it to drop them" % journal_of(path))
    with pytest.raises(StateFileError) as refused:
        SimulatorBackend(str(path)).snapshot()
    assert str(refused.value) == expected


@pytest.mark.usefixtures("journaled")
def test_the_journal_is_folded_in_once_it_is_as_large_as_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    backend = SimulatorBackend(str(path))
    group, portals = ids_of(backend)
    folded = 0
    for _round in range(10):
        for address in (P2, P1):
            backend.result(backend.remove_portal(group, portals[address]))
        for address in (P1, P2):
            backend.result(backend.add_portal(group, portals[address]))
        size, journal = path.stat().st_size, journal_of(path)
        if not journal.exists():
            folded += 1
        else:
            # One line past the size of the file at most, since the fold comes at the next call.
            assert journal.stat().st_size < size + 200
    assert folded >= 2
    assert read_state(str(path))["calls"] == {"Snapshot": 1, "RemovePortal": 20, "AddPortal": 20}


@pytest.mark.usefixtures("journaled")
def test_a_large_file_edited_by_hand_between_calls_is_read_again(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    backend = SimulatorBackend(str(path))
    group, portals = ids_of(backend)
    backend.close()
    edited = small_state()
    edited["subsystems"][0]["targets"][0]["groups"][0]["portals"] = [P2]
    path.write_text(json.dumps(edited, indent=4), encoding="utf-8")
    assert backend.result(backend.add_portal(group, portals[P1])).operation_hresult == S_OK
    assert group_1(read_state(str(path))) == [P2, P1]


def _create_groups(path: str, count: int) -> None:
    backend = SimulatorBackend(path)
    target_id = backend.snapshot().subsystems[0].targets[0].id
    for _number in range(count):
        assert backend.result(backend.create_group(target_id)).operation_hresult == S_OK
    if count % 2:
        backend.close()


@pytest.mark.usefixtures("journaled")
def test_parallel_processes_on_a_journal_lose_no_update(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(small_state()), encoding="utf-8")
    context = multiprocessing.get_context("fork")
    # Half of them close (fold the journal in) while the others still journal.
    workers = [context.Process(target=_create_groups, args=(str(path), count)) for count in (10, 11, 12, 13)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * 4
    data = read_state(str(path))
    assert [group["tag"] for group in data["subsystems"][0]["targets"][0]["groups"]] == list(range(1, 48))
    assert data["calls"] == {"CreatePortalGroup": 46, "Snapshot": 4}


# --- kill -9 during a large apply ----------------------------------------------------------------

APPLY = """
import json, sys
from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.module_tasks import portal_group

with open(sys.argv[2], encoding="utf-8") as params, SimulatorBackend(sys.argv[1]) as backend:
    result = portal_group(Engine(backend, 30), json.load(params))
print(json.dumps({"changed": result["changed"], "steps": len(result["steps"])}))
"""


def large_state(portals: int) -> t.Tuple[dict[str, t.Any], list[str]]:
    addresses = ["10.%d.%d.%d:3260" % (number >> 16, (number >> 8) & 255, number & 255) for number in range(portals)]
    data = {"version": 1, "count_reads": True,
            "subsystems": [{"name": "array-a", "portals": [{"address": a} for a in addresses],
                            "targets": [{"iqn": IQN, "groups": [{"tag": 1, "portals": addresses[:5]}]}]}]}
    return data, addresses


def apply(path: pathlib.Path, params: pathlib.Path) -> "subprocess.Popen[str]":
    """A module execution of vds_portal_group in a process of its own."""
    root = pathlib.Path(simulator.__file__).parents[6]  # the folder holding ansible_collections
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.Popen([sys.executable, "-c", APPLY, str(path), str(params)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def journaled_adds(path: pathlib.Path) -> int:
    return journal_of(path).read_bytes().count(b"AddPortal") if journal_of(path).exists() else 0


def adds_on_disk(path: pathlib.Path) -> int:
    """The AddPortal calls the state file and its journal hold, read without the simulator: the file's own
    count, plus the count entries of the journal's whole lines when the journal continues that file."""
    raw = path.read_bytes()
    total = json.loads(raw).get("calls", {}).get("AddPortal", 0)
    if journal_of(path).exists():
        # What follows the last newline is a line the kill cut short: a call that did not happen.
        header, *lines = journal_of(path).read_bytes().split(b"\n")[:-1]
        if json.loads(header)["state"] == hashlib.sha256(raw).hexdigest():
            total += sum(change[2] for line in lines for change in json.loads(line)
                         if change[:2] == ["count", "AddPortal"])
    return total


def wait_for_calls(path: pathlib.Path, worker: "subprocess.Popen[str]", before: int) -> None:
    """Until the worker has journaled AddPortal calls of its own (or folded the journal in, further on)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.poll() is None:
        if not before <= journaled_adds(path) < before + 20:
            return
        time.sleep(0.005)
    raise AssertionError("the apply made no calls to kill it during: %s" % (worker.communicate()[1],))


def test_kill_9_during_a_large_apply_leaves_a_state_a_rerun_converges_from(tmp_path: pathlib.Path) -> None:
    data, addresses = large_state(20000)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"target": IQN, "tag": 1, "portals": addresses, "purge_portals": False,
                                  "state": "present"}), encoding="utf-8")
    added = 5
    for delay in (0.0, 0.2, 0.5):
        before = journaled_adds(path)
        worker = apply(path, params)
        wait_for_calls(path, worker, before)
        time.sleep(delay)
        worker.kill()
        worker.communicate()
        assert worker.returncode == -signal.SIGKILL, "the apply ended before it was killed"
        state = read_state(str(path))
        members = group_1(state)
        # Every call either happened or did not: each AddPortal counted is a portal added, and nothing else.
        assert len(set(members)) == len(members) and set(members) <= set(addresses)
        assert members[:5] == addresses[:5]
        assert state["calls"].get("AddPortal", 0) == len(members) - 5
        # ... and every call the file and the journal hold is in the state read back.
        assert adds_on_disk(path) == len(members) - 5
        assert len(members) > added
        added = len(members)
    assert added < len(addresses)
    worker = apply(path, params)
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    assert json.loads(out) == {"changed": True, "steps": len(addresses) - added}
    assert sorted(group_1(json.loads(path.read_text(encoding="utf-8")))) == sorted(addresses)
    assert not journal_of(path).exists()
    worker = apply(path, params)
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    assert json.loads(out) == {"changed": False, "steps": 0}
