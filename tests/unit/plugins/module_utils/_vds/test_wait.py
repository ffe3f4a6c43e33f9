# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The waiter (IVdsAsync contract) and the backoff policies, on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.storage.vds.plugins.module_utils._vds import errors
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import HResultError, WaitTimeout
from ansible_collections.storage.vds.plugins.module_utils._vds.retry import RetryPolicy
from ansible_collections.storage.vds.plugins.module_utils._vds.wait import PollPolicy, TimedOut, Waiter
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1

ACTION = "AddPortal 10.0.0.4:3260 -> group 1 of %s" % IQN1


def start_add(backend, behaviour):
    """Start an AddPortal of 10.0.0.4 to group 1 whose operation behaves as ``behaviour``."""
    backend.script("AddPortal", behaviour)
    snapshot = backend.snapshot()
    subsystem = snapshot.subsystems[0]
    group = subsystem.targets[0].group_by_tag(1)
    portal = next(p for p in subsystem.portals if str(p.address) == "10.0.0.4:3260")
    return backend.add_portal(group.id, portal.id)


def waiter_for(backend, clock, timeout=300.0, policy=PollPolicy()):
    return Waiter(backend, timeout, clock=clock, sleep=clock.sleep, policy=policy)


def polls_of(backend):
    return len([call for call in backend.calls if call[0] == "QueryStatus"])


# --- completion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pending", [0, 1, 5, 40])
def test_completes_after_n_polls(backend, behaviour, clock, pending):
    operation = start_add(backend, behaviour(polls=pending))
    waiter = waiter_for(backend, clock)
    result = waiter.wait(operation, ACTION)
    assert (result.call_hresult, result.operation_hresult) == (errors.S_OK, errors.S_OK)
    assert waiter.polls == pending + 1 == polls_of(backend)
    assert len(clock.sleeps) == pending  # one sleep between polls, none after the last
    assert backend.calls[-1] == ("Wait", "AddPortal")  # Wait only after QueryStatus said finished
    assert "10.0.0.4:3260" in backend.membership()[1]


def test_poll_intervals_grow_and_start_small(backend, behaviour, clock):
    policy = PollPolicy()
    operation = start_add(backend, behaviour(polls=120))
    waiter_for(backend, clock, policy=policy).wait(operation, ACTION)
    sleeps = clock.sleeps
    assert sleeps[0] == policy.minimum
    assert all(later >= earlier for earlier, later in zip(sleeps, sleeps[1:]))
    assert sleeps[-1] > 10 * sleeps[0]
    assert all(policy.minimum <= s <= policy.maximum for s in sleeps)


@pytest.mark.parametrize("duration", [1.0, 10.0, 100.0, 3600.0])
def test_poll_count_grows_with_the_logarithm_of_the_duration(make_backend, behaviour, clock, duration):
    backend = make_backend()
    operation = start_add(backend, behaviour(duration=duration))
    waiter = waiter_for(backend, clock, timeout=2 * duration)
    waiter.wait(operation, ACTION)
    assert waiter.polls <= 70 + 15 * math.log(duration), "%d polls for a %gs operation" % (waiter.polls, duration)


def test_a_1000s_operation_is_polled_fewer_than_150_times(backend, behaviour, clock):
    # no busy loop: polling backs off with the time already waited
    operation = start_add(backend, behaviour(duration=1000.0))
    waiter = waiter_for(backend, clock, timeout=1200)
    waiter.wait(operation, ACTION)
    assert waiter.polls < 150, "%d polls for a 1000 s operation" % waiter.polls


@given(st.floats(min_value=0.0, max_value=2000.0, allow_nan=False))
@settings(max_examples=150, deadline=None)
def test_detection_lag_is_bounded_by_the_policy_fraction(fakes, duration):
    clock = fakes.FakeClock()
    backend = fakes.FakeBackend(clock=clock)
    policy = PollPolicy()
    operation = start_add(backend, fakes.Behaviour(duration=duration))
    start = clock()
    waiter_for(backend, clock, timeout=3000, policy=policy).wait(operation, ACTION)
    lag = clock() - start - duration
    assert backend.violations == []
    assert -1e-9 <= lag <= max(policy.minimum, policy.fraction * duration) + 1e-9


# --- Wait's two HRESULTs ------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("wait_call", errors.BY_NAME["E_ACCESSDENIED"].value),      # Wait itself failed
    ("wait_call", 0x80070490),
    ("wait", errors.VDS_E_OBJECT_NOT_FOUND),                    # the operation failed
    ("wait", errors.BY_NAME["VDS_E_PROVIDER_FAILURE"].value),
])
def test_either_hresult_of_wait_failing_fails_the_wait(backend, behaviour, clock, field, value):
    operation = start_add(backend, behaviour(polls=2, **{field: value}))
    with pytest.raises(HResultError) as raised:
        waiter_for(backend, clock).wait(operation, ACTION)
    error = raised.value
    assert error.hresult == value and error.phase == "wait"
    assert str(error) == "%s: %s" % (ACTION, errors.describe(value))
    assert error.details["phase"] == "wait"


def test_call_hresult_is_checked_even_when_the_operation_succeeded(backend, behaviour, clock):
    operation = start_add(backend, behaviour(wait_call=errors.BY_NAME["E_OUTOFMEMORY"].value, wait=errors.S_OK))
    with pytest.raises(HResultError, match="E_OUTOFMEMORY"):
        waiter_for(backend, clock).wait(operation, ACTION)


@pytest.mark.parametrize("success", [errors.VDS_S_ALREADY_EXISTS, errors.BY_NAME["VDS_S_PROPERTIES_INCOMPLETE"].value])
def test_success_codes_other_than_s_ok_are_successes(backend, behaviour, clock, success):
    operation = start_add(backend, behaviour(polls=1, wait=success))
    result = waiter_for(backend, clock).wait(operation, ACTION)
    assert result.operation_hresult == success


def test_signed_hresults_from_the_provider_are_understood(backend, behaviour, clock):
    operation = start_add(backend, behaviour(wait=errors.VDS_E_OBJECT_NOT_FOUND - 2 ** 32))
    with pytest.raises(HResultError, match=r"VDS_E_OBJECT_NOT_FOUND \(0x80042405\)"):
        waiter_for(backend, clock).wait(operation, ACTION)


# --- the deadline -------------------------------------------------------------------------------


@pytest.mark.parametrize("cancel_answer, outcome, cancelled", [
    (errors.VDS_E_NOT_SUPPORTED, "Cancel answered VDS_E_NOT_SUPPORTED, so the operation may still complete", False),
    (errors.VDS_E_CANCEL_TOO_LATE, "Cancel answered VDS_E_CANCEL_TOO_LATE, so the operation may still complete",
     False),
    (errors.S_OK, "Cancel answered S_OK (the provider cancelled it)", True),
])
def test_timeout_cancels_once_and_says_what_cancel_answered(make_backend, behaviour, clock, cancel_answer, outcome,
                                                            cancelled):
    backend = make_backend(cancel_answer=cancel_answer)
    operation = start_add(backend, behaviour(hang=True, percent=40))
    start = clock()
    with pytest.raises(WaitTimeout) as raised:
        waiter_for(backend, clock, timeout=30).wait(operation, ACTION)
    error = raised.value
    assert backend.cancels == ["AddPortal"]
    assert str(error) == "%s: not finished within wait_timeout=30s (last progress 40%%); %s" % (ACTION, outcome)
    assert error.details == {"progress": 40, "cancelled": cancelled,
                             "cancel_result": errors.hresult_name(cancel_answer)}
    assert clock() - start == pytest.approx(30)  # waited to the deadline, not past it
    assert ("Wait", "AddPortal") not in backend.calls


def test_timeout_when_cancel_itself_fails_reports_its_hresult(make_backend, behaviour, clock):
    backend = make_backend()

    def refuse(operation):
        backend.cancels.append(operation.name)
        raise HResultError(errors.BY_NAME["VDS_E_ACCESS_DENIED"].value, phase="call")

    backend.cancel = refuse
    operation = start_add(backend, behaviour(hang=True))
    with pytest.raises(WaitTimeout) as raised:
        waiter_for(backend, clock, timeout=5).wait(operation, ACTION)
    assert backend.cancels == ["AddPortal"]
    assert "Cancel answered VDS_E_ACCESS_DENIED" in str(raised.value)
    assert raised.value.details["cancel_result"] == "VDS_E_ACCESS_DENIED"


@pytest.mark.parametrize("percent, shown", [(0xFFFFFFFF, 0), (-1, 0), (0, 0), (99, 99), (100, 100), (101, 0)])
def test_progress_outside_0_100_is_tolerated(backend, behaviour, clock, percent, shown):
    operation = start_add(backend, behaviour(hang=True, percent=percent))
    with pytest.raises(WaitTimeout) as raised:
        waiter_for(backend, clock, timeout=2).wait(operation, ACTION)
    assert "(last progress %d%%)" % shown in str(raised.value)
    assert raised.value.details["progress"] == shown


def test_fractional_timeout_is_shown_as_given(backend, behaviour, clock):
    operation = start_add(backend, behaviour(hang=True))
    with pytest.raises(WaitTimeout, match=r"wait_timeout=0\.5s"):
        waiter_for(backend, clock, timeout=0.5).wait(operation, ACTION)


def test_an_operation_finishing_at_the_deadline_is_not_a_timeout(backend, behaviour, clock):
    operation = start_add(backend, behaviour(duration=10.0))
    result = waiter_for(backend, clock, timeout=10).wait(operation, ACTION)
    assert result.operation_hresult == errors.S_OK
    assert backend.cancels == []


def test_timed_out_outcomes():
    assert TimedOut(0, None).cancel_outcome() == "Cancel could not be asked"
    assert not TimedOut(0, None).cancelled
    assert TimedOut(0, errors.S_OK).cancelled
    assert not TimedOut(0, errors.VDS_E_OPERATION_CANCELED).cancelled
    assert "VDS_E_OPERATION_CANCELED" in TimedOut(0, errors.VDS_E_OPERATION_CANCELED).cancel_outcome()
    assert "0x80070490" in TimedOut(0, 0x80070490).cancel_outcome()


# --- policies -----------------------------------------------------------------------------------


def test_poll_policy_interval_is_clamped_and_monotonic():
    policy = PollPolicy()
    waits = [0.0, 0.001, 0.06, 0.5, 3.0, 25.0, 100.0, 10000.0]
    intervals = [policy.interval(w) for w in waits]
    assert intervals[0] == policy.minimum
    assert all(policy.minimum <= i <= policy.maximum for i in intervals)
    assert intervals == sorted(intervals)
    assert policy.interval(3.0) == pytest.approx(3.0 * policy.fraction)


def test_default_retry_policy_delays():
    delays = list(RetryPolicy().delays())
    assert len(delays) == 8
    assert delays[0] == 0.05
    assert delays == sorted(delays)
    assert all(later <= earlier * 2.0 + 1e-12 for earlier, later in zip(delays, delays[1:]))
    assert max(delays) <= 5.0
    assert sum(delays) < 20  # a busy provider costs the task seconds, not minutes


@given(st.integers(0, 30), st.floats(0.001, 2.0), st.floats(1.0, 4.0), st.floats(0.01, 60.0))
@settings(max_examples=200, deadline=None)
def test_retry_policy_delays_are_bounded(attempts, initial, factor, maximum):
    policy = RetryPolicy(attempts=attempts, initial=initial, factor=factor, maximum=maximum)
    delays = list(policy.delays())
    assert len(delays) == attempts
    assert all(d > 0 for d in delays)
    assert all(d <= max(initial, maximum) for d in delays)
    assert sum(delays) <= attempts * max(initial, maximum) + 1e-9
