# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The resource module's planner and input parsing, table-driven."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._vds import resource
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
    CREATE_GROUP,
    Membership,
    Step,
    apply_step,
    is_new_group,
    missing_tag_error,
)
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1 as IQN, IQN2 as OTHER

POOL = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "[fd00::1]", "[fd00::2]")
START = {1: [".1", ".2"], 2: [".3"]}


def a(text: str) -> PortalAddress:
    return PortalAddress.parse("10.0.0" + text if text.startswith(".") else text)


def short(address: PortalAddress) -> str:
    text = str(address)
    return text[len("10.0.0"):-len(":3260")] if text.startswith("10.0.0.") and text.endswith(":3260") else text


def make_target(groups: t.Mapping[int, t.Sequence[str]]) -> Target:
    return Target("t", IQN, "", tuple(PortalGroup("g%d" % tag, tag, frozenset(a(p) for p in members))
                                      for tag, members in sorted(groups.items())))


def make_subsystem(target: Target) -> Subsystem:
    return Subsystem("s", "array-a", tuple(Portal("p%d" % n, a(text)) for n, text in enumerate(POOL)), (target,))


def group(tag: int | None, *portals: str, purge: bool | None = None) -> resource.GroupSpec:
    return resource.GroupSpec(tag, tuple(sorted(a(p) for p in portals)), purge)


def plan(state: str, current: t.Mapping[int, t.Sequence[str]], *groups: resource.GroupSpec,
         assigns_tags: bool = True) -> resource.TargetPlan:
    target = make_target(current)
    subsystem = make_subsystem(target)
    index = resource.index_portals(portal.address for portal in subsystem.portals)
    return resource.plan_target(subsystem, target, resource.TargetSpec(IQN, None, groups), state, assigns_tags, index)


def notation(steps: t.Iterable[Step]) -> list[str]:
    """``-.2@1`` removes 10.0.0.2 from group 1, ``+.3@1<2`` adds it to 1 from 2, ``+.5@new`` adds it to
    the first group the plan creates (``new2``: the second), ``create``/``create 5``, ``delete 2``."""
    written = []
    for step in steps:
        if step.action == CREATE_GROUP:
            written.append("create" if is_new_group(step.tag) else "create %d" % step.tag)
        elif step.action == "delete_group":
            written.append("delete %d" % step.tag)
        else:
            where = str(step.tag)
            if is_new_group(step.tag):
                where = "new" if step.tag in (None, -1) else "new%d" % -t.cast(int, step.tag)
            sign = "+" if step.action == "add_portal" else "-"
            came = "<%d" % step.from_tag if step.from_tag is not None else ""
            written.append("%s%s@%s%s" % (sign, short(t.cast(PortalAddress, step.portal)), where, came))
    return written


def replay(before: Membership, steps: t.Iterable[Step]) -> Membership:
    """The membership after ``steps`` as the executor runs them (a tag-less step goes to the group the
    create before it made, keyed -1, -2, ...), each step checked against the one-group rule."""
    membership = dict(before)
    new_key = 0
    for step in steps:
        if step.tag is None:
            new_key -= step.action == CREATE_GROUP
            step = step.with_tag(new_key)
        membership = apply_step(membership, step)
    return membership


def shown(membership: Membership) -> dict[t.Any, list[str]]:
    return {("new%d" % -tag if tag is not None and tag < 0 else tag): sorted(short(p) for p in members)
            for tag, members in membership.items()}


CASES = [
    # --- merged: add, move in, never remove ---
    ("merged adds by tag", "merged", START, [group(1, ".4")], ["+.4@1"],
     {1: [".1", ".2", ".4"], 2: [".3"]}),
    ("merged moves a portal from another group", "merged", START, [group(1, ".3")], ["-.3@2", "+.3@1<2"],
     {1: [".1", ".2", ".3"], 2: []}),
    ("merged finds the group by membership", "merged", START, [group(None, ".3", ".5")], ["+.5@2"],
     {1: [".1", ".2"], 2: [".3", ".5"]}),
    ("merged creates a group none holds", "merged", START, [group(None, ".5", ".6")],
     ["create", "+.5@new", "+.6@new"], {1: [".1", ".2"], 2: [".3"], "new1": [".5", ".6"]}),
    ("merged with purge_portals true purges that group", "merged", START, [group(1, ".4", purge=True)],
     ["-.1@1", "-.2@1", "+.4@1"], {1: [".4"], 2: [".3"]}),
    ("a group is claimed once: the second goes to a new group", "merged", START,
     [group(None, ".1"), group(None, ".2")], ["create", "-.2@1", "+.2@new<1"],
     {1: [".1"], 2: [".3"], "new1": [".2"]}),
    ("tags are matched before membership", "merged", START, [group(None, ".1"), group(1, ".4")],
     ["create", "-.1@1", "+.1@new<1", "+.4@1"], {1: [".2", ".4"], 2: [".3"], "new1": [".1"]}),
    ("a tie goes to the lowest tag", "merged", {1: [".1"], 2: [".2"]}, [group(None, ".2", ".1")],
     ["-.2@2", "+.2@1<2"], {1: [".1", ".2"], 2: []}),
    ("nothing to do", "merged", START, [group(1, ".2"), group(None, ".3")], [], {1: [".1", ".2"], 2: [".3"]}),
    # --- replaced: declared groups exact, the others keep what is not moved ---
    ("replaced purges the declared group", "replaced", START, [group(1, ".1", ".4")], ["-.2@1", "+.4@1"],
     {1: [".1", ".4"], 2: [".3"]}),
    ("replaced with purge_portals false adds", "replaced", START, [group(1, ".4", purge=False)], ["+.4@1"],
     {1: [".1", ".2", ".4"], 2: [".3"]}),
    ("replaced swaps portals between groups: each add right after its remove", "replaced", START,
     [group(1, ".3"), group(2, ".1", ".2")], ["-.1@1", "+.1@2<1", "-.2@1", "+.2@2<1", "-.3@2", "+.3@1<2"],
     {1: [".3"], 2: [".1", ".2"]}),
    ("replaced leaves an emptied undeclared group in place", "replaced", START, [group(1, ".1", ".2", ".3")],
     ["-.3@2", "+.3@1<2"], {1: [".1", ".2", ".3"], 2: []}),
    # --- overridden: the declared groups and no other ---
    ("overridden deletes the undeclared group", "overridden", START, [group(1, ".1")],
     ["-.2@1", "-.3@2", "delete 2"], {1: [".1"]}),
    ("overridden with no groups deletes them all", "overridden", START, [],
     ["-.1@1", "-.2@1", "-.3@2", "delete 1", "delete 2"], {}),
    ("overridden: portals leaving first, then the create, the adds, the deletes", "overridden", START,
     [group(None, ".3", ".4"), group(None, ".5")],
     ["-.1@1", "-.2@1", "create", "+.4@2", "+.5@new", "delete 1"], {2: [".3", ".4"], "new1": [".5"]}),
    ("a move into a new group leaves its old group once the new group exists", "merged", {1: [".1", ".3"]},
     [group(1, ".1"), group(None, ".3")], ["create", "-.3@1", "+.3@new<1"], {1: [".1"], "new1": [".3"]}),
    ("overridden keeps extra members of a group with purge_portals false", "overridden", START,
     [group(1, ".4", purge=False)], ["-.3@2", "+.4@1", "delete 2"], {1: [".1", ".2", ".4"]}),
    ("two new groups: both created first", "overridden", {},
     [group(None, ".1", ".2"), group(None, "[fd00::1]")],
     ["create", "create", "+.1@new", "+.2@new", "+[fd00::1]:3260@new2"],
     {"new1": [".1", ".2"], "new2": ["[fd00::1]:3260"]}),
    # --- deleted ---
    ("deleted removes the portals then deletes the group", "deleted", START, [group(2)], ["-.3@2", "delete 2"],
     {1: [".1", ".2"]}),
    ("deleted with no groups deletes every group", "deleted", START, [],
     ["-.1@1", "-.2@1", "-.3@2", "delete 1", "delete 2"], {}),
    ("deleted leaves a missing tag alone", "deleted", START, [group(7)], [], {1: [".1", ".2"], 2: [".3"]}),
    ("deleted finds a group by membership", "deleted", START, [group(None, ".2")], ["-.1@1", "-.2@1", "delete 1"],
     {2: [".3"]}),
    ("deleted finds nothing by membership", "deleted", START, [group(None, ".6")], [],
     {1: [".1", ".2"], 2: [".3"]}),
]


@pytest.mark.parametrize("state, current, groups, steps, after",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_plan(state, current, groups, steps, after):
    planned = plan(state, current, *groups)
    assert notation(planned.steps) == steps
    assert shown(planned.after) == after
    assert replay(planned.before, planned.steps) == planned.after


def test_provider_choosing_tags_creates_the_declared_tag_and_the_lowest_free_one():
    planned = plan("merged", START, group(None, ".5"), group(3, ".6"), assigns_tags=False)
    # the tagless group takes the lowest tag neither existing nor declared
    assert notation(planned.steps) == ["create 4", "create 3", "+.6@3", "+.5@4"]
    assert shown(planned.after) == {1: [".1", ".2"], 2: [".3"], 3: [".6"], 4: [".5"]}
    assert planned.created == (0, 1)


@pytest.mark.parametrize("groups, message", [
    ([group(None, ".1", ".3")], "config.groups[0]: portals 10.0.0.1:3260, 10.0.0.3:3260 are spread over groups 1, 2"),
    ([group(None, ".1"), group(None, ".2", ".3", ".4")],
     "config.groups[1]: portals 10.0.0.2:3260, 10.0.0.3:3260, 10.0.0.4:3260 are spread over groups 2, 3"),
])
def test_deleting_a_group_whose_portals_are_spread_over_groups_is_refused(groups, message):
    # deleting one of them would leave the others for the next run: the state would not be idempotent
    with pytest.raises(IdentityError) as raised:
        plan("deleted", {1: [".1", ".2"], 2: [".3"], 3: [".4"]}, *groups)
    assert str(raised.value) == "%s of %s: give tag to say which group to delete" % (message, IQN)


def test_deleting_by_membership_skips_groups_other_declarations_claimed():
    planned = plan("deleted", START, group(1), group(None, ".2", ".3"))
    assert notation(planned.steps) == ["-.1@1", "-.2@1", "-.3@2", "delete 1", "delete 2"]


def test_a_missing_tag_fails_as_the_single_group_module_does_naming_the_group():
    with pytest.raises(IdentityError) as raised:
        plan("replaced", START, group(1, ".1"), group(9, ".4"))
    assert str(raised.value) == "config.groups[1]: %s" % missing_tag_error(make_target(START), 9)
    assert "existing tags: 1, 2" in str(raised.value)


def test_an_unknown_portal_fails_naming_it_the_known_ones_and_the_group():
    with pytest.raises(NotFoundError) as raised:
        plan("merged", START, group(1, ".1"), group(None, ".5", "10.9.9.9"))
    assert str(raised.value).startswith("config.groups[1]: portal 10.9.9.9:3260 is not a portal of subsystem array-a")
    assert "known portals: 10.0.0.1:3260" in str(raised.value)


def test_offline_planning_takes_every_portal_as_known():
    target = make_target(START)
    index = resource.index_portals(address for member in target.groups for address in member.portals)
    planned = resource.plan_target(Subsystem("", ""), target, resource.TargetSpec(IQN, None, (group(1, "10.9.9.9"),)),
                                   "merged", True, index, offline=True)
    assert notation(planned.steps) == ["+10.9.9.9:3260@1"]


# --- input ---------------------------------------------------------------------------------------


def entry(*groups: dict[str, t.Any], target: str = IQN, **extra: t.Any) -> dict[str, t.Any]:
    return dict(extra, target=target, groups=list(groups))


@pytest.mark.parametrize("entries, fragment", [
    ([entry(target="iqn.bad")], "config[0]: target 'iqn.bad' is not an iSCSI name"),
    ([entry({"tag": 0})], "config[0].groups[0].tag 0 is outside 1..65535"),
    ([entry({"portals": ["10.0.0.300"]})], "config[0].groups[0]: portal '10.0.0.300'"),
    ([entry({"portals": ["10.0.0.1:70000"]})], "port 70000 is outside 1..65535"),
    ([entry({"portals": ["10.0.0.1", "10.0.0.1:3260"]})], "'10.0.0.1' and '10.0.0.1:3260' are the same portal"),
    ([entry({"tag": 1, "portals": []}, {"tag": 1, "portals": ["10.0.0.2"]})],
     "config[0]: groups[0] and groups[1] both declare tag 1"),
    ([entry({"tag": 1, "portals": ["10.0.0.1"]}, {"portals": ["10.0.0.1:3260"]})],
     "config[0]: portal 10.0.0.1:3260 is declared in groups[0] and groups[1]"),
    ([entry({"portals": []})], "config[0].groups[0]: give tag or at least one portal"),
    ([entry(), entry(target=IQN.upper())], "config[0] and config[1] both declare target %s" % IQN),
    ([], "config is empty: state=merged needs at least one target"),
])
def test_bad_config_is_refused_naming_the_entry(entries, fragment):
    with pytest.raises(ValidationError) as raised:
        resource.parse_config(entries, "merged")
    assert fragment in str(raised.value)


def test_config_is_normalised():
    specs = resource.parse_config([entry({"portals": ["10.0.0.2", "[FD00::1]:3260"], "purge_portals": True},
                                         target=IQN.upper(), subsystem="array-a")], "replaced")
    assert specs == (resource.TargetSpec(IQN, "array-a", (group(None, ".2", "[fd00::1]", purge=True),), "config[0]"),)


def test_gathered_needs_no_config_and_ignores_groups():
    assert resource.parse_config(None, "gathered") == ()
    assert resource.parse_config([entry({"portals": []})], "gathered")[0].groups == ()


# --- groups: the same declaration, one group per entry -----------------------------------------------


def flat(target: str = IQN, **fields: t.Any) -> dict[str, t.Any]:
    return dict(fields, target=target)


GATHERING = [
    ("entries of one target are gathered in list order, the name compared case-insensitively",
     [flat(tag=1, portals=["10.0.0.1"]), flat(OTHER, portals=["10.0.0.2"]), flat(IQN.upper(), portals=["10.0.0.3"])],
     [(IQN, None, [(1, ".1"), (None, ".3")], ["d[0]", "d[2]"]), (OTHER, None, [(None, ".2")], ["d[1]"])]),
    ("a target first listed later comes later",
     [flat(OTHER, portals=["10.0.0.2"]), flat(tag=2), flat(OTHER, tag=3)],
     [(OTHER, None, [(None, ".2"), (3, None)], ["d[0]", "d[2]"]), (IQN, None, [(2, None)], ["d[1]"])]),
    ("the subsystem is compared exactly: another subsystem, or none, is another target",
     [flat(subsystem="array-a", tag=1), flat(tag=2), flat(subsystem="array-a", tag=3), flat(subsystem="A", tag=4)],
     [(IQN, "array-a", [(1, None), (3, None)], ["d[0]", "d[2]"]), (IQN, None, [(2, None)], ["d[1]"]),
      (IQN, "A", [(4, None)], ["d[3]"])]),
]


@pytest.mark.parametrize("entries, expected", [case[1:] for case in GATHERING], ids=[case[0] for case in GATHERING])
def test_groups_are_gathered_per_target(entries, expected):
    specs = resource.parse_group_list(entries, "merged", "d")
    assert [(spec.target, spec.subsystem, [(g.tag, short(g.portals[0]) if g.portals else None) for g in spec.groups],
             list(spec.group_names)) for spec in specs] == [tuple(case) for case in expected]
    # a target is named by its first entry; each group by its own
    assert [spec.where for spec in specs] == [names[0] for *_rest, names in expected]


def test_groups_declare_what_config_declares():
    entries = [flat(tag=1, portals=["10.0.0.2", "[FD00::1]:3260"], purge_portals=True),
               flat(OTHER, portals=["10.0.0.3"]), flat(IQN.upper(), portals=["10.0.0.4"])]
    grouped = [entry({"tag": 1, "portals": ["10.0.0.2", "[FD00::1]:3260"], "purge_portals": True},
                     {"portals": ["10.0.0.4"]}),
               entry({"portals": ["10.0.0.3"]}, target=OTHER)]
    from_groups = resource.parse_group_list(entries, "replaced")
    from_config = resource.parse_config(grouped, "replaced")
    assert [(spec.target, spec.subsystem, spec.groups) for spec in from_groups] == [
        (spec.target, spec.subsystem, spec.groups) for spec in from_config]


@pytest.mark.parametrize("default, own, purge", [
    (None, None, None), (None, True, True), (False, None, False), (False, True, True), (True, False, False),
])
def test_a_group_without_purge_portals_takes_the_module_default(default, own, purge):
    fields = {"portals": ["10.0.0.1"]} if own is None else {"portals": ["10.0.0.1"], "purge_portals": own}
    declared = {"groups": [flat(**fields)], "purge_portals": default}
    assert resource.parse_declaration(declared, "overridden")[0].groups[0].purge is purge
    in_config = {"config": [entry(fields)], "purge_portals": default}
    assert resource.parse_declaration(in_config, "overridden")[0].groups[0].purge is purge


def test_gathered_takes_only_the_targets_of_groups():
    specs = resource.parse_group_list([flat(portals=[]), flat(OTHER, tag=0), flat(IQN.upper())], "gathered", "d")
    assert [(spec.target, spec.groups) for spec in specs] == [(IQN, ()), (OTHER, ())]
    assert resource.parse_group_list([], "gathered") == ()


@pytest.mark.parametrize("entries, message", [
    ([flat(tag=1), flat("iqn.bad", tag=2)], "desired[1]: target 'iqn.bad' is not an iSCSI name"),
    ([flat(tag=1), flat(OTHER, tag=1), flat(tag=0)], "desired[2].tag 0 is outside 1..65535"),
    ([flat(portals=["10.0.0.1"]), flat(portals=["10.0.0.300"])], "desired[1]: portal '10.0.0.300'"),
    ([flat(tag=1), flat(portals=[])], "desired[1]: give tag or at least one portal"),
    ([flat(tag=1), flat(OTHER, tag=1), flat(IQN.upper(), tag=1, portals=["10.0.0.2"])],
     "desired[0] and desired[2] both declare tag 1; declare each group once"),
    ([flat(tag=1, portals=["10.0.0.1"]), flat(OTHER, portals=["10.0.0.1"]), flat(portals=["10.0.0.1:3260"])],
     "portal 10.0.0.1:3260 is declared in desired[0] and desired[2]; a portal belongs to at most one group"),
    ([], "desired is empty: state=merged needs at least one group"),
])
def test_bad_groups_are_refused_naming_the_entry_as_written(entries, message):
    with pytest.raises(ValidationError) as raised:
        resource.parse_group_list(entries, "merged", "desired")
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("state, current, entries, error, message", [
    ("merged", START, [flat(tag=1, portals=["10.0.0.1"]), flat(tag=9, portals=["10.0.0.4"])], IdentityError,
     "desired[1]: portal group with tag 9 does not exist on target %s" % IQN),
    ("merged", START, [flat(OTHER, tag=1), flat(tag=1), flat(portals=["10.0.0.4", "10.9.9.9"])], NotFoundError,
     "desired[2]: portal 10.9.9.9:3260 is not a portal of subsystem array-a"),
    ("deleted", {1: [".1", ".2"], 2: [".3"]}, [flat(OTHER, tag=1), flat(portals=["10.0.0.1", "10.0.0.3"])],
     IdentityError, "desired[1]: portals 10.0.0.1:3260, 10.0.0.3:3260 are spread over groups 1, 2 of %s" % IQN),
])
def test_planning_names_the_entry_as_written(state, current, entries, error, message):
    spec = next(spec for spec in resource.parse_group_list(entries, state, "desired") if spec.target == IQN)
    target = make_target(current)
    subsystem = make_subsystem(target)
    with pytest.raises(error) as raised:
        resource.plan_target(subsystem, target, spec, state, True,
                             resource.index_portals(portal.address for portal in subsystem.portals))
    assert str(raised.value).startswith(message)


def test_a_capped_provider_names_the_entries_as_written():
    spec = resource.parse_group_list([flat(tag=1), flat(portals=["10.0.0.5"])], "merged", "desired")[0]
    declaration = resource.TargetDeclaration(spec, "merged")
    planned = declaration.plan(make_subsystem(make_target({1: []})), make_target({1: []}), True)
    taken, name = declaration.taking(planned, 0, 2)
    assert name == "desired[1]" and taken.spec.groups[1].tag == 2
    with pytest.raises(IdentityError, match=r"^the provider allows .* returned existing group 1, which desired\[0\] "):
        declaration.taking(planned, 0, 1)


@pytest.mark.parametrize("entries, fragment", [
    ([{"target": IQN, "groups": [{"tag": 1, "portals": ["10.0.0.1"]}, {"tag": 1}]}],
     "running_config[0].groups[1]: tag 1 is used by two groups"),
    ([{"target": IQN, "groups": [{"tag": 1, "portals": ["10.0.0.1"]}, {"tag": 2, "portals": ["10.0.0.1"]}]}],
     "portal 10.0.0.1:3260 is in group 1 and group 2"),
    ([{"target": IQN}, {"target": IQN}], "running_config[0] and running_config[1] both describe target"),
    ([{"target": "nope"}], "running_config[0]: target 'nope' is not an iSCSI name"),
])
def test_bad_running_config_is_refused(entries, fragment):
    with pytest.raises(ValidationError) as raised:
        resource.parse_running_config(entries)
    assert fragment in str(raised.value)


# --- rendered: offline ---------------------------------------------------------------------------


def test_rendered_plans_against_running_config():
    running = [{"target": IQN, "subsystem": "array-a", "groups": [{"tag": 1, "portals": ["10.0.0.1", "10.0.0.2"]},
                                                                  {"tag": 2, "portals": ["10.0.0.3"]}]}]
    declared = [entry({"tag": 1, "portals": ["10.0.0.3"]}, subsystem="array-a"),
                entry({"portals": ["10.0.0.9"]}, target="iqn.1991-05.com.microsoft:new")]
    result = resource.render({"config": declared, "running_config": running, "render_as": "overridden"})
    assert result["changed"] is False
    assert result["rendered"] == result["steps"]
    assert [(step["action"], step["target"][-3:], step["tag"], step.get("portal")) for step in result["steps"]] == [
        ("remove_portal", "-t1", 1, "10.0.0.1:3260"), ("remove_portal", "-t1", 1, "10.0.0.2:3260"),
        ("remove_portal", "-t1", 2, "10.0.0.3:3260"), ("add_portal", "-t1", 1, "10.0.0.3:3260"),
        ("delete_group", "-t1", 2, None),
        ("create_group", "new", None, None), ("add_portal", "new", None, "10.0.0.9:3260")]
    assert result["after"] == [
        {"target": IQN, "subsystem": "array-a", "groups": [{"tag": 1, "portals": ["10.0.0.3:3260"]}]},
        {"target": "iqn.1991-05.com.microsoft:new", "subsystem": "", "groups": [
            {"tag": None, "portals": ["10.0.0.9:3260"]}]}]


def test_rendered_merges_by_default_and_needs_no_running_config():
    result = resource.render({"config": [entry({"portals": ["10.0.0.1"]})]})
    assert [step["action"] for step in result["rendered"]] == ["create_group", "add_portal"]
    assert result["before"] == [{"target": IQN, "subsystem": "", "groups": []}]
