# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Moves under injected faults, on the simulated provider, through every module's entry point.

Whatever fails, and however often: a portal the declaration only moves ends in a group, or the failure
message names it; and ``steps`` (``steps_done`` on failure) lists each call that took effect, once.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import typing as t

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend
from ansible_collections.storage.vds.plugins.module_utils._vds import module_tasks, resource
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import VdsError
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1 as IQN
from ansible_collections.storage.vds.tests.unit.plugins.constants import MUTATING, NO_TROUBLE
from ansible_collections.storage.vds.tests.unit.plugins.state_file import StateFile
PORTALS = tuple("10.0.0.%d:3260" % number for number in range(1, 7))
OPERATIONS = ("AddPortal", "RemovePortal", "CreatePortalGroup", "DeletePortalGroup")
FAILURES = ("VDS_E_PROVIDER_FAILURE", "VDS_E_OBJECT_DELETED")


def state(groups: t.Mapping[int, t.Sequence[str]], faults: t.Sequence[dict[str, t.Any]] = ()) -> dict[str, t.Any]:
    return {"version": 1, "faults": list(faults), "subsystems": [{
        "name": "array-a", "portals": [{"address": portal} for portal in PORTALS],
        "targets": [{"iqn": IQN, "groups": [{"tag": tag, "portals": list(members)}
                                            for tag, members in sorted(groups.items())]}]}]}


def fault(operation: str, hresult: str, phase: str, after: int = 0, times: int = 1) -> t.List[dict[str, t.Any]]:
    """``times`` failures of the call after ``after`` calls of ``operation`` that succeed."""
    succeed = [{"operation": operation, "hresult": "S_OK", "phase": phase, "times": after}] if after else []
    return succeed + [{"operation": operation, "hresult": hresult, "phase": phase, "times": times}]


class Run(t.NamedTuple):
    steps: t.List[dict[str, t.Any]]       # steps, or steps_done of a failure
    message: str                          # the failure's message ("" on success)
    changed: bool
    operations: dict[str, int]


def run(engine: Engine, module: str, params: dict[str, t.Any]) -> Run:
    entry = {"vds_portal_groups": resource.resource, "vds_portal_group": module_tasks.portal_group,
             "vds_portal": module_tasks.portal}[module]
    try:
        result = entry(engine, params)
    except VdsError as error:
        return Run(error.details.get("steps_done", []), str(error), bool(error.details.get("steps_done")),
                   error.details.get("operations", {}))
    return Run(result["steps"], "", result["changed"], result["operations"])


def run_on(path: str, module: str, params: dict[str, t.Any]) -> Run:
    return run(Engine(SimulatorBackend(path), 30, sleep=lambda _seconds: None), module, params)


def holder(groups: t.Mapping[int, t.Sequence[str]], portal: str) -> t.List[int]:
    return [tag for tag, members in groups.items() if portal in members]


# --- the reproductions of the issue -------------------------------------------------------------


@pytest.fixture
def provider(tmp_path) -> t.Callable[..., StateFile]:
    def make(groups: t.Mapping[int, t.Sequence[str]], faults: t.Sequence[dict[str, t.Any]] = ()) -> StateFile:
        return StateFile(tmp_path / "array.json").write(state(groups, faults))
    return make


def merged(*groups: dict[str, t.Any], state_name: str = "merged") -> dict[str, t.Any]:
    return {"state": state_name, "config": [{"target": IQN, "groups": list(groups)}]}


def test_a_portal_moving_into_a_new_group_stays_put_when_the_create_fails(provider):
    states = provider({1: ["10.0.0.1:3260", "10.0.0.3:3260"]},
                      fault("CreatePortalGroup", "VDS_E_PROVIDER_FAILURE", "call"))
    failed = run_on(str(states.path), "vds_portal_groups",
                    merged({"tag": 1, "portals": ["10.0.0.1"]}, {"portals": ["10.0.0.3"]}))
    assert failed.message.startswith("CreatePortalGroup on %s: VDS_E_PROVIDER_FAILURE" % IQN)
    # the group is created before anything leaves for it: nothing had moved yet
    assert failed.steps == [] and failed.changed is False
    assert states.groups(IQN) == {1: ["10.0.0.1:3260", "10.0.0.3:3260"]}


@pytest.mark.parametrize("failing", [
    fault("RemovePortal", "VDS_E_PROVIDER_FAILURE", "call", after=1),
    fault("AddPortal", "VDS_E_PROVIDER_FAILURE", "wait", after=1),
    fault("AddPortal", "VDS_E_PROVIDER_FAILURE", "wait"),
])
def test_a_failed_swap_leaves_every_portal_in_a_group(provider, failing):
    states = provider({1: ["10.0.0.1:3260", "10.0.0.3:3260"], 2: ["10.0.0.2:3260"]}, failing)
    failed = run_on(str(states.path), "vds_portal_groups", merged(
        {"tag": 1, "portals": ["10.0.0.1", "10.0.0.2"]}, {"tag": 2, "portals": ["10.0.0.3"]}, state_name="replaced"))
    assert failed.message
    groups = states.groups(IQN)
    assert all(len(holder(groups, portal)) == 1 for portal in ("10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260"))
    assert failed.operations["rollbacks"] == sum(1 for step in failed.steps if step.get("rollback"))


def test_a_put_back_that_fails_names_the_portal_and_where_it_was(provider):
    states = provider({1: ["10.0.0.1:3260", "10.0.0.3:3260"], 2: ["10.0.0.2:3260"]},
                      fault("AddPortal", "VDS_E_PROVIDER_FAILURE", "call", times=2))
    failed = run_on(str(states.path), "vds_portal_groups", merged({"tag": 2, "portals": ["10.0.0.3"]}))
    assert failed.message.endswith("now in no group of %s: 10.0.0.3:3260 (it was in group 1)" % IQN)
    assert failed.changed is True
    assert failed.steps == [{"action": "remove_portal", "target": IQN, "tag": 1, "portal": "10.0.0.3:3260",
                             "subsystem": "array-a"}]


def test_deleted_refuses_a_group_spread_over_groups_and_is_idempotent(provider):
    states = provider({1: ["10.0.0.1:3260", "10.0.0.3:3260"], 2: ["10.0.0.2:3260"]})
    declared = merged({"portals": ["10.0.0.1", "10.0.0.2"]}, state_name="deleted")
    for check_mode in (True, False):
        engine = Engine(SimulatorBackend(str(states.path)), 30, check_mode=check_mode)
        with pytest.raises(VdsError) as raised:
            resource.resource(engine, declared)
        assert str(raised.value) == (
            "config[0].groups[0]: portals 10.0.0.1:3260, 10.0.0.2:3260 are spread over groups 1, 2 of %s: give tag "
            "to say which group to delete" % IQN)
    assert states.mutating_calls() == {}
    tagged = merged({"tag": 1, "portals": ["10.0.0.1", "10.0.0.2"]}, state_name="deleted")
    assert run_on(str(states.path), "vds_portal_groups", tagged).changed is True
    assert run_on(str(states.path), "vds_portal_groups", tagged).changed is False
    assert states.groups(IQN) == {2: ["10.0.0.2:3260"]}


def test_a_vanished_add_is_not_undone_then_redone(provider):
    states = provider({1: ["10.0.0.1:3260", "10.0.0.3:3260"], 2: ["10.0.0.2:3260"]},
                      fault("AddPortal", "VDS_E_OBJECT_DELETED", "call"))
    moved = run_on(str(states.path), "vds_portal", {"target": IQN, "portal": "10.0.0.3", "tag": 2})
    assert moved.message == ""
    assert [(step["action"], step["tag"]) for step in moved.steps] == [("remove_portal", 1), ("add_portal", 2)]
    assert moved.operations == dict(NO_TROUBLE, rereads=1)
    assert states.groups(IQN) == {1: ["10.0.0.1:3260"], 2: ["10.0.0.2:3260", "10.0.0.3:3260"]}


def test_a_portal_left_in_no_group_after_vanishing_again_is_named(provider):
    states = provider({1: ["10.0.0.1:3260", "10.0.0.3:3260"], 2: ["10.0.0.2:3260"]},
                      fault("AddPortal", "VDS_E_OBJECT_DELETED", "call", times=3))
    failed = run_on(str(states.path), "vds_portal", {"target": IQN, "portal": "10.0.0.3", "tag": 2})
    assert "it vanished again after the state was read once more" in failed.message
    assert failed.message.endswith("now in no group of %s: 10.0.0.3:3260 (it was in group 1)" % IQN)
    assert failed.changed is True
    assert states.groups(IQN) == {1: ["10.0.0.1:3260"], 2: ["10.0.0.2:3260"]}


# --- the property -------------------------------------------------------------------------------


@st.composite
def groups_of_a_target(draw: st.DrawFn) -> dict[int, list[str]]:
    tags = draw(st.lists(st.integers(1, 4), unique=True, min_size=1, max_size=3))
    groups: dict[int, list[str]] = {tag: [] for tag in tags}
    for portal in PORTALS:
        owner = draw(st.sampled_from([None] + tags))
        if owner is not None:
            groups[owner].append(portal)
    return groups


@st.composite
def declarations(draw: st.DrawFn, current: t.Mapping[int, t.Sequence[str]]) -> t.Tuple[str, dict[str, t.Any]]:
    """A module and its parameters; tags declared are those that exist (a missing one fails before any change)."""
    module = draw(st.sampled_from(("vds_portal_groups", "vds_portal_group", "vds_portal")))
    tags = sorted(current)
    if module == "vds_portal":
        return module, {"target": IQN, "portal": draw(st.sampled_from(PORTALS)), "tag": draw(st.sampled_from(tags))}
    if module == "vds_portal_group":
        portals = draw(st.lists(st.sampled_from(PORTALS), unique=True, min_size=1, max_size=4))
        return module, {"target": IQN, "portals": portals, "tag": draw(st.sampled_from([None] + tags)),
                        "purge_portals": draw(st.booleans())}
    count = draw(st.integers(1, 3))
    owners = [draw(st.sampled_from([None] + list(range(count)))) for _portal in PORTALS]
    groups = []
    for position, tag in enumerate(draw(st.lists(st.sampled_from([None] + tags), min_size=count, max_size=count))):
        portals = [portal for portal, owner in zip(PORTALS, owners) if owner == position]
        if tag is not None and any(group.get("tag") == tag for group in groups):
            tag = None
        if tag is None and not portals:
            continue
        groups.append({"tag": tag, "portals": portals, "purge_portals": draw(st.sampled_from([None, True, False]))})
    state_name = draw(st.sampled_from(("merged", "replaced", "overridden", "deleted")))
    return module, {"state": state_name, "config": [{"target": IQN, "groups": groups}]}


def declared_portals(module: str, params: dict[str, t.Any]) -> t.Set[str]:
    """The portals the declaration puts in a group (with state=deleted, none: it takes them out)."""
    if module == "vds_portal":
        return {params["portal"]}
    if module == "vds_portal_group":
        return set(params["portals"])
    if params["state"] == "deleted":
        return set()
    return {portal for group in params["config"][0]["groups"] for portal in group["portals"]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), current=groups_of_a_target(), operation=st.sampled_from(OPERATIONS),
       phase=st.sampled_from(("call", "wait")), hresult=st.sampled_from(FAILURES), after=st.integers(0, 2),
       times=st.integers(1, 3))
def test_a_moved_portal_ends_in_a_group_or_is_named(data, current, operation, phase, hresult, after, times):
    module, params = data.draw(declarations(current))
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "array.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(state(current, fault(operation, hresult, phase, after, times)), handle)
        outcome = run_on(path, module, params)
        states = StateFile(pathlib.Path(path))
        groups = states.groups(IQN)
        left = [entry for entry in states.data().get("faults", []) if entry["hresult"] == hresult]
        mutating = sum(count for name, count in states.calls().items() if name in MUTATING)
    # every portal that was in a group and is declared in one is in exactly one group, or the message names it
    for portal in declared_portals(module, params):
        if holder(current, portal) and len(holder(groups, portal)) != 1:
            assert portal in outcome.message, (portal, groups, outcome)
    # steps list each call that took effect, once: the provider counted them and the calls it refused
    refused = times - (left[0]["times"] if left else 0)
    assert mutating - refused == len(outcome.steps), outcome
    # (a failure before any change, bad input or a refused declaration, reports no operations)
    assert outcome.operations.get("rollbacks", 0) == sum(1 for step in outcome.steps if step.get("rollback"))
