# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Read once, plan, execute (or only plan in check mode), and shape the result.

This is what the modules call; it knows the backend only through its interface.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import IdentityError, ValidationError, VdsError
from ansible_collections.storage.vds.plugins.module_utils._vds.execute import (
    Displaced,
    Executor,
    GroupSubstituted,
    ObjectVanished,
    Stats,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    PortalAddress,
    Snapshot,
    Subsystem,
    Target,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    REMOVE_PORTAL,
    GroupDeclaration,
    Membership,
    Plan,
    apply_steps,
    membership_of,
    membership_view,
    plan_group,
    plan_portal,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.wait import Clock, RetryPolicy, Sleep, Waiter

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._backends.base import Backend

Planner = t.Callable[[Subsystem, Target], Plan]


@dataclasses.dataclass
class Outcome:
    """A converged (or, in check mode, planned) change of one target."""

    target: str
    plan: Plan
    steps: t.List[t.Dict[str, t.Any]]
    before: Membership
    after: Membership
    stats: Stats
    warnings: t.List[str] = dataclasses.field(default_factory=list)
    subsystem: Subsystem | None = None

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def diff(self) -> dict[str, t.Any]:
        return {"before": membership_view(self.target, self.before),
                "after": membership_view(self.target, self.after)}

    def group(self, tag: int | None) -> dict[str, t.Any] | None:
        if tag not in self.after:
            return None
        return {"tag": tag, "target": self.target, "portals": [str(a) for a in sorted(self.after[tag])]}


class Engine:
    """One module execution's worth of work against one backend."""

    def __init__(self, backend: Backend, wait_timeout: float, check_mode: bool = False,
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self.backend = backend
        self.check_mode = check_mode
        self.stats = Stats()
        waiter = Waiter(backend, wait_timeout, clock=clock, sleep=sleep)
        self.executor = Executor(backend, waiter, retry=retry, sleep=sleep, stats=self.stats)

    def read(self, subsystem: str | None = None) -> Snapshot:
        """One snapshot, retried while busy and recovered once from a corrupt cache."""
        try:
            return self.executor.retrying("reading the state of %s" % (
                "subsystem %s" % subsystem if subsystem else "every subsystem"), subsystem,
                lambda: self.backend.snapshot(subsystem))
        except ObjectVanished as vanished:
            raise vanished.error

    def converge_group(self, declaration: GroupDeclaration, subsystem: str | None = None) -> Outcome:
        if declaration.tag is None and not declaration.portals:
            raise ValidationError("give tag or at least one portal: without a tag a portal group is found by "
                                  "the portals it holds")
        warnings: t.List[str] = []

        substituted_tag: int | None = None

        def planner(found_subsystem: Subsystem, target: Target) -> Plan:
            plan = plan_group(found_subsystem, target, declaration, self.backend.assigns_tags)
            if substituted_tag is not None:
                _refuse_purge_of_handed_back_group(target, declaration, plan, substituted_tag)
            return plan

        try:
            return self._converge(declaration.target, subsystem, planner, warnings)
        except GroupSubstituted as substituted:
            substituted_tag = substituted.tag
            warnings.append(
                "the provider allows no more portal groups on %s: CreatePortalGroup answered VDS_S_ALREADY_EXISTS "
                "and returned existing group %d, so the declaration was applied to group %d"
                % (declaration.target, substituted.tag, substituted.tag))
            declaration = dataclasses.replace(declaration, tag=substituted.tag)
            return self._converge(declaration.target, subsystem, planner, warnings)

    def converge_portal(self, iqn: str, address: PortalAddress, tag: int | None, state: str,
                        status: str | None = None, subsystem: str | None = None) -> Outcome:
        def planner(found_subsystem: Subsystem, target: Target) -> Plan:
            return plan_portal(found_subsystem, target, address, tag, state, status)

        return self._converge(iqn, subsystem, planner, [])

    def _converge(self, iqn: str, subsystem_name: str | None, planner: Planner,
                  warnings: t.List[str]) -> Outcome:
        snapshot = self.read(subsystem_name)
        subsystem, target = snapshot.locate_target(iqn, subsystem_name)
        plan = planner(subsystem, target)
        self.backend.review(subsystem, target, plan.steps)
        before = membership_of(target)
        if self.check_mode or not plan.steps:
            return Outcome(iqn, plan, [step.as_dict() for step in plan.steps], before,
                           apply_steps(before, plan.steps), self.stats, warnings, subsystem)
        done_earlier: t.List[t.Dict[str, t.Any]] = []
        displaced: Displaced = {}
        base = before
        while True:
            try:
                done = self.executor.execute(subsystem, target, plan.steps, displaced)
                break
            except ObjectVanished as vanished:
                done_earlier.extend(step.as_dict() for step in vanished.done)
                if self.stats.rereads:
                    error = vanished.error.amend("it vanished again after the state was read once more")
                    raise self._failed(error, done_earlier, subsystem, target, displaced)
                self.stats.rereads += 1
                # Someone else changed the target under us: read it again and plan from what is there now.
                try:
                    snapshot = self.read(subsystem.name)
                    subsystem, target = snapshot.locate_target(iqn, subsystem.name)
                    plan = planner(subsystem, target)
                    self.backend.review(subsystem, target, plan.steps)
                except VdsError as error:
                    raise self._failed(error, done_earlier, subsystem, target, displaced)
                base = membership_of(target)
            except VdsError as error:
                raise self._failed(error, done_earlier)
        after = apply_steps(base, done)
        if done:
            plan = Plan(tuple(done), done[0].tag if plan.group_tag is None else plan.group_tag)
        return Outcome(iqn, plan, done_earlier + [step.as_dict() for step in done], before, after,
                       self.stats, warnings, subsystem)

    def _failed(self, error: VdsError, done_earlier: t.List[t.Dict[str, t.Any]], subsystem: Subsystem | None = None,
                target: Target | None = None, displaced: Displaced | None = None) -> VdsError:
        """Complete a failure's details: every step that did take effect, and the provider's trouble. A failure
        outside the steps puts back the portals moves left ``displaced``."""
        if displaced:
            put_back = self.executor.put_back(t.cast(Subsystem, subsystem), t.cast(Target, target), displaced, error)
            error.details["steps_done"] = [step.as_dict() for step in put_back]
        error.details["steps_done"] = done_earlier + error.details.get("steps_done", [])
        error.details["operations"] = self.stats.as_dict()
        return error

    def info(self, target: str | None = None, subsystem: str | None = None) -> t.List[dict[str, t.Any]]:
        snapshot = self.read(subsystem)
        if target is not None and not any(found.target(target) for found in snapshot.subsystems
                                          if subsystem is None or found.name == subsystem):
            snapshot.locate_target(target, subsystem)  # fails, naming the targets that exist
        return [describe_subsystem(found, target) for found in sorted(snapshot.subsystems, key=lambda s: s.name)
                if (subsystem is None or found.name == subsystem)
                and (target is None or found.target(target) is not None)]


def _refuse_purge_of_handed_back_group(target: Target, declaration: GroupDeclaration, plan: Plan, tag: int) -> None:
    """A capped provider handed back an existing group: purging it would drop portals nobody declared there,
    which check mode could not have shown. Refuse rather than surprise."""
    dropped = [str(step.portal) for step in plan.steps if step.action == REMOVE_PORTAL and step.tag == tag]
    if declaration.purge_portals and dropped:
        raise IdentityError(
            "the provider allows no more portal groups on %s: CreatePortalGroup answered VDS_S_ALREADY_EXISTS and "
            "returned existing group %d, which holds %s. Purging it would remove portals that were never declared "
            "for it, so nothing was changed. Set tag: %d to manage that group, or delete a group of the target first."
            % (target.iqn, tag, ", ".join(dropped), tag))


def describe_subsystem(subsystem: Subsystem, iqn: str | None = None) -> dict[str, t.Any]:
    """The shape ``vds_portal_info`` returns for one subsystem."""
    return {
        "name": subsystem.name,
        "portals": [{"address": str(portal.address), "status": portal.status}
                    for portal in sorted(subsystem.portals, key=lambda p: p.address)],
        "targets": [{"iqn": target.iqn, "alias": target.alias,
                     "groups": [{"tag": group.tag, "portals": group.sorted_portals()}
                                for group in sorted(target.groups, key=lambda g: g.tag)]}
                    for target in sorted(subsystem.targets, key=lambda x: x.iqn)
                    if iqn is None or target.iqn == iqn],
    }
