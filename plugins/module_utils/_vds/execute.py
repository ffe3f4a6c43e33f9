# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Running planned steps against a backend: wait, retry, recover, roll back; and the executing half of the
engine's convergence loop, which reads again and plans on. Loaded at the first step, so that a run with nothing
to change does not compile it."""

from __future__ import annotations

import time
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Outcome
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    VDS_S_ALREADY_EXISTS,
    IdentityError,
    NotFoundError,
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
    Plan,
    Step,
    apply_steps,
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
    from ansible_collections.storage.vds.plugins.module_utils._vds.engine import _Convergence
    from ansible_collections.storage.vds.plugins.module_utils._vds.model import Snapshot
    from ansible_collections.storage.vds.plugins.module_utils._vds.plan import StepView
    from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
        Backend,
        Operation,
        OperationResult,
    )
    from ansible_collections.storage.vds.plugins.module_utils._vds.wait import Clock


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


class Execution:
    """The executing half of :meth:`~.engine.Engine.converge`: execute the targets one after another, reading a
    subsystem again and planning on when an object vanished (once per execution) or a capped provider handed
    back an existing group."""

    def __init__(self, backend: Backend, stats: Stats, read: t.Callable[[str], Snapshot],
                 plan: t.Callable[[_Convergence], None], wait_timeout: float, clock: Clock, sleep: Sleep,
                 retry: RetryPolicy) -> None:
        self.backend = backend
        self.stats = stats
        self.read = read
        self.plan = plan
        waiter = Waiter(backend, wait_timeout, clock=clock, sleep=sleep)
        self.executor = Executor(backend, waiter, retry=retry, sleep=sleep, stats=stats)

    def converge(self, runs: t.Sequence[_Convergence]) -> t.List[Outcome]:
        """Execute every run as planned; on a failure, the error's ``steps_done`` lists every step that took
        effect, put-backs included."""
        history: t.List[StepView] = []
        fresh: dict[str, Subsystem] = {}
        outcomes = []
        with self.backend.executing():
            for run in runs:
                if run.subsystem.name in fresh:  # read again since this plan was made: plan from what is there now
                    try:
                        self._replan(run, fresh[run.subsystem.name])
                    except VdsError as error:
                        raise self._failed(run, error, history)
                self._execute(run, fresh, history)
                history.extend(run.views)
                outcomes.append(self._outcome(run))
        return outcomes

    def _replan(self, run: _Convergence, subsystem: Subsystem) -> None:
        target = subsystem.target(run.target.iqn)
        if target is None:
            raise NotFoundError("%starget %s is gone from subsystem %s"
                                % (run.prefix(), run.target.iqn, subsystem.name))
        # A group this execution made belongs to the declared group it was made for.
        created = [step.tag if target.group_by_tag(t.cast(int, step.tag)) is not None else None
                   for step in run.done if step.action == CREATE_GROUP]
        run.declaration = run.declaration.keeping(run.plan, created)
        run.subsystem, run.target, run.done = subsystem, target, []
        self.plan(run)

    def _reread(self, run: _Convergence, fresh: dict[str, Subsystem]) -> None:
        name = run.subsystem.name
        fresh[name] = self.read(name).subsystems[0]
        self._replan(run, fresh[name])

    def _execute(self, run: _Convergence, fresh: dict[str, Subsystem], history: t.List[StepView]) -> None:
        while True:
            try:
                run.took_effect(self.executor.execute(run.subsystem, run.target, run.plan.steps, run.displaced))
                return
            except ObjectVanished as vanished:
                run.took_effect(vanished.done)
                if self.stats.rereads:
                    error = vanished.error.amend("it vanished again after the state was read once more")
                    raise self._failed(run, error, history) from None
                self.stats.rereads += 1
                # Someone else changed the target under us: read it again and plan from what is there now.
                try:
                    self._reread(run, fresh)
                except VdsError as error:
                    raise self._failed(run, error, history) from None
            except GroupSubstituted as substituted:
                run.took_effect(substituted.done)
                try:
                    self._take_handed_back_group(run, substituted, fresh)
                except VdsError as error:
                    raise self._failed(run, error, history) from None
            except VdsError as error:
                # The executor put back what its moves took out; its steps_done are this attempt's.
                raise self._failed(run, error, history)

    def _take_handed_back_group(self, run: _Convergence, substituted: GroupSubstituted,
                                fresh: dict[str, Subsystem]) -> None:
        """A capped provider answered CreatePortalGroup with an existing group: the declared group it was made
        for takes that group, unless that would purge portals nobody declared there."""
        iqn, tag = run.target.iqn, substituted.tag
        capped = ("the provider allows no more portal groups on %s: CreatePortalGroup answered VDS_S_ALREADY_EXISTS"
                  % iqn)
        if run.substituted:
            raise IdentityError("%s%s again and returned group %d" % (run.prefix(), capped, tag))
        run.substituted = True
        made = sum(1 for step in substituted.done if step.action == CREATE_GROUP)
        run.declaration, what = run.declaration.taking(run.plan, made, tag)
        run.warnings.append("%s and returned existing group %d, so %s was applied to group %d"
                            % (capped, tag, what, tag))
        self._reread(run, fresh)
        arriving = {step.portal for step in run.plan.steps if step.action == ADD_PORTAL}
        dropped = [str(step.portal) for step in run.plan.steps
                   if step.action == REMOVE_PORTAL and step.tag == tag and step.portal not in arriving]
        if dropped:
            # Check mode could not have shown this: refuse rather than surprise.
            raise IdentityError(
                "%s%s and returned existing group %d, which holds %s. Purging it would remove portals that were "
                "never declared for it, so nothing more was changed. Set tag: %d to manage that group, or delete "
                "a group of the target first." % (run.prefix(), capped, tag, ", ".join(dropped), tag))

    def _failed(self, run: _Convergence, error: VdsError, history: t.List[StepView]) -> VdsError:
        """Complete a failure's details: every step that took effect, put-backs included, and the provider's
        trouble. A failure outside the steps first puts back the portals moves took out."""
        this_attempt = [run.declaration.step_view(step, run.subsystem.name)
                        for step in error.details.get("steps_done", [])]
        if run.displaced:
            run.took_effect(self.executor.put_back(run.subsystem, run.target, run.displaced, error))
        error.details["steps_done"] = history + run.views + this_attempt
        error.details["operations"] = self.stats.as_dict()
        return error

    def _outcome(self, run: _Convergence) -> Outcome:
        group_tag = run.plan.group_tag
        if group_tag is None:
            group_tag = next((step.tag for step in run.done if step.action == CREATE_GROUP), None)
        return Outcome(run.target.iqn, Plan(tuple(run.done), group_tag), run.views, run.before,
                       apply_steps(run.base, run.done), self.stats, run.warnings, run.subsystem)
