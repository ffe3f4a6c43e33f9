# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The resource module's engine run against the simulated provider: one read per subsystem, the steps
executed as planned, and every failure path the other modules have."""

from __future__ import annotations

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend
from ansible_collections.storage.vds.plugins.module_utils._vds import resource
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    HResultError,
    IdentityError,
    NotFoundError,
    ValidationError,
)
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2, IQN3, NO_TROUBLE


def params(state, *entries, **extra):
    return dict(extra, state=state, config=list(entries))


def target(iqn, *groups, **extra):
    return dict(extra, target=iqn, groups=list(groups))


def fault(operation, hresult, times=1, phase="call"):
    return {"operation": operation, "hresult": hresult, "times": times, "phase": phase}


def test_every_target_of_every_subsystem_from_one_read(engine_on, state_file):
    declared = params("overridden",
                      target(IQN1, {"tag": 1, "portals": ["10.0.0.1"]}, {"portals": ["10.0.0.5", "10.0.0.6"]}),
                      target(IQN2, {"tag": 1, "portals": ["10.0.0.2"]}),
                      target(IQN3, {"portals": ["10.0.0.1", "10.0.0.2"]}))
    checked = resource.resource(engine_on(check_mode=True), declared)
    assert state_file.calls() == {"Snapshot": 2}  # two subsystems, read once each
    assert checked["changed"] is True
    real = resource.resource(engine_on(), declared, diff=True)
    assert state_file.calls()["Snapshot"] == 4
    # the real run took the planned steps; only the tags of the new groups were unknown before
    new_groups = {(IQN1, 3): 1, (IQN3, 1): 1}
    assert [dict(step, tag=None, new_group=new_groups[(step["target"], step["tag"])])
            if (step["target"], step["tag"]) in new_groups else step for step in real["steps"]] == checked["steps"]
    assert real["before"] == checked["before"]
    assert state_file.groups(IQN1) == {1: ["10.0.0.1:3260"], 3: ["10.0.0.5:3260", "10.0.0.6:3260"]}
    assert state_file.groups(IQN2) == {1: ["10.0.0.2:3260"]}
    assert state_file.groups(IQN3) == {1: ["10.0.0.1:3260", "10.0.0.2:3260"]}
    mutating = state_file.mutating_calls()
    assert sum(mutating.values()) == len(real["steps"])
    assert mutating == {"RemovePortal": 3, "DeletePortalGroup": 1, "CreatePortalGroup": 2, "AddPortal": 5}
    assert real["operations"] == NO_TROUBLE
    assert [view["groups"] for view in real["after"]] == [
        [{"tag": 1, "portals": ["10.0.0.1:3260"]}, {"tag": 3, "portals": ["10.0.0.5:3260", "10.0.0.6:3260"]}],
        [{"tag": 1, "portals": ["10.0.0.2:3260"]}],
        [{"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]}]]
    assert [entry["before_header"] for entry in real["diff"]] == [
        "%s on subsystem array-a" % IQN1, "%s on subsystem array-a" % IQN2, "%s on subsystem array-b" % IQN3]

    again = resource.resource(engine_on(), declared)
    assert again["changed"] is False and again["steps"] == [] and "diff" not in again
    assert again["before"] == again["after"] == real["after"]
    assert state_file.mutating_calls() == mutating
    assert state_file.calls()["Snapshot"] == 6


def test_named_subsystems_are_the_only_ones_read(engine_on, state_file):
    resource.resource(engine_on(), params("merged", target(IQN3, {"portals": ["10.0.0.4"]}, subsystem="array-b")))
    assert state_file.calls() == {"Snapshot": 1, "CreatePortalGroup": 1, "AddPortal": 1}


def test_gathered_reports_every_target_in_the_shape_of_config(engine_on, state_file):
    result = resource.resource(engine_on(), params("gathered"))
    assert result == {"changed": False, "operations": NO_TROUBLE, "gathered": [
        {"target": IQN1, "subsystem": "array-a", "groups": [{"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]},
                                                            {"tag": 2, "portals": ["10.0.0.3:3260"]}]},
        {"target": IQN2, "subsystem": "array-a", "groups": [{"tag": 1, "portals": ["10.0.0.1:3260"]}]},
        {"target": IQN3, "subsystem": "array-b", "groups": []}]}
    listed = resource.resource(engine_on(), params("gathered", target(IQN3.upper())))
    assert listed["gathered"] == [{"target": IQN3, "subsystem": "array-b", "groups": []}]
    assert state_file.calls() == {"Snapshot": 4}


@pytest.mark.parametrize("declared, error, fragment", [
    (params("merged", target("iqn.1991-05.com.microsoft:nope", {"portals": ["10.0.0.1"]})), NotFoundError,
     "config[0]: target iqn.1991-05.com.microsoft:nope does not exist on any subsystem; known targets: %s" % IQN1),
    (params("merged", target(IQN1, {"portals": ["10.0.0.1"]}), target(IQN1, {"portals": ["10.0.0.2"]},
                                                                      subsystem="array-a")),
     ValidationError, "config[0] and config[1] both declare target %s on subsystem array-a" % IQN1),
    (params("merged", target(IQN1, {"tag": 1, "portals": ["10.0.0.4"]}), target(IQN2, {"tag": 5, "portals": []})),
     IdentityError, "portal group with tag 5 does not exist on target %s" % IQN2),
    (params("merged", target(IQN3, {"portals": ["10.0.0.6"]})), NotFoundError,
     "portal 10.0.0.6:3260 is not a portal of subsystem array-b"),
    (params("gathered", running_config=[]), ValidationError, "running_config is used only with state=rendered"),
])
def test_a_bad_declaration_changes_nothing(engine_on, state_file, declared, error, fragment):
    before = state_file.provider()
    with pytest.raises(error) as raised:
        resource.resource(engine_on(), declared)
    assert fragment in str(raised.value)
    assert state_file.provider() == before
    assert state_file.mutating_calls() == {}


def test_a_failure_reports_every_step_that_took_effect(engine_on, state_file):
    state_file.edit(lambda data: data.update(faults=[fault("AddPortal", "VDS_E_ACCESS_DENIED", phase="wait")]))
    declared = params("replaced", target(IQN1, {"tag": 1, "portals": ["10.0.0.1"]}),
                      target(IQN2, {"tag": 1, "portals": ["10.0.0.1", "10.0.0.4"]}))
    with pytest.raises(HResultError) as raised:
        resource.resource(engine_on(), declared)
    assert str(raised.value).startswith("AddPortal 10.0.0.4:3260 -> group 1 of %s: VDS_E_ACCESS_DENIED" % IQN2)
    assert raised.value.details["steps_done"] == [
        {"action": "remove_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.2:3260", "subsystem": "array-a"}]
    assert raised.value.details["operations"] == NO_TROUBLE
    assert state_file.groups(IQN1) == {1: ["10.0.0.1:3260"], 2: ["10.0.0.3:3260"]}


def test_a_failed_move_puts_the_portal_back(engine_on, state_file):
    state_file.edit(lambda data: data.update(faults=[fault("AddPortal", "VDS_E_PROVIDER_FAILURE", phase="wait")]))
    with pytest.raises(HResultError) as raised:
        resource.resource(engine_on(), params("merged", target(IQN1, {"tag": 2, "portals": ["10.0.0.1"]})))
    assert "10.0.0.1:3260 was put back in group 1, where it was before" in str(raised.value)
    assert raised.value.details["operations"]["rollbacks"] == 1
    assert state_file.groups(IQN1) == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


def test_busy_provider_is_retried(engine_on, state_file):
    state_file.edit(lambda data: data.update(faults=[fault("AddPortal", "VDS_E_ANOTHER_CALL_IN_PROGRESS", 2)]))
    result = resource.resource(engine_on(), params("merged", target(IQN1, {"tag": 1, "portals": ["10.0.0.4"]})))
    assert result["operations"] == dict(NO_TROUBLE, retries=2)
    assert state_file.groups(IQN1)[1] == ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260"]


def test_a_vanished_object_leads_to_one_reread_and_replan(engine_on, state_file):
    state_file.edit(lambda data: data.update(faults=[fault("AddPortal", "VDS_E_OBJECT_DELETED")]))
    declared = params("merged", target(IQN1, {"tag": 1, "portals": ["10.0.0.4", "10.0.0.5"]}),
                      target(IQN2, {"tag": 1, "portals": ["10.0.0.6"]}))
    result = resource.resource(engine_on(), declared)
    assert result["operations"] == dict(NO_TROUBLE, rereads=1)
    assert state_file.calls()["Snapshot"] == 2 + 1  # both subsystems, then array-a once more
    assert state_file.groups(IQN1)[1] == ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260", "10.0.0.5:3260"]
    assert state_file.groups(IQN2)[1] == ["10.0.0.1:3260", "10.0.0.6:3260"]
    assert [step["portal"] for step in result["steps"]] == ["10.0.0.4:3260", "10.0.0.5:3260", "10.0.0.6:3260"]


def test_a_group_made_before_the_object_vanished_is_kept_for_its_declaration(engine_on, state_file):
    state_file.edit(lambda data: data.update(faults=[fault("AddPortal", "VDS_E_OBJECT_DELETED")]))
    result = resource.resource(engine_on(), params("overridden", target(IQN1, {"tag": 1, "portals": ["10.0.0.1"]},
                                                                        {"portals": ["10.0.0.5", "10.0.0.6"]})))
    assert result["operations"]["rereads"] == 1
    # the group made for the second declaration is found again by its tag, not made twice
    assert state_file.groups(IQN1) == {1: ["10.0.0.1:3260"], 3: ["10.0.0.5:3260", "10.0.0.6:3260"]}
    assert state_file.mutating_calls() == {"RemovePortal": 2, "CreatePortalGroup": 1, "AddPortal": 3,
                                           "DeletePortalGroup": 1}
    assert [(step["action"], step["tag"]) for step in result["steps"]] == [
        ("remove_portal", 1), ("remove_portal", 2), ("create_group", 3),
        ("add_portal", 3), ("add_portal", 3), ("delete_group", 2)]


def test_vanishing_twice_fails(engine_on, state_file):
    state_file.edit(lambda data: data.update(faults=[fault("AddPortal", "VDS_E_OBJECT_DELETED", 2)]))
    with pytest.raises(HResultError) as raised:
        resource.resource(engine_on(), params("merged", target(IQN1, {"tag": 1, "portals": ["10.0.0.4"]})))
    assert "it vanished again after the state was read once more" in str(raised.value)
    assert raised.value.details["operations"]["rereads"] == 1


def test_a_capped_provider_hands_back_an_existing_group(engine_on, state_file):
    state_file.edit(lambda data: data["subsystems"][0].update(max_groups_per_target=2))
    result = resource.resource(engine_on(), params("merged", target(IQN1, {"portals": ["10.0.0.5"]})))
    assert result["warnings"] == [
        "the provider allows no more portal groups on %s: CreatePortalGroup answered VDS_S_ALREADY_EXISTS and "
        "returned existing group 1, so config[0].groups[0] was applied to group 1" % IQN1]
    assert state_file.groups(IQN1) == {1: ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.5:3260"], 2: ["10.0.0.3:3260"]}
    assert result["steps"] == [
        {"action": "add_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.5:3260", "subsystem": "array-a"}]
    assert state_file.mutating_calls() == {"CreatePortalGroup": 1, "AddPortal": 1}


def test_more_groups_than_the_cap_allows_fail(engine_on, state_file):
    state_file.edit(lambda data: data["subsystems"][1].update(max_groups_per_target=1))
    resource.resource(engine_on(), params("merged", target(IQN3, {"portals": ["10.0.0.1"]})))
    with pytest.raises(IdentityError) as raised:
        resource.resource(engine_on(), params("merged", target(IQN3, {"portals": ["10.0.0.1"]},
                                                               {"portals": ["10.0.0.2"]})))
    # the second group took group 1, so the first needed a new group and the cap answered again
    assert "CreatePortalGroup answered VDS_S_ALREADY_EXISTS again and returned group 1" in str(raised.value)


def test_a_capped_provider_cannot_give_a_declared_tag_twice(engine_on, state_file):
    state_file.edit(lambda data: data["subsystems"][0].update(max_groups_per_target=2))
    with pytest.raises(IdentityError) as raised:
        resource.resource(engine_on(), params("merged", target(IQN1, {"tag": 1, "portals": ["10.0.0.1"]},
                                                               {"portals": ["10.0.0.5"]})))
    assert "returned existing group 1, which groups[0] declares already" in str(raised.value)
    assert state_file.mutating_calls() == {"CreatePortalGroup": 1}


def test_a_handed_back_group_is_not_purged_of_portals_nobody_declared_there(engine_on, state_file):
    state_file.edit(lambda data: data["subsystems"][0].update(max_groups_per_target=2))
    with pytest.raises(IdentityError) as raised:
        resource.resource(engine_on(), params("replaced", target(IQN1, {"portals": ["10.0.0.5"]})))
    assert ("returned existing group 1, which holds 10.0.0.1:3260, 10.0.0.2:3260. Purging it would remove portals"
            in str(raised.value))
    assert state_file.groups(IQN1) == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


class Refusing(SimulatorBackend):
    """A provider that refuses, before anything changes, to delete a group."""

    def review(self, subsystem, target, steps):
        if any(step.action == "delete_group" for step in steps):
            raise ValidationError("this provider keeps its groups (%s)" % target.iqn)


@pytest.mark.parametrize("check_mode", [True, False])
def test_the_provider_reviews_every_plan_before_anything_changes(state_file, check_mode):
    declared = params("overridden", target(IQN2, {"tag": 1, "portals": ["10.0.0.4"]}),
                      target(IQN1, {"tag": 1, "portals": ["10.0.0.1"]}))
    with pytest.raises(ValidationError, match="this provider keeps its groups \\(%s\\)" % IQN1):
        resource.resource(Engine(Refusing(str(state_file.path)), 30, check_mode=check_mode), declared)
    assert state_file.mutating_calls() == {}
