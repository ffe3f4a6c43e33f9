# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Shared fixtures of the engine tests: a fake clock and a scripted, stateful fake VDS provider.

The fake implements ``base.Backend`` the way a VDS hardware provider behaves, in memory:

* every mutating call returns an operation; what the call and the operation answer is scripted per
  operation name (``backend.script("AddPortal", Behaviour(call=...), Behaviour(wait=...))``), consumed
  in order, and an unscripted call succeeds;
* an operation can stay pending for a number of polls, for a number of (fake) seconds, or forever;
* the documented rules are checked on every call the engine makes: a portal added while it is in a
  group of the target, a non-member removed, a group deleted with portals, or an unknown id, is
  recorded in ``backend.violations`` (and answered with an error). The ``make_backend`` fixture fails
  the test at teardown when any violation was recorded, so every engine test also proves that the
  engine never relies on undocumented provider behaviour.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import types
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
    Backend,
    Operation,
    OperationResult,
    OperationStatus,
)
from ansible_collections.storage.vds.plugins.module_utils._vds import errors
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    Portal,
    PortalAddress,
    PortalGroup,
    Snapshot,
    Subsystem,
    Target,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.retry import RetryPolicy
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2, MUTATING


#: The provider most engine tests start from (the simulator's state format, version 1).
DEFAULT_STATE: dict[str, t.Any] = {
    "version": 1,
    "subsystems": [{
        "name": "array-a",
        "max_groups_per_target": 0,
        "portals": [{"address": a, "status": "online"} for a in (
            "10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260", "10.0.0.4:3260", "10.0.0.5:3260",
            "10.0.0.6:3260", "[fd00::1]:3260", "[fd00::2]:3260")],
        "targets": [
            {"iqn": IQN1, "alias": "t1", "groups": [
                {"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]},
                {"tag": 2, "portals": ["10.0.0.3:3260"]},
            ]},
            {"iqn": IQN2, "alias": "t2", "groups": [
                {"tag": 1, "portals": ["10.0.0.1:3260"]},
            ]},
        ],
    }],
}


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, "negative sleep %r" % seconds
        self.sleeps.append(seconds)
        self.now += seconds


@dataclasses.dataclass
class Behaviour:
    """How one provider call (and the operation it starts) behaves."""

    call: int | None = None           # HRESULT the method itself fails with (phase "call")
    wait: int = errors.S_OK           # the operation's result, *pHrResult of Wait
    wait_call: int = errors.S_OK      # Wait's own HRESULT
    polls: int = 0                    # QueryStatus answers pending this many times first
    duration: float | None = None     # ... or until this many (fake) seconds have passed
    hang: bool = False                # ... or forever
    percent: int = 50                 # progress QueryStatus reports while pending
    effect: bool | None = None        # None: the change happens when the operation succeeds;
    #                                   True: it happens at once, even if the operation then hangs
    before: t.Callable[["FakeBackend"], None] | None = None  # another client acts first


@dataclasses.dataclass
class _Group:
    id: str
    portals: set


@dataclasses.dataclass
class _Target:
    id: str
    iqn: str
    alias: str
    groups: dict  # tag -> _Group


@dataclasses.dataclass
class _Subsystem:
    id: str
    name: str
    max_groups: int
    portals: dict  # PortalAddress -> [id, status]
    targets: list


@dataclasses.dataclass
class _Op:
    operation: Operation
    behaviour: Behaviour
    apply: t.Callable[[], t.Any]
    started: float
    polls_left: int
    finished: bool = False
    applied: bool = False
    cancelled: bool = False
    group: tuple[str, int] | None = None


class FakeBackend(Backend):
    """An in-memory VDS iSCSI hardware provider with scripted answers (see the module docstring)."""

    def __init__(self, state: dict[str, t.Any] | None = None, clock: t.Callable[[], float] | None = None,
                 assigns_tags: bool = True, cancel_answer: int = errors.VDS_E_NOT_SUPPORTED) -> None:
        self.assigns_tags = assigns_tags
        self.clock = clock or (lambda: 0.0)
        self.cancel_answer = cancel_answer
        self._ids = itertools.count(1)
        self._scripts: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._ops: dict[str, _Op] = {}
        self.calls: list[tuple] = []          # every call, in order
        self.violations: list[str] = []
        self.cancels: list[str] = []
        self.recoveries: list[str | None] = []
        self.snapshots = 0
        self._deleted: set[str] = set()
        self.subsystems: list[_Subsystem] = []
        for sub in (state if state is not None else DEFAULT_STATE)["subsystems"]:
            portals = {PortalAddress.parse(p["address"]): [self._new_id("portal"), p.get("status", "online")]
                       for p in sub.get("portals", [])}
            targets = [_Target(self._new_id("target"), tgt["iqn"], tgt.get("alias", ""),
                               {grp["tag"]: _Group(self._new_id("group"),
                                                   {PortalAddress.parse(p) for p in grp.get("portals", [])})
                                for grp in tgt.get("groups", [])})
                       for tgt in sub.get("targets", [])]
            self.subsystems.append(_Subsystem(self._new_id("subsystem"), sub["name"],
                                              sub.get("max_groups_per_target", 0), portals, targets))

    # --- scripting and inspection --------------------------------------------------------------

    def script(self, name: str, *behaviours: Behaviour) -> "FakeBackend":
        self._scripts[name].extend(behaviours)
        return self

    def fault(self, name: str, hresult: int, phase: str = "call", times: int = 1) -> "FakeBackend":
        """Like the simulator's fault list: ``times`` answers of ``hresult`` in ``phase``."""
        field = {"call": "call", "wait": "wait", "wait_call": "wait_call"}[phase]
        return self.script(name, *[Behaviour(**{field: hresult}) for _time in range(times)])

    def pending_script(self, name: str) -> int:
        return len(self._scripts[name])

    @property
    def mutations(self) -> list[tuple]:
        return [call for call in self.calls if call[0] in MUTATING]

    def membership(self, iqn: str = IQN1) -> dict[int, list[str]]:
        target = self._target_by_iqn(iqn)
        return {tag: sorted((str(a) for a in group.portals), key=PortalAddress.parse)
                for tag, group in sorted(target.groups.items())}

    def status_of(self, address: str) -> str:
        return self.subsystems[0].portals[PortalAddress.parse(address)][1]

    def delete_group_now(self, iqn: str, tag: int) -> None:
        """Another client deletes a group (its portals go with it)."""
        self._deleted.add(self._target_by_iqn(iqn).groups.pop(tag).id)

    def move_now(self, iqn: str, address: str, tag: int | None) -> None:
        """Another client moves a portal (tag None: out of every group)."""
        target = self._target_by_iqn(iqn)
        portal = PortalAddress.parse(address)
        for group in target.groups.values():
            group.portals.discard(portal)
        if tag is not None:
            target.groups[tag].portals.add(portal)

    # --- helpers ---------------------------------------------------------------------------------

    def _new_id(self, kind: str) -> str:
        return "{%s-%04d}" % (kind, next(self._ids))

    def _target_by_iqn(self, iqn: str) -> _Target:
        for sub in self.subsystems:
            for target in sub.targets:
                if target.iqn == iqn:
                    return target
        raise KeyError(iqn)

    def _find_group(self, group_id: str) -> tuple[_Subsystem, _Target, int] | None:
        for sub in self.subsystems:
            for target in sub.targets:
                for tag, group in target.groups.items():
                    if group.id == group_id:
                        return sub, target, tag
        return None

    def _find_portal(self, portal_id: str) -> tuple[_Subsystem, PortalAddress] | None:
        for sub in self.subsystems:
            for address, (pid, _status) in sub.portals.items():
                if pid == portal_id:
                    return sub, address
        return None

    def _next(self, name: str) -> Behaviour:
        script = self._scripts[name]
        behaviour = script.popleft() if script else Behaviour()
        if behaviour.before is not None:
            behaviour.before(self)
        return behaviour

    def _refuse(self, name: str, hresult: int, why: str) -> t.NoReturn:
        self.violations.append("%s: %s" % (name, why))
        raise errors.HResultError(hresult, phase="call")

    @staticmethod
    def _scripted_failure(behaviour: Behaviour) -> None:
        if behaviour.call is not None:
            raise errors.HResultError(behaviour.call, phase="call")

    def _require(self, found: t.Any, object_id: str, name: str) -> None:
        """An id of an object another client deleted answers VDS_E_OBJECT_DELETED (that is no engine
        fault); an id the provider never issued is one."""
        if found:
            return
        if object_id in self._deleted:
            raise errors.HResultError(errors.VDS_E_OBJECT_DELETED, phase="call")
        self._refuse(name, errors.VDS_E_OBJECT_NOT_FOUND, "unknown id %s" % object_id)

    def _start(self, name: str, behaviour: Behaviour, apply: t.Callable[[], t.Any], objects: tuple = ()) -> Operation:
        operation = Operation(self._new_id("op"), name, objects)
        op = _Op(operation, behaviour, apply, self.clock(), behaviour.polls)
        self._ops[operation.id] = op
        if behaviour.effect:
            self._apply(op)
        return operation

    def _apply(self, op: _Op) -> None:
        if not op.applied:
            op.applied = True
            op.group = op.apply()

    # --- Backend ---------------------------------------------------------------------------------

    def snapshot(self, subsystem: str | None = None) -> Snapshot:
        self.calls.append(("QueryPortalGroups", subsystem))
        self.snapshots += 1
        behaviour = self._next("QueryPortalGroups")
        if subsystem is not None and all(sub.name != subsystem for sub in self.subsystems):
            # as the simulator does: the backend names the subsystems that exist
            raise errors.NotFoundError("subsystem %r does not exist; known subsystems: %s" % (
                subsystem, ", ".join(sorted(sub.name for sub in self.subsystems)) or "(none)"))
        if behaviour.call is not None:
            raise errors.HResultError(behaviour.call, phase="call")
        return Snapshot(tuple(
            Subsystem(sub.id, sub.name,
                      tuple(Portal(pid, address, status) for address, (pid, status) in sub.portals.items()),
                      tuple(Target(tgt.id, tgt.iqn, tgt.alias,
                                   tuple(PortalGroup(g.id, tag, frozenset(g.portals)) for tag, g in tgt.groups.items()))
                            for tgt in sub.targets))
            for sub in self.subsystems if subsystem is None or sub.name == subsystem))

    def add_portal(self, group_id: str, portal_id: str) -> Operation:
        behaviour = self._next("AddPortal")
        found, portal = self._find_group(group_id), self._find_portal(portal_id)
        self.calls.append(("AddPortal", found[2] if found else group_id, str(portal[1]) if portal else portal_id))
        self._scripted_failure(behaviour)
        self._require(found, group_id, "AddPortal")
        self._require(portal, portal_id, "AddPortal")
        _sub, target, tag = found
        holders = [other for other, group in target.groups.items() if portal[1] in group.portals]
        if holders:
            self._refuse("AddPortal", errors.VDS_E_OBJECT_EXISTS, "%s added to group %d of %s while in group %d"
                         % (portal[1], tag, target.iqn, holders[0]))

        def apply() -> None:
            target.groups[tag].portals.add(portal[1])
        return self._start("AddPortal", behaviour, apply, (group_id, portal_id))

    def remove_portal(self, group_id: str, portal_id: str) -> Operation:
        behaviour = self._next("RemovePortal")
        found, portal = self._find_group(group_id), self._find_portal(portal_id)
        self.calls.append(("RemovePortal", found[2] if found else group_id, str(portal[1]) if portal else portal_id))
        self._scripted_failure(behaviour)
        self._require(found, group_id, "RemovePortal")
        self._require(portal, portal_id, "RemovePortal")
        _sub, target, tag = found
        if portal[1] not in target.groups[tag].portals:
            self._refuse("RemovePortal", errors.BY_NAME["E_INVALIDARG"].value,
                         "%s removed from group %d of %s, which does not hold it" % (portal[1], tag, target.iqn))

        def apply() -> None:
            target.groups[tag].portals.discard(portal[1])
        return self._start("RemovePortal", behaviour, apply, (group_id, portal_id))

    def create_group(self, target_id: str, tag: int | None = None) -> Operation:
        behaviour = self._next("CreatePortalGroup")
        self.calls.append(("CreatePortalGroup", target_id, tag))
        self._scripted_failure(behaviour)
        found = [(sub, tgt) for sub in self.subsystems for tgt in sub.targets if tgt.id == target_id]
        self._require(found, target_id, "CreatePortalGroup")
        sub, target = found[0]
        if self.assigns_tags and tag is not None:
            self.violations.append("CreatePortalGroup: a tag (%d) was asked of a provider that assigns tags" % tag)
        capped = bool(sub.max_groups) and len(target.groups) >= sub.max_groups
        if capped or behaviour.wait == errors.VDS_S_ALREADY_EXISTS:
            behaviour = dataclasses.replace(behaviour, wait=errors.VDS_S_ALREADY_EXISTS)

        def apply() -> tuple[str, int]:
            if behaviour.wait == errors.VDS_S_ALREADY_EXISTS:
                existing = min(target.groups)
                return target.groups[existing].id, existing
            new_tag = tag if tag is not None else next(n for n in itertools.count(1) if n not in target.groups)
            target.groups[new_tag] = _Group(self._new_id("group"), set())
            return target.groups[new_tag].id, new_tag
        return self._start("CreatePortalGroup", behaviour, apply, (target_id,))

    def delete_group(self, group_id: str) -> Operation:
        behaviour = self._next("DeletePortalGroup")
        found = self._find_group(group_id)
        self.calls.append(("DeletePortalGroup", found[2] if found else group_id))
        self._scripted_failure(behaviour)
        self._require(found, group_id, "DeletePortalGroup")
        _sub, target, tag = found
        if target.groups[tag].portals:
            self._refuse("DeletePortalGroup", errors.VDS_E_ASSOCIATED_PORTALS_EXIST,
                         "group %d of %s deleted while it holds portals" % (tag, target.iqn))

        def apply() -> None:
            self._deleted.add(target.groups.pop(tag).id)
        return self._start("DeletePortalGroup", behaviour, apply, (group_id,))

    def set_portal_status(self, portal_id: str, status: str) -> Operation:
        behaviour = self._next("SetStatus")
        portal = self._find_portal(portal_id)
        self.calls.append(("SetStatus", str(portal[1]) if portal else portal_id, status))
        self._scripted_failure(behaviour)
        self._require(portal, portal_id, "SetStatus")
        sub, address = portal

        def apply() -> None:
            sub.portals[address][1] = status
        return self._start("SetStatus", behaviour, apply, (portal_id,))

    def query_status(self, operation: Operation) -> OperationStatus:
        op = self._ops[operation.id]
        self.calls.append(("QueryStatus", operation.name))
        pending = op.behaviour.hang or op.polls_left > 0 or (
            op.behaviour.duration is not None and self.clock() - op.started < op.behaviour.duration)
        if op.polls_left > 0:
            op.polls_left -= 1
        if pending and not op.cancelled:
            return OperationStatus(errors.VDS_E_OPERATION_PENDING, op.behaviour.percent)
        if op.cancelled:
            return OperationStatus(errors.VDS_E_OPERATION_CANCELED, op.behaviour.percent)
        op.finished = True
        if errors.is_success(op.behaviour.wait):
            self._apply(op)
        return OperationStatus(op.behaviour.wait, 100)

    def result(self, operation: Operation) -> OperationResult:
        op = self._ops[operation.id]
        self.calls.append(("Wait", operation.name))
        assert op.finished or op.cancelled, "Wait called on an operation QueryStatus had not reported finished"
        if op.cancelled:
            return OperationResult(errors.S_OK, errors.VDS_E_OPERATION_CANCELED)
        group_id, group_tag = op.group if op.group else (None, None)
        return OperationResult(op.behaviour.wait_call, op.behaviour.wait, group_id, group_tag)

    def cancel(self, operation: Operation) -> int:
        op = self._ops[operation.id]
        self.calls.append(("Cancel", operation.name))
        self.cancels.append(operation.name)
        if errors.is_success(self.cancel_answer):
            op.cancelled = True
        return self.cancel_answer

    def recover_cache(self, subsystem: str | None) -> None:
        self.calls.append(("RecoverCache", subsystem))
        self.recoveries.append(subsystem)
        behaviour = self._next("RecoverCache")
        if behaviour.call is not None:
            raise errors.HResultError(behaviour.call, phase="call")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_backend(clock: FakeClock) -> t.Iterator[t.Callable[..., FakeBackend]]:
    """Factory of fake providers on the fake clock; fails the test if the engine broke a provider rule."""
    made: list[FakeBackend] = []

    def factory(state: dict[str, t.Any] | None = None, **options: t.Any) -> FakeBackend:
        options.setdefault("clock", clock)
        backend = FakeBackend(state, **options)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        assert backend.violations == [], "the engine relied on undocumented provider behaviour: %s" % (
            backend.violations,)


@pytest.fixture
def backend(make_backend: t.Callable[..., FakeBackend]) -> FakeBackend:
    return make_backend()


@pytest.fixture
def make_engine(clock: FakeClock) -> t.Callable[..., Engine]:
    """An engine on the fake clock (sleeping moves the clock; nothing really sleeps)."""

    def factory(backend: Backend, wait_timeout: float = 300, check_mode: bool = False,
                retry: RetryPolicy = RetryPolicy()) -> Engine:
        return Engine(backend, wait_timeout, check_mode=check_mode, clock=clock, sleep=clock.sleep, retry=retry)

    return factory


@pytest.fixture
def behaviour() -> type[Behaviour]:
    """The Behaviour class, for scripting ``backend.script(name, behaviour(...))``."""
    return Behaviour


@pytest.fixture(scope="session")
def fakes() -> types.SimpleNamespace:
    """The fake classes themselves, for hypothesis tests that build a fresh provider per example."""
    return types.SimpleNamespace(FakeClock=FakeClock, FakeBackend=FakeBackend, Behaviour=Behaviour,
                                 DEFAULT_STATE=DEFAULT_STATE, IQN1=IQN1, IQN2=IQN2)


@pytest.fixture
def default_state() -> dict[str, t.Any]:
    import copy

    return copy.deepcopy(DEFAULT_STATE)
