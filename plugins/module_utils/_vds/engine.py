# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The one convergence loop every module goes through: read once per subsystem, plan (pure), let the
provider review, execute (or only plan in check mode), read again and plan on after a vanished object.

Reading and planning are here; the executing half is :class:`~.execute.Execution`, loaded at the first step,
so that a run with nothing to change does not compile it.

It knows the backend only through its interface, and a module's declaration only through
:class:`~.plan.Declaration`.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import NotFoundError, ValidationError
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalAddress, Snapshot, Subsystem, Target
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    Declaration,
    GroupDeclaration,
    Membership,
    Plan,
    PortalDeclaration,
    Step,
    StepView,
    apply_steps,
    membership_of,
    membership_view,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.retry import (
    ObjectVanished,
    Retrier,
    RetryPolicy,
    Sleep,
    Stats,
)

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._vds.execute import Displaced
    from ansible_collections.storage.vds.plugins.module_utils._vds.provider import Backend
    from ansible_collections.storage.vds.plugins.module_utils._vds.wait import Clock


class Outcome:
    """A converged (or, in check mode, planned) change of one target."""

    def __init__(self, target: str, plan: Plan, steps: t.List[StepView], before: Membership, after: Membership,
                 stats: Stats, warnings: t.List[str], subsystem: Subsystem) -> None:
        self.target = target
        self.plan = plan
        self.steps = steps
        self.before = before
        self.after = after
        self.stats = stats
        self.warnings = warnings
        self.subsystem = subsystem

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


class _Convergence:
    """One declared target on its way: what was read and planned last, and what took effect so far."""

    def __init__(self, declaration: Declaration, subsystem: Subsystem, target: Target) -> None:
        self.declaration = declaration
        self.subsystem = subsystem
        self.target = target
        self.plan = Plan(())
        self.before: Membership = {}            # as first read
        self.base: Membership = {}              # as last read
        self.done: t.List[Step] = []            # since the last read
        self.views: t.List[StepView] = []       # every step that took effect
        self.displaced: Displaced = {}
        self.warnings: t.List[str] = []
        self.substituted = False

    def took_effect(self, steps: t.Sequence[Step]) -> None:
        self.done.extend(steps)
        self.views.extend(self.declaration.step_view(step.as_dict(), self.subsystem.name) for step in steps)

    def prefix(self) -> str:
        return "%s: " % self.declaration.where if self.declaration.where else ""


class Engine:
    """One module execution's worth of work against one backend."""

    def __init__(self, backend: Backend, wait_timeout: float, check_mode: bool = False,
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self.backend = backend
        self.check_mode = check_mode
        self.stats = Stats()
        self.retrier = Retrier(backend, retry, sleep, self.stats)
        self._executing = (wait_timeout, clock, sleep, retry)

    @property
    def assigns_tags(self) -> bool:
        """Whether the provider picks the tag of a new group (VDS) rather than taking the one asked for (LIO)."""
        return self.backend.assigns_tags

    def read(self, subsystem: str | None = None) -> Snapshot:
        """One snapshot, retried while busy and recovered once from a corrupt cache."""
        try:
            return self.retrier.retrying("reading the state of %s" % (
                "subsystem %s" % subsystem if subsystem else "every subsystem"), subsystem,
                lambda: self.backend.snapshot(subsystem))
        except ObjectVanished as vanished:
            raise vanished.error

    def read_for(self, declarations: t.Sequence[Declaration]) -> Snapshot:
        """One read per subsystem: only the named subsystems when every declaration names one, else all."""
        names = sorted({declaration.subsystem for declaration in declarations if declaration.subsystem is not None})
        if not declarations or any(declaration.subsystem is None for declaration in declarations):
            return self.read(None)
        return Snapshot(tuple(subsystem for name in names for subsystem in self.read(name).subsystems))

    def converge_group(self, declaration: GroupDeclaration, subsystem: str | None = None) -> Outcome:
        """``vds_portal_group``: one group of one target."""
        if declaration.tag is None and not declaration.portals:
            raise ValidationError("give tag or at least one portal: without a tag a portal group is found by "
                                  "the portals it holds")
        return self.converge([declaration.replace(subsystem=subsystem or declaration.subsystem)])[0]

    def converge_portal(self, iqn: str, address: PortalAddress, tag: int | None, state: str,
                        status: str | None = None, subsystem: str | None = None) -> Outcome:
        """``vds_portal``: one portal of one target, and its status."""
        return self.converge([PortalDeclaration(iqn, address, tag, state, status, subsystem)])[0]

    def converge(self, declarations: t.Sequence[Declaration]) -> t.List[Outcome]:
        """Read each subsystem once, plan every declaration and let the provider review it; in check mode stop
        there. Otherwise :class:`~.execute.Execution` executes the targets one after another, reading a subsystem
        again and planning on when an object vanished (once per execution) or a capped provider handed back an
        existing group.

        On a failure, the error's ``steps_done`` lists every step that took effect, put-backs included."""
        snapshot = self.read_for(declarations)
        runs = [_Convergence(declaration, subsystem, target)
                for declaration, (subsystem, target) in zip(declarations, locate(snapshot, declarations))]
        for run in runs:
            run.before = membership_of(run.target)
            self._plan(run)
        if self.check_mode or not any(run.plan.steps for run in runs):
            return [self._planned_outcome(run) for run in runs]
        # The executing half: a run with nothing to change never compiles it.
        from ansible_collections.storage.vds.plugins.module_utils._vds.execute import Execution

        wait_timeout, clock, sleep, retry = self._executing
        return Execution(self.backend, self.stats, self.read, self._plan, wait_timeout,
                         clock=clock, sleep=sleep, retry=retry).converge(runs)

    def _plan(self, run: _Convergence) -> None:
        run.plan = run.declaration.plan(run.subsystem, run.target, self.assigns_tags)
        # In check mode too, so that check mode predicts what the provider will refuse.
        self.backend.review(run.subsystem, run.target, run.plan.steps)
        run.base = membership_of(run.target)

    def _planned_outcome(self, run: _Convergence) -> Outcome:
        """In check mode, or with nothing to change: the planned steps and the membership they would make."""
        steps = run.plan.steps
        views = [run.declaration.step_view(step.as_dict(), run.subsystem.name) for step in steps]
        return Outcome(run.target.iqn, run.plan, views, run.before, apply_steps(run.before, steps), self.stats,
                       run.warnings, run.subsystem)

    def info(self, target: str | None = None, subsystem: str | None = None) -> t.List[dict[str, t.Any]]:
        snapshot = self.read(subsystem)
        if target is not None and not any(found.target(target) for found in snapshot.subsystems
                                          if subsystem is None or found.name == subsystem):
            snapshot.locate_target(target, subsystem)  # fails, naming the targets that exist
        return [describe_subsystem(found, target) for found in sorted(snapshot.subsystems, key=lambda s: s.name)
                if (subsystem is None or found.name == subsystem)
                and (target is None or found.target(target) is not None)]


def locate(snapshot: Snapshot, declarations: t.Sequence[Declaration]) -> t.List[t.Tuple[Subsystem, Target]]:
    """The subsystem and target of each declaration; a target declared twice is refused."""
    found: t.List[t.Tuple[Subsystem, Target]] = []
    seen: dict[tuple[str, str], str] = {}
    for declaration in declarations:
        try:
            subsystem, target = snapshot.locate_target(declaration.target, declaration.subsystem)
        except (NotFoundError, ValidationError) as error:
            if not declaration.where:
                raise
            raise type(error)("%s: %s" % (declaration.where, error), **error.details) from None
        key = (subsystem.name, target.iqn)
        if key in seen:
            raise ValidationError("%s and %s both declare target %s on subsystem %s: declare each target once"
                                  % (seen[key], declaration.where, target.iqn, subsystem.name))
        seen[key] = declaration.where
        found.append((subsystem, target))
    return found


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
