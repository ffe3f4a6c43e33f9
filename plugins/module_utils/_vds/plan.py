# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Planning: desired state x current snapshot -> ordered steps. Pure: no I/O, no clock.

The invariant every plan keeps: after each step, no portal is in two groups of one target. A move
is therefore a remove from the old group followed by an add to the new one, and a group is emptied
before it is deleted.
"""

from __future__ import annotations

import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    IdentityError,
    NotFoundError,
    ValidationError,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    PortalAddress,
    Subsystem,
    Target,
    Value,
    require_known_portals,
)

CREATE_GROUP = "create_group"
ADD_PORTAL = "add_portal"
REMOVE_PORTAL = "remove_portal"
DELETE_GROUP = "delete_group"
SET_STATUS = "set_status"

#: Membership of one target: tag -> portals. ``None`` keys a group a create step has yet to make.
Membership = t.Dict[t.Optional[int], t.FrozenSet[PortalAddress]]


def is_new_group(tag: int | None) -> bool:
    """Whether ``tag`` names a group the plan has yet to create: None is the group of the latest
    create_group step, -1, -2, ... the first, second, ... group the plan creates."""
    return tag is None or tag < 0


class Step(Value):
    """One provider call of a plan."""

    __slots__ = _fields = ("action", "target", "tag", "portal", "from_tag", "status", "rollback")
    action: str
    target: str
    tag: int | None                   # None or negative: a group the plan creates (see is_new_group)
    portal: PortalAddress | None
    from_tag: int | None              # set on the add half of a move
    status: str | None                # set_status only
    rollback: bool                    # an add that put a moved portal back where it was

    def __init__(self, action: str, target: str, tag: int | None = None, portal: PortalAddress | None = None,
                 from_tag: int | None = None, status: str | None = None, rollback: bool = False) -> None:
        super().__init__(action, target, tag, portal, from_tag, status, rollback)

    def with_tag(self, tag: int) -> "Step":
        return self.replace(tag=tag)

    def as_dict(self) -> dict[str, t.Any]:
        tag = None if is_new_group(self.tag) else self.tag
        result: dict[str, t.Any] = {"action": self.action, "target": self.target, "tag": tag}
        if self.tag is not None and self.tag < 0:
            result["new_group"] = -self.tag  # which of the groups the plan creates, in the order created
        if self.portal is not None:
            result["portal"] = str(self.portal)
        if self.from_tag is not None:
            result["from_tag"] = self.from_tag
        if self.status is not None:
            result["status"] = self.status
        if self.rollback:
            result["rollback"] = True
        return result


class Plan(Value):
    """The ordered steps of one target."""

    __slots__ = _fields = ("steps", "group_tag", "created")
    steps: t.Tuple[Step, ...]
    group_tag: int | None             # the group a one-group declaration maps to (None: to be created / none)
    created: t.Tuple[int, ...]        # for each create_group step, in order, the declared group it makes

    def __init__(self, steps: t.Tuple[Step, ...], group_tag: int | None = None,
                 created: t.Tuple[int, ...] = ()) -> None:
        super().__init__(steps, group_tag, created)

    @property
    def changed(self) -> bool:
        return bool(self.steps)


StepView = t.Dict[str, t.Any]


class Declaration(t.Protocol):
    """What a module declares for one target: the engine reads, plans through it, executes and re-plans.

    Every method is pure. ``where`` names the declaration in messages (empty for a module that declares
    one target).
    """

    target: str
    subsystem: str | None
    where: str

    def plan(self, subsystem: Subsystem, target: Target, assigns_tags: bool) -> Plan:
        """The steps that bring ``target`` to the declaration (raises a VdsError for what cannot be done)."""

    def step_view(self, step: StepView, subsystem: str) -> StepView:
        """A step as the module returns it."""

    def keeping(self, plan: Plan, created: t.Sequence[int | None]) -> "Declaration":
        """The declaration planned again after ``plan`` made the groups ``created`` (one tag per create step
        that took effect, None for a group that is gone again): each group made stays with what it was made for."""

    def taking(self, plan: Plan, made: int, tag: int) -> t.Tuple["Declaration", str]:
        """A capped provider answered the create of ``plan.created[made]`` with existing group ``tag``: the
        declaration that takes that group, and how messages name what took it."""


class GroupDeclaration(Value):
    """What ``vds_portal_group`` declares for one group of one target."""

    __slots__ = _fields = ("target", "portals", "tag", "purge_portals", "state", "subsystem", "where")
    target: str
    portals: t.Tuple[PortalAddress, ...]
    tag: int | None
    purge_portals: bool
    state: str
    subsystem: str | None
    where: str

    def __init__(self, target: str, portals: t.Tuple[PortalAddress, ...] = (), tag: int | None = None,
                 purge_portals: bool = False, state: str = "present", subsystem: str | None = None,
                 where: str = "") -> None:
        super().__init__(target, portals, tag, purge_portals, state, subsystem, where)

    def plan(self, subsystem: Subsystem, target: Target, assigns_tags: bool) -> Plan:
        return plan_group(subsystem, target, self, assigns_tags)

    def step_view(self, step: StepView, subsystem: str) -> StepView:
        return step

    def keeping(self, plan: Plan, created: t.Sequence[int | None]) -> "GroupDeclaration":
        made = next((tag for tag in created if tag is not None), None)
        return self if made is None else self.replace(tag=made)

    def taking(self, plan: Plan, made: int, tag: int) -> t.Tuple["GroupDeclaration", str]:
        return self.replace(tag=tag), "the declaration"


class PortalDeclaration(Value):
    """What ``vds_portal`` declares: one portal in (or out of) a group of one target, and its status."""

    __slots__ = _fields = ("target", "portal", "tag", "state", "status", "subsystem", "where")
    target: str
    portal: PortalAddress
    tag: int | None
    state: str
    status: str | None
    subsystem: str | None
    where: str

    def __init__(self, target: str, portal: PortalAddress, tag: int | None = None, state: str = "present",
                 status: str | None = None, subsystem: str | None = None, where: str = "") -> None:
        super().__init__(target, portal, tag, state, status, subsystem, where)

    def plan(self, subsystem: Subsystem, target: Target, assigns_tags: bool) -> Plan:
        return plan_portal(subsystem, target, self.portal, self.tag, self.state, self.status)

    def step_view(self, step: StepView, subsystem: str) -> StepView:
        return step

    def keeping(self, plan: Plan, created: t.Sequence[int | None]) -> "PortalDeclaration":
        return self  # it never creates a group

    def taking(self, plan: Plan, made: int, tag: int) -> t.Tuple["PortalDeclaration", str]:
        raise InvariantViolation("vds_portal never creates a group")


def lowest_free_tag(tags: t.Iterable[int | None]) -> int:
    taken = {tag for tag in tags if tag is not None}
    tag = 1
    while tag in taken:
        tag += 1
    if tag > 65535:
        raise ValidationError("every tag 1..65535 is taken on this target")
    return tag


def find_group_by_membership(target: Target, portals: t.Iterable[PortalAddress]) -> int | None:
    """The group holding most of ``portals`` (ties: lowest tag); None when no group holds any."""
    wanted = frozenset(portals)
    best: tuple[int, int] | None = None
    for group in target.groups:
        held = len(group.portals & wanted)
        if held and (best is None or held > best[0] or (held == best[0] and group.tag < best[1])):
            best = (held, group.tag)
    return best[1] if best else None


def missing_tag_error(target: Target, tag: int) -> IdentityError:
    existing = ", ".join(str(group.tag) for group in target.groups) or "none"
    return IdentityError(
        "portal group with tag %d does not exist on target %s, and this provider assigns tags itself "
        "(CreatePortalGroup takes no tag), so a group with that tag cannot be created. Omit tag to let the "
        "provider assign one (the group is then found again by its portals), or use an existing tag "
        "(existing tags: %s)." % (tag, target.iqn, existing))


def _moves_into(target: Target, tag: int | None, address: PortalAddress) -> t.List[Step]:
    """Steps that put ``address`` into group ``tag``, taking it out of another group of the target first."""
    holder = target.group_holding(address)
    if holder is not None and holder.tag != tag:
        return [Step(REMOVE_PORTAL, target.iqn, holder.tag, address),
                Step(ADD_PORTAL, target.iqn, tag, address, from_tag=holder.tag)]
    return [Step(ADD_PORTAL, target.iqn, tag, address)]


def plan_group(subsystem: Subsystem, target: Target, declaration: GroupDeclaration, assigns_tags: bool) -> Plan:
    """Plan one ``vds_portal_group`` declaration against the target's current membership."""
    require_known_portals(subsystem, declaration.portals)
    tag = declaration.tag
    if tag is None:
        tag = find_group_by_membership(target, declaration.portals)
    group = target.group_by_tag(tag) if tag is not None else None

    if declaration.state == "absent":
        if declaration.tag is None:
            holders = sorted({g.tag for g in target.groups if g.portals & set(declaration.portals)})
            if len(holders) > 1:
                # Deleting one would leave the other for the next run: not idempotent, so ask which.
                raise IdentityError("portals %s are spread over groups %s of %s: give tag to say which group "
                                    "to delete" % (", ".join(str(a) for a in declaration.portals),
                                                   ", ".join(map(str, holders)), target.iqn))
        if group is None:
            return Plan((), None)
        removes = [Step(REMOVE_PORTAL, target.iqn, group.tag, address) for address in sorted(group.portals)]
        return Plan(tuple(removes + [Step(DELETE_GROUP, target.iqn, group.tag)]), group.tag)

    steps: t.List[Step] = []
    if group is None:
        if declaration.tag is not None and assigns_tags:
            raise missing_tag_error(target, declaration.tag)
        new_tag = None if assigns_tags else (declaration.tag or lowest_free_tag(g.tag for g in target.groups))
        steps.append(Step(CREATE_GROUP, target.iqn, new_tag))
        current: t.FrozenSet[PortalAddress] = frozenset()
        tag = new_tag
        created: t.Tuple[int, ...] = (0,)
    else:
        created = ()
        current = group.portals

    wanted = set(declaration.portals)
    if declaration.purge_portals:
        # Purge first: a purged portal may be the very one another declaration moves in later.
        steps.extend(Step(REMOVE_PORTAL, target.iqn, tag, address) for address in sorted(current - wanted))
    for address in sorted(wanted - current):
        steps.extend(_moves_into(target, tag, address))
    return Plan(tuple(steps), tag, created)


def plan_portal(subsystem: Subsystem, target: Target, address: PortalAddress, tag: int | None, state: str,
                status: str | None = None) -> Plan:
    """Plan one ``vds_portal`` declaration: membership of one portal in one group of the target."""
    portal = subsystem.portal(address)
    if portal is None:
        require_known_portals(subsystem, [address])
    steps: t.List[Step] = []
    holder = target.group_holding(address)
    if state == "present":
        if tag is None:
            raise ValidationError("tag is required with state=present: name the group the portal belongs in")
        if target.group_by_tag(tag) is None:
            existing = ", ".join(str(group.tag) for group in target.groups) or "none"
            raise NotFoundError("portal group with tag %d does not exist on target %s (existing tags: %s); "
                                "create it with storage.vds.vds_portal_group first" % (tag, target.iqn, existing))
        if holder is None or holder.tag != tag:
            steps.extend(_moves_into(target, tag, address))
    elif holder is not None and (tag is None or holder.tag == tag):
        steps.append(Step(REMOVE_PORTAL, target.iqn, holder.tag, address))
    if status is not None and portal is not None and portal.status != status:
        steps.append(Step(SET_STATUS, target.iqn, None, address, status=status))
    return Plan(tuple(steps), tag if state == "present" else (holder.tag if holder else None))


def membership_of(target: Target) -> Membership:
    return dict(target.membership())


class InvariantViolation(AssertionError):
    """A step would break the one-group-per-target rule (a planner bug, never user input)."""


def apply_step(membership: Membership, step: Step) -> Membership:
    """The membership after ``step``; raises InvariantViolation if the step is impossible or unsafe."""
    after = dict(membership)
    if step.action == CREATE_GROUP:
        if step.tag in after:
            raise InvariantViolation("group %r created twice" % step.tag)
        after[step.tag] = frozenset()
    elif step.action == DELETE_GROUP:
        if after.get(step.tag):
            raise InvariantViolation("group %r deleted while it holds portals" % step.tag)
        after.pop(step.tag, None)
    elif step.action == ADD_PORTAL:
        if step.tag not in after:
            raise InvariantViolation("add to missing group %r" % step.tag)
        holder = [tag for tag, portals in after.items() if step.portal in portals]
        if holder:
            raise InvariantViolation("%s added to group %r while in group %r" % (step.portal, step.tag, holder[0]))
        after[step.tag] = after[step.tag] | {step.portal}
    elif step.action == REMOVE_PORTAL:
        if step.portal not in after.get(step.tag, frozenset()):
            raise InvariantViolation("%s removed from group %r, which does not hold it" % (step.portal, step.tag))
        after[step.tag] = after[step.tag] - {step.portal}
    return after


def apply_steps(membership: Membership, steps: t.Iterable[Step]) -> Membership:
    for step in steps:
        membership = apply_step(membership, step)
    return membership


def membership_view(iqn: str, membership: Membership) -> dict[str, t.Any]:
    """Diff/return shape: groups sorted by tag (a group not yet created shows tag null, last)."""
    ordered = sorted(membership.items(), key=lambda item: (item[0] is None, item[0] or 0))
    return {"target": iqn,
            "groups": [{"tag": tag, "portals": [str(a) for a in sorted(portals)]} for tag, portals in ordered]}
