# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The resource module's declarations: every declared group of every declared target, planned jointly.

``config`` is parsed and validated before anything is read; each entry becomes a
:class:`TargetDeclaration` that the engine converges with the other modules' declarations, in its one
loop. Planning a target (:func:`plan_target`) is pure; it maps every declared group onto a group (tag,
else membership, else a new group) and orders the steps so that no step puts a portal in two groups of
one target and a portal that only moves is out of every group for one step at most.
"""

from __future__ import annotations

import dataclasses
import operator
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine, Outcome, locate
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    IdentityError,
    NotFoundError,
    ValidationError,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    PortalAddress,
    PortalGroup,
    Snapshot,
    Subsystem,
    Target,
    normalize_iqn,
    parse_portal_list,
    require_known_portals,
    validate_tag,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    ADD_PORTAL,
    CREATE_GROUP,
    DELETE_GROUP,
    REMOVE_PORTAL,
    Membership,
    Plan,
    Step,
    StepView,
    lowest_free_tag,
    missing_tag_error,
)

MERGED = "merged"
REPLACED = "replaced"
OVERRIDDEN = "overridden"
DELETED = "deleted"
GATHERED = "gathered"
RENDERED = "rendered"
CHANGING_STATES = (MERGED, REPLACED, OVERRIDDEN, DELETED)
STATES = CHANGING_STATES + (GATHERED, RENDERED)

Params = t.Mapping[str, t.Any]
Result = t.Dict[str, t.Any]

_EMPTY: t.FrozenSet[PortalAddress] = frozenset()
_BY_ADDRESS = operator.attrgetter("sort_key")
#: The subsystem name a target of ``running_config`` gets when the entry names none.
OFFLINE_SUBSYSTEM = ""


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """One declared group: found by ``tag``, else by the portals it holds."""

    tag: int | None
    portals: t.Tuple[PortalAddress, ...] = ()
    purge: bool | None = None         # None: as the state says (merged adds, replaced/overridden purge)


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    """One entry of ``config``: a target and the groups declared for it."""

    target: str
    subsystem: str | None = None
    groups: t.Tuple[GroupSpec, ...] = ()
    where: str = "config"             # names the entry in messages: config[2]


@dataclasses.dataclass(frozen=True)
class TargetPlan:
    """The steps that bring one target to its declaration, and the membership they lead to."""

    spec: TargetSpec
    subsystem: Subsystem
    target: Target
    steps: t.Tuple[Step, ...]
    before: Membership
    #: New groups are keyed by the tag asked for or, where the provider assigns tags, by -1, -2, ...
    after: Membership
    #: Index in ``spec.groups`` of the group each create_group step makes, in step order.
    created: t.Tuple[int, ...] = ()


# --- input ---------------------------------------------------------------------------------------


def parse_config(entries: t.Sequence[Params] | None, state: str) -> t.Tuple[TargetSpec, ...]:
    """Validate ``config`` before anything is read or touched; name the offending entry and value."""
    specs: t.List[TargetSpec] = []
    seen: dict[tuple[str, str | None], str] = {}
    for index, entry in enumerate(entries or ()):
        where = "config[%d]" % index
        spec = TargetSpec(_iqn(entry.get("target"), where), entry.get("subsystem"), (), where)
        if state != GATHERED:
            spec = dataclasses.replace(spec, groups=_parse_groups(entry.get("groups") or (), where))
        key = (spec.target, spec.subsystem)
        if key in seen:
            raise ValidationError("%s and %s both declare target %s%s: declare each target once, with all its "
                                  "groups" % (seen[key], where, spec.target, _on(spec.subsystem)))
        seen[key] = where
        specs.append(spec)
    if not specs and state != GATHERED:
        raise ValidationError("config is empty: state=%s needs at least one target" % state)
    return tuple(specs)


def _iqn(value: t.Any, where: str) -> str:
    try:
        return normalize_iqn(value)
    except ValidationError as error:
        raise ValidationError("%s: %s" % (where, error)) from None


def _parse_groups(groups: t.Sequence[Params], where: str) -> t.Tuple[GroupSpec, ...]:
    parsed: t.List[GroupSpec] = []
    tags: dict[int, int] = {}
    holders: dict[PortalAddress, int] = {}
    for index, group in enumerate(groups):
        place = "%s.groups[%d]" % (where, index)
        tag = None if group.get("tag") is None else validate_tag(group["tag"], place + ".tag")
        try:
            portals = parse_portal_list(group.get("portals") or (), place + ".portals")
        except ValidationError as error:
            raise ValidationError("%s: %s" % (place, error)) from None
        if tag is None and not portals:
            raise ValidationError("%s: give tag or at least one portal: without a tag a portal group is found by "
                                  "the portals it holds" % place)
        if tag is not None:
            if tag in tags:
                raise ValidationError("%s: groups[%d] and groups[%d] both declare tag %d; declare each group once"
                                      % (where, tags[tag], index, tag))
            tags[tag] = index
        for address in portals:
            if address in holders:
                raise ValidationError("%s: portal %s is declared in groups[%d] and groups[%d]; a portal belongs to at "
                                      "most one group of a target" % (where, address, holders[address], index))
            holders[address] = index
        parsed.append(GroupSpec(tag, portals, group.get("purge_portals")))
    return tuple(parsed)


def parse_running_config(entries: t.Sequence[Params] | None) -> Snapshot:
    """``running_config`` (the shape ``gathered`` returns) as a snapshot to plan against offline.

    Portals are not known offline, so every portal it or ``config`` names is taken to exist.
    """
    subsystems: dict[str, t.List[Target]] = {}
    seen: dict[tuple[str, str], str] = {}
    for index, entry in enumerate(entries or ()):
        where = "running_config[%d]" % index
        iqn = _iqn(entry.get("target"), where)
        name = entry.get("subsystem") or OFFLINE_SUBSYSTEM
        if (name, iqn) in seen:
            raise ValidationError("%s and %s both describe target %s%s" % (seen[(name, iqn)], where, iqn, _on(name)))
        seen[(name, iqn)] = where
        groups: t.List[PortalGroup] = []
        holders: dict[PortalAddress, int] = {}
        for group_index, group in enumerate(entry.get("groups") or ()):
            place = "%s.groups[%d]" % (where, group_index)
            tag = validate_tag(group.get("tag"), place + ".tag")
            if any(other.tag == tag for other in groups):
                raise ValidationError("%s: tag %d is used by two groups of target %s" % (place, tag, iqn))
            try:
                portals = parse_portal_list(group.get("portals") or (), place + ".portals")
            except ValidationError as error:
                raise ValidationError("%s: %s" % (place, error)) from None
            for address in portals:
                if address in holders:
                    raise ValidationError("%s: portal %s is in group %d and group %d of target %s; a portal belongs "
                                          "to at most one group of a target" % (where, address, holders[address],
                                                                                tag, iqn))
                holders[address] = tag
            groups.append(PortalGroup("", tag, frozenset(portals)))
        subsystems.setdefault(name, []).append(Target("", iqn, "", tuple(sorted(groups, key=lambda g: g.tag))))
    return Snapshot(tuple(Subsystem("", name, (), tuple(targets)) for name, targets in subsystems.items()))


def _on(subsystem: str | None) -> str:
    return " on subsystem %s" % subsystem if subsystem else ""


# --- planning (pure) -----------------------------------------------------------------------------


def index_portals(addresses: t.Iterable[PortalAddress]) -> t.Dict[t.Tuple[int, bytes, int], PortalAddress]:
    """Addresses by sort key. Planning swaps each declared address for the equal one of the read
    state, so that set operations match by identity; the key is hashed and compared in C, where an
    address object needs a Python call for each."""
    return {address.sort_key: address for address in addresses}


def plan_target(subsystem: Subsystem, target: Target, spec: TargetSpec, state: str, assigns_tags: bool,
                index: t.Mapping[t.Tuple[int, bytes, int], PortalAddress], offline: bool = False) -> TargetPlan:
    """Plan one target's declaration. ``index``: :func:`index_portals` of the subsystem's portals;
    ``offline``: the subsystem's portals are not known, so a declared portal is not checked against them.

    Steps come in this order: removes, then each new group's create and its adds, then the adds into
    existing groups, then the deletes of groups that end up unwanted (emptied by the removes). A move
    is a remove here and an add with ``from_tag`` there; an add step with tag None goes to the group
    of the create step before it, as the executor expects.
    """
    if offline:
        wanted = [frozenset([index.get(address.sort_key, address) for address in group.portals])
                  for group in spec.groups]
    else:
        # A provider whose portals are not all listed (LIO: any port of the host's addresses) knows more.
        wanted = [frozenset([index.get(address.sort_key) or (address if subsystem.portal(address) else None)
                             for address in group.portals]) for group in spec.groups]
        if any(None in portals for portals in wanted):  # a declared portal the subsystem does not have
            require_known_portals(subsystem, [address for group in spec.groups for address in group.portals])
    current = {group.tag: group.portals for group in target.groups}
    keys = _resolve(target, current, spec, wanted, state, assigns_tags)
    final = _final(current, spec, keys, wanted, state)

    holder = {member: tag for tag, members in current.items() for member in members}
    destination = {member: key for key, members in final.items() for member in members - current.get(key, _EMPTY)}
    steps: t.List[Step] = []
    # Portals that leave every group go first: what they hold (LIO's wildcard listener) is then free.
    for tag in sorted(current):
        steps.extend(Step(REMOVE_PORTAL, target.iqn, tag, address)
                     for address in sorted(current[tag] - final.get(tag, _EMPTY), key=_BY_ADDRESS)
                     if address not in destination)
    # Then every new group, so that a portal moving into one leaves its old group only once it can arrive.
    created: t.List[int] = []
    for position, key in enumerate(keys):
        if key is not None and key not in current:
            created.append(position)
            steps.append(Step(CREATE_GROUP, target.iqn, key))
    # Each move's add right after its remove: at most one portal is ever between groups.
    arrivals = sorted(destination.items(), key=lambda item: (
        item[0] not in holder, holder.get(item[0], 0), item[1] < 0, abs(item[1]), _BY_ADDRESS(item[0])))
    for address, key in arrivals:
        from_tag = holder.get(address)
        if from_tag is not None:
            steps.append(Step(REMOVE_PORTAL, target.iqn, from_tag, address))
        steps.append(Step(ADD_PORTAL, target.iqn, key, address, from_tag=from_tag))
    steps.extend(Step(DELETE_GROUP, target.iqn, tag) for tag in sorted(current) if tag not in final)
    return TargetPlan(spec, subsystem, target, tuple(steps), t.cast(Membership, current),
                      t.cast(Membership, final), tuple(created))


def _resolve(target: Target, current: dict[int, t.FrozenSet[PortalAddress]], spec: TargetSpec,
             wanted: t.Sequence[t.FrozenSet[PortalAddress]], state: str, assigns_tags: bool) -> t.List[int | None]:
    """The group each declaration maps to: an existing tag, a new group's key, or None (nothing to delete).

    Tags are taken first; then each declaration without a tag, in order, takes the unclaimed group
    holding most of its portals (ties: lowest tag). No existing group is claimed twice.
    """
    keys: t.List[int | None] = [None] * len(spec.groups)
    claimed: set[int] = set()
    for position, group in enumerate(spec.groups):
        if group.tag is None:
            continue
        if group.tag in current:
            keys[position] = group.tag
            claimed.add(group.tag)
        elif state != DELETED:
            if assigns_tags:
                raise missing_tag_error(target, group.tag)
            keys[position] = group.tag
    holder: dict[PortalAddress, int] | None = None
    new_key = -1
    for position, group in enumerate(spec.groups):
        if group.tag is not None:
            continue
        if holder is None:
            holder = {member: tag for tag, members in current.items() for member in members}
        counts: dict[int, int] = {}
        for member in wanted[position]:
            tag = holder.get(member)
            if tag is not None and tag not in claimed:
                counts[tag] = counts.get(tag, 0) + 1
        if state == DELETED and len(counts) > 1:
            # Deleting one would leave the others for the next run: not idempotent, so ask which.
            raise IdentityError("%s.groups[%d]: portals %s are spread over groups %s of %s: give tag to say which "
                                "group to delete" % (spec.where, position, ", ".join(map(str, group.portals)),
                                                     ", ".join(map(str, sorted(counts))), target.iqn))
        if counts:
            best = min(counts, key=lambda tag: (-counts[tag], tag))
            keys[position] = best
            claimed.add(best)
        elif state != DELETED:
            if assigns_tags:
                keys[position] = new_key
                new_key -= 1
            else:
                keys[position] = lowest_free_tag(list(current) + keys)
    return keys


def _final(current: dict[int, t.FrozenSet[PortalAddress]], spec: TargetSpec, keys: t.Sequence[int | None],
           wanted: t.Sequence[t.FrozenSet[PortalAddress]], state: str) -> dict[int, t.FrozenSet[PortalAddress]]:
    """Every group's membership once the declaration holds; a group missing from it is deleted."""
    if state == DELETED:
        if not spec.groups:
            return {}
        gone = set(keys)
        return {tag: members for tag, members in current.items() if tag not in gone}
    declared = frozenset().union(*wanted)
    final: dict[int, t.FrozenSet[PortalAddress]] = {}
    for key, group, members in zip(keys, spec.groups, wanted):
        key = t.cast(int, key)
        purge = group.purge if group.purge is not None else state != MERGED
        if purge or key not in current:
            final[key] = members
        else:
            # Kept members stay unless another group of the declaration takes them.
            final[key] = members | (current[key] - declared)
    for tag, members in current.items():
        if tag not in final and state != OVERRIDDEN:
            final[tag] = members if members.isdisjoint(declared) else members - declared
    return final


# --- the shape of results ------------------------------------------------------------------------


def groups_view(membership: Membership) -> t.List[dict[str, t.Any]]:
    """Groups sorted by tag; groups still to be created (tag null) last, in the order they are created."""
    known = sorted(tag for tag in membership if tag is not None and tag > 0)
    new = sorted((tag for tag in membership if tag is None or tag < 0), key=lambda tag: -(tag or 0))
    return [{"tag": tag if tag is not None and tag > 0 else None,
             "portals": [str(address) for address in sorted(membership[tag], key=_BY_ADDRESS)]}
            for tag in known + new]


def target_view(iqn: str, subsystem: str, membership: Membership) -> dict[str, t.Any]:
    return {"target": iqn, "subsystem": subsystem, "groups": groups_view(membership)}


def _header(view: dict[str, t.Any]) -> str:
    return "%s on subsystem %s" % (view["target"], view["subsystem"])


def _step_view(step: StepView, subsystem: str) -> StepView:
    return dict(step, subsystem=subsystem)


# --- what the engine converges ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TargetDeclaration:
    """One entry of ``config`` in one state: the engine reads, plans through it and executes."""

    spec: TargetSpec
    state: str

    @property
    def target(self) -> str:
        return self.spec.target

    @property
    def subsystem(self) -> str | None:
        return self.spec.subsystem

    @property
    def where(self) -> str:
        return self.spec.where

    def plan(self, subsystem: Subsystem, target: Target, assigns_tags: bool) -> Plan:
        index = index_portals(portal.address for portal in subsystem.portals)
        planned = plan_target(subsystem, target, self.spec, self.state, assigns_tags, index)
        return Plan(planned.steps, None, planned.created)

    def step_view(self, step: StepView, subsystem: str) -> StepView:
        return _step_view(step, subsystem)

    def keeping(self, plan: Plan, created: t.Sequence[int | None]) -> "TargetDeclaration":
        spec = self.spec
        for index, tag in zip(plan.created, created):
            if tag is not None:
                spec = _with_tag(spec, index, tag)
        return dataclasses.replace(self, spec=spec)

    def taking(self, plan: Plan, made: int, tag: int) -> t.Tuple["TargetDeclaration", str]:
        index = plan.created[made]
        for other, group in enumerate(self.spec.groups):
            if group.tag == tag:
                raise IdentityError(
                    "%s: the provider allows no more portal groups on %s: CreatePortalGroup answered "
                    "VDS_S_ALREADY_EXISTS and returned existing group %d, which groups[%d] declares already; "
                    "declare no more groups than the provider allows" % (self.where, self.target, tag, other))
        return (dataclasses.replace(self, spec=_with_tag(self.spec, index, tag)),
                "%s.groups[%d]" % (self.where, index))


def _with_tag(spec: TargetSpec, index: int, tag: int) -> TargetSpec:
    groups = list(spec.groups)
    groups[index] = dataclasses.replace(groups[index], tag=tag)
    return dataclasses.replace(spec, groups=tuple(groups))


# --- what the module does with its parameters ----------------------------------------------------


def resource(engine: Engine, params: Params, diff: bool = False) -> Result:
    """``vds_portal_groups`` with every state but ``rendered``: converge every declared target through the
    engine and report (with ``diff``: the diff too)."""
    state = params["state"]
    if params.get("running_config") is not None:
        raise ValidationError("running_config is used only with state=rendered")
    specs = parse_config(params.get("config"), state)
    if state == GATHERED:
        return {"changed": False, "gathered": gather(engine, specs), "operations": engine.stats.as_dict()}
    outcomes = engine.converge([TargetDeclaration(spec, state) for spec in specs])
    before = [target_view(outcome.target, _subsystem_name(outcome), outcome.before) for outcome in outcomes]
    after = [target_view(outcome.target, _subsystem_name(outcome), outcome.after) for outcome in outcomes]
    steps = [step for outcome in outcomes for step in outcome.steps]
    result = {"changed": bool(steps), "before": before, "after": after, "steps": steps,
              "operations": engine.stats.as_dict(),
              "warnings": [warning for outcome in outcomes for warning in outcome.warnings]}
    if diff:
        # One diff per target, each a mapping as Ansible's diff display expects. Only when asked for: it
        # repeats before and after, and a fleet pays for every byte of every result.
        result["diff"] = [{"before": old, "after": new, "before_header": _header(old), "after_header": _header(new)}
                          for old, new in zip(before, after)]
    return result


def _subsystem_name(outcome: Outcome) -> str:
    return t.cast(Subsystem, outcome.subsystem).name


def gather(engine: Engine, specs: t.Sequence[TargetSpec]) -> t.List[dict[str, t.Any]]:
    """The current groups in the shape of ``config``: the listed targets, or every target."""
    declarations = [TargetDeclaration(spec, GATHERED) for spec in specs]
    snapshot = engine.read_for(declarations)
    if specs:
        pairs = locate(snapshot, declarations)
    else:
        pairs = [(subsystem, target) for subsystem in sorted(snapshot.subsystems, key=lambda s: s.name)
                 for target in sorted(subsystem.targets, key=lambda found: found.iqn)]
    return [target_view(target.iqn, subsystem.name, target.membership()) for subsystem, target in pairs]


def render(params: Params, assigns_tags: bool = True) -> Result:
    """``state=rendered``: plan ``config`` against ``running_config`` offline; no provider is contacted.
    ``assigns_tags``: whether the provider the plan is for assigns the tags of new groups (VDS does)."""
    mode = params.get("render_as") or MERGED
    specs = parse_config(params.get("config"), RENDERED)
    snapshot = parse_running_config(params.get("running_config"))
    index = index_portals(address for subsystem in snapshot.subsystems for target in subsystem.targets
                          for group in target.groups for address in group.portals)
    plans = []
    seen: dict[tuple[str, str], str] = {}
    for spec in specs:
        subsystem, target = _offline_target(snapshot, spec)
        key = (subsystem.name, target.iqn)
        if key in seen:
            raise ValidationError("%s and %s both declare target %s: declare each target once"
                                  % (seen[key], spec.where, target.iqn))
        seen[key] = spec.where
        plans.append(plan_target(subsystem, target, spec, mode, assigns_tags, index, offline=True))
    steps = [_step_view(step.as_dict(), plan.subsystem.name) for plan in plans for step in plan.steps]
    return {"changed": False, "rendered": steps, "steps": steps,
            "before": [target_view(plan.target.iqn, plan.subsystem.name, plan.before) for plan in plans],
            "after": [target_view(plan.target.iqn, plan.subsystem.name, plan.after) for plan in plans]}


def _offline_target(snapshot: Snapshot, spec: TargetSpec) -> t.Tuple[Subsystem, Target]:
    """The target as ``running_config`` describes it; one it does not list has no groups yet."""
    try:
        return snapshot.locate_target(spec.target, spec.subsystem)
    except NotFoundError:
        name = spec.subsystem or OFFLINE_SUBSYSTEM
        return Subsystem("", name), Target("", spec.target)
    except ValidationError as error:
        raise ValidationError("%s: %s" % (spec.where, error)) from None
