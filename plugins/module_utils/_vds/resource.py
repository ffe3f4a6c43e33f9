# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The resource module's declarations: every declared group of every declared target, planned jointly.

``config`` (or ``groups``, the same declaration written one group per entry, as the role writes it) is
parsed and validated before anything is read; each target becomes a :class:`TargetDeclaration` that the
engine converges with the other modules' declarations, in its one loop. Planning a target
(:func:`plan_target`) is pure; it maps every declared group onto a group (tag, else membership, else a new
group) and orders the steps so that no step puts a portal in two groups of one target and a portal that only
moves is out of every group for one step at most.
"""

from __future__ import annotations

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
    Value,
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


class GroupSpec(Value):
    """One declared group: found by ``tag``, else by the portals it holds."""

    __slots__ = _fields = ("tag", "portals", "purge")
    tag: int | None
    portals: t.Tuple[PortalAddress, ...]
    purge: bool | None                # None: as the state says (merged adds, replaced/overridden purge)

    def __init__(self, tag: int | None, portals: t.Tuple[PortalAddress, ...] = (), purge: bool | None = None) -> None:
        super().__init__(tag, portals, purge)


class TargetSpec(Value):
    """One entry of ``config`` (or the entries of ``groups`` naming one target): a target and its groups."""

    __slots__ = _fields = ("target", "subsystem", "groups", "where", "group_names")
    target: str
    subsystem: str | None
    groups: t.Tuple[GroupSpec, ...]
    where: str                        # names the entry in messages: config[2]
    #: How messages name each group when the groups come one per entry of a list (portal_groups_desired[3]);
    #: empty: by their place in the entry ``where`` names (config[2].groups[1]).
    group_names: t.Tuple[str, ...]

    def __init__(self, target: str, subsystem: str | None = None, groups: t.Tuple[GroupSpec, ...] = (),
                 where: str = "config", group_names: t.Tuple[str, ...] = ()) -> None:
        super().__init__(target, subsystem, groups, where, group_names)

    def group_name(self, index: int) -> str:
        """How messages name the declared group at ``index``."""
        return self.group_names[index] if self.group_names else "%s.groups[%d]" % (self.where, index)

    def pair(self, first: int, second: int) -> t.Tuple[str, str, str]:
        """How a message about two declared groups starts and names them: ``("config[2]: ", "groups[0]",
        "groups[1]")``, or ``("", "portal_groups_desired[1]", "portal_groups_desired[4]")``."""
        if self.group_names:
            return "", self.group_names[first], self.group_names[second]
        return "%s: " % self.where, "groups[%d]" % first, "groups[%d]" % second


class TargetPlan(Value):
    """The steps that bring one target to its declaration, and the membership they lead to."""

    __slots__ = _fields = ("spec", "subsystem", "target", "steps", "before", "after", "created")
    spec: TargetSpec
    subsystem: Subsystem
    target: Target
    steps: t.Tuple[Step, ...]
    before: Membership
    #: New groups are keyed by the tag asked for or, where the provider assigns tags, by -1, -2, ...
    after: Membership
    #: Index in ``spec.groups`` of the group each create_group step makes, in step order.
    created: t.Tuple[int, ...]

    def __init__(self, spec: TargetSpec, subsystem: Subsystem, target: Target, steps: t.Tuple[Step, ...],
                 before: Membership, after: Membership, created: t.Tuple[int, ...] = ()) -> None:
        super().__init__(spec, subsystem, target, steps, before, after, created)


# --- input ---------------------------------------------------------------------------------------


def parse_declaration(params: Params, state: str) -> t.Tuple[TargetSpec, ...]:
    """The declared targets, from ``config`` or from ``groups``, validated before anything is read or touched.

    ``purge_portals`` is what a group that does not set its own does (None: as ``state`` says)."""
    purge = params.get("purge_portals")
    if params.get("groups") is not None:
        return parse_group_list(params["groups"], state, params.get("groups_label") or "groups", purge)
    return parse_config(params.get("config"), state, purge)


def parse_config(entries: t.Sequence[Params] | None, state: str,
                 purge: bool | None = None) -> t.Tuple[TargetSpec, ...]:
    """Validate ``config``; name the offending entry and value."""
    specs: t.List[TargetSpec] = []
    seen: dict[tuple[str, str | None], str] = {}
    for index, entry in enumerate(entries or ()):
        where = "config[%d]" % index
        spec = TargetSpec(_iqn(entry.get("target"), where), entry.get("subsystem"), (), where)
        if state != GATHERED:
            groups = entry.get("groups") or ()
            spec = spec.replace(groups=tuple(
                _parse_group(group, spec.group_name(position), purge) for position, group in enumerate(groups)))
            _refuse_overlaps(spec)
        key = (spec.target, spec.subsystem)
        if key in seen:
            raise ValidationError("%s and %s both declare target %s%s: declare each target once, with all its "
                                  "groups" % (seen[key], where, spec.target, _on(spec.subsystem)))
        seen[key] = where
        specs.append(spec)
    if not specs and state != GATHERED:
        raise ValidationError("config is empty: state=%s needs at least one target" % state)
    return tuple(specs)


def parse_group_list(entries: t.Sequence[Params] | None, state: str, label: str = "groups",
                     purge: bool | None = None) -> t.Tuple[TargetSpec, ...]:
    """Validate ``groups``, one group per entry, and gather the entries per target: the target's name compared
    case-insensitively and its subsystem exactly, targets and their groups in the order they are first listed.
    Messages name each entry ``label[index]``, as the user wrote it."""
    names: dict[tuple[str, str | None], t.List[str]] = {}
    groups: dict[tuple[str, str | None], t.List[GroupSpec]] = {}
    for index, entry in enumerate(entries or ()):
        name = "%s[%d]" % (label, index)
        key = (_iqn(entry.get("target"), name), entry.get("subsystem"))
        names.setdefault(key, []).append(name)
        if state != GATHERED:
            groups.setdefault(key, []).append(_parse_group(entry, name, purge))
    if not names and state != GATHERED:
        raise ValidationError("%s is empty: state=%s needs at least one group" % (label, state))
    specs = []
    for (iqn, subsystem), listed in names.items():
        spec = TargetSpec(iqn, subsystem, tuple(groups.get((iqn, subsystem), ())), listed[0], tuple(listed))
        _refuse_overlaps(spec)
        specs.append(spec)
    return tuple(specs)


def _iqn(value: t.Any, where: str) -> str:
    try:
        return normalize_iqn(value)
    except ValidationError as error:
        raise ValidationError("%s: %s" % (where, error)) from None


def _parse_group(group: Params, place: str, purge: bool | None) -> GroupSpec:
    """One declared group on its own; ``place`` names it in messages."""
    tag = None if group.get("tag") is None else validate_tag(group["tag"], place + ".tag")
    try:
        portals = parse_portal_list(group.get("portals") or (), place + ".portals")
    except ValidationError as error:
        raise ValidationError("%s: %s" % (place, error)) from None
    if tag is None and not portals:
        raise ValidationError("%s: give tag or at least one portal: without a tag a portal group is found by "
                              "the portals it holds" % place)
    own = group.get("purge_portals")
    return GroupSpec(tag, portals, purge if own is None else own)


def _refuse_overlaps(spec: TargetSpec) -> None:
    """Two groups of one target may share neither a tag nor a portal."""
    tags: dict[int, int] = {}
    holders: dict[PortalAddress, int] = {}
    for index, group in enumerate(spec.groups):
        if group.tag is not None:
            if group.tag in tags:
                raise ValidationError("%s%s and %s both declare tag %d; declare each group once"
                                      % (spec.pair(tags[group.tag], index) + (group.tag,)))
            tags[group.tag] = index
        for address in group.portals:
            if address in holders:
                start, first, second = spec.pair(holders[address], index)
                raise ValidationError("%sportal %s is declared in %s and %s; a portal belongs to at most one group "
                                      "of a target" % (start, address, first, second))
            holders[address] = index


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
        for position, portals in enumerate(wanted):
            if None in portals:  # a declared portal the subsystem does not have
                try:
                    require_known_portals(subsystem, spec.groups[position].portals)
                except NotFoundError as error:
                    raise NotFoundError("%s: %s" % (spec.group_name(position), error), **error.details) from None
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
                raise IdentityError("%s: %s" % (spec.group_name(position), missing_tag_error(target, group.tag)))
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
            raise IdentityError("%s: portals %s are spread over groups %s of %s: give tag to say which group to "
                                "delete" % (spec.group_name(position), ", ".join(map(str, group.portals)),
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


#: The first line of the summary of a check-mode run.
CHECK_MODE_SUMMARY = "check mode: nothing was changed; these are the steps a real run would take"


def summary(before: t.Sequence[dict[str, t.Any]], after: t.Sequence[dict[str, t.Any]],
            steps: t.Sequence[t.Sequence[StepView]], check_mode: bool) -> t.List[str]:
    """The run in lines a person reads; ``before``, ``after`` and ``steps``: one entry per declared target.

    In check mode, :data:`CHECK_MODE_SUMMARY`, then a line per group of each target: its target, tag (``(new)``
    for a group still to be created), portals, and what a real run would do to it (``+P`` adds portal P,
    ``-P`` removes it, ``+P from group N`` moves it from group N; ``unchanged``). After a real change, a
    line per target with the number of steps taken, then a line per group as it now is. A real run that
    changed nothing has nothing to say."""
    if check_mode:
        lines = [CHECK_MODE_SUMMARY]
        for old, new, planned in zip(before, after, steps):
            lines.extend(_planned_lines(old, new, planned))
        return lines
    if not any(steps):
        return []
    lines = []
    for new, taken in zip(after, steps):
        lines.append("%s: %d steps" % (new["target"], len(taken)))
        lines.extend("%s group %s: %s" % (new["target"], group["tag"], _portals_text(group["portals"]))
                     for group in new["groups"])
    return lines


def _planned_lines(before: dict[str, t.Any], after: dict[str, t.Any], steps: t.Sequence[StepView]) -> t.List[str]:
    """One target's groups in check mode, each with the steps a real run would take on it; the groups it would
    delete come last. A move shows on the group the portal goes to."""
    moved = {step["portal"] for step in steps if "from_tag" in step}
    kept = {group["tag"] for group in after["groups"]}
    deleted = [{"tag": group["tag"], "portals": []} for group in before["groups"] if group["tag"] not in kept]
    lines = []
    created = 0
    for group in after["groups"] + deleted:
        if group["tag"] is None:  # the groups still to be created come in the order they are created
            created += 1
            mine = [step for step in steps if step.get("new_group") == created]
        else:
            mine = [step for step in steps if step["tag"] == group["tag"]]
        done = [text for text in (_step_text(step, moved) for step in mine) if text]
        lines.append("%s group %s: %s [%s]" % (after["target"], "(new)" if group["tag"] is None else group["tag"],
                                               _portals_text(group["portals"]), ", ".join(done) or "unchanged"))
    return lines


def _step_text(step: StepView, moved: t.Collection[str]) -> str:
    """A step as the summary writes it; the remove half of a move is written on the add half."""
    if step["action"] == CREATE_GROUP:
        return "create the group"
    if step["action"] == DELETE_GROUP:
        return "delete the group"
    if step["action"] == ADD_PORTAL:
        return "+%s%s" % (step["portal"], " from group %d" % step["from_tag"] if "from_tag" in step else "")
    return "" if step["portal"] in moved else "-%s" % step["portal"]


def _portals_text(portals: t.Sequence[str]) -> str:
    return ", ".join(portals) or "(none)"


# --- what the engine converges ------------------------------------------------------------------


class TargetDeclaration(Value):
    """One declared target in one state: the engine reads, plans through it and executes."""

    __slots__ = _fields = ("spec", "state")
    spec: TargetSpec
    state: str

    def __init__(self, spec: TargetSpec, state: str) -> None:
        super().__init__(spec, state)

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
        return self.replace(spec=spec)

    def taking(self, plan: Plan, made: int, tag: int) -> t.Tuple["TargetDeclaration", str]:
        index = plan.created[made]
        for other, group in enumerate(self.spec.groups):
            if group.tag == tag:
                start, _made, declared = self.spec.pair(index, other)
                raise IdentityError(
                    "%sthe provider allows no more portal groups on %s: CreatePortalGroup answered "
                    "VDS_S_ALREADY_EXISTS and returned existing group %d, which %s declares already; "
                    "declare no more groups than the provider allows" % (start, self.target, tag, declared))
        return self.replace(spec=_with_tag(self.spec, index, tag)), self.spec.group_name(index)


def _with_tag(spec: TargetSpec, index: int, tag: int) -> TargetSpec:
    groups = list(spec.groups)
    groups[index] = groups[index].replace(tag=tag)
    return spec.replace(groups=tuple(groups))


# --- what the module does with its parameters ----------------------------------------------------


def resource(engine: Engine, params: Params, diff: bool = False) -> Result:
    """``vds_portal_groups`` with every state but ``rendered``: converge every declared target through the
    engine and report, with a summary (with ``diff``: the diff too)."""
    state = params["state"]
    if params.get("running_config") is not None:
        raise ValidationError("running_config is used only with state=rendered")
    specs = parse_declaration(params, state)
    if state == GATHERED:
        return {"changed": False, "gathered": gather(engine, specs), "operations": engine.stats.as_dict()}
    outcomes = engine.converge([TargetDeclaration(spec, state) for spec in specs])
    before = [target_view(outcome.target, _subsystem_name(outcome), outcome.before) for outcome in outcomes]
    after = [target_view(outcome.target, _subsystem_name(outcome), outcome.after) for outcome in outcomes]
    steps = [step for outcome in outcomes for step in outcome.steps]
    result = {"changed": bool(steps), "before": before, "after": after, "steps": steps,
              "summary": summary(before, after, [outcome.steps for outcome in outcomes], engine.check_mode),
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
    specs = parse_declaration(params, RENDERED)
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
