# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The simulated provider: state file format, VDS rules, faults, latency, locking, atomic writes."""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import multiprocessing
import os
import pathlib
import tempfile
import time
import typing as t
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.storage.vds.plugins.module_utils._backends import simulator
from ansible_collections.storage.vds.plugins.module_utils._vds.provider import Operation, OperationStatus
from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import (
    OPERATION_RETENTION_S,
    STATE_VERSION,
    SimulatorBackend,
    read_state,
)
from ansible_collections.storage.vds.plugins.module_utils._vds import errors
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    HResultError,
    NotFoundError,
    StateFileError,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalAddress

from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2, IQN3 as IQN_B

P1, P2, P3, P4 = ("10.0.0.%d:3260" % n for n in range(1, 5))
PB = "10.1.0.1:3260"

S_OK = errors.S_OK
E_INVALIDARG = errors.BY_NAME["E_INVALIDARG"].value
VDS_S_PROPERTIES_INCOMPLETE = errors.BY_NAME["VDS_S_PROPERTIES_INCOMPLETE"].value

BASE_STATE: dict[str, t.Any] = {
    "version": 1,
    "count_reads": True,
    "subsystems": [
        {
            "name": "array-a",
            "max_groups_per_target": 0,
            "portals": [{"address": P1, "status": "online"}, {"address": P2}, {"address": P3}, {"address": P4}],
            "targets": [
                {"iqn": IQN1, "alias": "t1", "groups": [{"tag": 1, "portals": [P1]}]},
                {"iqn": IQN2, "groups": []},
            ],
        },
        {"name": "array-b", "portals": [{"address": PB}], "targets": [{"iqn": IQN_B, "groups": []}]},
    ],
}


class FakeClock:
    """Time that moves only when the code under test sleeps or the test advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds


def base_state(**top: t.Any) -> dict[str, t.Any]:
    data = copy.deepcopy(BASE_STATE)
    data.update(top)
    return data


def write_state(path: pathlib.Path, data: dict[str, t.Any]) -> pathlib.Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def content(path: pathlib.Path) -> dict[str, t.Any]:
    """What is literally in the file: no validation, no normalisation."""
    return json.loads(path.read_text(encoding="utf-8"))


def members(path: pathlib.Path, iqn: str = IQN1, subsystem: str = "array-a") -> dict[int, list[str]]:
    """Tag -> member portals of one target, as stored in the file."""
    for sub in content(path)["subsystems"]:
        for target in sub["targets"] if sub["name"] == subsystem else ():
            if target["iqn"] == iqn:
                return {group["tag"]: group.get("portals", []) for group in target.get("groups", [])}
    raise AssertionError("no target %s in %s" % (iqn, path))


def portal_status(path: pathlib.Path, address: str, subsystem: str = "array-a") -> str | None:
    sub = next(sub for sub in content(path)["subsystems"] if sub["name"] == subsystem)
    return next(portal.get("status") for portal in sub["portals"] if portal["address"] == address)


def ids(backend: SimulatorBackend) -> dict[t.Any, str]:
    """The ids a backend issues, by natural key: name, (name, address), (name, iqn), (name, iqn, tag)."""
    found: dict[t.Any, str] = {}
    for sub in backend.snapshot().subsystems:
        found[sub.name] = sub.id
        for portal in sub.portals:
            found[(sub.name, str(portal.address))] = portal.id
        for target in sub.targets:
            found[(sub.name, target.iqn)] = target.id
            for group in target.groups:
                found[(sub.name, target.iqn, group.tag)] = group.id
    return found


def calls(path: pathlib.Path) -> dict[str, int]:
    return content(path).get("calls", {})


def done(backend: SimulatorBackend, operation: Operation) -> int:
    """The operation's own HRESULT (Wait's *pHrResult), after checking Wait's call result."""
    outcome = backend.result(operation)
    assert outcome.call_hresult == S_OK
    return outcome.operation_hresult


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_state(tmp_path / "state.json", base_state())


def with_state(tmp_path: pathlib.Path, **top: t.Any) -> pathlib.Path:
    return write_state(tmp_path / "state.json", base_state(**top))


# --- the file format -------------------------------------------------------------------------


def test_read_state_normalises_addresses_iqns_and_group_order(tmp_path: pathlib.Path) -> None:
    data = base_state()
    sub = data["subsystems"][0]
    sub["portals"] = [{"address": "10.0.0.1"}, {"address": "[FE80::0001]"}, {"address": " 10.0.0.2:3261 "}]
    groups = [{"tag": 5, "portals": ["10.0.0.2:3261"]}, {"tag": 2, "portals": ["10.0.0.1", "[fe80::1]:3260"]}]
    sub["targets"][0] = {"iqn": IQN1.upper(), "groups": groups}
    state = read_state(str(write_state(tmp_path / "s.json", data)))
    assert STATE_VERSION == 1
    normalised = state["subsystems"][0]
    addresses = [portal["address"] for portal in normalised["portals"]]
    assert addresses == ["10.0.0.1:3260", "[fe80::1]:3260", "10.0.0.2:3261"]
    assert normalised["targets"][0]["iqn"] == IQN1
    assert normalised["targets"][0]["groups"] == [{"tag": 2, "portals": ["10.0.0.1:3260", "[fe80::1]:3260"]},
                                                  {"tag": 5, "portals": ["10.0.0.2:3261"]}]


def test_write_back_keeps_the_users_layout(tmp_path: pathlib.Path) -> None:
    data = base_state()
    data["subsystems"][0]["portals"][1]["address"] = "10.0.0.2"   # normalised on write
    data["subsystems"][0]["targets"][0]["groups"] = [{"tag": 4}, {"tag": 1, "portals": [P1]}]
    path = write_state(tmp_path / "s.json", data)
    backend = SimulatorBackend(str(path))
    backend.snapshot()
    written = content(path)
    assert set(written) == {"version", "count_reads", "subsystems", "calls"}  # no defaults added at the top
    sub = written["subsystems"][0]
    assert sub["portals"][1] == {"address": P2}                        # no status added
    assert "alias" not in sub["targets"][1]
    assert sub["targets"][0]["groups"] == [{"tag": 1, "portals": [P1]}, {"tag": 4}]
    assert "max_groups_per_target" not in written["subsystems"][1]
    lines = path.read_text().splitlines()
    assert '        {"address": "10.0.0.2:3260"},' in lines          # a portal per line
    assert '            {"tag": 1, "portals": ["10.0.0.1:3260"]},' in lines


def test_portal_may_sit_in_groups_of_different_targets(tmp_path: pathlib.Path) -> None:
    data = base_state()
    data["subsystems"][0]["targets"][1]["groups"] = [{"tag": 1, "portals": [P1]}]
    read_state(str(write_state(tmp_path / "s.json", data)))


# An AddPortal in flight, as the simulator writes it.
RECORD: dict[str, t.Any] = {
    "id": "0f9c2b1e-3c55-4c1f-9a43-56b4b7a3b6de", "name": "AddPortal", "subsystem": "array-a", "target": IQN1,
    "tag": 1, "portal": P2, "objects": [["group", "array-a", IQN1, 1], ["portal", "array-a", P2]],
    "started_at": 1.0, "completes_at": 2.0,
}


def _set(path: str, value: t.Any) -> t.Callable[[dict[str, t.Any]], None]:
    """A mutation of the base state: set the value at a dotted path (indexes as numbers)."""
    def mutate(data: dict[str, t.Any]) -> None:
        *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
        node: t.Any = data
        for part in parents:
            node = node[part]
        node[last] = value
    return mutate


INVALID = [
    (_set("version", 2), "version: 2 is not supported; this simulator reads version 1"),
    (_set("version", True), "version: true is not supported"),
    (lambda data: data.pop("version"), "version: missing (required)"),
    (_set("latncy_ms", 5),
     "latncy_ms: unknown key (known keys: calls, count_reads, faults, latency_ms, operations, subsystems, version)"),
    (_set("subsystems.0.targets.0.grups", []), "subsystems[0].targets[0].grups: unknown key"),
    (_set("subsystems.1.name", "array-a"), "subsystems[1].name: \"array-a\" names two subsystems"),
    (_set("subsystems.0.targets.1.groups", [{"tag": 70000, "portals": []}]),
     "subsystems[0].targets[1].groups[0].tag: 70000 is outside 1..65535"),
    (_set("subsystems.0.targets.1.groups", [{"tag": "1"}]),
     "subsystems[0].targets[1].groups[0].tag: \"1\" is not an integer"),
    (_set("subsystems.0.targets.1.groups", [{"tag": 2}, {"tag": 2}]),
     "subsystems[0].targets[1].groups[1].tag: tag 2 is used by two groups of target " + IQN2),
    (_set("subsystems.0.targets.0.groups", [{"tag": 1, "portals": [P1]}, {"tag": 2, "portals": ["10.0.0.1"]}]),
     "subsystems[0].targets[0].groups[1].portals[0]: portal 10.0.0.1:3260 is already in group 1 of this target; "
     "a portal belongs to at most one group of a target"),
    (_set("subsystems.0.targets.0.groups.0.portals", [P1, P1]),
     "subsystems[0].targets[0].groups[0].portals[1]: portal 10.0.0.1:3260 is already in group 1"),
    (_set("subsystems.0.targets.0.groups.0.portals", [PB]),
     "subsystems[0].targets[0].groups[0].portals[0]: 10.1.0.1:3260 is not a portal of subsystem array-a"),
    (_set("subsystems.0.portals.1.address", "10.0.0.300"),
     "subsystems[0].portals[1].address: portal '10.0.0.300': '10.0.0.300' is not an IPv4 or IPv6 address"),
    (_set("subsystems.0.portals.1.address", "10.0.0.1"),
     "subsystems[0].portals[1].address: portal 10.0.0.1:3260 is listed twice in subsystem array-a"),
    (_set("subsystems.0.portals.1.status", "up"),
     "subsystems[0].portals[1].status: \"up\" is not a portal status (one of: unknown, online, not_ready, "
     "offline, failed)"),
    (_set("subsystems.0.targets.1.iqn", "iqn.bad"), "subsystems[0].targets[1].iqn: target 'iqn.bad' is not an iSCSI"),
    (_set("subsystems.0.targets.1.iqn", IQN1.upper()),
     "subsystems[0].targets[1].iqn: target %s is listed twice in subsystem array-a" % IQN1),
    (_set("subsystems.0.max_groups_per_target", -1), "subsystems[0].max_groups_per_target: -1 is below 0"),
    (_set("subsystems.0.portals", {}), "subsystems[0].portals: expected an array, found an object"),
    (_set("subsystems.0.name", ""), "subsystems[0].name: must not be empty"),
    (_set("latency_ms", -5), "latency_ms: -5 is below 0"),
    (_set("latency_ms", "fast"), "latency_ms: \"fast\" is not a number"),
    (_set("faults", [{"operation": "AddPortals", "hresult": "VDS_E_RETRY"}]),
     "faults[0].operation: \"AddPortals\" is not an operation the simulator runs (one of: AddPortal,"),
    (_set("faults", [{"operation": "AddPortal", "hresult": "VDS_E_NOPE"}]),
     "faults[0].hresult: unknown HRESULT 'VDS_E_NOPE'"),
    (_set("faults", [{"operation": "AddPortal", "hresult": [1]}]),
     "faults[0].hresult: expected an HRESULT name or number, found an array"),
    (_set("faults", [{"operation": "AddPortal"}]), "faults[0].hresult: missing (required)"),
    (_set("faults", [{"operation": "AddPortal", "hresult": "VDS_E_RETRY", "times": 0}]),
     "faults[0].times: 0 is below 1"),
    (_set("faults", [{"operation": "AddPortal", "hresult": "VDS_E_RETRY", "phase": "later"}]),
     "faults[0].phase: \"later\" is not a fault phase (one of: call, wait)"),
    (_set("faults", [{"operation": "QueryPortalGroups", "hresult": "VDS_E_RETRY", "phase": "wait"}]),
     "faults[0].phase: QueryPortalGroups returns no operation to wait on; use phase \"call\""),
    (_set("calls", {"AddPortal": -1}), "calls.AddPortal: -1 is below 0"),
    (_set("calls", []), "calls: expected an object, found an array"),
    (_set("operations", [{"id": "x", "name": "AddPortal"}]), "operations[0].subsystem: missing (required)"),
    (_set("operations", [dict(RECORD, status="up")]), "operations[0].status: unknown key"),
    (_set("operations", [{"id": "x", "name": "SetStatus", "subsystem": "array-a", "portal": P2, "status": "up",
                          "objects": [["portal", "array-a", P2]], "started_at": 1, "completes_at": 2}]),
     "operations[0].status: \"up\" is not a status SetStatus sets (one of: online, offline)"),
    (_set("operations", [dict(RECORD, group_tag=1)]), "operations[0].group_tag: unknown key"),
    (_set("operations", [dict(RECORD, result="S_OK")]),
     "operations[0].finished_at: missing (required once the operation has a result)"),
    (_set("operations", [dict(RECORD, objects=[[]])]), "operations[0].objects[0]: expected an object key"),
    (_set("operations", [{"id": "x", "name": "AddPortal", "subsystem": "array-a", "objects": [], "started_at": 1,
                          "completes_at": 2, "target": IQN1, "tag": 1}]), "operations[0].portal: missing (required)"),
    (lambda data: data.clear(), "version: missing (required)"),
]


@pytest.mark.parametrize("mutate, message", INVALID, ids=[message.split(":")[0] for _m, message in INVALID])
def test_invalid_state_is_refused_naming_the_json_path(tmp_path: pathlib.Path, mutate: t.Any, message: str) -> None:
    data = base_state()
    mutate(data)
    path = write_state(tmp_path / "state.json", data)
    before = path.read_bytes()
    with pytest.raises(StateFileError) as caught:
        SimulatorBackend(str(path)).snapshot()
    assert str(caught.value).startswith("simulator state file %s: " % path)
    assert message in str(caught.value)
    assert path.read_bytes() == before
    with pytest.raises(StateFileError, match="state file"):
        read_state(str(path))


@pytest.mark.parametrize("text, message", [
    ('{"version": 1,\n "subsystems": [}', "is not valid JSON: line 2 column 17: Expecting value"),
    ('{"version": 1, "version": 1, "subsystems": []}', "key \"version\" appears twice in one object"),
    ('[]', ": expected an object, found an array"),
    ('', "is not valid JSON: line 1 column 1"),
])
def test_unreadable_json_is_refused_with_line_and_column(tmp_path: pathlib.Path, text: str, message: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StateFileError) as caught:
        read_state(str(path))
    assert str(caught.value).startswith("simulator state file %s" % path)
    assert message in str(caught.value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) | st.floats() | st.text(max_size=12)
    | st.sampled_from([P1, "10.0.0.9", "[::1]", IQN1, "array-a", "AddPortal", "SetStatus", "VDS_E_RETRY", "wait"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "address", "tag", "portals", "iqn", "groups", "hresult", "x"]), children, max_size=3),
    max_leaves=6)
PLACES = ["version", "subsystems", "subsystems.0", "subsystems.0.name", "subsystems.0.max_groups_per_target",
          "subsystems.0.portals", "subsystems.0.portals.0", "subsystems.0.portals.1.address",
          "subsystems.0.portals.0.status", "subsystems.0.targets", "subsystems.0.targets.0",
          "subsystems.0.targets.0.iqn", "subsystems.0.targets.0.alias", "subsystems.0.targets.0.groups",
          "subsystems.0.targets.0.groups.0", "subsystems.0.targets.0.groups.0.tag",
          "subsystems.0.targets.0.groups.0.portals", "subsystems.0.targets.0.groups.0.portals.0", "latency_ms",
          "faults", "faults.0", "faults.0.operation", "faults.0.hresult", "faults.0.times", "faults.0.phase", "calls",
          "calls.AddPortal", "operations", "operations.0", "operations.0.name", "operations.0.target",
          "operations.0.tag", "operations.0.portal", "operations.0.objects", "operations.0.objects.0",
          "operations.0.completes_at", "operations.0.fault", "operations.0.group_tag", "operations.0.status"]


@settings(max_examples=300, deadline=None)
@given(place=st.sampled_from(PLACES), value=JSON_VALUES)
def test_any_value_anywhere_loads_or_is_refused_cleanly(place: str, value: t.Any) -> None:
    data = base_state(faults=[{"operation": "AddPortal", "hresult": "VDS_E_RETRY", "phase": "wait"}],
                      calls={"AddPortal": 1}, operations=[dict(RECORD)])
    _set(place, value)(data)
    with tempfile.TemporaryDirectory() as directory:
        path = write_state(pathlib.Path(directory) / "state.json", data)
        try:
            read_state(str(path))
        except StateFileError as error:
            assert str(error).startswith("simulator state file %s" % path)
            return
        # Whatever loads can be acted on (the operation is applied) and stays loadable.
        SimulatorBackend(str(path), now=lambda: 1e9).snapshot()
        read_state(str(path))


def test_missing_unreadable_and_binary_files(tmp_path: pathlib.Path) -> None:
    with pytest.raises(StateFileError, match="state.json does not exist"):
        SimulatorBackend(str(tmp_path / "state.json")).snapshot()
    with pytest.raises(StateFileError, match="cannot read simulator state file .*: Is a directory"):
        read_state(str(tmp_path))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"version": 1, "subsystems": ["\xff"]}')
    with pytest.raises(StateFileError, match="is not UTF-8 text"):
        read_state(str(binary))
    with pytest.raises(StateFileError, match="simulator_state is empty"):
        SimulatorBackend("")


def test_a_byte_order_mark_is_tolerated(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(base_state()).encode())
    assert read_state(str(path))["version"] == 1


# --- snapshots and ids -----------------------------------------------------------------------


def test_snapshot_reads_everything_with_guid_ids(state_path: pathlib.Path) -> None:
    snapshot = SimulatorBackend(str(state_path)).snapshot()
    assert [sub.name for sub in snapshot.subsystems] == ["array-a", "array-b"]
    array_a = snapshot.subsystems[0]
    assert [str(portal.address) for portal in array_a.portals] == [P1, P2, P3, P4]
    assert {portal.status for portal in array_a.portals} == {"online"}
    target = array_a.target(IQN1)
    assert target is not None and target.alias == "t1"
    assert target.membership() == {1: frozenset({PortalAddress.parse(P1)})}
    every_id = [array_a.id, target.id, target.groups[0].id] + [portal.id for portal in array_a.portals]
    assert all(uuid.UUID(value).version == 4 for value in every_id)
    assert len(set(every_id)) == len(every_id)


def test_ids_are_stable_in_one_instance_and_not_kept_across_instances(state_path: pathlib.Path) -> None:
    first = SimulatorBackend(str(state_path))
    assert ids(first) == ids(first)
    second = ids(SimulatorBackend(str(state_path)))
    assert set(second) == set(ids(first))
    assert not set(second.values()) & set(ids(first).values())
    text = state_path.read_text()
    assert not any(value in text for value in second.values())


def test_ids_of_another_instance_are_not_found(state_path: pathlib.Path) -> None:
    other = ids(SimulatorBackend(str(state_path)))
    backend = SimulatorBackend(str(state_path))
    mine = ids(backend)
    with pytest.raises(HResultError) as caught:
        backend.add_portal(mine[("array-a", IQN1, 1)], other[("array-a", P2)])
    assert caught.value.hresult == errors.VDS_E_OBJECT_NOT_FOUND and caught.value.phase == "call"
    with pytest.raises(HResultError) as caught:
        backend.create_group(other[("array-a", IQN1)])
    assert caught.value.hresult == errors.VDS_E_OBJECT_NOT_FOUND


def test_snapshot_of_one_subsystem_and_of_an_unknown_one(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    assert [sub.name for sub in backend.snapshot("array-b").subsystems] == ["array-b"]
    with pytest.raises(NotFoundError, match="subsystem 'array-z' does not exist; known subsystems: array-a, array-b"):
        backend.snapshot("array-z")
    assert calls(state_path) == {"Snapshot": 1}


def test_snapshot_counts_one_read_per_subsystem(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    backend.snapshot()
    backend.snapshot("array-a")
    assert calls(state_path) == {"Snapshot": 3}


@pytest.mark.parametrize("count_reads", [None, False])
def test_reads_leave_the_file_untouched_unless_asked_to_count_them(tmp_path: pathlib.Path,
                                                                   count_reads: bool | None) -> None:
    data = base_state()
    del data["count_reads"]
    if count_reads is not None:
        data["count_reads"] = count_reads
    path = write_state(tmp_path / "s.json", data)
    raw, before = path.read_bytes(), os.stat(path)
    backend = SimulatorBackend(str(path))
    backend.snapshot()
    backend.snapshot("array-b")
    backend.close()
    after = os.stat(path)
    assert path.read_bytes() == raw
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.lock"]


def test_count_reads_must_be_true_or_false(tmp_path: pathlib.Path) -> None:
    path = write_state(tmp_path / "s.json", base_state(count_reads="yes"))
    with pytest.raises(StateFileError, match=r"s\.json: count_reads: expected true or false, found a string"):
        SimulatorBackend(str(path)).snapshot()


# --- CreatePortalGroup: tags and the cap -----------------------------------------------------


def test_new_groups_get_the_lowest_free_tag(tmp_path: pathlib.Path) -> None:
    data = base_state()
    data["subsystems"][0]["targets"][0]["groups"] = [{"tag": 1, "portals": [P1]}, {"tag": 3, "portals": []}]
    path = write_state(tmp_path / "s.json", data)
    backend = SimulatorBackend(str(path))
    target_id = ids(backend)[("array-a", IQN1)]
    first = backend.result(backend.create_group(target_id))
    second = backend.result(backend.create_group(target_id))
    assert (first.operation_hresult, first.group_tag) == (S_OK, 2)
    assert (second.operation_hresult, second.group_tag) == (S_OK, 4)
    assert members(path) == {1: [P1], 2: [], 3: [], 4: []}
    fresh = ids(backend)
    assert first.group_id == fresh[("array-a", IQN1, 2)] and second.group_id == fresh[("array-a", IQN1, 4)]


def test_first_group_of_a_target_gets_tag_1(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    outcome = backend.result(backend.create_group(ids(backend)[("array-a", IQN2)]))
    assert (outcome.operation_hresult, outcome.group_tag) == (S_OK, 1)
    assert members(state_path, IQN2) == {1: []}


def test_the_cap_answers_already_exists_with_the_lowest_tag_group(tmp_path: pathlib.Path) -> None:
    data = base_state()
    data["subsystems"][0]["max_groups_per_target"] = 2
    data["subsystems"][0]["targets"][0]["groups"] = [{"tag": 5, "portals": []}, {"tag": 2, "portals": [P1]}]
    path = write_state(tmp_path / "s.json", data)
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    outcome = backend.result(backend.create_group(known[("array-a", IQN1)]))
    assert outcome.operation_hresult == errors.VDS_S_ALREADY_EXISTS
    assert errors.is_success(outcome.operation_hresult)
    assert (outcome.group_tag, outcome.group_id) == (2, known[("array-a", IQN1, 2)])
    assert members(path) == {2: [P1], 5: []}
    # Below the cap, creating works normally.
    outcome = backend.result(backend.create_group(known[("array-a", IQN2)]))
    assert (outcome.operation_hresult, outcome.group_tag) == (S_OK, 1)


def test_create_group_refuses_a_tag(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    with pytest.raises(HResultError) as caught:
        backend.create_group(ids(backend)[("array-a", IQN1)], tag=7)
    assert (caught.value.hresult, caught.value.phase) == (E_INVALIDARG, "call")
    assert members(state_path) == {1: [P1]}
    assert calls(state_path)["CreatePortalGroup"] == 1


# --- AddPortal / RemovePortal / Delete / SetStatus rules -------------------------------------


def test_add_and_remove_portal(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    group, portal = known[("array-a", IQN1, 1)], known[("array-a", P2)]
    operation = backend.add_portal(group, portal)
    assert (operation.name, operation.objects) == ("AddPortal", (group, portal))
    assert uuid.UUID(operation.id).version == 4
    assert backend.query_status(operation) == OperationStatus(S_OK, 100)
    assert done(backend, operation) == S_OK
    assert members(state_path) == {1: [P1, P2]}
    assert done(backend, backend.remove_portal(group, known[("array-a", P1)])) == S_OK
    assert members(state_path) == {1: [P2]}


def test_add_portal_already_in_this_group_or_another_group_of_the_target(tmp_path: pathlib.Path) -> None:
    data = base_state()
    data["subsystems"][0]["targets"][0]["groups"] = [{"tag": 1, "portals": [P1]}, {"tag": 2, "portals": []}]
    path = write_state(tmp_path / "s.json", data)
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    assert done(backend, backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P1)])) == \
        errors.VDS_E_OBJECT_EXISTS
    assert done(backend, backend.add_portal(known[("array-a", IQN1, 2)], known[("array-a", P1)])) == \
        errors.VDS_E_OBJECT_EXISTS
    assert members(path) == {1: [P1], 2: []}


def test_a_portal_may_join_a_group_of_another_target(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    target_id = known[("array-a", IQN2)]
    group = backend.result(backend.create_group(target_id)).group_id
    assert group is not None
    assert done(backend, backend.add_portal(group, known[("array-a", P1)])) == S_OK
    assert members(state_path, IQN2) == {1: [P1]} and members(state_path) == {1: [P1]}


def test_remove_portal_of_a_non_member(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    assert done(backend, backend.remove_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])) == \
        errors.VDS_E_OBJECT_NOT_FOUND
    assert members(state_path) == {1: [P1]}


def test_delete_group_with_portals_then_empty(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    group = known[("array-a", IQN1, 1)]
    assert done(backend, backend.delete_group(group)) == errors.VDS_E_ASSOCIATED_PORTALS_EXIST
    assert members(state_path) == {1: [P1]}
    assert done(backend, backend.remove_portal(group, known[("array-a", P1)])) == S_OK
    assert done(backend, backend.delete_group(group)) == S_OK
    assert members(state_path) == {}
    for call in (lambda: backend.delete_group(group), lambda: backend.add_portal(group, known[("array-a", P1)])):
        with pytest.raises(HResultError) as caught:
            call()
        assert (caught.value.hresult, caught.value.phase) == (errors.VDS_E_OBJECT_DELETED, "call")


def test_a_recreated_group_gets_a_new_id_and_the_old_one_stays_deleted(tmp_path: pathlib.Path) -> None:
    data = base_state()
    data["subsystems"][0]["targets"][0]["groups"] = [{"tag": 1, "portals": []}]
    path = write_state(tmp_path / "s.json", data)
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    old = known[("array-a", IQN1, 1)]
    assert done(backend, backend.delete_group(old)) == S_OK
    new = backend.result(backend.create_group(known[("array-a", IQN1)]))
    assert new.group_tag == 1 and new.group_id != old
    with pytest.raises(HResultError) as caught:
        backend.add_portal(old, known[("array-a", P2)])
    assert caught.value.hresult == errors.VDS_E_OBJECT_DELETED
    assert done(backend, backend.add_portal(t.cast(str, new.group_id), known[("array-a", P2)])) == S_OK


def test_objects_removed_from_the_file_are_deleted_or_not_found(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    data = content(state_path)
    data["subsystems"][0]["portals"].pop(1)                  # P2 gone
    data["subsystems"][0]["targets"].pop(1)                  # IQN2 gone
    write_state(state_path, data)
    group = known[("array-a", IQN1, 1)]
    cases = [
        (lambda: backend.add_portal(group, known[("array-a", P2)]), errors.VDS_E_OBJECT_NOT_FOUND),
        (lambda: backend.remove_portal(group, known[("array-a", P2)]), errors.VDS_E_OBJECT_NOT_FOUND),
        (lambda: backend.create_group(known[("array-a", IQN2)]), errors.VDS_E_OBJECT_DELETED),
        (lambda: backend.set_portal_status(known[("array-a", P2)], "offline"), errors.VDS_E_OBJECT_DELETED),
        (lambda: backend.add_portal(group, str(uuid.uuid4())), errors.VDS_E_OBJECT_NOT_FOUND),
        (lambda: backend.add_portal(str(uuid.uuid4()), known[("array-a", P3)]), errors.VDS_E_OBJECT_NOT_FOUND),
        (lambda: backend.add_portal(group, known[("array-a", IQN1)]), errors.VDS_E_OBJECT_NOT_FOUND),
        (lambda: backend.add_portal(group, known[("array-b", PB)]), errors.VDS_E_OBJECT_NOT_FOUND),
    ]
    for call, expected in cases:
        with pytest.raises(HResultError) as caught:
            call()
        assert (errors.hresult_name(caught.value.hresult), caught.value.phase) == \
            (errors.hresult_name(expected), "call")
    assert members(state_path) == {1: [P1]}


def test_set_status(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    portal = ids(backend)[("array-a", P2)]
    operation = backend.set_portal_status(portal, "offline")
    assert (operation.name, operation.objects) == ("SetStatus", (portal,))
    assert done(backend, operation) == S_OK
    assert portal_status(state_path, P2) == "offline"
    statuses = [portal.status for portal in backend.snapshot("array-a").subsystems[0].portals]
    assert statuses == ["online", "offline", "online", "online"]
    with pytest.raises(HResultError) as caught:
        backend.set_portal_status(portal, "failed")
    assert (caught.value.hresult, caught.value.phase) == (E_INVALIDARG, "call")
    assert portal_status(state_path, P2) == "offline"


def test_every_mutating_call_is_counted_even_when_it_fails(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    group, portal = known[("array-a", IQN1, 1)], known[("array-a", P2)]
    operation = backend.add_portal(group, portal)
    backend.query_status(operation)
    backend.result(operation)
    backend.cancel(operation)
    backend.remove_portal(group, portal)
    backend.create_group(known[("array-a", IQN2)])
    backend.delete_group(known[("array-a", IQN1, 1)])
    backend.set_portal_status(portal, "offline")
    for failing in (lambda: backend.add_portal(group, "nope"), lambda: backend.create_group("nope", 3),
                    lambda: backend.set_portal_status(portal, "up"), lambda: backend.delete_group("nope")):
        with pytest.raises(HResultError):
            failing()
    backend.recover_cache("array-a")
    assert calls(state_path) == {"AddPortal": 2, "Cancel": 1, "CreatePortalGroup": 2, "DeletePortalGroup": 2,
                                 "Reenumerate": 1, "Refresh": 1, "RemovePortal": 1, "SetStatus": 2, "Snapshot": 2}


# --- faults ----------------------------------------------------------------------------------


def test_call_phase_fault_fires_times_then_stops(tmp_path: pathlib.Path) -> None:
    path = with_state(tmp_path, faults=[{"operation": "AddPortal", "hresult": "VDS_E_ANOTHER_CALL_IN_PROGRESS",
                                         "times": 2, "phase": "call"}])
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    group, portal = known[("array-a", IQN1, 1)], known[("array-a", P2)]
    for remaining in ([{"operation": "AddPortal", "hresult": "VDS_E_ANOTHER_CALL_IN_PROGRESS", "times": 1,
                        "phase": "call"}], []):
        with pytest.raises(HResultError) as caught:
            backend.add_portal(group, portal)
        assert (caught.value.hresult, caught.value.phase) == (errors.VDS_E_ANOTHER_CALL_IN_PROGRESS, "call")
        assert caught.value.details["injected"] is True
        assert content(path)["faults"] == remaining
        assert members(path) == {1: [P1]}
    assert done(backend, backend.add_portal(group, portal)) == S_OK
    assert members(path) == {1: [P1, P2]}
    assert calls(path)["AddPortal"] == 3


def test_wait_phase_fault_creates_the_operation_without_effect(tmp_path: pathlib.Path) -> None:
    path = with_state(tmp_path, faults=[{"operation": "AddPortal", "hresult": "VDS_E_PROVIDER_CACHE_CORRUPT",
                                         "phase": "wait"}])
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    operation = backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])
    assert backend.query_status(operation).hresult == errors.VDS_E_PROVIDER_CACHE_CORRUPT
    assert done(backend, operation) == errors.VDS_E_PROVIDER_CACHE_CORRUPT
    assert members(path) == {1: [P1]}
    assert content(path)["faults"] == []


@pytest.mark.parametrize("hresult, expected", [
    ("0x80042463", errors.VDS_E_RETRY),
    ("vds_e_retry", errors.VDS_E_RETRY),
    (2147755107, errors.VDS_E_RETRY),
    ("0x80070020", 0x80070020),
])
def test_faults_accept_names_and_numbers(tmp_path: pathlib.Path, hresult: t.Any, expected: int) -> None:
    path = with_state(tmp_path, faults=[{"operation": "DeletePortalGroup", "hresult": hresult}])
    backend = SimulatorBackend(str(path))
    with pytest.raises(HResultError) as caught:
        backend.delete_group(ids(backend)[("array-a", IQN1, 1)])
    assert caught.value.hresult == expected
    assert "faults" in content(path) and content(path)["faults"] == []


def test_faults_fire_in_list_order_by_operation_and_phase(tmp_path: pathlib.Path) -> None:
    path = with_state(tmp_path, faults=[
        {"operation": "RemovePortal", "hresult": "VDS_E_RETRY"},
        {"operation": "AddPortal", "hresult": "VDS_E_TIMEOUT", "phase": "wait"},
        {"operation": "AddPortal", "hresult": "VDS_E_PROVIDER_FAILURE"},
        {"operation": "AddPortal", "hresult": "E_OUTOFMEMORY"},
    ])
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    group, portal = known[("array-a", IQN1, 1)], known[("array-a", P2)]
    failures = []
    for _attempt in range(2):
        with pytest.raises(HResultError) as caught:
            backend.add_portal(group, portal)
        failures.append(errors.hresult_name(caught.value.hresult))
    assert failures == ["VDS_E_PROVIDER_FAILURE", "E_OUTOFMEMORY"]
    assert done(backend, backend.add_portal(group, portal)) == errors.BY_NAME["VDS_E_TIMEOUT"].value
    assert [fault["operation"] for fault in content(path)["faults"]] == ["RemovePortal"]
    assert done(backend, backend.add_portal(group, portal)) == S_OK


def test_a_success_fault_does_not_fail_the_operation(tmp_path: pathlib.Path) -> None:
    path = with_state(tmp_path, faults=[{"operation": "AddPortal", "hresult": "VDS_S_PROPERTIES_INCOMPLETE"},
                                        {"operation": "SetStatus", "hresult": "VDS_S_PROPERTIES_INCOMPLETE",
                                         "phase": "wait"}])
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    assert done(backend, backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])) == \
        VDS_S_PROPERTIES_INCOMPLETE
    assert done(backend, backend.set_portal_status(known[("array-a", P3)], "offline")) == \
        VDS_S_PROPERTIES_INCOMPLETE
    assert members(path) == {1: [P1, P2]} and portal_status(path, P3) == "offline"
    assert content(path)["faults"] == []


@pytest.mark.parametrize("phase", ["call", "wait"])
def test_already_exists_fault_on_create_behaves_like_the_cap(tmp_path: pathlib.Path, phase: str) -> None:
    data = base_state(faults=[{"operation": "CreatePortalGroup", "hresult": "VDS_S_ALREADY_EXISTS", "phase": phase,
                               "times": 2}])
    data["subsystems"][0]["targets"][0]["groups"].append({"tag": 3, "portals": []})
    path = write_state(tmp_path / "s.json", data)
    backend = SimulatorBackend(str(path))
    known = ids(backend)
    outcome = backend.result(backend.create_group(known[("array-a", IQN1)]))
    assert (outcome.operation_hresult, outcome.group_tag) == (errors.VDS_S_ALREADY_EXISTS, 1)
    assert outcome.group_id == known[("array-a", IQN1, 1)]
    assert members(path) == {1: [P1], 3: []}
    # A target without groups gets a new one: there is nothing existing to hand back.
    outcome = backend.result(backend.create_group(known[("array-a", IQN2)]))
    assert (outcome.operation_hresult, outcome.group_tag) == (S_OK, 1)
    assert members(path, IQN2) == {1: []}
    assert content(path)["faults"] == []


def test_query_portal_groups_fault_fails_the_snapshot(tmp_path: pathlib.Path) -> None:
    path = with_state(tmp_path, faults=[{"operation": "QueryPortalGroups", "hresult": "VDS_E_PROVIDER_CACHE_CORRUPT"}])
    backend = SimulatorBackend(str(path))
    with pytest.raises(HResultError) as caught:
        backend.snapshot()
    assert (caught.value.hresult, caught.value.phase) == (errors.VDS_E_PROVIDER_CACHE_CORRUPT, "call")
    assert content(path)["faults"] == [] and calls(path) == {"Snapshot": 2}
    assert len(backend.snapshot().subsystems) == 2


def test_recover_cache_counts_and_fires_reenumerate_then_refresh(tmp_path: pathlib.Path) -> None:
    path = with_state(tmp_path, faults=[{"operation": "Refresh", "hresult": "VDS_E_OBJECT_STATUS_FAILED"},
                                        {"operation": "Reenumerate", "hresult": "VDS_E_INITIALIZE_NOT_CALLED"}])
    backend = SimulatorBackend(str(path))
    with pytest.raises(HResultError) as caught:
        backend.recover_cache("array-a")
    assert (caught.value.hresult, caught.value.phase) == (errors.BY_NAME["VDS_E_INITIALIZE_NOT_CALLED"].value, "call")
    assert calls(path) == {"Reenumerate": 1}
    with pytest.raises(HResultError, match="VDS_E_OBJECT_STATUS_FAILED"):
        backend.recover_cache(None)
    backend.recover_cache("array-b")
    assert calls(path) == {"Reenumerate": 3, "Refresh": 2}
    assert content(path)["faults"] == []
    with pytest.raises(NotFoundError, match="subsystem 'array-z' does not exist; known subsystems: array-a, array-b"):
        backend.recover_cache("array-z")
    assert calls(path) == {"Reenumerate": 3, "Refresh": 2}


def test_cancel_fault_is_returned_without_cancelling(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=1000, faults=[{"operation": "Cancel", "hresult": "VDS_E_NOT_SUPPORTED"}])
    backend = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    known = ids(backend)
    operation = backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])
    assert backend.cancel(operation) == errors.VDS_E_NOT_SUPPORTED
    assert done(backend, operation) == S_OK
    assert members(path) == {1: [P1, P2]}


# --- latency, progress, cancel ---------------------------------------------------------------


def test_latency_reports_progress_and_applies_at_completion(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=1000)
    backend = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    known = ids(backend)
    group, portal = known[("array-a", IQN1, 1)], known[("array-a", P2)]
    operation = backend.add_portal(group, portal)
    [record] = content(path)["operations"]
    assert record["id"] == operation.id and record["name"] == "AddPortal"
    assert record["completes_at"] == pytest.approx(clock.time + 1.0)
    assert record["objects"] == [["group", "array-a", IQN1, 1], ["portal", "array-a", P2]]
    assert members(path) == {1: [P1]}
    progress = []
    for step in (0.0, 0.25, 0.5, 0.249):
        clock.time += step
        progress.append(backend.query_status(operation))
    assert [status.hresult for status in progress] == [errors.VDS_E_OPERATION_PENDING] * 4
    assert [status.percent for status in progress] == [0, 25, 75, 99]
    assert members(path) == {1: [P1]}
    clock.time += 0.001
    assert backend.query_status(operation) == OperationStatus(S_OK, 100)
    assert members(path) == {1: [P1, P2]}
    assert "operations" not in content(path)
    assert done(backend, operation) == S_OK
    assert clock.sleeps == []


def test_wait_sleeps_until_the_operation_completes(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=2500)
    backend = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    target_id = ids(backend)[("array-a", IQN2)]
    start = clock.time
    operation = backend.create_group(target_id)
    clock.time += 1.0
    outcome = backend.result(operation)
    assert clock.sleeps == [pytest.approx(1.5)]
    assert clock.time == pytest.approx(start + 2.5)
    assert (outcome.operation_hresult, outcome.group_tag) == (S_OK, 1)
    assert outcome.group_id == ids(backend)[("array-a", IQN2, 1)]
    assert members(path, IQN2) == {1: []}


def test_cancel_while_pending_and_too_late(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=1000)
    backend = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    known = ids(backend)
    group = known[("array-a", IQN1, 1)]
    pending = backend.add_portal(group, known[("array-a", P2)])
    clock.time += 0.5
    assert backend.cancel(pending) == S_OK
    assert backend.query_status(pending) == OperationStatus(errors.VDS_E_OPERATION_CANCELED, 100)
    assert done(backend, pending) == errors.VDS_E_OPERATION_CANCELED
    clock.time += 5
    backend.snapshot()
    assert members(path) == {1: [P1]}
    assert "operations" not in content(path)
    assert backend.cancel(pending) == errors.VDS_E_CANCEL_TOO_LATE
    finished = backend.add_portal(group, known[("array-a", P3)])
    clock.time += 1.0
    assert backend.cancel(finished) == errors.VDS_E_CANCEL_TOO_LATE
    assert done(backend, finished) == S_OK
    assert members(path) == {1: [P1, P3]}
    assert calls(path)["Cancel"] == 3


def test_without_latency_nothing_is_left_in_flight(state_path: pathlib.Path) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    operation = backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])
    assert "operations" not in content(state_path)
    assert backend.cancel(operation) == errors.VDS_E_CANCEL_TOO_LATE


def test_another_caller_settles_and_the_owner_collects(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=1000)
    owner = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    known = ids(owner)
    operation = owner.create_group(known[("array-a", IQN2)])
    clock.time += 1.0
    SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep).snapshot()
    [record] = content(path)["operations"]
    assert (record["result"], record["group_tag"]) == ("S_OK", 1)
    assert members(path, IQN2) == {1: []}
    outcome = owner.result(operation)
    assert (outcome.operation_hresult, outcome.group_tag) == (S_OK, 1)
    assert "operations" not in content(path)


def test_effects_are_checked_again_when_the_operation_completes(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=1000)
    backend = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    known = ids(backend)
    operation = backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])
    data = content(path)
    data["subsystems"][0]["targets"][0]["groups"] = []       # someone edits the group away meanwhile
    write_state(path, data)
    clock.time += 1.0
    assert done(backend, operation) == errors.VDS_E_OBJECT_DELETED


def test_unclaimed_finished_operations_are_discarded(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=1000)
    backend = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    known = ids(backend)
    operation = backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])
    clock.time += 1.0 + OPERATION_RETENTION_S
    backend.snapshot()
    assert len(content(path)["operations"]) == 1
    clock.time += 1.0
    backend.snapshot()
    assert "operations" not in content(path)
    assert members(path) == {1: [P1, P2]}
    with pytest.raises(StateFileError, match="operation %s \\(AddPortal\\) is not in simulator state file" %
                       operation.id):
        backend.query_status(operation)


# --- several callers on one file -------------------------------------------------------------


def test_a_second_caller_on_a_busy_object_is_told_to_retry(tmp_path: pathlib.Path, clock: FakeClock) -> None:
    path = with_state(tmp_path, latency_ms=1000)
    first = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    second = SimulatorBackend(str(path), now=clock.now, sleep=clock.sleep)
    mine, theirs = ids(first), ids(second)
    operation = first.add_portal(mine[("array-a", IQN1, 1)], mine[("array-a", P2)])
    busy = [
        lambda: second.add_portal(theirs[("array-a", IQN1, 1)], theirs[("array-a", P3)]),   # same group
        lambda: second.set_portal_status(theirs[("array-a", P2)], "offline"),               # same portal
        lambda: second.delete_group(theirs[("array-a", IQN1, 1)]),
        lambda: first.remove_portal(mine[("array-a", IQN1, 1)], mine[("array-a", P1)]),      # the caller itself
    ]
    for call in busy:
        with pytest.raises(HResultError) as caught:
            call()
        assert (caught.value.hresult, caught.value.phase) == (errors.VDS_E_ANOTHER_CALL_IN_PROGRESS, "call")
        assert caught.value.details["operation_id"] == operation.id
    # Other objects are free.
    other = second.create_group(theirs[("array-a", IQN2)])
    clock.time += 1.0
    assert done(second, second.add_portal(theirs[("array-a", IQN1, 1)], theirs[("array-a", P3)])) == S_OK
    assert done(first, operation) == S_OK and done(second, other) == S_OK
    assert members(path) == {1: [P1, P2, P3]}
    assert calls(path)["AddPortal"] == 3


def _create_groups(path: str, count: int) -> None:
    backend = SimulatorBackend(path)
    target_id = ids(backend)[("array-a", IQN2)]
    for _number in range(count):
        outcome = backend.result(backend.create_group(target_id))
        assert outcome.operation_hresult == S_OK


def test_parallel_processes_lose_no_update(state_path: pathlib.Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_create_groups, args=(str(state_path), 10)) for _n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * 4
    assert sorted(members(state_path, IQN2)) == list(range(1, 41))
    assert calls(state_path) == {"CreatePortalGroup": 40, "Snapshot": 8}


def test_a_caller_waits_for_the_lock_held_by_another_process(state_path: pathlib.Path) -> None:
    context = multiprocessing.get_context("fork")
    with open(str(state_path) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        worker = context.Process(target=_create_groups, args=(str(state_path), 1))
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive()
        assert members(state_path, IQN2) == {}
        fcntl.flock(lock, fcntl.LOCK_UN)
    worker.join(30)
    assert worker.exitcode == 0
    assert members(state_path, IQN2) == {1: []}


# --- atomic writes ---------------------------------------------------------------------------


def test_writes_leave_no_temporary_files_and_keep_the_mode(state_path: pathlib.Path) -> None:
    os.chmod(state_path, 0o640)
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    backend.result(backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)]))
    assert sorted(os.listdir(state_path.parent)) == ["state.json", "state.json.lock"]
    assert os.stat(state_path).st_mode & 0o7777 == 0o640


@pytest.mark.parametrize("crash", [OSError(errno.EIO, "Input/output error"), KeyboardInterrupt()])
def test_a_crash_before_the_replace_leaves_the_old_file(state_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                        crash: BaseException) -> None:
    backend = SimulatorBackend(str(state_path))
    known = ids(backend)
    before = state_path.read_bytes()
    written: list[str] = []

    def crashing_replace(source: str, destination: str) -> None:
        written.append(pathlib.Path(source).read_text())
        raise crash

    monkeypatch.setattr(simulator.os, "replace", crashing_replace)
    expected = StateFileError if isinstance(crash, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as caught:
        backend.add_portal(known[("array-a", IQN1, 1)], known[("array-a", P2)])
    monkeypatch.undo()
    assert json.loads(written[0])["subsystems"][0]["targets"][0]["groups"][0]["portals"] == [P1, P2]
    assert state_path.read_bytes() == before
    assert sorted(os.listdir(state_path.parent)) == ["state.json", "state.json.lock"]
    if expected is StateFileError:
        assert str(caught.value) == "cannot write simulator state file %s: Input/output error" % state_path
    assert members(state_path) == {1: [P1]}


# --- a property: the simulator agrees with a plain model of VDS rules -------------------------

STEPS = st.lists(st.tuples(st.sampled_from(["create", "delete", "add", "remove"]), st.integers(0, 1),
                           st.integers(0, 7), st.integers(0, 3)), max_size=14)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, cap=st.integers(0, 3))
def test_sequences_follow_the_vds_rules(steps: list[tuple[str, int, int, int]], cap: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        data = base_state()
        data["subsystems"][0]["max_groups_per_target"] = cap
        path = write_state(pathlib.Path(directory) / "state.json", data)
        backend = SimulatorBackend(str(path))
        model: dict[str, dict[int, set[str]]] = {IQN1: {1: {P1}}, IQN2: {}}
        portals = [P1, P2, P3, P4]
        for action, target_index, group_index, portal_index in steps:
            iqn, portal = (IQN1, IQN2)[target_index], portals[portal_index]
            groups = model[iqn]
            known = ids(backend)
            if action == "create":
                outcome = backend.result(backend.create_group(known[("array-a", iqn)]))
                if groups and cap and len(groups) >= cap:
                    assert (outcome.operation_hresult, outcome.group_tag) == (errors.VDS_S_ALREADY_EXISTS, min(groups))
                else:
                    tag = min(set(range(1, len(groups) + 2)) - set(groups))
                    assert (outcome.operation_hresult, outcome.group_tag) == (S_OK, tag)
                    groups[tag] = set()
                continue
            if not groups:
                continue
            tag = sorted(groups)[group_index % len(groups)]
            group_id = known[("array-a", iqn, tag)]
            if action == "delete":
                expected = errors.VDS_E_ASSOCIATED_PORTALS_EXIST if groups[tag] else S_OK
                assert done(backend, backend.delete_group(group_id)) == expected
                if expected == S_OK:
                    del groups[tag]
            elif action == "add":
                holder = any(portal in members for members in groups.values())
                expected = errors.VDS_E_OBJECT_EXISTS if holder else S_OK
                assert done(backend, backend.add_portal(group_id, known[("array-a", portal)])) == expected
                if not holder:
                    groups[tag].add(portal)
            else:
                expected = S_OK if portal in groups[tag] else errors.VDS_E_OBJECT_NOT_FOUND
                assert done(backend, backend.remove_portal(group_id, known[("array-a", portal)])) == expected
                groups[tag].discard(portal)
        read_state(str(path))      # still valid: unique tags, one group per target per portal
        for iqn, groups in model.items():
            assert {tag: set(found) for tag, found in members(path, iqn).items()} == groups
