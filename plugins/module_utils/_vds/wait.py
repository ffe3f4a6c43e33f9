# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Waiting on asynchronous operations (the IVdsAsync contract) and backing off between retries."""

from __future__ import annotations

import time
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    VDS_E_OPERATION_PENDING,
    HResultError,
    WaitTimeout,
    hresult_name,
    is_success,
    to_unsigned,
)

from ansible_collections.storage.vds.plugins.module_utils._vds.retry import Sleep

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
        Backend,
        Operation,
        OperationResult,
    )

Clock = t.Callable[[], float]


class PollPolicy:
    """Poll often at first, then at a fixed fraction of the time already waited.

    The lag between an operation finishing and the waiter seeing it stays under ``fraction`` of the
    operation's duration (and above ``minimum``), while the number of polls grows only with the
    logarithm of the duration, so long operations do not spin.
    """

    __slots__ = ("minimum", "maximum", "fraction")

    def __init__(self, minimum: float = 0.005, maximum: float = 60.0, fraction: float = 0.08) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.fraction = fraction

    def interval(self, waited: float) -> float:
        return min(self.maximum, max(self.minimum, waited * self.fraction))


class TimedOut:
    """What is known when an operation outlives its deadline."""

    __slots__ = ("percent", "cancel_hresult")

    def __init__(self, percent: int, cancel_hresult: int | None) -> None:
        self.percent = percent
        self.cancel_hresult = cancel_hresult

    def cancel_outcome(self) -> str:
        if self.cancel_hresult is None:
            return "Cancel could not be asked"
        if is_success(self.cancel_hresult):
            return "Cancel answered S_OK (the provider cancelled it)"
        return "Cancel answered %s, so the operation may still complete" % hresult_name(self.cancel_hresult)

    @property
    def cancelled(self) -> bool:
        return self.cancel_hresult is not None and is_success(self.cancel_hresult)


class Waiter:
    """Waits on one operation until it finishes or ``timeout`` seconds pass."""

    def __init__(self, backend: Backend, timeout: float, clock: Clock = time.monotonic, sleep: Sleep = time.sleep,
                 policy: PollPolicy = PollPolicy()) -> None:
        self.backend = backend
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.policy = policy
        self.polls = 0

    def wait(self, operation: Operation, action: str) -> OperationResult:
        """Return the finished operation's result; both of Wait's HRESULTs must be successes.

        Raises HResultError (phase ``wait``) when either fails, and WaitTimeout (with a TimedOut in
        ``details['timed_out']``) at the deadline, after asking the provider to cancel.
        """
        start = self.clock()
        deadline = start + self.timeout
        while True:
            status = self.backend.query_status(operation)
            self.polls += 1
            if to_unsigned(status.hresult) != VDS_E_OPERATION_PENDING:
                break
            now = self.clock()
            if now >= deadline:
                raise self._expired(operation, action, status.percent)
            self.sleep(min(self.policy.interval(now - start), deadline - now))
        result = self.backend.result(operation)
        if not is_success(result.call_hresult):
            raise HResultError(result.call_hresult, action, phase="wait")
        if not is_success(result.operation_hresult):
            raise HResultError(result.operation_hresult, action, phase="wait")
        return result

    def _expired(self, operation: Operation, action: str, percent: int) -> WaitTimeout:
        try:
            cancel_hresult: int | None = self.backend.cancel(operation)
        except HResultError as error:
            cancel_hresult = error.hresult
        known = TimedOut(percent if 0 <= percent <= 100 else 0, cancel_hresult)
        return WaitTimeout("%s: not finished within wait_timeout=%ss (last progress %d%%); %s"
                           % (action, _seconds(self.timeout), known.percent, known.cancel_outcome()),
                           progress=known.percent, cancelled=known.cancelled,
                           cancel_result=None if cancel_hresult is None else hresult_name(cancel_hresult))


def _seconds(value: float) -> str:
    return ("%g" % value) if value != int(value) else str(int(value))
