# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The engine: read once, plan, execute or only plan, re-read and re-plan, shape the outcome."""

from __future__ import annotations

import pytest

from ansible_collections.storage.vds.plugins.module_utils._vds import errors
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    HResultError,
    IdentityError,
    NotFoundError,
    ValidationError,
    VdsError,
    WaitTimeout,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalAddress
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import GroupDeclaration
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2, NO_TROUBLE

DELETED = errors.VDS_E_OBJECT_DELETED


def a(text: str) -> PortalAddress:
    return PortalAddress.parse(text)


def declare(*portals: str, **options) -> GroupDeclaration:
    return GroupDeclaration(IQN1, tuple(sorted(a(p) for p in portals)), **options)


def view(groups: dict[int | None, list[str]]) -> dict:
    return {"target": IQN1, "groups": [{"tag": tag, "portals": portals} for tag, portals in groups.items()]}


def stats(**counts: int) -> dict[str, int]:
    result = dict(NO_TROUBLE)
    result.update(counts)
    return result


BEFORE = view({1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]})


# --- converge, check mode, idempotency -----------------------------------------------------------


def test_converge_group_changes_the_provider_and_reports_it(backend, make_engine):
    outcome = make_engine(backend).converge_group(declare("10.0.0.1", "10.0.0.3", "10.0.0.4", tag=1,
                                                          purge_portals=True))
    assert outcome.changed
    assert outcome.steps == [
        {"action": "remove_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.2:3260"},
        {"action": "remove_portal", "target": IQN1, "tag": 2, "portal": "10.0.0.3:3260"},
        {"action": "add_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.3:3260", "from_tag": 2},
        {"action": "add_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.4:3260"},
    ]
    assert outcome.diff() == {"before": BEFORE, "after": view({1: ["10.0.0.1:3260", "10.0.0.3:3260", "10.0.0.4:3260"],
                                                               2: []})}
    assert outcome.group(1) == {"tag": 1, "target": IQN1,
                                "portals": ["10.0.0.1:3260", "10.0.0.3:3260", "10.0.0.4:3260"]}
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.3:3260", "10.0.0.4:3260"], 2: []}
    assert backend.membership(IQN2) == {1: ["10.0.0.1:3260"]}  # the other target is untouched
    assert outcome.stats.as_dict() == stats()
    assert backend.snapshots == 1  # the state is read once


@pytest.mark.parametrize("declaration", [
    declare("10.0.0.1", "10.0.0.3", "10.0.0.4", tag=1, purge_portals=True),
    declare("10.0.0.5", "[fd00::2]"),
    declare(tag=2, state="absent"),
    declare("10.0.0.3", "10.0.0.6"),
])
def test_check_mode_makes_no_mutating_call_and_predicts_the_real_run(make_backend, make_engine, declaration):
    checked_backend, real_backend = make_backend(), make_backend()
    checked = make_engine(checked_backend, check_mode=True).converge_group(declaration)
    assert checked_backend.mutations == []
    assert checked_backend.membership() == real_backend.membership()
    real = make_engine(real_backend).converge_group(declaration)
    assert checked.changed and real.changed
    assert checked.diff()["before"] == real.diff()["before"]
    # the prediction matches the real run, except that a group to be created has no tag yet
    real_steps = [dict(step, tag=None) if step["tag"] not in checked_backend.membership() else step
                  for step in real.steps]
    assert checked.steps == real_steps
    predicted = {g["tag"]: g["portals"] for g in checked.diff()["after"]["groups"]}
    actual = {g["tag"]: g["portals"] for g in real.diff()["after"]["groups"]}
    new_tags = set(actual) - set(predicted)
    if new_tags:
        assert predicted.pop(None) == actual.pop(new_tags.pop())
    assert predicted == actual


def test_check_mode_shows_a_group_to_create_with_tag_null(backend, make_engine):
    outcome = make_engine(backend, check_mode=True).converge_group(declare("10.0.0.5"))
    assert outcome.plan.group_tag is None
    assert outcome.group(outcome.plan.group_tag) == {"tag": None, "target": IQN1, "portals": ["10.0.0.5:3260"]}
    assert outcome.diff()["after"]["groups"][-1] == {"tag": None, "portals": ["10.0.0.5:3260"]}
    assert backend.mutations == []


def test_created_group_is_reported_with_the_tag_the_provider_assigned(backend, make_engine):
    outcome = make_engine(backend).converge_group(declare("10.0.0.5", "[fd00::2]"))
    assert outcome.plan.group_tag == 3
    assert outcome.steps[0] == {"action": "create_group", "target": IQN1, "tag": 3}
    assert outcome.group(3)["portals"] == ["10.0.0.5:3260", "[fd00::2]:3260"]
    assert backend.membership()[3] == ["10.0.0.5:3260", "[fd00::2]:3260"]


@pytest.mark.parametrize("declaration", [
    declare("10.0.0.1", "10.0.0.3", "10.0.0.4", tag=1, purge_portals=True),
    declare("10.0.0.5", "[fd00::2]"),
    declare("10.0.0.3", "10.0.0.1"),
    declare(tag=2, state="absent"),
    declare(tag=1, purge_portals=True),
])
def test_second_converge_makes_no_mutating_call(backend, make_engine, declaration):
    first = make_engine(backend).converge_group(declaration)
    assert first.changed
    state = backend.membership()
    mutations = len(backend.mutations)
    second = make_engine(backend).converge_group(declaration)
    assert not second.changed and second.steps == []
    assert len(backend.mutations) == mutations
    assert backend.membership() == state
    assert second.diff()["before"] == second.diff()["after"] == first.diff()["after"]


def test_converge_portal_moves_and_sets_status(backend, make_engine):
    outcome = make_engine(backend).converge_portal(IQN1, a("10.0.0.1"), 2, "present", "offline")
    assert [step["action"] for step in outcome.steps] == ["remove_portal", "add_portal", "set_status"]
    assert outcome.steps[1]["from_tag"] == 1
    assert backend.membership() == {1: ["10.0.0.2:3260"], 2: ["10.0.0.1:3260", "10.0.0.3:3260"]}
    assert backend.status_of("10.0.0.1") == "offline"
    again = make_engine(backend).converge_portal(IQN1, a("10.0.0.1"), 2, "present", "offline")
    assert not again.changed and len(backend.mutations) == 3


def test_converge_portal_check_mode(backend, make_engine):
    outcome = make_engine(backend, check_mode=True).converge_portal(IQN1, a("10.0.0.3"), None, "absent", "offline")
    assert [step["action"] for step in outcome.steps] == ["remove_portal", "set_status"]
    assert backend.mutations == []
    assert backend.status_of("10.0.0.3") == "online"


def test_subsystem_narrows_the_target(make_backend, make_engine, default_state):
    import copy

    second = copy.deepcopy(default_state["subsystems"][0])
    second["name"] = "array-b"
    default_state["subsystems"].append(second)
    backend = make_backend(default_state)
    with pytest.raises(ValidationError, match="array-a, array-b"):
        make_engine(backend).converge_group(declare("10.0.0.4", tag=1))
    outcome = make_engine(backend).converge_group(declare("10.0.0.4", tag=1), subsystem="array-b")
    assert outcome.changed and outcome.subsystem.name == "array-b"
    assert backend.calls[-1][0] != "QueryPortalGroups"
    assert ("QueryPortalGroups", "array-b") in backend.calls
    assert [s.name for s in backend.subsystems if PortalAddress.parse("10.0.0.4") in
            next(t for t in s.targets if t.iqn == IQN1).groups[1].portals] == ["array-b"]


# --- bad input fails before any change -----------------------------------------------------------


def test_no_tag_and_no_portals_is_refused_before_reading(backend, make_engine):
    with pytest.raises(ValidationError, match="give tag or at least one portal"):
        make_engine(backend).converge_group(declare())
    assert backend.calls == []


@pytest.mark.parametrize("declaration, error, fragment", [
    (declare("10.0.0.4", tag=9), IdentityError, "existing tags: 1, 2"),
    (declare("10.0.0.4", "10.9.9.9", tag=1), NotFoundError, "10.9.9.9:3260 is not a portal of subsystem array-a"),
    (GroupDeclaration("iqn.1991-05.com.microsoft:nope", (a("10.0.0.4"),), 1), NotFoundError,
     "known targets: %s, %s" % (IQN1, IQN2)),
])
def test_bad_declarations_fail_before_any_change(backend, make_engine, declaration, error, fragment):
    with pytest.raises(error) as raised:
        make_engine(backend).converge_group(declaration)
    assert fragment in str(raised.value)
    assert backend.mutations == []


# --- the state read is retried and recovered -----------------------------------------------------


def test_read_is_retried_while_busy_and_recovered_once(backend, make_engine):
    backend.fault("QueryPortalGroups", errors.VDS_E_ANOTHER_CALL_IN_PROGRESS, times=2)
    backend.fault("QueryPortalGroups", errors.VDS_E_PROVIDER_CACHE_CORRUPT)
    outcome = make_engine(backend).converge_group(declare("10.0.0.4", tag=1))
    assert outcome.changed
    assert outcome.stats.as_dict() == stats(retries=2, recoveries=1)
    assert backend.recoveries == [None]  # no subsystem named: every provider


def test_read_failing_names_what_was_read(backend, make_engine):
    backend.fault("QueryPortalGroups", errors.BY_NAME["VDS_E_ACCESS_DENIED"].value)
    with pytest.raises(HResultError) as raised:
        make_engine(backend).converge_group(declare("10.0.0.4", tag=1), subsystem="array-a")
    assert str(raised.value).startswith("reading the state of subsystem array-a: VDS_E_ACCESS_DENIED (0x80042427)")


def test_read_finding_an_object_deleted_fails_as_an_hresult_error(backend, make_engine):
    backend.fault("QueryPortalGroups", DELETED)
    with pytest.raises(HResultError) as raised:
        make_engine(backend).info()
    assert str(raised.value).startswith("reading the state of every subsystem: VDS_E_OBJECT_DELETED")


# --- object deleted: one re-read and re-plan -----------------------------------------------------


def test_object_deleted_leads_to_one_reread_and_replan(backend, behaviour, make_engine):
    backend.script("AddPortal", behaviour()).fault("AddPortal", DELETED)
    outcome = make_engine(backend).converge_group(declare("10.0.0.4", "10.0.0.5", tag=1))
    assert outcome.stats.rereads == 1
    assert backend.snapshots == 2
    assert outcome.changed
    assert [step["portal"] for step in outcome.steps] == ["10.0.0.4:3260", "10.0.0.5:3260"]
    assert backend.membership()[1] == ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260", "10.0.0.5:3260"]
    assert outcome.diff()["after"] == view({1: ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260", "10.0.0.5:3260"],
                                            2: ["10.0.0.3:3260"]})


def test_replan_after_another_client_deleted_the_group_found_by_membership(backend, behaviour, make_engine):
    # group 1 is found by its portals; while the engine adds 10.0.0.4, another client deletes group 1.
    backend.script("AddPortal", behaviour(call=DELETED, before=lambda fake: fake.delete_group_now(IQN1, 1)))
    outcome = make_engine(backend).converge_group(declare("10.0.0.1", "10.0.0.2", "10.0.0.4"))
    assert outcome.stats.rereads == 1
    assert [step["action"] for step in outcome.steps] == ["create_group", "add_portal", "add_portal", "add_portal"]
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260"], 2: ["10.0.0.3:3260"]}
    assert outcome.plan.group_tag == 1
    assert outcome.group(1)["portals"] == ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260"]
    # the diff starts from what the run first saw
    assert outcome.diff()["before"] == BEFORE


def test_replan_finding_nothing_left_to_do_reports_the_steps_done_before(backend, behaviour, make_engine):
    # the second add finds group 1 "deleted" but someone else already added 10.0.0.5 meanwhile
    backend.script("AddPortal", behaviour(), behaviour(
        call=DELETED, before=lambda fake: fake.move_now(IQN1, "10.0.0.5", 1)))
    outcome = make_engine(backend).converge_group(declare("10.0.0.4", "10.0.0.5", tag=1))
    assert outcome.changed
    assert [step["portal"] for step in outcome.steps] == ["10.0.0.4:3260"]
    assert outcome.stats.rereads == 1


def test_a_group_made_before_an_object_vanished_is_kept_for_its_declaration(backend, behaviour, make_engine):
    # the group made for 10.0.0.5 is still empty when the add vanishes: planning again must take that
    # group by its tag instead of finding no group holding the portals and making a second one
    backend.script("AddPortal", behaviour(call=DELETED))
    outcome = make_engine(backend).converge_group(declare("10.0.0.5", "10.0.0.6"))
    assert outcome.stats.rereads == 1
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"],
                                    3: ["10.0.0.5:3260", "10.0.0.6:3260"]}
    assert [(step["action"], step["tag"]) for step in outcome.steps] == [
        ("create_group", 3), ("add_portal", 3), ("add_portal", 3)]
    assert outcome.plan.group_tag == 3


def test_a_purge_of_a_handed_back_group_is_refused(make_backend, make_engine, default_state):
    default_state["subsystems"][0]["max_groups_per_target"] = 2
    backend = make_backend(default_state)
    with pytest.raises(IdentityError) as raised:
        make_engine(backend).converge_group(declare("10.0.0.5", purge_portals=True))
    assert str(raised.value) == (
        "the provider allows no more portal groups on %s: CreatePortalGroup answered VDS_S_ALREADY_EXISTS and "
        "returned existing group 1, which holds 10.0.0.1:3260, 10.0.0.2:3260. Purging it would remove portals that "
        "were never declared for it, so nothing more was changed. Set tag: 1 to manage that group, or delete a "
        "group of the target first." % IQN1)
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


def test_object_deleted_twice_fails(backend, make_engine):
    backend.fault("AddPortal", DELETED, times=2)
    with pytest.raises(HResultError) as raised:
        make_engine(backend).converge_group(declare("10.0.0.4", tag=1))
    message = str(raised.value)
    assert message.startswith("AddPortal 10.0.0.4:3260 -> group 1 of %s: VDS_E_OBJECT_DELETED (0x8004240B)" % IQN1)
    assert message.endswith("; it vanished again after the state was read once more")
    assert backend.snapshots == 2


def test_failure_during_the_replan_keeps_the_steps_done_and_operations(backend, behaviour, make_engine):
    # 10.0.0.1 moves from group 1 into group 2, then, while 10.0.0.4 is added, another client deletes
    # group 2. The re-plan cannot map tag 2 any more; the error must still tell what was done.
    backend.script("AddPortal", behaviour(), behaviour(
        call=DELETED, before=lambda fake: fake.delete_group_now(IQN1, 2)))
    with pytest.raises(IdentityError) as raised:
        make_engine(backend).converge_group(declare("10.0.0.1", "10.0.0.4", tag=2))
    details = raised.value.details
    assert [(step["action"], step["portal"]) for step in details.get("steps_done", [])] == [
        ("remove_portal", "10.0.0.1:3260"), ("add_portal", "10.0.0.1:3260")]
    assert details.get("operations", {}).get("rereads") == 1


# --- VDS_S_ALREADY_EXISTS: an existing group handed back -----------------------------------------


def test_create_answering_already_exists_applies_the_declaration_to_the_existing_group(make_backend, make_engine,
                                                                                       default_state):
    default_state["subsystems"][0]["max_groups_per_target"] = 2
    backend = make_backend(default_state)
    outcome = make_engine(backend).converge_group(declare("10.0.0.5", "[fd00::2]"))
    assert outcome.warnings == [
        "the provider allows no more portal groups on %s: CreatePortalGroup answered VDS_S_ALREADY_EXISTS and "
        "returned existing group 1, so the declaration was applied to group 1" % IQN1]
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.5:3260", "[fd00::2]:3260"],
                                    2: ["10.0.0.3:3260"]}
    assert outcome.plan.group_tag == 1
    assert outcome.group(1)["portals"] == ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.5:3260", "[fd00::2]:3260"]
    assert outcome.changed
    assert [step["action"] for step in outcome.steps] == ["add_portal", "add_portal"]
    assert [call[0] for call in backend.mutations].count("CreatePortalGroup") == 1


def test_already_exists_scripted_as_the_operation_result(backend, behaviour, make_engine):
    backend.script("CreatePortalGroup", behaviour(wait=errors.VDS_S_ALREADY_EXISTS))
    outcome = make_engine(backend).converge_group(declare("10.0.0.6"))
    assert "returned existing group 1" in outcome.warnings[0]
    assert "10.0.0.6:3260" in backend.membership()[1]


# --- failures carry what was done ----------------------------------------------------------------


def test_error_details_include_steps_done_and_operations(backend, make_engine):
    backend.fault("AddPortal", errors.VDS_E_ANOTHER_CALL_IN_PROGRESS).fault(
        "AddPortal", errors.BY_NAME["VDS_E_ACCESS_DENIED"].value)
    with pytest.raises(HResultError) as raised:
        make_engine(backend).converge_group(declare("10.0.0.1", "10.0.0.4", tag=1, purge_portals=True))
    error = raised.value
    assert str(error).startswith("AddPortal 10.0.0.4:3260 -> group 1 of %s: VDS_E_ACCESS_DENIED" % IQN1)
    assert error.details["steps_done"] == [
        {"action": "remove_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.2:3260"}]
    assert error.details["operations"] == stats(retries=1)
    assert error.details["hresult_name"] == "VDS_E_ACCESS_DENIED"


def test_rolled_back_move_is_reported(backend, make_engine):
    backend.fault("AddPortal", errors.BY_NAME["VDS_E_PROVIDER_FAILURE"].value, phase="wait")
    with pytest.raises(HResultError) as raised:
        make_engine(backend).converge_portal(IQN1, a("10.0.0.3"), 1, "present")
    assert str(raised.value).endswith("; 10.0.0.3:3260 was put back in group 2, where it was before")
    assert raised.value.details["operations"] == stats(rollbacks=1)
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


def test_timeout_through_the_engine(backend, behaviour, make_engine, clock):
    backend.script("RemovePortal", behaviour(), behaviour(hang=True, percent=0xFFFFFFFF))
    with pytest.raises(WaitTimeout) as raised:
        make_engine(backend, wait_timeout=45).converge_group(declare(tag=1, state="absent"))
    error = raised.value
    assert str(error) == (
        "RemovePortal 10.0.0.2:3260 <- group 1 of %s: not finished within wait_timeout=45s (last progress 0%%); "
        "Cancel answered VDS_E_NOT_SUPPORTED, so the operation may still complete; state read again: 10.0.0.2:3260 "
        "is in group 1 of %s" % (IQN1, IQN1))
    assert error.details["steps_done"] == [{"action": "remove_portal", "target": IQN1, "tag": 1,
                                            "portal": "10.0.0.1:3260"}]
    assert error.details["operations"] == stats(rereads=1)
    assert ("DeletePortalGroup", 1) not in backend.calls


@pytest.mark.parametrize("code", [errors.BY_NAME["VDS_E_ACCESS_DENIED"].value, 0x80070490])
def test_other_codes_fail_the_converge(backend, make_engine, code):
    backend.fault("DeletePortalGroup", code)
    with pytest.raises(VdsError) as raised:
        make_engine(backend).converge_group(declare(tag=2, state="absent"))
    assert str(raised.value) == "Delete group 2 of %s: %s" % (IQN1, errors.describe(code))
    assert backend.membership()[2] == []  # the portal removal before it stays done
    assert raised.value.details["steps_done"][0]["action"] == "remove_portal"


# --- info ----------------------------------------------------------------------------------------


def test_info_shape_is_sorted(make_backend, make_engine, default_state):
    default_state["subsystems"][0]["targets"].reverse()
    default_state["subsystems"][0]["portals"].reverse()
    default_state["subsystems"][0]["portals"][0]["status"] = "offline"
    default_state["subsystems"][0]["targets"][1]["groups"].reverse()
    backend = make_backend(default_state)
    info = make_engine(backend).info()
    assert [s["name"] for s in info] == ["array-a"]
    subsystem = info[0]
    assert [p["address"] for p in subsystem["portals"]] == [
        "10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260", "10.0.0.4:3260", "10.0.0.5:3260", "10.0.0.6:3260",
        "[fd00::1]:3260", "[fd00::2]:3260"]
    assert subsystem["portals"][-1] == {"address": "[fd00::2]:3260", "status": "offline"}
    assert [t["iqn"] for t in subsystem["targets"]] == [IQN1, IQN2]
    assert subsystem["targets"][0] == {"iqn": IQN1, "alias": "t1", "groups": [
        {"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]}, {"tag": 2, "portals": ["10.0.0.3:3260"]}]}
    assert backend.mutations == []


def test_info_filters(backend, make_engine):
    info = make_engine(backend).info(target=IQN2)
    assert [t["iqn"] for t in info[0]["targets"]] == [IQN2]
    assert make_engine(backend).info(subsystem="array-a")[0]["name"] == "array-a"
    with pytest.raises(NotFoundError, match="known targets: %s, %s" % (IQN1, IQN2)):
        make_engine(backend).info(target="iqn.1991-05.com.microsoft:nope")
    with pytest.raises(NotFoundError, match="known subsystems: array-a"):
        make_engine(backend).info(target=IQN1, subsystem="array-z")
