# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Every provider call, reads included, goes through one HRESULT classification: back off while the
provider is busy, recover a corrupt provider cache once, signal a vanished object, fail on the rest.

Kept apart from :mod:`.execute` so that a run with nothing to change does not load the step machinery.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import Handling, HResultError

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._vds.plan import Step
    from ansible_collections.storage.vds.plugins.module_utils._vds.provider import Backend

T = t.TypeVar("T")
Sleep = t.Callable[[float], None]


class RetryPolicy:
    """Bounded exponential backoff for busy providers (VDS_E_ANOTHER_CALL_IN_PROGRESS, VDS_E_RETRY)."""

    __slots__ = ("attempts", "initial", "factor", "maximum")

    def __init__(self, attempts: int = 8, initial: float = 0.05, factor: float = 2.0, maximum: float = 5.0) -> None:
        self.attempts = attempts
        self.initial = initial
        self.factor = factor
        self.maximum = maximum

    def delays(self) -> t.Iterator[float]:
        for attempt in range(self.attempts):
            yield min(self.maximum, self.initial * self.factor ** attempt)


class Stats:
    """How much trouble the provider gave: reported in every result."""

    __slots__ = _FIELDS = ("retries", "recoveries", "rereads", "rollbacks")

    def __init__(self) -> None:
        self.retries = self.recoveries = self.rereads = self.rollbacks = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self._FIELDS}


class ObjectVanished(Exception):
    """VDS_E_OBJECT_DELETED: the engine reads state again and re-plans once."""

    def __init__(self, error: HResultError, done: t.List[Step]) -> None:
        super().__init__(str(error))
        self.error = error
        self.done = done


class Retrier:
    """Runs provider calls under the HRESULT classification, counting the trouble in ``stats``."""

    def __init__(self, backend: Backend, policy: RetryPolicy, sleep: Sleep = time.sleep,
                 stats: Stats | None = None) -> None:
        self.backend = backend
        self.policy = policy
        self.sleep = sleep
        self.stats = stats if stats is not None else Stats()

    def retrying(self, action: str, subsystem: str | None, attempt: t.Callable[[], T]) -> T:
        """Run ``attempt``: back off while busy, recover a corrupt provider cache once, raise
        :class:`ObjectVanished` for a vanished object, fail on everything else."""
        delays = self.policy.delays()
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
                                          % (self.policy.attempts, waited))
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
