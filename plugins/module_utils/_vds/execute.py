# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Running planned steps against a backend: wait, retry, recover, roll back."""

from __future__ import annotations

import time
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    VDS_S_ALREADY_EXISTS,
    VdsError,
    WaitTimeout,
    to_unsigned,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalAddress, Subsystem, Target
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    ADD_PORTAL,
    CREATE_GROUP,
    DELETE_GROUP,
    REMOVE_PORTAL,
    SET_STATUS,
    Step,
    is_new_group,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.retry import (
    ObjectVanished,
    Retrier,
    RetryPolicy,
    Sleep,
    Stats,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.wait import Waiter

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
        Backend,
        Operation,
        OperationResult,
    )


#: Portals a move took out of their group and has not put in their new one yet, in the order they left:
#: portal -> the tag of the group it left.
Displaced = t.Dict[PortalAddress, int]


class GroupSubstituted(Exception):
    """CreatePortalGroup answered VDS_S_ALREADY_EXISTS: the provider handed back an existing group."""

    def __init__(self, tag: int, done: t.List[Step]) -> None:
        super().__init__("provider returned existing group %d" % tag)
        self.tag = tag
        self.done = done


def _follow(step: Step, moving: t.AbstractSet[PortalAddress | None], displaced: Displaced) -> None:
    """Keep ``displaced`` up to date after ``step`` took effect."""
    if step.action == REMOVE_PORTAL and step.portal in moving:
        displaced.setdefault(t.cast(PortalAddress, step.portal), t.cast(int, step.tag))
    elif step.action == ADD_PORTAL:
        displaced.pop(t.cast(PortalAddress, step.portal), None)


def _took_effect(step: Step, error: VdsError) -> bool:
    """A step that outlived wait_timeout may have taken effect all the same: the state read again tells."""
    if not isinstance(error, WaitTimeout) or "now_in_group" not in error.details:
        return False
    now_in = error.details["now_in_group"]
    return (step.action == ADD_PORTAL and now_in == step.tag) or (step.action == REMOVE_PORTAL and now_in is None)


def _reason_to_leave(failing: Step | None, address: PortalAddress, error: VdsError) -> str | None:
    """Why ``address`` must not be put back after ``failing`` outlived wait_timeout: the add was not
    cancelled and may still complete, or the state read again shows the portal in a group."""
    if failing is None or failing.portal != address or not isinstance(error, WaitTimeout):
        return None
    now_in = error.details.get("now_in_group")
    if now_in is not None:
        return "nothing was put back, since %s is in group %s" % (address, now_in)
    if failing.action == ADD_PORTAL and not error.details.get("cancelled"):
        return "nothing was put back: the add was not cancelled and may still complete"
    return None


def describe_step(step: Step, subsystem: Subsystem) -> str:
    """The message prefix naming a step the way an operator reads it."""
    group = "group %s of %s" % ("(new)" if is_new_group(step.tag) else step.tag, step.target)
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
        self.stats = stats if stats is not None else Stats()
        self.retrier = Retrier(backend, retry, sleep, self.stats)

    def execute(self, subsystem: Subsystem, target: Target, steps: t.Sequence[Step],
                displaced: Displaced | None = None) -> t.List[Step]:
        """Run ``steps``; return them with real tags.

        ``displaced`` follows the moves as they run: the remove of a portal the steps add again enters
        it, the add takes it out. When a step fails, every portal still displaced is put back where it
        was, newest first, and the error's ``steps_done`` lists every step that took effect, put-backs
        included. A vanished object or a group handed back leaves them displaced: the engine reads the
        state again and plans on from there.
        """
        displaced = {} if displaced is None else displaced
        moving = {step.portal for step in steps if step.action == ADD_PORTAL}
        group_ids: dict[int | None, str] = {group.tag: group.id for group in target.groups}
        created: dict[int | None, int] = {}
        done: t.List[Step] = []
        for step in steps:
            if is_new_group(step.tag) and step.action not in (CREATE_GROUP, SET_STATUS):
                step = step.with_tag(created[step.tag])
            try:
                if step.action == CREATE_GROUP:
                    step = self._create(step, subsystem, target, group_ids, created, done)
                else:
                    self._run_on_ids(step, subsystem, group_ids)
            except VdsError as error:
                if _took_effect(step, error):
                    done.append(step)
                    _follow(step, moving, displaced)
                done.extend(self._put_back(subsystem, step.target, group_ids, displaced, error, step))
                error.details["steps_done"] = [s.as_dict() for s in done]
                raise
            except ObjectVanished as vanished:
                vanished.done = done
                raise
            done.append(step)
            _follow(step, moving, displaced)
        return done

    def _create(self, step: Step, subsystem: Subsystem, target: Target, group_ids: dict[int | None, str],
                created: dict[int | None, int], done: t.List[Step]) -> Step:
        """CreatePortalGroup; the new group's tag is what later steps naming this group use."""
        asked = None if is_new_group(step.tag) else step.tag
        result = self._run(step, subsystem, lambda: self.backend.create_group(target.id, asked))
        if result.group_tag is None or result.group_id is None:
            raise VdsError("%s: the provider returned no group" % describe_step(step, subsystem))
        if to_unsigned(result.operation_hresult) == VDS_S_ALREADY_EXISTS:
            raise GroupSubstituted(result.group_tag, done)
        created[step.tag] = created[None] = result.group_tag
        group_ids[result.group_tag] = result.group_id
        return step.with_tag(result.group_tag)

    def put_back(self, subsystem: Subsystem, target: Target, displaced: Displaced, error: VdsError) -> t.List[Step]:
        """After a failure outside the steps (planning again, a second vanished object): put every displaced
        portal back in the group it left, newest first; return the adds that took effect."""
        group_ids: dict[int | None, str] = {group.tag: group.id for group in target.groups}
        return self._put_back(subsystem, target.iqn, group_ids, displaced, error)

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
        return self.retrier.retrying(action, subsystem.name, lambda: self.waiter.wait(invoke(), action))

    def _put_back(self, subsystem: Subsystem, iqn: str, group_ids: dict[int | None, str], displaced: Displaced,
                  error: VdsError, failing: Step | None = None) -> t.List[Step]:
        """Return each displaced portal to the group it left, newest first; the error's message tells what
        became of each, and names every portal left in no group with the group it came from."""
        put_back: t.List[Step] = []
        stranded: t.List[str] = []
        for address, from_tag in reversed(list(displaced.items())):
            reason = _reason_to_leave(failing, address, error)
            if reason is not None:
                error.amend(reason)
                continue
            back = Step(ADD_PORTAL, iqn, from_tag, address, rollback=True)
            try:
                group_id = group_ids.get(from_tag)
                if group_id is None:
                    raise VdsError("group %d is gone" % from_tag)
                self.call(describe_step(back, subsystem), subsystem,
                          lambda: self.backend.add_portal(group_id, self._portal_id(subsystem, back)))
            except (VdsError, ObjectVanished) as failure:
                error.amend("putting %s back in group %d failed too (%s)" % (address, from_tag, failure))
                stranded.append("%s (it was in group %d)" % (address, from_tag))
                continue
            self.stats.rollbacks += 1
            put_back.append(back)
            error.amend("%s was put back in group %d, where it was before" % (address, from_tag))
        if stranded:
            error.amend("now in no group of %s: %s" % (iqn, ", ".join(stranded)))
        displaced.clear()  # each one is back, or named in the message
        return put_back

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
