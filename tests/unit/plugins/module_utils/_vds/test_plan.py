# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The planner: table-driven cases and properties over random targets and declarations."""

from __future__ import annotations

import collections
import typing as t

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    IdentityError,
    NotFoundError,
    ValidationError,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    Portal,
    PortalAddress,
    PortalGroup,
    Subsystem,
    Target,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    ADD_PORTAL,
    CREATE_GROUP,
    DELETE_GROUP,
    REMOVE_PORTAL,
    SET_STATUS,
    GroupDeclaration,
    InvariantViolation,
    Plan,
    Step,
    apply_step,
    apply_steps,
    find_group_by_membership,
    lowest_free_tag,
    membership_of,
    membership_view,
    plan_group,
    plan_portal,
)
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1 as IQN


POOL = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.1:3261",
        "[fd00::1]", "[fd00::2]", "[fd00::1]:3261", "[2001:db8::a]")


def a(text: str) -> PortalAddress:
    return PortalAddress.parse(text)


def subsystem(target: Target, statuses: t.Mapping[str, str] | None = None) -> Subsystem:
    statuses = statuses or {}
    portals = tuple(Portal("p-%d" % n, a(text), statuses.get(text, "online")) for n, text in enumerate(POOL))
    return Subsystem("s-1", "array-a", portals, (target,))


def target_of(groups: t.Mapping[int, t.Iterable[t.Any]]) -> Target:
    return Target("t-1", IQN, "t1", tuple(
        PortalGroup("g-%d" % tag, tag, frozenset(p if isinstance(p, PortalAddress) else a(p) for p in portals))
        for tag, portals in sorted(groups.items())))


def steps_of(plan: Plan) -> list[tuple]:
    return [(s.action, s.tag, str(s.portal) if s.portal else None, s.from_tag) for s in plan.steps]


def check_invariant(membership: t.Mapping[t.Any, t.FrozenSet[PortalAddress]]) -> None:
    counts = collections.Counter(p for portals in membership.values() for p in portals)
    twice = [str(p) for p, n in counts.items() if n > 1]
    assert not twice, "portals in two groups: %s" % twice


# A target most table cases start from: tags 1, 2 and 5 (3 and 4 free), 10.0.0.4-6 and IPv6 in no group.
CURRENT = {1: ["10.0.0.1", "10.0.0.2"], 2: ["10.0.0.3", "[fd00::1]"], 5: []}
P1, P2, P3, P4, P5 = ("10.0.0.%d:3260" % n for n in range(1, 6))
V6 = "[fd00::1]:3260"


# --- plan_group, table-driven -------------------------------------------------------------------

GROUP_CASES = [
    # id, declaration (without target), assigns_tags, expected steps, expected group_tag
    ("in-place", dict(tag=1, portals=["10.0.0.1", "10.0.0.2"]), True, [], 1),
    ("in-place-purge", dict(tag=1, portals=["10.0.0.2", "10.0.0.1:3260"], purge_portals=True), True, [], 1),
    ("subset-no-purge-keeps-others", dict(tag=1, portals=["10.0.0.1"]), True, [], 1),
    ("add", dict(tag=1, portals=["10.0.0.1", "10.0.0.4"]), True, [(ADD_PORTAL, 1, P4, None)], 1),
    ("add-sorted", dict(tag=5, portals=["10.0.0.5", "10.0.0.4"]), True,
     [(ADD_PORTAL, 5, P4, None), (ADD_PORTAL, 5, P5, None)], 5),
    ("purge-then-add", dict(tag=1, portals=["10.0.0.1", "10.0.0.4"], purge_portals=True), True,
     [(REMOVE_PORTAL, 1, P2, None), (ADD_PORTAL, 1, P4, None)], 1),
    ("purge-to-empty", dict(tag=1, portals=[], purge_portals=True), True,
     [(REMOVE_PORTAL, 1, P1, None), (REMOVE_PORTAL, 1, P2, None)], 1),
    ("move", dict(tag=1, portals=["10.0.0.3"]), True,
     [(REMOVE_PORTAL, 2, P3, None), (ADD_PORTAL, 1, P3, 2)], 1),
    ("move-with-purge-purges-first", dict(tag=1, portals=["10.0.0.3"], purge_portals=True), True,
     [(REMOVE_PORTAL, 1, P1, None), (REMOVE_PORTAL, 1, P2, None), (REMOVE_PORTAL, 2, P3, None),
      (ADD_PORTAL, 1, P3, 2)], 1),
    ("moves-into-empty-group", dict(tag=5, portals=["10.0.0.2", "10.0.0.3"]), True,
     [(REMOVE_PORTAL, 1, P2, None), (ADD_PORTAL, 5, P2, 1), (REMOVE_PORTAL, 2, P3, None), (ADD_PORTAL, 5, P3, 2)], 5),
    ("move-ipv6", dict(tag=1, portals=["[FD00:0::1]:3260"]), True,
     [(REMOVE_PORTAL, 2, V6, None), (ADD_PORTAL, 1, V6, 2)], 1),
    ("by-membership", dict(portals=["10.0.0.1", "10.0.0.4"]), True, [(ADD_PORTAL, 1, P4, None)], 1),
    ("by-membership-most", dict(portals=["10.0.0.3", "[fd00::1]", "10.0.0.1"]), True,
     [(REMOVE_PORTAL, 1, P1, None), (ADD_PORTAL, 2, P1, 1)], 2),
    ("by-membership-tie-lowest-tag", dict(portals=["10.0.0.2", "10.0.0.3"]), True,
     [(REMOVE_PORTAL, 2, P3, None), (ADD_PORTAL, 1, P3, 2)], 1),
    ("by-membership-purge", dict(portals=["10.0.0.3", "10.0.0.4"], purge_portals=True), True,
     [(REMOVE_PORTAL, 2, V6, None), (ADD_PORTAL, 2, P4, None)], 2),
    ("by-membership-none-held-creates", dict(portals=["10.0.0.5", "10.0.0.4"]), True,
     [(CREATE_GROUP, None, None, None), (ADD_PORTAL, None, P4, None), (ADD_PORTAL, None, P5, None)], None),
    ("no-tag-lio-creates-lowest-free", dict(portals=["10.0.0.4"]), False,
     [(CREATE_GROUP, 3, None, None), (ADD_PORTAL, 3, P4, None)], 3),
    ("missing-tag-lio-creates-it", dict(tag=9, portals=["10.0.0.4"]), False,
     [(CREATE_GROUP, 9, None, None), (ADD_PORTAL, 9, P4, None)], 9),
    ("missing-tag-lio-moves-into-it", dict(tag=9, portals=["10.0.0.1"]), False,
     [(CREATE_GROUP, 9, None, None), (REMOVE_PORTAL, 1, P1, None), (ADD_PORTAL, 9, P1, 1)], 9),
    ("absent", dict(tag=1, state="absent"), True,
     [(REMOVE_PORTAL, 1, P1, None), (REMOVE_PORTAL, 1, P2, None), (DELETE_GROUP, 1, None, None)], 1),
    ("absent-ignores-declared-portals-list", dict(tag=1, portals=["10.0.0.4"], state="absent"), True,
     [(REMOVE_PORTAL, 1, P1, None), (REMOVE_PORTAL, 1, P2, None), (DELETE_GROUP, 1, None, None)], 1),
    ("absent-empty-group", dict(tag=5, state="absent"), True, [(DELETE_GROUP, 5, None, None)], 5),
    ("absent-missing-tag", dict(tag=9, state="absent"), True, [], None),
    ("absent-missing-tag-lio", dict(tag=9, state="absent"), False, [], None),
    ("absent-by-membership", dict(portals=["[fd00::1]"], state="absent"), True,
     [(REMOVE_PORTAL, 2, P3, None), (REMOVE_PORTAL, 2, V6, None), (DELETE_GROUP, 2, None, None)], 2),
    ("absent-by-membership-none-held", dict(portals=["10.0.0.4"], state="absent"), True, [], None),
]


@pytest.mark.parametrize("declared, assigns_tags, expected, group_tag",
                         [case[1:] for case in GROUP_CASES], ids=[case[0] for case in GROUP_CASES])
def test_plan_group(declared, assigns_tags, expected, group_tag):
    target = target_of(CURRENT)
    declared = dict(declared)
    declared["portals"] = tuple(sorted(a(p) for p in declared.get("portals", ())))
    plan = plan_group(subsystem(target), target, GroupDeclaration(IQN, **declared), assigns_tags)
    assert steps_of(plan) == expected
    assert plan.group_tag == group_tag
    assert plan.changed is bool(expected)
    assert all(step.target == IQN for step in plan.steps)
    check_invariant(apply_steps(membership_of(target), plan.steps))


def test_missing_tag_on_a_provider_that_assigns_tags_is_refused_with_an_explanation():
    target = target_of(CURRENT)
    with pytest.raises(IdentityError) as raised:
        plan_group(subsystem(target), target, GroupDeclaration(IQN, (a("10.0.0.4"),), tag=9), True)
    message = str(raised.value)
    assert "tag 9 does not exist on target %s" % IQN in message
    assert "assigns tags itself" in message and "CreatePortalGroup takes no tag" in message
    assert "Omit tag" in message
    assert "existing tags: 1, 2, 5" in message


def test_missing_tag_on_a_target_without_groups_says_none():
    target = target_of({})
    with pytest.raises(IdentityError, match=r"existing tags: none"):
        plan_group(subsystem(target), target, GroupDeclaration(IQN, (), tag=1), True)


@pytest.mark.parametrize("state", ["present", "absent"])
def test_unknown_portal_is_refused_naming_it(state):
    target = target_of(CURRENT)
    declaration = GroupDeclaration(IQN, (a("10.0.0.1"), a("10.9.9.9:3261"), a("[fd00::99]")), tag=1, state=state)
    with pytest.raises(NotFoundError) as raised:
        plan_group(subsystem(target), target, declaration, True)
    message = str(raised.value)
    assert "10.9.9.9:3261" in message and "[fd00::99]:3260" in message
    assert "array-a" in message and "known portals: 10.0.0.1:3260" in message
    assert "10.0.0.1:3260, 10.9.9.9" not in message  # the known portal is not listed as unknown


# --- plan_portal, table-driven ------------------------------------------------------------------

PORTAL_CASES = [
    # id, (portal, tag, state, status), expected steps, group_tag
    ("already-there", ("10.0.0.1", 1, "present", None), [], 1),
    ("add", ("10.0.0.4", 1, "present", None), [(ADD_PORTAL, 1, P4, None)], 1),
    ("add-to-empty-group", ("10.0.0.4", 5, "present", None), [(ADD_PORTAL, 5, P4, None)], 5),
    ("move", ("10.0.0.1", 2, "present", None), [(REMOVE_PORTAL, 1, P1, None), (ADD_PORTAL, 2, P1, 1)], 2),
    ("move-ipv6", ("[fd00:0:0::1]:3260", 5, "present", None),
     [(REMOVE_PORTAL, 2, V6, None), (ADD_PORTAL, 5, V6, 2)], 5),
    ("absent-from-any", ("10.0.0.3", None, "absent", None), [(REMOVE_PORTAL, 2, P3, None)], 2),
    ("absent-from-its-group", ("10.0.0.3", 2, "absent", None), [(REMOVE_PORTAL, 2, P3, None)], 2),
    ("absent-from-another-group", ("10.0.0.3", 1, "absent", None), [], 2),
    ("absent-already", ("10.0.0.4", None, "absent", None), [], None),
    ("absent-missing-group", ("10.0.0.4", 9, "absent", None), [], None),
    ("status-change", ("10.0.0.1", 1, "present", "offline"), [(SET_STATUS, None, P1, None)], 1),
    ("status-same", ("10.0.0.1", 1, "present", "online"), [], 1),
    ("move-then-status", ("10.0.0.1", 2, "present", "offline"),
     [(REMOVE_PORTAL, 1, P1, None), (ADD_PORTAL, 2, P1, 1), (SET_STATUS, None, P1, None)], 2),
    ("absent-then-status", ("10.0.0.3", None, "absent", "offline"),
     [(REMOVE_PORTAL, 2, P3, None), (SET_STATUS, None, P3, None)], 2),
    ("status-of-portal-in-no-group", ("10.0.0.6", None, "absent", "offline"), [(SET_STATUS, None, "10.0.0.6:3260", None)],
     None),
]


@pytest.mark.parametrize("args, expected, group_tag", [case[1:] for case in PORTAL_CASES],
                         ids=[case[0] for case in PORTAL_CASES])
def test_plan_portal(args, expected, group_tag):
    portal, tag, state, status = args
    target = target_of(CURRENT)
    plan = plan_portal(subsystem(target), target, a(portal), tag, state, status)
    assert steps_of(plan) == expected
    assert plan.group_tag == group_tag
    for step in plan.steps:
        if step.action == SET_STATUS:
            assert step.status == status
    check_invariant(apply_steps(membership_of(target), plan.steps))


def test_plan_portal_status_compares_with_the_current_status():
    target = target_of(CURRENT)
    offline = subsystem(target, {"10.0.0.1": "offline"})
    assert plan_portal(offline, target, a(P1), 1, "present", "offline").steps == ()
    assert steps_of(plan_portal(offline, target, a(P1), 1, "present", "online")) == [(SET_STATUS, None, P1, None)]


def test_plan_portal_present_needs_a_tag():
    target = target_of(CURRENT)
    with pytest.raises(ValidationError, match="tag is required with state=present"):
        plan_portal(subsystem(target), target, a(P1), None, "present")


def test_plan_portal_present_in_a_missing_group_lists_existing_tags():
    target = target_of(CURRENT)
    with pytest.raises(NotFoundError) as raised:
        plan_portal(subsystem(target), target, a(P4), 9, "present")
    message = str(raised.value)
    assert "tag 9 does not exist on target %s" % IQN in message
    assert "existing tags: 1, 2, 5" in message and "storage.vds.vds_portal_group" in message


@pytest.mark.parametrize("state, tag", [("present", 1), ("absent", None)])
def test_plan_portal_unknown_portal_names_it(state, tag):
    target = target_of(CURRENT)
    with pytest.raises(NotFoundError, match=r"portal 10\.7\.7\.7:3260 is not a portal of subsystem array-a"):
        plan_portal(subsystem(target), target, a("10.7.7.7"), tag, state, "offline")


# --- helpers of the planner ---------------------------------------------------------------------


@pytest.mark.parametrize("tags, expected", [([], 1), ([1, 2, 5], 3), ([2, 3], 1), ([None, 1], 2),
                                            (range(1, 100), 100)])
def test_lowest_free_tag(tags, expected):
    assert lowest_free_tag(tags) == expected


def test_lowest_free_tag_when_every_tag_is_taken():
    with pytest.raises(ValidationError, match="every tag 1..65535 is taken"):
        lowest_free_tag(range(1, 65536))


@pytest.mark.parametrize("portals, expected", [
    ([], None), (["10.0.0.4"], None), (["10.0.0.1"], 1), (["10.0.0.3", "[fd00::1]", "10.0.0.1"], 2),
    (["10.0.0.2", "10.0.0.3"], 1), (["[fd00::1]", "10.0.0.1"], 1),
])
def test_find_group_by_membership(portals, expected):
    assert find_group_by_membership(target_of(CURRENT), [a(p) for p in portals]) == expected


def test_find_group_by_membership_ties_go_to_the_lowest_tag_whatever_the_order():
    groups = target_of({7: ["10.0.0.1"], 3: ["10.0.0.2"], 4: ["10.0.0.3"]})
    reordered = Target(groups.id, groups.iqn, groups.alias, tuple(reversed(groups.groups)))
    for target in (groups, reordered):
        assert find_group_by_membership(target, [a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.3")]) == 3


def test_step_as_dict():
    assert Step(ADD_PORTAL, IQN, 2, a("10.0.0.5"), from_tag=1).as_dict() == {
        "action": "add_portal", "target": IQN, "tag": 2, "portal": "10.0.0.5:3260", "from_tag": 1}
    assert Step(CREATE_GROUP, IQN).as_dict() == {"action": "create_group", "target": IQN, "tag": None}
    assert Step(SET_STATUS, IQN, None, a("[fd00::1]"), status="offline").as_dict() == {
        "action": "set_status", "target": IQN, "tag": None, "portal": "[fd00::1]:3260", "status": "offline"}
    assert Step(ADD_PORTAL, IQN, None, a(P1)).with_tag(4).tag == 4


@pytest.mark.parametrize("step, fragment", [
    (Step(ADD_PORTAL, IQN, 2, a(P1)), "added to group 2 while in group 1"),
    (Step(ADD_PORTAL, IQN, 1, a(P1)), "added to group 1 while in group 1"),
    (Step(ADD_PORTAL, IQN, 9, a(P4)), "add to missing group 9"),
    (Step(REMOVE_PORTAL, IQN, 2, a(P1)), "removed from group 2, which does not hold it"),
    (Step(REMOVE_PORTAL, IQN, 9, a(P1)), "removed from group 9"),
    (Step(DELETE_GROUP, IQN, 1), "group 1 deleted while it holds portals"),
    (Step(CREATE_GROUP, IQN, 2), "group 2 created twice"),
])
def test_apply_step_refuses_unsafe_steps(step, fragment):
    with pytest.raises(InvariantViolation, match=fragment):
        apply_step(membership_of(target_of(CURRENT)), step)


def test_apply_step_does_not_mutate_its_input():
    before = membership_of(target_of(CURRENT))
    copy = dict(before)
    after = apply_steps(before, [Step(REMOVE_PORTAL, IQN, 1, a(P1)), Step(ADD_PORTAL, IQN, 5, a(P1), from_tag=1),
                                 Step(CREATE_GROUP, IQN, None), Step(ADD_PORTAL, IQN, None, a(P4)),
                                 Step(SET_STATUS, IQN, None, a(P4), status="offline")])
    assert before == copy
    assert after == {1: frozenset({a(P2)}), 2: frozenset({a(P3), a(V6)}), 5: frozenset({a(P1)}),
                     None: frozenset({a(P4)})}


def test_membership_view_sorts_groups_and_portals_new_group_last():
    view = membership_view(IQN, {None: frozenset({a(P4)}), 5: frozenset(), 1: frozenset({a(V6), a(P2), a(P1)})})
    assert view == {"target": IQN, "groups": [
        {"tag": 1, "portals": [P1, P2, V6]}, {"tag": 5, "portals": []}, {"tag": None, "portals": [P4]}]}


def test_absent_by_membership_is_idempotent():
    # The declared portals sit in two groups. Without a tag, the first run deletes the group holding
    # the most of them (ties: lowest tag), group 1. The second run must not then find group 2 by
    # the remaining portal and delete it too: "a second run reports no change". Either the first
    # plan refuses the ambiguous declaration, or re-planning its result is empty.
    target = target_of({1: ["10.0.0.1"], 2: ["10.0.0.3"], 3: ["10.0.0.4"]})
    declaration = GroupDeclaration(IQN, (a(P1), a(P3)), state="absent")
    try:
        first = plan_group(subsystem(target), target, declaration, True)
    except (IdentityError, ValidationError):
        return
    after = apply_steps(membership_of(target), first.steps)
    second_target = target_of(dict(after))
    second = plan_group(subsystem(second_target), second_target, declaration, True)
    assert steps_of(second) == [], "the second run changes again: %s" % steps_of(second)


# --- properties over random targets and declarations --------------------------------------------

POOL_ADDRESSES = tuple(a(p) for p in POOL)


@st.composite
def scenarios(draw: t.Callable[..., t.Any]) -> tuple[dict[int, frozenset], GroupDeclaration, bool]:
    tags = draw(st.lists(st.integers(1, 8), max_size=4, unique=True))
    owners = draw(st.lists(st.sampled_from([None] + tags), min_size=len(POOL), max_size=len(POOL)))
    groups = {tag: frozenset(p for p, owner in zip(POOL_ADDRESSES, owners) if owner == tag) for tag in tags}
    tag_options = [st.none(), st.integers(1, 9)] + ([st.sampled_from(tags)] if tags else [])
    tag = draw(st.one_of(*tag_options))
    portals = draw(st.lists(st.sampled_from(POOL_ADDRESSES), unique=True, max_size=7))
    if tag is None:
        assume(portals)  # the engine refuses a declaration with neither tag nor portals
    declaration = GroupDeclaration(IQN, tuple(sorted(portals)), tag, draw(st.booleans()),
                                   draw(st.sampled_from(["present", "absent"])))
    return groups, declaration, draw(st.booleans())


def realise(membership: t.Mapping[t.Any, t.FrozenSet[PortalAddress]]) -> dict[int, frozenset]:
    """The provider's view of a membership: a group still keyed None gets the tag a provider assigns."""
    result = {tag: portals for tag, portals in membership.items() if tag is not None}
    if None in membership:
        result[lowest_free_tag(result)] = membership[None]
    return result


def _plan_or_refusal(groups, declaration, assigns_tags):
    target = target_of(groups)
    try:
        return target, plan_group(subsystem(target), target, declaration, assigns_tags)
    except IdentityError:
        # Refused only for a tag that does not exist, on a provider that chooses tags, with state
        # present; or (a fix test_absent_by_membership_is_idempotent allows) state absent without a
        # tag when the declared portals are spread over several groups.
        missing_tag = assigns_tags and declaration.tag not in groups and declaration.state == "present"
        spread = declaration.state == "absent" and declaration.tag is None and len(
            [tag for tag, portals in groups.items() if portals & set(declaration.portals)]) > 1
        assert missing_tag or spread
        return target, None


@given(scenarios())
@settings(max_examples=200, deadline=None)
def test_property_every_intermediate_membership_keeps_one_group_per_portal(scenario):
    groups, declaration, assigns_tags = scenario
    target, plan = _plan_or_refusal(groups, declaration, assigns_tags)
    if plan is None:
        return
    membership = membership_of(target)
    check_invariant(membership)
    for step in plan.steps:
        membership = apply_step(membership, step)  # raises InvariantViolation on an unsafe step
        check_invariant(membership)


@given(scenarios())
@settings(max_examples=200, deadline=None)
def test_property_applying_the_plan_yields_the_desired_state(scenario):
    groups, declaration, assigns_tags = scenario
    target, plan = _plan_or_refusal(groups, declaration, assigns_tags)
    if plan is None:
        return
    after = apply_steps(membership_of(target), plan.steps)
    declared = frozenset(declaration.portals)
    if declaration.state == "absent":
        chosen = declaration.tag if declaration.tag is not None else find_group_by_membership(target, declared)
        expected = {tag: portals for tag, portals in groups.items() if tag != chosen}
        assert after == expected  # the group is gone and nothing else changed
        return
    key = plan.group_tag
    assert key in after
    if declaration.tag is not None:
        assert key == declaration.tag
    if declaration.purge_portals:
        assert after[key] == declared
    else:
        assert after[key] >= declared
        assert after[key] == declared | groups.get(key, frozenset())
    for tag, portals in after.items():
        if tag != key:
            assert not portals & declared, "declared portals left in group %s" % tag
            assert portals == groups[tag] - declared  # other groups only lose the portals moved out
    if key not in groups:
        assert not assigns_tags or key is None


@given(scenarios())
@settings(max_examples=200, deadline=None)
def test_property_replanning_the_result_is_empty(scenario):
    groups, declaration, assigns_tags = scenario
    target, plan = _plan_or_refusal(groups, declaration, assigns_tags)
    if plan is None:
        return
    if declaration.state == "absent" and declaration.tag is None:
        # absent-by-membership is idempotent only when one group held the portals: see
        # test_absent_by_membership_is_idempotent for the other case
        assume(len([tag for tag, portals in groups.items() if portals & set(declaration.portals)]) <= 1)
    result = realise(apply_steps(membership_of(target), plan.steps))
    again = target_of(result)
    replan = plan_group(subsystem(again), again, declaration, assigns_tags)
    assert replan.steps == (), "second run: %s" % steps_of(replan)
    if declaration.state == "present":
        assert replan.group_tag == (plan.group_tag if plan.group_tag is not None else max(set(result) - set(groups)))


@given(scenarios())
@settings(max_examples=200, deadline=None)
def test_property_plans_are_minimal(scenario):
    groups, declaration, assigns_tags = scenario
    target, plan = _plan_or_refusal(groups, declaration, assigns_tags)
    if plan is None:
        return
    count = collections.Counter(step.action for step in plan.steps)
    declared = set(declaration.portals)
    if declaration.state == "absent":
        chosen = declaration.tag if declaration.tag is not None else find_group_by_membership(target, declared)
        if chosen not in groups:
            assert plan.steps == ()
        else:
            assert count == collections.Counter({REMOVE_PORTAL: len(groups[chosen]), DELETE_GROUP: 1})
        return
    key = plan.group_tag
    current = groups.get(key, frozenset()) if key is not None else frozenset()
    missing = declared - current
    moves = {p for p in missing if any(p in portals for tag, portals in groups.items() if tag != key)}
    purged = (current - declared) if declaration.purge_portals else set()
    assert count[ADD_PORTAL] == len(missing)
    assert count[REMOVE_PORTAL] == len(purged) + len(moves)
    assert count[CREATE_GROUP] == (0 if key in groups else 1)
    assert count[DELETE_GROUP] == 0
    assert len([s for s in plan.steps if s.from_tag is not None]) == len(moves)
    # each portal is touched at most once per direction
    assert len({s.portal for s in plan.steps if s.action == ADD_PORTAL}) == count[ADD_PORTAL]
    assert len({s.portal for s in plan.steps if s.action == REMOVE_PORTAL}) == count[REMOVE_PORTAL]


@st.composite
def portal_scenarios(draw: t.Callable[..., t.Any]) -> tuple:
    tags = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4, unique=True))
    owners = draw(st.lists(st.sampled_from([None] + tags), min_size=len(POOL), max_size=len(POOL)))
    groups = {tag: frozenset(p for p, owner in zip(POOL_ADDRESSES, owners) if owner == tag) for tag in tags}
    state = draw(st.sampled_from(["present", "absent"]))
    tag = draw(st.sampled_from(tags)) if state == "present" else draw(st.one_of(st.none(), st.sampled_from(tags)))
    return groups, draw(st.sampled_from(POOL_ADDRESSES)), tag, state


@given(portal_scenarios())
@settings(max_examples=200, deadline=None)
def test_property_plan_portal_converges_in_one_run(scenario):
    groups, address, tag, state = scenario
    target = target_of(groups)
    plan = plan_portal(subsystem(target), target, address, tag, state)
    membership = membership_of(target)
    for step in plan.steps:
        membership = apply_step(membership, step)
        check_invariant(membership)
    holders = [k for k, portals in membership.items() if address in portals]
    if state == "present":
        assert holders == [tag]
    elif tag is None:
        assert holders == []
    else:
        assert tag not in holders
    assert len(plan.steps) <= 2
    again = target_of(membership)
    assert plan_portal(subsystem(again), again, address, tag, state).steps == ()
