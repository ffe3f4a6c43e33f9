# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The executor: every HRESULT's handling, retries, cache recovery, rollback of moves, timeouts.

The fake provider (conftest.py) fails the test at teardown if the executor ever asks it to do what
VDS does not document (add a portal that is in a group of the target, remove a non-member, ...).
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.storage.vds.plugins.module_utils._vds.provider import OperationResult
from ansible_collections.storage.vds.plugins.module_utils._vds import errors
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import HResultError, VdsError, WaitTimeout
from ansible_collections.storage.vds.plugins.module_utils._vds.execute import Executor, GroupSubstituted, describe_step
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalAddress
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    ADD_PORTAL,
    CREATE_GROUP,
    DELETE_GROUP,
    REMOVE_PORTAL,
    SET_STATUS,
    Step,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.retry import ObjectVanished, RetryPolicy, Stats
from ansible_collections.storage.vds.plugins.module_utils._vds.wait import Waiter
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, NO_TROUBLE

BUSY = errors.VDS_E_ANOTHER_CALL_IN_PROGRESS
CORRUPT = errors.VDS_E_PROVIDER_CACHE_CORRUPT
DELETED = errors.VDS_E_OBJECT_DELETED

FAIL_CODES = sorted(entry.value for entry in errors.BY_NAME.values()
                    if not errors.is_success(entry.value) and errors.classify(entry.value) is errors.Handling.FAIL)
FAIL_CODES_AND_UNKNOWN = FAIL_CODES + [0x80070490, 0x8004FFFF]


def a(text: str) -> PortalAddress:
    return PortalAddress.parse(text)


def add(portal: str, tag: int | None, from_tag: int | None = None) -> Step:
    return Step(ADD_PORTAL, IQN1, tag, a(portal), from_tag=from_tag)


def remove(portal: str, tag: int) -> Step:
    return Step(REMOVE_PORTAL, IQN1, tag, a(portal))


def executor_for(backend, clock, timeout: float = 300, retry: RetryPolicy = RetryPolicy()) -> Executor:
    waiter = Waiter(backend, timeout, clock=clock, sleep=clock.sleep)
    return Executor(backend, waiter, retry=retry, sleep=clock.sleep, stats=Stats())


def run(backend, clock, steps, **options):
    """Execute ``steps`` on target 1 of the fake provider's current state; return (executor, done)."""
    snapshot = backend.snapshot("array-a")
    subsystem, target = snapshot.locate_target(IQN1)
    executor = executor_for(backend, clock, **options)
    return executor, executor.execute(subsystem, target, steps)


def run_failing(backend, clock, steps, expected=VdsError, **options):
    snapshot = backend.snapshot("array-a")
    subsystem, target = snapshot.locate_target(IQN1)
    executor = executor_for(backend, clock, **options)
    with pytest.raises(expected) as raised:
        executor.execute(subsystem, target, steps)
    return executor, raised.value


def calls_named(backend, name):
    return [call for call in backend.calls if call[0] == name]


# --- the happy path -----------------------------------------------------------------------------


def test_steps_run_in_order_and_change_the_provider(backend, clock):
    steps = [remove("10.0.0.2", 1), add("10.0.0.4", 1), remove("10.0.0.3", 2), add("10.0.0.3", 1, from_tag=2),
             Step(DELETE_GROUP, IQN1, 2)]
    executor, done = run(backend, clock, steps)
    assert done == steps
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.3:3260", "10.0.0.4:3260"]}
    assert [call[:3] for call in backend.mutations] == [
        ("RemovePortal", 1, "10.0.0.2:3260"), ("AddPortal", 1, "10.0.0.4:3260"), ("RemovePortal", 2, "10.0.0.3:3260"),
        ("AddPortal", 1, "10.0.0.3:3260"), ("DeletePortalGroup", 2)]
    assert executor.stats.as_dict() == NO_TROUBLE


def test_create_group_gets_the_provider_tag_and_later_steps_use_it(backend, clock):
    steps = [Step(CREATE_GROUP, IQN1, None), add("10.0.0.4", None), add("[fd00::2]", None)]
    _executor, done = run(backend, clock, steps)
    assert [(step.action, step.tag) for step in done] == [(CREATE_GROUP, 3), (ADD_PORTAL, 3), (ADD_PORTAL, 3)]
    assert backend.membership()[3] == ["10.0.0.4:3260", "[fd00::2]:3260"]
    assert calls_named(backend, "CreatePortalGroup")[0][2] is None  # no tag asked of a VDS provider


def test_create_group_with_a_tag_where_the_caller_chooses_it(make_backend, clock):
    backend = make_backend(assigns_tags=False)
    _executor, done = run(backend, clock, [Step(CREATE_GROUP, IQN1, 7), add("10.0.0.4", 7)])
    assert [(step.action, step.tag) for step in done] == [(CREATE_GROUP, 7), (ADD_PORTAL, 7)]
    assert backend.membership()[7] == ["10.0.0.4:3260"]


def test_set_status(backend, clock):
    run(backend, clock, [Step(SET_STATUS, IQN1, None, a("10.0.0.1"), status="offline")])
    assert backend.status_of("10.0.0.1") == "offline"


def test_create_group_answering_already_exists_is_signalled(make_backend, default_state, clock):
    default_state["subsystems"][0]["max_groups_per_target"] = 2
    backend = make_backend(default_state)
    snapshot = backend.snapshot()
    subsystem, target = snapshot.locate_target(IQN1)
    with pytest.raises(GroupSubstituted) as raised:
        executor_for(backend, clock).execute(subsystem, target, [Step(CREATE_GROUP, IQN1, None), add("10.0.0.4", None)])
    assert raised.value.tag == 1 and raised.value.done == []
    assert calls_named(backend, "AddPortal") == []  # nothing was added to the group handed back


def test_create_group_returning_no_group_fails_clearly(backend, clock, monkeypatch):
    monkeypatch.setattr(backend, "result", lambda operation: OperationResult(errors.S_OK, errors.S_OK))
    _executor, error = run_failing(backend, clock, [Step(CREATE_GROUP, IQN1, None), add("10.0.0.4", None)])
    assert str(error) == "CreatePortalGroup on %s: the provider returned no group" % IQN1
    assert calls_named(backend, "AddPortal") == []


# --- busy: retried with backoff -----------------------------------------------------------------


@pytest.mark.parametrize("code", [BUSY, errors.VDS_E_RETRY])
@pytest.mark.parametrize("phase", ["call", "wait"])
def test_busy_is_retried_with_backoff_then_succeeds(backend, clock, code, phase):
    backend.fault("AddPortal", code, phase=phase, times=3)
    executor, done = run(backend, clock, [add("10.0.0.4", 1)])
    assert len(done) == 1
    assert executor.stats.retries == 3
    assert len(calls_named(backend, "AddPortal")) == 4
    assert clock.sleeps == [0.05, 0.1, 0.2]  # backoff doubles
    assert "10.0.0.4:3260" in backend.membership()[1]


def test_busy_forever_fails_after_the_bounded_retries(backend, clock):
    backend.fault("AddPortal", BUSY, times=50)
    executor, error = run_failing(backend, clock, [add("10.0.0.5", 2)], HResultError)
    message = str(error)
    assert message.startswith("AddPortal 10.0.0.5:3260 -> group 2 of %s: VDS_E_ANOTHER_CALL_IN_PROGRESS (0x80042404)"
                              % IQN1)
    assert "still failing after 8 retries" in message and "the provider stayed busy" in message
    assert executor.stats.retries == 8
    assert len(calls_named(backend, "AddPortal")) == 9
    assert sum(clock.sleeps) == pytest.approx(sum(RetryPolicy().delays()))
    assert max(clock.sleeps) <= RetryPolicy().maximum
    assert re.search(r"still failing after 8 retries over 11\.[34]s; ", message)


def test_retry_policy_is_honoured(backend, clock):
    backend.fault("RemovePortal", BUSY, times=3)
    executor, error = run_failing(backend, clock, [remove("10.0.0.3", 2)], HResultError,
                                  retry=RetryPolicy(attempts=2, initial=1.0))
    assert "still failing after 2 retries over 3.0s" in str(error)
    assert clock.sleeps == [1.0, 2.0]


# --- corrupt cache: recovered once --------------------------------------------------------------


@pytest.mark.parametrize("phase", ["call", "wait"])
def test_cache_corrupt_is_recovered_once_then_retried(backend, clock, phase):
    backend.fault("RemovePortal", CORRUPT, phase=phase)
    executor, done = run(backend, clock, [remove("10.0.0.3", 2)])
    assert len(done) == 1
    assert backend.recoveries == ["array-a"]
    assert executor.stats.recoveries == 1 and executor.stats.retries == 0
    assert len(calls_named(backend, "RemovePortal")) == 2
    assert backend.membership()[2] == []
    # recovery happened between the failed call and the retry
    names = [call[0] for call in backend.calls if call[0] in ("RemovePortal", "RecoverCache")]
    assert names == ["RemovePortal", "RecoverCache", "RemovePortal"]


def test_cache_corrupt_twice_fails(backend, clock):
    backend.fault("AddPortal", CORRUPT, times=2)
    executor, error = run_failing(backend, clock, [add("10.0.0.4", 1)], HResultError)
    assert str(error) == ("AddPortal 10.0.0.4:3260 -> group 1 of %s: %s; the provider cache was re-enumerated and "
                          "refreshed once already" % (IQN1, errors.describe(CORRUPT)))
    assert backend.recoveries == ["array-a"]
    assert executor.stats.recoveries == 1


def test_cache_recovery_failing_says_so(backend, clock):
    failed = errors.BY_NAME["VDS_E_OBJECT_STATUS_FAILED"].value
    backend.fault("AddPortal", CORRUPT)
    backend.fault("RecoverCache", failed)
    executor, error = run_failing(backend, clock, [add("10.0.0.4", 1)], HResultError)
    assert str(error) == ("AddPortal 10.0.0.4:3260 -> group 1 of %s: recovering the provider cache (Reenumerate, "
                          "Refresh) of subsystem array-a: %s" % (IQN1, errors.describe(failed)))
    assert error.hresult == failed
    assert len(calls_named(backend, "AddPortal")) == 1


def test_busy_then_corrupt_then_busy_then_success(backend, clock):
    backend.fault("AddPortal", BUSY).fault("AddPortal", CORRUPT).fault("AddPortal", BUSY, phase="wait")
    executor, done = run(backend, clock, [add("10.0.0.4", 1)])
    assert len(done) == 1
    assert (executor.stats.retries, executor.stats.recoveries) == (2, 1)


# --- object deleted: signalled to the engine ----------------------------------------------------


def test_object_deleted_is_signalled_with_the_steps_done(backend, behaviour, clock):
    backend.script("AddPortal", behaviour()).fault("AddPortal", DELETED)
    snapshot = backend.snapshot()
    subsystem, target = snapshot.locate_target(IQN1)
    with pytest.raises(ObjectVanished) as raised:
        executor_for(backend, clock).execute(subsystem, target, [add("10.0.0.4", 1), add("10.0.0.5", 1)])
    assert [step.portal for step in raised.value.done] == [a("10.0.0.4")]
    assert raised.value.error.hresult == DELETED
    assert str(raised.value.error).startswith("AddPortal 10.0.0.5:3260 -> group 1 of %s: VDS_E_OBJECT_DELETED" % IQN1)


# --- everything else fails clearly --------------------------------------------------------------


def test_failure_message_format(backend, clock):
    backend.fault("AddPortal", errors.VDS_E_OBJECT_NOT_FOUND)
    executor, error = run_failing(backend, clock, [add("10.0.0.5", 2)], HResultError)
    assert str(error) == ("AddPortal 10.0.0.5:3260 -> group 2 of %s: VDS_E_OBJECT_NOT_FOUND (0x80042405): the portal id "
                          "does not refer to an existing object" % IQN1)
    assert error.details["hresult"] == "0x80042405"
    assert error.details["hresult_name"] == "VDS_E_OBJECT_NOT_FOUND"
    assert error.details["phase"] == "call"
    assert error.details["steps_done"] == []


# (an operation whose own result is VDS_E_OPERATION_PENDING is still running: see the timeout tests)
@pytest.mark.parametrize("code, phase", [
    pytest.param(code, phase, id="%s-%s" % (errors.hresult_name(code), phase))
    for code in FAIL_CODES_AND_UNKNOWN for phase in ("call", "wait", "wait_call")
    if not (phase == "wait" and code == errors.VDS_E_OPERATION_PENDING)])
def test_every_other_code_fails_at_once_naming_it(backend, clock, code, phase):
    backend.fault("RemovePortal", code, phase=phase)
    executor, error = run_failing(backend, clock, [add("10.0.0.4", 1), remove("10.0.0.3", 2)], HResultError)
    assert str(error) == "RemovePortal 10.0.0.3:3260 <- group 2 of %s: %s" % (IQN1, errors.describe(code))
    assert error.hresult == code
    assert error.details["phase"] == ("call" if phase == "call" else "wait")
    assert error.details["steps_done"] == [add("10.0.0.4", 1).as_dict()]
    assert len(calls_named(backend, "RemovePortal")) == 1  # no retry
    assert executor.stats.as_dict() == NO_TROUBLE
    assert backend.recoveries == []
    if code == 0x80070490:
        assert "0x80070490: an HRESULT this collection does not know" in str(error)


@pytest.mark.parametrize("step, prefix", [
    (Step(ADD_PORTAL, IQN1, 1, PortalAddress.parse("10.0.0.4")), "AddPortal 10.0.0.4:3260 -> group 1 of " + IQN1),
    (Step(REMOVE_PORTAL, IQN1, 2, PortalAddress.parse("10.0.0.3")), "RemovePortal 10.0.0.3:3260 <- group 2 of " + IQN1),
    (Step(DELETE_GROUP, IQN1, 2), "Delete group 2 of " + IQN1),
    (Step(CREATE_GROUP, IQN1, None), "CreatePortalGroup on " + IQN1),
    (Step(SET_STATUS, IQN1, None, PortalAddress.parse("[fd00::1]"), status="offline"),
     "SetStatus [fd00::1]:3260 -> offline on subsystem array-a"),
])
def test_each_action_is_named_in_its_failure(backend, clock, step, prefix):
    name = {ADD_PORTAL: "AddPortal", REMOVE_PORTAL: "RemovePortal", DELETE_GROUP: "DeletePortalGroup",
            CREATE_GROUP: "CreatePortalGroup", SET_STATUS: "SetStatus"}[step.action]
    denied = errors.BY_NAME["VDS_E_ACCESS_DENIED"].value
    backend.fault(name, denied)
    steps = [remove("10.0.0.3", 2), step] if step.action == DELETE_GROUP else [step]
    _executor, error = run_failing(backend, clock, steps, HResultError)
    assert str(error) == "%s: %s" % (prefix, errors.describe(denied))
    snapshot = backend.snapshot()
    assert describe_step(step, snapshot.subsystems[0]) == prefix


def test_a_portal_missing_from_a_stale_snapshot_fails_clearly(backend, clock):
    _executor, error = run_failing(backend, clock, [add("10.9.9.9", 1)])
    assert str(error) == ("AddPortal 10.9.9.9:3260 -> group 1 of %s: portal 10.9.9.9:3260 is not known on "
                          "subsystem array-a" % IQN1)
    assert backend.mutations == []


# --- moves: put back on failure -----------------------------------------------------------------


def move_steps():
    return [remove("10.0.0.1", 1), add("10.0.0.1", 2, from_tag=1)]


@pytest.mark.parametrize("code", [errors.BY_NAME["VDS_E_ACCESS_DENIED"].value, errors.VDS_E_OBJECT_NOT_FOUND,
                                  0x80070490])
def test_move_whose_add_fails_puts_the_portal_back(backend, clock, code):
    backend.fault("AddPortal", code, phase="wait")
    executor, error = run_failing(backend, clock, move_steps(), HResultError)
    message = str(error)
    assert message.startswith("AddPortal 10.0.0.1:3260 -> group 2 of %s: %s" % (IQN1, errors.describe(code)))
    assert message.endswith("; 10.0.0.1:3260 was put back in group 1, where it was before")
    assert executor.stats.rollbacks == 1
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}
    assert [call[:3] for call in backend.mutations] == [
        ("RemovePortal", 1, "10.0.0.1:3260"), ("AddPortal", 2, "10.0.0.1:3260"), ("AddPortal", 1, "10.0.0.1:3260")]
    assert error.details["steps_done"] == [remove("10.0.0.1", 1).as_dict(),
                                           dict(add("10.0.0.1", 1).as_dict(), rollback=True)]


def test_move_put_back_is_retried_while_busy(backend, clock):
    backend.fault("AddPortal", errors.BY_NAME["VDS_E_ACCESS_DENIED"].value).fault("AddPortal", BUSY, times=2)
    executor, error = run_failing(backend, clock, move_steps(), HResultError)
    assert "was put back in group 1" in str(error)
    assert (executor.stats.rollbacks, executor.stats.retries) == (1, 2)
    assert backend.membership()[1] == ["10.0.0.1:3260", "10.0.0.2:3260"]


def test_move_whose_put_back_fails_too_says_the_portal_is_in_no_group(backend, clock):
    denied = errors.BY_NAME["VDS_E_ACCESS_DENIED"].value
    failure = errors.BY_NAME["VDS_E_PROVIDER_FAILURE"].value
    backend.fault("AddPortal", denied).fault("AddPortal", failure)
    executor, error = run_failing(backend, clock, move_steps(), HResultError)
    message = str(error)
    assert message.startswith("AddPortal 10.0.0.1:3260 -> group 2 of %s: %s" % (IQN1, errors.describe(denied)))
    assert message.endswith("; putting 10.0.0.1:3260 back in group 1 failed too (AddPortal 10.0.0.1:3260 -> group 1 of "
                            "%s: %s); now in no group of %s: 10.0.0.1:3260 (it was in group 1)"
                            % (IQN1, errors.describe(failure), IQN1))
    assert executor.stats.rollbacks == 0
    assert backend.membership() == {1: ["10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


def test_move_whose_add_finds_the_group_deleted_leaves_the_portal_to_the_engine(backend, clock):
    # the engine reads the state again and plans on: the portal's move is still to be made, or put back
    backend.fault("AddPortal", DELETED)
    snapshot = backend.snapshot()
    subsystem, target = snapshot.locate_target(IQN1)
    executor = executor_for(backend, clock)
    displaced: dict = {}
    with pytest.raises(ObjectVanished) as raised:
        executor.execute(subsystem, target, move_steps(), displaced)
    assert executor.stats.rollbacks == 0
    assert displaced == {a("10.0.0.1"): 1}
    assert [step.action for step in raised.value.done] == [REMOVE_PORTAL]
    assert backend.membership()[1] == ["10.0.0.2:3260"]


def test_put_back_after_a_failure_outside_the_steps(backend, clock):
    snapshot = backend.snapshot()
    subsystem, target = snapshot.locate_target(IQN1)
    backend.move_now(IQN1, "10.0.0.1", None)
    backend.move_now(IQN1, "10.0.0.3", None)
    executor = executor_for(backend, clock)
    error = VdsError("planning again failed")
    displaced = {a("10.0.0.3"): 2, a("10.0.0.1"): 1}
    put_back = executor.put_back(subsystem, target, displaced, error)
    # newest first, each one listed as it took effect
    assert [step.as_dict() for step in put_back] == [dict(add("10.0.0.1", 1).as_dict(), rollback=True),
                                                     dict(add("10.0.0.3", 2).as_dict(), rollback=True)]
    assert str(error) == ("planning again failed; 10.0.0.1:3260 was put back in group 1, where it was before; "
                          "10.0.0.3:3260 was put back in group 2, where it was before")
    assert displaced == {} and executor.stats.rollbacks == 2
    assert backend.membership() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


def test_every_portal_a_failed_put_back_leaves_in_no_group_is_named(backend, clock):
    snapshot = backend.snapshot()
    subsystem, target = snapshot.locate_target(IQN1)
    backend.move_now(IQN1, "10.0.0.1", None)
    backend.move_now(IQN1, "10.0.0.3", None)
    backend.fault("AddPortal", errors.BY_NAME["VDS_E_PROVIDER_FAILURE"].value, times=2)
    error = VdsError("planning again failed")
    executor = executor_for(backend, clock)
    assert executor.put_back(subsystem, target, {a("10.0.0.3"): 2, a("10.0.0.1"): 1}, error) == []
    assert str(error).endswith("; now in no group of %s: 10.0.0.1:3260 (it was in group 1), 10.0.0.3:3260 (it was "
                               "in group 2)" % IQN1)
    assert executor.stats.rollbacks == 0


def test_failure_of_a_plain_add_puts_nothing_back(backend, clock):
    backend.fault("AddPortal", errors.BY_NAME["E_INVALIDARG"].value)
    executor, error = run_failing(backend, clock, [remove("10.0.0.2", 1), add("10.0.0.4", 1)], HResultError)
    assert "put back" not in str(error)
    assert len(calls_named(backend, "AddPortal")) == 1
    assert executor.stats.rollbacks == 0


# --- timeouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("effect, where", [(None, "in no group"), (True, "in group 1")])
def test_timeout_reports_cancel_and_the_state_read_again(backend, behaviour, clock, effect, where):
    backend.script("AddPortal", behaviour(hang=True, percent=30, effect=effect))
    executor, error = run_failing(backend, clock, [add("10.0.0.4", 1)], WaitTimeout, timeout=60)
    assert str(error) == ("AddPortal 10.0.0.4:3260 -> group 1 of %s: not finished within wait_timeout=60s (last "
                          "progress 30%%); Cancel answered VDS_E_NOT_SUPPORTED, so the operation may still complete; "
                          "state read again: 10.0.0.4:3260 is %s of %s" % (IQN1, where, IQN1))
    assert backend.cancels == ["AddPortal"]
    assert executor.stats.rereads == 1
    # an add the state read again shows done took effect, and is listed so
    assert error.details["steps_done"] == ([] if effect is None else [add("10.0.0.4", 1).as_dict()])
    assert error.details["cancel_result"] == "VDS_E_NOT_SUPPORTED"


@pytest.mark.parametrize("name, steps, tail", [
    ("DeletePortalGroup", [remove("10.0.0.3", 2), Step(DELETE_GROUP, IQN1, 2)], "state read again: group 2 still exists"),
    ("CreatePortalGroup", [Step(CREATE_GROUP, IQN1, None)], "state read again: %s has groups 1, 2" % IQN1),
    ("SetStatus", [Step(SET_STATUS, IQN1, None, PortalAddress.parse("10.0.0.2"), status="offline")],
     "state read again: 10.0.0.2:3260 is online"),
])
def test_timeout_of_each_operation_reads_its_state_again(backend, behaviour, clock, name, steps, tail):
    backend.script(name, behaviour(hang=True))
    _executor, error = run_failing(backend, clock, steps, WaitTimeout, timeout=10)
    assert str(error).endswith(tail)


def test_timeout_when_the_state_cannot_be_read_again(backend, behaviour, clock):
    backend.script("AddPortal", behaviour(hang=True))
    backend.script("QueryPortalGroups", behaviour(), behaviour(call=errors.BY_NAME["VDS_E_PROVIDER_FAILURE"].value))
    _executor, error = run_failing(backend, clock, [add("10.0.0.4", 1)], WaitTimeout, timeout=10)
    assert str(error).endswith("; reading the state again failed too (VDS_E_PROVIDER_FAILURE (0x80042442): the "
                               "provider failed the operation)")


def test_timeout_with_cancel_accepted_puts_a_moved_portal_back(make_backend, behaviour, clock):
    backend = make_backend(cancel_answer=errors.S_OK)
    backend.script("AddPortal", behaviour(hang=True))
    executor, error = run_failing(backend, clock, move_steps(), WaitTimeout, timeout=10)
    assert "Cancel answered S_OK" in str(error) and "was put back in group 1" in str(error)
    assert backend.membership()[1] == ["10.0.0.1:3260", "10.0.0.2:3260"]
    assert executor.stats.rollbacks == 1


def test_timeout_of_a_move_whose_add_took_effect_does_not_add_the_portal_to_its_old_group(backend, behaviour, clock):
    # The add to group 2 outlived wait_timeout, Cancel was not supported, and the state read again
    # shows the portal already in group 2. Putting it "back" in group 1 now asks the provider to add
    # a portal that is in another group of the target, which VDS does not document (and would put it
    # in two groups); the message must not claim the portal is in no group either.
    backend.script("AddPortal", behaviour(hang=True, effect=True))
    executor, error = run_failing(backend, clock, move_steps(), WaitTimeout, timeout=10)
    message = str(error)
    assert "state read again: 10.0.0.1:3260 is in group 2 of %s" % IQN1 in message
    assert [call[:3] for call in backend.mutations] == [
        ("RemovePortal", 1, "10.0.0.1:3260"), ("AddPortal", 2, "10.0.0.1:3260")]
    assert "in no group" not in message
    assert backend.membership()[2] == ["10.0.0.1:3260", "10.0.0.3:3260"]


def test_timeout_of_a_move_with_the_state_unknown_does_not_add_the_portal_back_blindly(backend, behaviour, clock):
    # The add to group 2 outlived wait_timeout and Cancel was not supported, so it may still
    # complete (here it already has). Reading the state again finds the provider busy, as a real one
    # is while it works on that very operation. Adding the portal back to group 1 now, without
    # knowing where it is, risks putting it in two groups of the target: the engine must either
    # read the state again (retrying while busy) or leave the portal alone and say so.
    backend.script("AddPortal", behaviour(hang=True, effect=True))
    backend.script("QueryPortalGroups", behaviour(), behaviour(call=errors.VDS_E_ANOTHER_CALL_IN_PROGRESS))
    _executor, error = run_failing(backend, clock, move_steps(), WaitTimeout, timeout=10)
    assert ("AddPortal", 1, "10.0.0.1:3260") not in backend.mutations
    assert "it is now in no group" not in str(error)
    assert backend.membership()[2] == ["10.0.0.1:3260", "10.0.0.3:3260"]
