# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Properties of the resource module's planner over random targets and declarations, checked against
an independent statement of each state's meaning, and against the simulated provider."""

from __future__ import annotations

import json
import os
import tempfile
import typing as t

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend
from ansible_collections.storage.vds.plugins.module_utils._vds import resource
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import IdentityError
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalAddress, PortalGroup, Target
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    ADD_PORTAL,
    CREATE_GROUP,
    DELETE_GROUP,
    REMOVE_PORTAL,
    Membership,
    find_group_by_membership,
    lowest_free_tag,
)
from ansible_collections.storage.vds.tests.unit.plugins.module_utils._vds_resource.test_resource_plan import (
    IQN,
    make_subsystem,
    make_target,
    replay,
)

PORTALS = (".1", ".2", ".3", ".4", ".5", ".6", "[fd00::1]", "[fd00::2]")
CHANGING = ("merged", "replaced", "overridden", "deleted")


def address(text: str) -> PortalAddress:
    return PortalAddress.parse("10.0.0" + text if text.startswith(".") else text)


@st.composite
def targets(draw: st.DrawFn) -> dict[int, list[str]]:
    """A target's groups: up to five tags out of 1..8, each portal in at most one group."""
    tags = draw(st.lists(st.integers(1, 8), unique=True, max_size=5))
    groups: dict[int, list[str]] = {tag: [] for tag in tags}
    for portal in PORTALS:
        holder = draw(st.sampled_from([None] + tags))
        if holder is not None:
            groups[holder].append(portal)
    return groups


@st.composite
def declarations(draw: st.DrawFn) -> list[resource.GroupSpec]:
    """Up to four declared groups: tags unique (or none), portals disjoint, a group without tag never empty."""
    count = draw(st.integers(0, 4))
    tags = [draw(st.one_of(st.none(), st.integers(1, 9))) for _position in range(count)]
    assume(len({tag for tag in tags if tag is not None}) == len([tag for tag in tags if tag is not None]))
    members: list[list[str]] = [[] for _position in range(count)]
    for portal in PORTALS:
        owner = draw(st.sampled_from([None] + list(range(count))))
        if owner is not None:
            members[owner].append(portal)
    assume(all(tag is not None or members[n] for n, tag in enumerate(tags)))
    return [resource.GroupSpec(tag, tuple(sorted(address(p) for p in members[n])),
                               draw(st.sampled_from([None, True, False])))
            for n, tag in enumerate(tags)]


def expected(current: Membership, groups: t.Sequence[resource.GroupSpec], state: str,
             assigns_tags: bool) -> Membership | None:
    """What the declaration means, stated directly from the documented rules (new groups keyed -1, -2, ...
    in the order declared, or by the tag the provider is asked for); None when it is ambiguous: a group to
    delete, found by membership, whose portals several groups hold."""
    keys: list[int | None] = [None] * len(groups)
    for n, group in enumerate(groups):
        if group.tag is not None and (group.tag in current or (not assigns_tags and state != "deleted")):
            keys[n] = group.tag
    claimed = {key for key in keys if key is not None}
    new = 0
    for n, group in enumerate(groups):
        if group.tag is not None:
            continue
        free = Target("", IQN, "", tuple(PortalGroup("", tag, t.cast(frozenset, members))
                                         for tag, members in current.items() if tag not in claimed))
        found = find_group_by_membership(free, group.portals)
        if state == "deleted" and sum(1 for other in free.groups if other.portals & set(group.portals)) > 1:
            return None
        if found is not None:
            keys[n] = found
            claimed.add(found)
        elif state != "deleted":
            if assigns_tags:
                new -= 1
                keys[n] = new
            else:
                keys[n] = lowest_free_tag(list(current) + keys)
    if state == "deleted":
        gone = set(keys) if groups else set(current)
        return {tag: members for tag, members in current.items() if tag not in gone}
    everything = {portal for group in groups for portal in group.portals}
    result: dict[t.Any, frozenset] = {}
    for key, group in zip(keys, groups):
        purge = group.purge if group.purge is not None else state != "merged"
        kept = set() if purge else set(current.get(key, frozenset())) - everything
        result[key] = frozenset(kept | set(group.portals))
    for tag, members in current.items():
        if tag not in result and state != "overridden":
            result[tag] = frozenset(set(members) - everything)
    return result


def make_membership(groups: t.Mapping[int, t.Sequence[str]]) -> Membership:
    return dict(make_target(groups).membership())


def provider_tags(before: Membership, after: Membership) -> Membership:
    """``after`` with each new group under the tag a provider gives it: the lowest free one when it is
    created (every delete comes last, so the tags in use are those of before)."""
    taken = set(before) | {tag for tag in after if tag is not None and tag > 0}
    result = {}
    for key in sorted(after, key=lambda key: (key is not None and key < 0, -(key or 0))):
        tag = key
        if key is not None and key < 0:
            tag = lowest_free_tag(taken)
            taken.add(tag)
        result[tag] = after[key]
    return result


def plan(current, groups, state, assigns_tags):
    target = make_target(current)
    subsystem = make_subsystem(target)
    index = resource.index_portals(portal.address for portal in subsystem.portals)
    return resource.plan_target(subsystem, target, resource.TargetSpec(IQN, None, tuple(groups)), state,
                                assigns_tags, index)


def minimum(before: Membership, after: Membership) -> int:
    """Mutating calls the difference needs: one per portal leaving or entering a group, per group made
    or deleted."""
    calls = 0
    for tag in set(before) | set(after):
        old, new = before.get(tag, frozenset()), after.get(tag, frozenset())
        calls += len(old - new) + len(new - old) + (tag not in before) + (tag not in after)
    return calls


@settings(max_examples=400, deadline=None)
@given(current=targets(), groups=declarations(), state=st.sampled_from(CHANGING), assigns_tags=st.booleans())
def test_planning_properties(current, groups, state, assigns_tags):
    try:
        planned = plan(current, groups, state, assigns_tags)
    except IdentityError:
        # only a tag the provider cannot create, or a group to delete that is not clear, is refused
        missing_tag = any(group.tag is not None and group.tag not in current for group in groups)
        assert (assigns_tags and state != "deleted" and missing_tag) or (
            state == "deleted" and expected(make_membership(current), groups, state, assigns_tags) is None)
        return
    before = planned.before
    # every step keeps the one-group rule, and the steps lead where the plan says
    assert replay(before, planned.steps) == planned.after
    # the result is what the state keyword means
    assert planned.after == expected(before, groups, state, assigns_tags)
    # no step more than the difference needs
    assert len(planned.steps) == minimum(before, planned.after)
    # the order: portals leaving every group, the creates, each move's remove right before its add, the
    # other adds, the deletes; so a portal that only moves is out of every group for one step at most
    actions = [step.action for step in planned.steps]
    moving = {step.portal for step in planned.steps if step.action == ADD_PORTAL and step.from_tag is not None}
    for position, step in enumerate(planned.steps):
        if step.action == REMOVE_PORTAL and step.portal in moving:
            arrival = planned.steps[position + 1]
            assert (arrival.action, arrival.portal, arrival.from_tag) == (ADD_PORTAL, step.portal, step.tag)
            assert CREATE_GROUP not in actions[position:]
        elif step.action == REMOVE_PORTAL:
            assert set(actions[:position]) <= {REMOVE_PORTAL}
    assert all(action == DELETE_GROUP for action in actions[actions.index(DELETE_GROUP):]) \
        if DELETE_GROUP in actions else True
    # a move names the group the portal left
    for step in planned.steps:
        if step.from_tag is not None:
            assert step.portal in before[step.from_tag]
    # planning the result again finds nothing to do
    result = provider_tags(before, planned.after) if assigns_tags else planned.after
    applied = {tag: [str(portal) for portal in members] for tag, members in result.items()}
    assert plan(applied, groups, state, assigns_tags).steps == ()


def state_file(path: str, current: dict[int, list[str]]) -> None:
    portals = [str(address(p)) for p in PORTALS]
    data = {"version": 1, "count_reads": True, "subsystems": [{
        "name": "array-a", "portals": [{"address": p} for p in portals],
        "targets": [{"iqn": IQN, "groups": [{"tag": tag, "portals": [str(address(p)) for p in members]}
                                            for tag, members in sorted(current.items())]}]}]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def read_back(path: str) -> tuple[dict[int, list[str]], dict[str, int]]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    groups = data["subsystems"][0]["targets"][0].get("groups", [])
    return {group["tag"]: sorted(group["portals"]) for group in groups}, data.get("calls", {})


def declared(groups: t.Sequence[resource.GroupSpec]) -> list[dict[str, t.Any]]:
    return [{"target": IQN, "groups": [{"tag": group.tag, "portals": [str(p) for p in group.portals],
                                        "purge_portals": group.purge} for group in groups]}]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(current=targets(), groups=declarations(), state=st.sampled_from(CHANGING))
def test_the_simulated_provider_ends_where_the_plan_says(current, groups, state):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "array.json")
        state_file(path, current)
        params = {"state": state, "config": declared(groups)}
        try:
            checked = resource.resource(Engine(SimulatorBackend(path), 30, check_mode=True), params)
        except IdentityError:
            return
        real = resource.resource(Engine(SimulatorBackend(path), 30), params)
        groups_now, calls = read_back(path)
        # the provider holds what the real run reports, which is what check mode predicted
        assert {group["tag"]: group["portals"] for group in real["after"][0]["groups"]} == groups_now
        predicted = [group["portals"] for group in checked["after"][0]["groups"]]
        assert sorted(predicted) == sorted(group["portals"] for group in real["after"][0]["groups"])
        # one read per execution, one mutating call per step, each step as planned (the provider refuses a
        # portal in two groups of a target, so the one-group rule held at every step)
        assert calls.get("Snapshot") == 2
        assert sum(count for name, count in calls.items() if name != "Snapshot") == len(real["steps"])
        assert [step["action"] for step in real["steps"]] == [step["action"] for step in checked["steps"]]
        again = resource.resource(Engine(SimulatorBackend(path), 30), params)
        assert again["steps"] == [] and again["after"] == real["after"]
