# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The interface every backend implements, owned by the engine that uses it: backends import it, and
nothing in ``_vds`` imports a backend.

A backend speaks VDS semantics with provider ids: the engine plans and orders the steps and calls the
backend once per step. Every mutating call returns an :class:`Operation` (the counterpart of
``IVdsAsync``) or raises :class:`~..._vds.errors.HResultError` with ``phase="call"`` when the method
itself fails. The one place a backend sees planned steps is :meth:`Backend.review`, where it refuses,
before anything changes, what its provider is known to reject.
"""

from __future__ import annotations

import abc
import contextlib
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.model import Snapshot, Subsystem, Target, Value

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._vds.plan import Step


class OperationResult(Value):
    """What ``IVdsAsync::Wait`` yields for a finished operation."""

    __slots__ = _fields = ("call_hresult", "operation_hresult", "group_id", "group_tag")
    call_hresult: int                 # Wait's own HRESULT
    operation_hresult: int            # *pHrResult: the operation's outcome
    group_id: str | None              # CreatePortalGroup: the group obtained
    group_tag: int | None

    def __init__(self, call_hresult: int, operation_hresult: int, group_id: str | None = None,
                 group_tag: int | None = None) -> None:
        super().__init__(call_hresult, operation_hresult, group_id, group_tag)


class Operation(Value):
    """A handle on one asynchronous provider operation."""

    __slots__ = _fields = ("id", "name", "objects")
    id: str
    name: str                         # AddPortal, RemovePortal, CreatePortalGroup, ...
    objects: t.Tuple[str, ...]        # provider ids the operation touches

    def __init__(self, id: str, name: str, objects: t.Tuple[str, ...] = ()) -> None:
        super().__init__(id, name, objects)


class OperationStatus(Value):
    """What ``IVdsAsync::QueryStatus`` yields: pending while ``hresult`` is VDS_E_OPERATION_PENDING."""

    __slots__ = _fields = ("hresult", "percent")
    hresult: int
    percent: int

    def __init__(self, hresult: int, percent: int) -> None:
        super().__init__(hresult, percent)


class Backend(abc.ABC):
    """One provider (a host's VDS service, a simulator file, a LIO kernel target)."""

    #: True when the provider picks the tag of a new group (VDS): a requested tag cannot be honoured.
    assigns_tags: bool = True
    #: What the user should know that does not stop the task; the module runner shows them as warnings.
    warnings: t.Sequence[str] = ()

    @abc.abstractmethod
    def snapshot(self, subsystem: str | None = None) -> Snapshot:
        """Read subsystems, their portals, targets and groups (one read per subsystem)."""

    @abc.abstractmethod
    def add_portal(self, group_id: str, portal_id: str) -> Operation:
        """IVdsIscsiPortalGroup::AddPortal."""

    @abc.abstractmethod
    def remove_portal(self, group_id: str, portal_id: str) -> Operation:
        """IVdsIscsiPortalGroup::RemovePortal."""

    @abc.abstractmethod
    def create_group(self, target_id: str, tag: int | None = None) -> Operation:
        """IVdsIscsiTarget::CreatePortalGroup (``tag`` only where ``assigns_tags`` is False)."""

    @abc.abstractmethod
    def delete_group(self, group_id: str) -> Operation:
        """IVdsIscsiPortalGroup::Delete."""

    @abc.abstractmethod
    def set_portal_status(self, portal_id: str, status: str) -> Operation:
        """IVdsIscsiPortal::SetStatus (``online`` or ``offline``)."""

    @abc.abstractmethod
    def query_status(self, operation: Operation) -> OperationStatus:
        """IVdsAsync::QueryStatus: never blocks."""

    @abc.abstractmethod
    def result(self, operation: Operation) -> OperationResult:
        """IVdsAsync::Wait: blocks until the operation finishes (the engine calls it once QueryStatus says so)."""

    @abc.abstractmethod
    def cancel(self, operation: Operation) -> int:
        """IVdsAsync::Cancel; returns its HRESULT (providers often answer VDS_E_NOT_SUPPORTED)."""

    @abc.abstractmethod
    def recover_cache(self, subsystem: str | None) -> None:
        """IVdsHwProvider::Reenumerate then Refresh of the provider owning ``subsystem`` (a name;
        None: every provider), after VDS_E_PROVIDER_CACHE_CORRUPT."""

    def review(self, subsystem: Subsystem, target: Target, steps: t.Sequence[Step]) -> None:
        """Refuse, before anything changes, a plan this provider is known to reject (raise a VdsError).

        Called with every plan, in check mode too, so that check mode predicts the real run.
        """

    @contextlib.contextmanager
    def executing(self) -> t.Iterator[None]:
        """Brackets the execution of planned steps: the engine makes their calls back to back inside it. A backend
        may keep their effects in a cheaper durable form until the block ends or a call tells its caller to wait
        (the simulator journals them and rewrites its state file once)."""
        yield

    def finish(self) -> dict[str, t.Any]:
        """After the task's work, successful or not: persist what the provider needs; extra result keys."""
        return {}

    def close(self) -> None:
        """Release what the backend holds (sessions, handles, locks)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        self.close()
