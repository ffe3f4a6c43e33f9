# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""HRESULT table, classification and the typed exceptions of the engine.

Nothing here imports Ansible: only the module runner (``_runner.py``) turns these exceptions into ``fail_json``.
"""

from __future__ import annotations

import typing as t


class HResult(t.NamedTuple):
    name: str
    value: int
    meaning: str


_TABLE = (
    HResult("S_OK", 0x00000000, "the operation succeeded"),
    HResult("VDS_S_ALREADY_EXISTS", 0x00042714,
            "no more portal groups can be created for this target; the provider returned an existing group"),
    HResult("VDS_S_PROPERTIES_INCOMPLETE", 0x00042715, "some properties could not be read"),
    HResult("VDS_E_NOT_SUPPORTED", 0x80042400, "the operation is not supported by the provider"),
    HResult("VDS_E_INITIALIZE_NOT_CALLED", 0x80042402, "the provider is not initialised"),
    HResult("VDS_E_ANOTHER_CALL_IN_PROGRESS", 0x80042404,
            "another operation is in progress on this object; retry after it completes"),
    HResult("VDS_E_OBJECT_NOT_FOUND", 0x80042405, "the portal id does not refer to an existing object"),
    HResult("VDS_E_OPERATION_PENDING", 0x80042409, "the operation is still running"),
    HResult("VDS_E_OBJECT_DELETED", 0x8004240B, "the object (portal group or target) no longer exists"),
    HResult("VDS_E_CANCEL_TOO_LATE", 0x8004240C, "the operation is too far along to be cancelled"),
    HResult("VDS_E_OPERATION_CANCELED", 0x8004240D, "the operation was cancelled"),
    HResult("VDS_E_OBJECT_EXISTS", 0x8004241D, "the object already exists"),
    HResult("VDS_E_PROVIDER_CACHE_CORRUPT", 0x8004241F,
            "the provider's cache is corrupt; the provider must be re-enumerated and refreshed"),
    HResult("VDS_E_ACCESS_DENIED", 0x80042427,
            "access denied: the caller must be a member of Administrators or Backup Operators"),
    HResult("VDS_E_OBJECT_STATUS_FAILED", 0x80042431, "the provider is in a failed state"),
    HResult("VDS_E_PROVIDER_FAILURE", 0x80042442, "the provider failed the operation"),
    HResult("VDS_E_ASYNC_OBJECT_FAILURE", 0x8004244E, "the asynchronous operation object could not be initialised"),
    HResult("VDS_E_TIMEOUT", 0x8004245F, "the operation timed out in the provider"),
    HResult("VDS_E_RETRY", 0x80042463, "the operation failed and may be retried"),
    HResult("VDS_E_ASSOCIATED_PORTALS_EXIST", 0x8004270C,
            "the portal group still has portals; remove every portal before deleting it"),
    HResult("VDS_E_TARGET_PORTAL_NOT_FOUND", 0x80042901, "the target portal was not found"),
    HResult("VDS_E_INVALID_IP_ADDRESS", 0x8004290B, "the IP address is not valid"),
    HResult("VDS_E_INVALID_STATE", 0x80042A05, "the object is not in a state that permits the operation"),
    HResult("E_INVALIDARG", 0x80070057, "an argument is not valid"),
    HResult("E_OUTOFMEMORY", 0x8007000E, "out of memory"),
    HResult("E_ACCESSDENIED", 0x80070005, "access denied"),
)

BY_NAME: dict[str, HResult] = {entry.name: entry for entry in _TABLE}
BY_VALUE: dict[int, HResult] = {entry.value: entry for entry in _TABLE}

S_OK = 0x00000000
VDS_S_ALREADY_EXISTS = BY_NAME["VDS_S_ALREADY_EXISTS"].value
VDS_E_NOT_SUPPORTED = BY_NAME["VDS_E_NOT_SUPPORTED"].value
VDS_E_ANOTHER_CALL_IN_PROGRESS = BY_NAME["VDS_E_ANOTHER_CALL_IN_PROGRESS"].value
VDS_E_OBJECT_NOT_FOUND = BY_NAME["VDS_E_OBJECT_NOT_FOUND"].value
VDS_E_OPERATION_PENDING = BY_NAME["VDS_E_OPERATION_PENDING"].value
VDS_E_OBJECT_DELETED = BY_NAME["VDS_E_OBJECT_DELETED"].value
VDS_E_CANCEL_TOO_LATE = BY_NAME["VDS_E_CANCEL_TOO_LATE"].value
VDS_E_OPERATION_CANCELED = BY_NAME["VDS_E_OPERATION_CANCELED"].value
VDS_E_OBJECT_EXISTS = BY_NAME["VDS_E_OBJECT_EXISTS"].value
VDS_E_PROVIDER_CACHE_CORRUPT = BY_NAME["VDS_E_PROVIDER_CACHE_CORRUPT"].value
VDS_E_RETRY = BY_NAME["VDS_E_RETRY"].value
VDS_E_ASSOCIATED_PORTALS_EXIST = BY_NAME["VDS_E_ASSOCIATED_PORTALS_EXIST"].value
VDS_E_INVALID_STATE = BY_NAME["VDS_E_INVALID_STATE"].value


def to_unsigned(value: int) -> int:
    """HRESULTs arrive signed from COM and unsigned from JSON: compare them as 32-bit unsigned."""
    return value & 0xFFFFFFFF


def is_success(value: int) -> bool:
    """Severity bit clear: S_OK and every ``VDS_S_*`` code are successes."""
    return not to_unsigned(value) & 0x80000000


def parse_hresult(text: str | int) -> int:
    """Read an HRESULT given by name (``VDS_E_RETRY``) or as a 32-bit number (``0x80042463``)."""
    if isinstance(text, str):
        entry = BY_NAME.get(text.strip().upper())
        if entry is not None:
            return entry.value
        try:
            number = int(text.strip(), 0)
        except ValueError:
            raise ValueError("unknown HRESULT %r: give a name from the return-code table (for example "
                             "VDS_E_RETRY) or a number such as 0x80042463" % text) from None
    elif isinstance(text, bool):
        raise ValueError("an HRESULT cannot be a boolean")
    elif isinstance(text, int):
        number = text
    else:
        raise ValueError("an HRESULT is a name or a number, not %r" % (text,))
    if not -0x80000000 <= number <= 0xFFFFFFFF:
        raise ValueError("HRESULT %r does not fit in 32 bits" % (text,))
    return to_unsigned(number)


def describe(value: int) -> str:
    """``VDS_E_OBJECT_NOT_FOUND (0x80042405): the portal id does not refer to an existing object``."""
    value = to_unsigned(value)
    entry = BY_VALUE.get(value)
    if entry is None:
        kind = "success" if is_success(value) else "error"
        return "0x%08X: an HRESULT this collection does not know (%s); see the provider's documentation" % (
            value, kind)
    return "%s (0x%08X): %s" % (entry.name, value, entry.meaning)


def hresult_name(value: int) -> str:
    entry = BY_VALUE.get(to_unsigned(value))
    return entry.name if entry else "0x%08X" % to_unsigned(value)


class Handling:
    """What the executor does with a failed call or operation; compare with ``is``.

    Plain constants rather than an Enum: every module execution defines this class again, and an Enum
    costs several times more to define.
    """

    RETRY = "retry"                  # busy or transient: back off and call again
    RECOVER_CACHE = "recover_cache"  # Reenumerate + Refresh the provider, then one retry
    REREAD = "reread"                # object vanished: read state again and re-plan once
    FAIL = "fail"


_HANDLING = {
    VDS_E_ANOTHER_CALL_IN_PROGRESS: Handling.RETRY,
    VDS_E_RETRY: Handling.RETRY,
    VDS_E_PROVIDER_CACHE_CORRUPT: Handling.RECOVER_CACHE,
    VDS_E_OBJECT_DELETED: Handling.REREAD,
}


def classify(value: int) -> str:
    return _HANDLING.get(to_unsigned(value), Handling.FAIL)


class VdsError(Exception):
    """Base of every expected failure; ``str()`` is the message shown to the user."""

    def __init__(self, message: str, **details: t.Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def amend(self, note: str) -> "VdsError":
        """Append what the engine learned after the failure (rollback, state read again)."""
        self.message = "%s; %s" % (self.message, note)
        return self


class ValidationError(VdsError):
    """Bad input, found before anything is touched."""


class NotFoundError(VdsError):
    """A target, subsystem, group or portal named by the user does not exist."""


class IdentityError(VdsError):
    """The declaration cannot be mapped onto the provider without lying about identity."""


class BackendUnavailable(VdsError):
    """The selected backend cannot run here (missing library, not implemented, unreachable)."""


class StateFileError(VdsError):
    """The simulator's state file cannot be read or is not valid."""


class HResultError(VdsError):
    """A provider call or the asynchronous operation behind it failed with an HRESULT."""

    def __init__(self, hresult: int, action: str = "", phase: str = "call", **details: t.Any) -> None:
        self.hresult = to_unsigned(hresult)
        self.action = action
        self.phase = phase
        prefix = "%s: " % action if action else ""
        super().__init__(prefix + describe(self.hresult), hresult="0x%08X" % self.hresult,
                         hresult_name=hresult_name(self.hresult), phase=phase, **details)

    @property
    def handling(self) -> str:
        return classify(self.hresult)

    def with_action(self, action: str) -> "HResultError":
        """The same failure, told with what the engine was doing."""
        return HResultError(self.hresult, action, self.phase, **_without_hresult_keys(self.details))


def _without_hresult_keys(details: dict[str, t.Any]) -> dict[str, t.Any]:
    return {key: value for key, value in details.items() if key not in ("hresult", "hresult_name", "phase")}


class WaitTimeout(VdsError):
    """An asynchronous operation did not finish within ``wait_timeout``."""
