# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Running planned steps against a backend: wait, retry, recover, roll back."""

from __future__ import annotations

import dataclasses
import time
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    VDS_S_ALREADY_EXISTS,
    Handling,
    HResultError,
    VdsError,
    WaitTimeout,
    to_unsigned,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import Subsystem, Target
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    ADD_PORTAL,
    CREATE_GROUP,
    DELETE_GROUP,
    REMOVE_PORTAL,
    SET_STATUS,
    Step,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.wait import RetryPolicy, Sleep, Waiter

T = t.TypeVar("T")

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._backends.base import (
        Backend,
        Operation,
        OperationResult,
    )


@dataclasses.dataclass
class Stats:
    """How much trouble the provider gave: reported in every result."""

    retries: int = 0
    recoveries: int = 0
    rereads: int = 0
    rollbacks: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class ObjectVanished(Exception):
    """VDS_E_OBJECT_DELETED: the engine reads state again and re-plans once."""

    def __init__(self, error: HResultError, done: t.List[Step]) -> None:
        super().__init__(str(error))
        self.error = error
        self.done = done


class GroupSubstituted(Exception):
    """CreatePortalGroup answered VDS_S_ALREADY_EXISTS: the provider handed back an existing group."""

    def __init__(self, tag: int, done: t.List[Step]) -> None:
        super().__init__("provider returned existing group %d" % tag)
        self.tag = tag
        self.done = done


def describe_step(step: Step, subsystem: Subsystem) -> str:
    """The message prefix naming a step the way an operator reads it."""
    group = "group %s of %s" % (step.tag if step.tag is not None else "(new)", step.target)
    if step.action == ADD_PORTAL:
        return "AddPortal %s -> %s" % (step.portal, group)
    if step.action == REMOVE_PORTAL:
        return "RemovePortal %s <- %s" % (step.portal, group)
    if step.action == CREATE_GROUP:
        return "CreatePortalGroup on %s" % step.target
    if step.action == DELETE_GROUP:
        return "Delete %s" % group
    return "SetStatus %s -> %s on subsystem %s" % (step.portal, step.status, subsystem.name)


class Executor:
    """Executes the steps of one target, in order, with the VDS error handling."""

    def __init__(self, backend: Backend, waiter: Waiter, retry: RetryPolicy = RetryPolicy(),
                 sleep: Sleep = time.sleep, stats: Stats | None = None) -> None:
        self.backend = backend
        self.waiter = waiter
        self.retry = retry
        self.sleep = sleep
        self.stats = stats if stats is not None else Stats()

    def execute(self, subsystem: Subsystem, target: Target, steps: t.Sequence[Step]) -> t.List[Step]:
        """Run ``steps``; return them with real tags. On failure the error's details list what was done."""
        group_ids = {group.tag: group.id for group in target.groups}
        done: t.List[Step] = []
        new_tag: int | None = None
        for step in steps:
            if step.tag is None and step.action not in (CREATE_GROUP, SET_STATUS):
                step = step.with_tag(t.cast(int, new_tag))
            try:
                if step.action == CREATE_GROUP:
                    result = self._run(step, subsystem, lambda: self.backend.create_group(target.id, step.tag))
                    if result.group_tag is None or result.group_id is None:
                        raise VdsError("%s: the provider returned no group" % describe_step(step, subsystem))
                    if to_unsigned(result.operation_hresult) == VDS_S_ALREADY_EXISTS:
                        raise GroupSubstituted(result.group_tag, done)
                    new_tag = result.group_tag
                    group_ids[new_tag] = result.group_id
                    step = step.with_tag(new_tag)
                else:
                    self._run_on_ids(step, subsystem, group_ids)
            except VdsError as error:
                error.details.setdefault("steps_done", [s.as_dict() for s in done])
                if step.action == ADD_PORTAL and step.from_tag is not None:
                    self._put_back(step, subsystem, group_ids, error)
                raise
            except ObjectVanished as vanished:
                if step.action == ADD_PORTAL and step.from_tag is not None:
                    self._put_back(step, subsystem, group_ids, vanished.error)
                vanished.done = done
                raise
            done.append(step)
        return done

    def _run_on_ids(self, step: Step, subsystem: Subsystem, group_ids: dict[int | None, str]) -> None:
        portal_id = self._portal_id(subsystem, step)
        if step.action == ADD_PORTAL:
            self._run(step, subsystem, lambda: self.backend.add_portal(group_ids[step.tag], portal_id))
        elif step.action == REMOVE_PORTAL:
            self._run(step, subsystem, lambda: self.backend.remove_portal(group_ids[step.tag], portal_id))
        elif step.action == DELETE_GROUP:
            self._run(step, subsystem, lambda: self.backend.delete_group(group_ids[step.tag]))
        elif step.action == SET_STATUS:
            self._run(step, subsystem, lambda: self.backend.set_portal_status(portal_id, t.cast(str, step.status)))

    @staticmethod
    def _portal_id(subsystem: Subsystem, step: Step) -> str:
        if step.portal is None:
            return ""
        portal = subsystem.portal(step.portal)
        if portal is None:  # the planner refuses unknown portals; this guards a stale snapshot
            raise VdsError("%s: portal %s is not known on subsystem %s" % (
                describe_step(step, subsystem), step.portal, subsystem.name))
        return portal.id

    def _run(self, step: Step, subsystem: Subsystem, invoke: t.Callable[[], Operation]) -> OperationResult:
        action = describe_step(step, subsystem)
        try:
            return self.call(action, subsystem, invoke)
        except WaitTimeout as timeout:
            raise timeout.amend(self._state_after_timeout(step, subsystem, timeout))

    def call(self, action: str, subsystem: Subsystem, invoke: t.Callable[[], Operation]) -> OperationResult:
        """One provider call and its wait, retried while busy, with one cache recovery."""
        return self.retrying(action, subsystem.name, lambda: self.waiter.wait(invoke(), action))

    def retrying(self, action: str, subsystem: str | None, attempt: t.Callable[[], T]) -> T:
        """Run ``attempt`` under the HRESULT classification: back off while busy, recover a corrupt
        provider cache once, signal a vanished object, fail on everything else."""
        delays = self.retry.delays()
        recovered = False
        waited = 0.0
        while True:
            try:
                return attempt()
            except HResultError as raw:
                error = raw.with_action(action)
                handling = error.handling
                if handling is Handling.RETRY:
                    delay = next(delays, None)
                    if delay is None:
                        raise error.amend("still failing after %d retries over %.1fs; the provider stayed busy"
                                          % (self.retry.attempts, waited))
                    self.stats.retries += 1
                    waited += delay
                    self.sleep(delay)
                elif handling is Handling.RECOVER_CACHE and not recovered:
                    recovered = True
                    self.stats.recoveries += 1
                    self._recover(action, subsystem)
                elif handling is Handling.RECOVER_CACHE:
                    raise error.amend("the provider cache was re-enumerated and refreshed once already")
                elif handling is Handling.REREAD:
                    raise ObjectVanished(error, [])
                else:
                    raise error

    def _recover(self, action: str, subsystem: str | None) -> None:
        try:
            self.backend.recover_cache(subsystem)
        except HResultError as failure:
            raise failure.with_action("%s: recovering the provider cache (Reenumerate, Refresh)%s" % (
                action, " of subsystem %s" % subsystem if subsystem else ""))

    def _put_back(self, step: Step, subsystem: Subsystem, group_ids: dict[int | None, str],
                  error: VdsError) -> None:
        """A move failed half-way: the portal left ``from_tag``; return it there."""
        if isinstance(error, WaitTimeout):
            if not error.details.get("cancelled"):
                error.amend("nothing was put back: the add was not cancelled and may still complete")
                return
            now_in = error.details.get("now_in_group")
            if now_in is not None:  # the add finished before the cancel, or someone else placed the portal
                error.amend("nothing was put back, since %s is in group %s" % (step.portal, now_in))
                return
        back = Step(ADD_PORTAL, step.target, step.from_tag, step.portal)
        portal_id = self._portal_id(subsystem, step)
        try:
            self.call(describe_step(back, subsystem), subsystem,
                      lambda: self.backend.add_portal(group_ids[back.tag], portal_id))
        except (VdsError, ObjectVanished) as failure:
            error.amend("putting %s back in group %s failed too (%s): it is now in no group of %s"
                        % (step.portal, step.from_tag, failure, step.target))
            return
        self.stats.rollbacks += 1
        error.details.setdefault("steps_done", []).append(dict(back.as_dict(), rollback=True))
        error.amend("%s was put back in group %s, where it was before" % (step.portal, step.from_tag))

    def _state_after_timeout(self, step: Step, subsystem: Subsystem, timeout: WaitTimeout) -> str:
        """After a timeout, read the target again and say whether the step took effect."""
        try:
            fresh = self.backend.snapshot(subsystem.name)
        except VdsError as failure:
            return "reading the state again failed too (%s)" % failure
        self.stats.rereads += 1
        subsystem_now = next((s for s in fresh.subsystems if s.name == subsystem.name), None)
        target = subsystem_now.target(step.target) if subsystem_now else None
        if target is None:
            return "state read again: target %s is gone" % step.target
        group = target.group_by_tag(step.tag) if step.tag is not None else None
        if step.action in (ADD_PORTAL, REMOVE_PORTAL) and step.portal is not None:
            holder = target.group_holding(step.portal)
            timeout.details["now_in_group"] = holder.tag if holder else None
            where = "in group %d" % holder.tag if holder else "in no group"
            return "state read again: %s is %s of %s" % (step.portal, where, step.target)
        if step.action == DELETE_GROUP:
            return "state read again: group %s %s" % (step.tag, "still exists" if group else "is gone")
        if step.action == CREATE_GROUP:
            tags = ", ".join(str(g.tag) for g in target.groups) or "none"
            return "state read again: %s has groups %s" % (step.target, tags)
        portal = subsystem_now.portal(step.portal) if subsystem_now and step.portal else None
        return "state read again: %s is %s" % (step.portal, portal.status if portal else "gone")
