# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""A file-backed stand-in for a VDS iSCSI hardware provider.

The state file (JSON, format version 1) describes subsystems, their portals, targets and portal
groups, plus the simulator's knobs: operation latency and injected faults. Every call takes the
lock, brings its copy of the state up to date, settles the operations that have completed, acts,
and persists what it changed before it returns, so parallel playbook runs behave like callers of
one provider.

A small file is rewritten atomically at each call that changes it. A large one would make every
call cost the size of the array, so a call appends its changes to a journal beside the file
(``<file>.journal``, one line per call, written before the call returns) and the journal is folded
into the file once it has grown as large as the file, and when the backend is closed. A process
keeps the state in memory between calls and reads only what others appended since.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import os
import time
import types
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.provider import Backend
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    VDS_E_OBJECT_NOT_FOUND,
    HResultError,
    NotFoundError,
    StateFileError,
    ValidationError,
    VdsError,
    is_success,
    parse_hresult,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    PORTAL_STATUSES,
    Portal,
    PortalAddress,
    PortalGroup,
    Snapshot,
    Subsystem,
    Target,
    normalize_iqn,
)

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._backends._simulator_changes import Calls
    from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
        Operation,
        OperationResult,
        OperationStatus,
    )

STATE_VERSION = 1
JOURNAL_VERSION = 1

#: Up to this size the state file is rewritten at every call that changes it, so that it always shows
#: the current state; above it, calls go to the journal (the rewrite would cost more than the call).
WRITE_THROUGH_BYTES = 16 * 1024

#: Operations that return an IVdsAsync: faults may fire at the call or at the wait.
ASYNC_OPERATIONS = ("AddPortal", "RemovePortal", "CreatePortalGroup", "DeletePortalGroup", "SetStatus")
#: Calls without an operation to wait on: faults fire at the call only.
CALL_ONLY_OPERATIONS = ("QueryPortalGroups", "Reenumerate", "Refresh", "Cancel")
FAULT_PHASES = ("call", "wait")

#: A finished operation nobody asked about (its caller died) is dropped after this many seconds.
OPERATION_RETENTION_S = 3600.0

MAX_TAG = 65535
_STATUSES = tuple(PORTAL_STATUSES.values())
SETTABLE_STATUSES = ("online", "offline")

_TOP_KEYS = ("version", "subsystems", "latency_ms", "faults", "count_reads", "calls", "operations")
_SUBSYSTEM_KEYS = ("name", "max_groups_per_target", "portals", "targets")
_PORTAL_KEYS = ("address", "status")
_TARGET_KEYS = ("iqn", "alias", "groups")
_GROUP_KEYS = ("tag", "portals")
_FAULT_KEYS = ("operation", "hresult", "times", "phase")
_OPERATION_REQUIRED = ("id", "name", "subsystem", "objects", "started_at", "completes_at")
_OPERATION_OPTIONAL = ("fault", "result", "finished_at")
# Fields each kind of persisted operation needs to be applied later.
_OPERATION_FIELDS = {
    "AddPortal": ("target", "tag", "portal"),
    "RemovePortal": ("target", "tag", "portal"),
    "CreatePortalGroup": ("target",),
    "DeletePortalGroup": ("target", "tag"),
    "SetStatus": ("portal", "status"),
}

# Natural keys: ("subsystem", name), ("target", name, iqn), ("portal", name, address),
# ("group", name, iqn, tag). Ids map to these, never the other way round in the file.
Key = t.Tuple[t.Any, ...]
Json = t.Dict[str, t.Any]
_T = t.TypeVar("_T")


class _Invalid(Exception):
    """A problem in the state file, located by a JSON path relative to the value being checked."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(problem)
        self.location = location
        self.problem = problem

    def under(self, parent: str) -> "_Invalid":
        """The same problem seen from the enclosing value (paths are built only on failure)."""
        if not self.location:
            return _Invalid(parent, self.problem)
        joiner = "" if self.location.startswith("[") else "."
        return _Invalid(parent + joiner + self.location, self.problem)


class State:
    """One loaded state file: the JSON data, normalised in place, and indexes of its objects."""

    def __init__(self, data: Json) -> None:
        self.data = data
        self.mode = 0o644
        self.objects: dict[Key, Json] = {}
        self.addresses: dict[str, PortalAddress] = {}
        #: (subsystem, iqn, address) -> tag of the group of that target holding the portal.
        self.holders: dict[t.Tuple[str, str, str], int] = {}
        self.now = 0.0
        #: The changes of the current call, as journal entries.
        self.log: list[list[t.Any]] = []
        #: Keys of objects deleted since the backend last looked.
        self.vanished: list[Key] = []
        #: Set by a call that tells its caller to wait (an operation still pending, a failure it may retry).
        self.caller_waits = False

    @property
    def operations(self) -> list[Json]:
        return self.data.get("operations", [])

    def group_holding(self, name: str, iqn: str, address: str) -> int | None:
        return self.holders.get((name, iqn, address))

    def change(self, name: str, *args: t.Any) -> None:
        """Apply one change and record it for the journal: every change of the state goes through here."""
        _changes().CHANGES[name](self, *args)
        self.log.append([name, *args])


# --- validation ------------------------------------------------------------------------------
# Each check raises _Invalid with a path relative to what it checks; callers prefix their part.


def _show(value: t.Any) -> str:
    return json.dumps(value)


def _kind(value: t.Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _in(location: str, check: t.Callable[..., _T], *args: t.Any) -> _T:
    try:
        return check(*args)
    except _Invalid as exc:
        raise exc.under(location) from None


def _each(owner: Json, key: str, check: t.Callable[..., t.Any], *args: t.Any) -> None:
    """Check each item of the optional array ``owner[key]``, replacing it by its normalised form."""
    items = _in(key, _array, owner.get(key, []))
    index = 0
    try:
        for index, item in enumerate(items):
            items[index] = check(item, *args)
    except _Invalid as exc:
        raise exc.under("%s[%d]" % (key, index)) from None


def _object(value: t.Any, allowed: t.Sequence[str] | None, required: t.Sequence[str] = ()) -> Json:
    """An object with only ``allowed`` keys (any key when None): typos must not pass silently."""
    if not isinstance(value, dict):
        raise _Invalid("", "expected an object, found %s" % _kind(value))
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise _Invalid(key, "unknown key (known keys: %s)" % ", ".join(sorted(allowed)))
    for key in required:
        if key not in value:
            raise _Invalid(key, "missing (required)")
    return value


def _array(value: t.Any) -> list[t.Any]:
    if not isinstance(value, list):
        raise _Invalid("", "expected an array, found %s" % _kind(value))
    return value


def _string(value: t.Any, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Invalid("", "expected a string, found %s" % _kind(value))
    if not allow_empty and not value.strip():
        raise _Invalid("", "must not be empty")
    return value


def _integer(value: t.Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("", "%s is not an integer" % _show(value))
    if high is not None and not low <= value <= high:
        raise _Invalid("", "%d is outside %d..%d" % (value, low, high))
    if value < low:
        raise _Invalid("", "%d is below %d" % (value, low))
    return value


def _number(value: t.Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid("", "%s is not a number" % _show(value))
    if value < 0:
        raise _Invalid("", "%s is below 0" % _show(value))
    return value


def _hresult(value: t.Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Invalid("", "expected an HRESULT name or number, found %s" % _kind(value))
    try:
        return parse_hresult(value)
    except ValueError as exc:
        raise _Invalid("", str(exc)) from None


def _choice(value: t.Any, choices: t.Sequence[str], what: str) -> str:
    if value not in choices:
        raise _Invalid("", "%s is not %s (one of: %s)" % (_show(value), what, ", ".join(choices)))
    return value


def _iqn(value: t.Any) -> str:
    try:
        return normalize_iqn(value)
    except ValidationError as exc:
        raise _Invalid("", exc.message) from None


@functools.lru_cache(maxsize=65536)
def _parse_address(text: str) -> PortalAddress:
    # Every call validates the whole file again: parse each distinct address once per process.
    return PortalAddress.parse(text)


def _address(value: t.Any, state: State) -> str:
    """The normalised text of a portal address (``10.0.0.1`` -> ``10.0.0.1:3260``)."""
    if isinstance(value, str) and value in state.addresses:
        return value
    try:
        address = _parse_address(value) if isinstance(value, str) else PortalAddress.parse(value)
    except ValidationError as exc:
        raise _Invalid("", exc.message) from None
    text = str(address)
    state.addresses[text] = address
    return text


def _check_subsystem(sub: t.Any, state: State) -> Json:
    _object(sub, _SUBSYSTEM_KEYS, ("name",))
    name = _in("name", _string, sub["name"])
    if ("subsystem", name) in state.objects:
        raise _Invalid("name", "%s names two subsystems; names must be unique" % _show(name))
    state.objects[("subsystem", name)] = sub
    if "max_groups_per_target" in sub:
        _in("max_groups_per_target", _integer, sub["max_groups_per_target"], 0)
    _each(sub, "portals", _check_portal, name, state)
    _each(sub, "targets", _check_target, name, state)
    return sub


def _check_portal(portal: t.Any, name: str, state: State) -> Json:
    _object(portal, _PORTAL_KEYS, ("address",))
    address = _in("address", _address, portal["address"], state)
    if ("portal", name, address) in state.objects:
        raise _Invalid("address", "portal %s is listed twice in subsystem %s" % (address, name))
    portal["address"] = address
    state.objects[("portal", name, address)] = portal
    if "status" in portal:
        _in("status", _choice, portal["status"], _STATUSES, "a portal status")
    return portal


def _check_target(target: t.Any, name: str, state: State) -> Json:
    _object(target, _TARGET_KEYS, ("iqn",))
    iqn = _in("iqn", _iqn, target["iqn"])
    if ("target", name, iqn) in state.objects:
        raise _Invalid("iqn", "target %s is listed twice in subsystem %s" % (iqn, name))
    target["iqn"] = iqn
    state.objects[("target", name, iqn)] = target
    if "alias" in target:
        _in("alias", _string, target["alias"], True)
    _each(target, "groups", _check_group, name, iqn, state)
    if "groups" in target:
        target["groups"].sort(key=lambda group: group["tag"])
    return target


def _check_group(group: t.Any, name: str, iqn: str, state: State) -> Json:
    _object(group, _GROUP_KEYS, ("tag",))
    tag = _in("tag", _integer, group["tag"], 1, MAX_TAG)
    if ("group", name, iqn, tag) in state.objects:
        raise _Invalid("tag", "tag %d is used by two groups of target %s" % (tag, iqn))
    state.objects[("group", name, iqn, tag)] = group
    _each(group, "portals", _check_member, name, iqn, tag, state)
    return group


def _check_member(value: t.Any, name: str, iqn: str, tag: int, state: State) -> str:
    address = _address(value, state)
    if ("portal", name, address) not in state.objects:
        raise _Invalid("", "%s is not a portal of subsystem %s; list it under its portals first" % (address, name))
    holder = state.holders.get((name, iqn, address))
    if holder is not None:
        raise _Invalid("", "portal %s is already in group %d of this target; a portal belongs to at most one "
                       "group of a target" % (address, holder))
    state.holders[(name, iqn, address)] = tag
    return address


def _check_fault(fault: t.Any) -> Json:
    _object(fault, _FAULT_KEYS, ("operation", "hresult"))
    operation = _in("operation", _choice, fault["operation"], ASYNC_OPERATIONS + CALL_ONLY_OPERATIONS,
                    "an operation the simulator runs")
    _in("hresult", _hresult, fault["hresult"])
    if "times" in fault:
        _in("times", _integer, fault["times"], 1)
    if "phase" in fault:
        phase = _in("phase", _choice, fault["phase"], FAULT_PHASES, "a fault phase")
        if phase == "wait" and operation in CALL_ONLY_OPERATIONS:
            raise _Invalid("phase", "%s returns no operation to wait on; use phase \"call\"" % operation)
    return fault


def _check_operation(record: t.Any) -> Json:
    # Written by the simulator, but a hand edit must not let a later apply corrupt the file.
    name = _in("name", _choice, _object(record, None, ("name",))["name"], ASYNC_OPERATIONS,
               "an asynchronous operation")
    fields = _OPERATION_FIELDS[name]
    created = ("group_tag",) if name == "CreatePortalGroup" else ()
    _object(record, _OPERATION_REQUIRED + _OPERATION_OPTIONAL + fields + created, _OPERATION_REQUIRED + fields)
    _in("id", _string, record["id"])
    for key in ("subsystem", "target", "portal"):
        if key in record:
            _in(key, _string, record[key])
    if "status" in record:
        _in("status", _choice, record["status"], SETTABLE_STATUSES, "a status SetStatus sets")
    for key in ("tag", "group_tag"):
        if key in record:
            _in(key, _integer, record[key], 1, MAX_TAG)
    for key in ("started_at", "completes_at", "finished_at"):
        if key in record:
            _in(key, _number, record[key])
    for key in ("fault", "result"):
        if key in record:
            _in(key, _hresult, record[key])
    if "result" in record and "finished_at" not in record:
        raise _Invalid("finished_at", "missing (required once the operation has a result)")
    _each(record, "objects", _check_object_key)
    return record


def _check_object_key(key: t.Any) -> list[t.Any]:
    if not isinstance(key, list) or not key or not all(
            isinstance(part, (str, int)) and not isinstance(part, bool) for part in key):
        raise _Invalid("", "expected an object key such as [\"portal\", subsystem, address]")
    return key


def _check(data: t.Any) -> State:
    """Validate a parsed state file, normalise it in place and index its objects."""
    _object(data, _TOP_KEYS, ("version", "subsystems"))
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != STATE_VERSION:
        raise _Invalid("version", "%s is not supported; this simulator reads version %d"
                       % (_show(version), STATE_VERSION))
    state = State(data)
    _each(data, "subsystems", _check_subsystem, state)
    if "latency_ms" in data:
        _in("latency_ms", _number, data["latency_ms"])
    if "count_reads" in data and not isinstance(data["count_reads"], bool):
        raise _Invalid("count_reads", "expected true or false, found %s" % _kind(data["count_reads"]))
    _each(data, "faults", _check_fault)
    for name, count in _in("calls", _object, data.get("calls", {}), None).items():
        _in("calls." + name, _integer, count, 0)
    _each(data, "operations", _check_operation)
    return state


def _unique_keys(pairs: list[tuple[str, t.Any]]) -> Json:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _Invalid("", "key %s appears twice in one object" % _show(key))
            seen.add(key)
    return result


def _read(path: str, shown: str) -> t.Tuple[bytes, int]:
    """The bytes and permission bits of the file at ``path``; ``shown``: the path as the user gave it."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode & 0o7777
            return handle.read(), mode
    except FileNotFoundError:
        raise StateFileError("simulator state file %s does not exist: write one (format version %d) to describe "
                             "the simulated arrays" % (shown, STATE_VERSION), path=shown) from None
    except OSError as exc:
        raise StateFileError("cannot read simulator state file %s: %s" % (shown, exc.strerror), path=shown) from None


def _parse(raw: bytes, path: str) -> State:
    try:
        # utf-8-sig: editors on Windows like to start the file with a byte-order mark.
        return _check(json.loads(raw.decode("utf-8-sig"), object_pairs_hook=_unique_keys))
    except UnicodeDecodeError as exc:
        raise StateFileError("simulator state file %s is not UTF-8 text (byte %d)" % (path, exc.start),
                             path=path) from None
    except json.JSONDecodeError as exc:
        raise StateFileError("simulator state file %s is not valid JSON: line %d column %d: %s"
                             % (path, exc.lineno, exc.colno, exc.msg), path=path) from None
    except RecursionError:
        # The decoder recurses per nesting level; no state file nests more than a few levels.
        raise StateFileError("simulator state file %s is not valid JSON: arrays or objects are nested too deeply"
                             % path, path=path) from None
    except _Invalid as exc:
        where = "%s: " % exc.location if exc.location else ""
        raise StateFileError("simulator state file %s: %s%s" % (path, where, exc.problem),
                             path=path, location=exc.location) from None


def read_state(path: str) -> Json:
    """The validated, normalised state (no lock needed: the file is replaced atomically and a journal line
    counts only once complete)."""
    real = os.path.realpath(path)
    raw, _mode = _read(real, path)
    state = _parse(raw, path)
    with contextlib.suppress(FileNotFoundError):
        with open(real + ".journal", "rb") as handle:
            journal = handle.read()
        header = _changes().journal_header(raw)
        # A journal of another content of the file was folded in already, or the file was replaced since.
        if journal.startswith(header):
            _changes().replay(state, journal[len(header):], len(header), real + ".journal")
    return state.data


def new_guid() -> str:
    """A random GUID (version 4), as VDS hands out; made here since the uuid module costs each module
    execution a millisecond to import."""
    value = int.from_bytes(os.urandom(16), "big")
    value = (value & ~(0xF000 << 64) | (4 << 76)) & ~(0xC000 << 48) | (0x8000 << 48)
    text = "%032x" % value
    return "%s-%s-%s-%s-%s" % (text[:8], text[8:12], text[12:16], text[16:20], text[20:])


def _identity(stat: os.stat_result) -> t.Tuple[int, ...]:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _changes() -> types.ModuleType:
    """The half of the simulator that changes the state (:mod:`._simulator_changes`: the calls that start,
    follow and cancel operations, and the changes they make), loaded at the first change or operation of an
    execution: a run that only reads does not compile it."""
    from ansible_collections.storage.vds.plugins.module_utils._backends import _simulator_changes

    return _simulator_changes


# --- the backend -----------------------------------------------------------------------------


class SimulatorBackend(Backend):
    """A VDS iSCSI hardware provider simulated in a JSON state file."""

    assigns_tags = True

    def __init__(self, state_path: str, now: t.Callable[[], float] = time.time,
                 sleep: t.Callable[[float], None] = time.sleep) -> None:
        if not isinstance(state_path, str) or not state_path:
            raise StateFileError("simulator_state is empty: give the path of the simulator's state file", path=state_path)
        self.state_path = state_path
        self._now = now
        self._sleep = sleep
        # Ids live only in this instance, like VDS ids that do not survive a service restart.
        self._ids: dict[Key, str] = {}
        self._keys: dict[str, Key] = {}
        self._operations: Calls | None = None
        # The state as of the last call, and what it was read from: the state file's bytes and identity,
        # and how much of the journal it includes.
        self._state: State | None = None
        self._raw = b""
        self._file: t.Tuple[int, ...] = ()
        self._journal = 0
        # Inside executing(): a small file's calls go to the journal too, and it is rewritten once.
        self._deferring = False

    # -- session: lock, bring the state up to date, settle, act, persist --

    @contextlib.contextmanager
    def _locked(self) -> t.Iterator[str]:
        """Hold the lock of the state file; yield the file's real path."""
        # A symlinked state file is the file it points to: lock and replace that one, beside it.
        real = os.path.realpath(self.state_path)
        if not os.path.exists(real):
            _read(real, self.state_path)  # reports the missing file before a lock file is made for it
        lock_path = real + ".lock"
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise StateFileError("cannot open the simulator lock file %s: %s" % (lock_path, exc.strerror),
                                 path=self.state_path) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield real
        finally:
            os.close(lock)  # closing the descriptor releases the flock

    @contextlib.contextmanager
    def session(self) -> t.Iterator[State]:
        with self._locked() as real:
            try:
                state = self._current(real)
                state.now = self._now()
                self._settle(state)
                for key in state.vanished:
                    # A new object under the same natural key must get a new id, as a recreated VDS object does.
                    self._ids.pop(key, None)
                state.vanished = []
                state.caller_waits = False
                try:
                    yield state
                except VdsError:
                    # An expected failure still counts its call and consumes its fault; its caller may wait and retry.
                    state.caller_waits = True
                    self._persist(real, state)
                    raise
                self._persist(real, state)
            except BaseException:
                # Whatever this call changed in memory only is dropped: the next call reads the files again.
                self._state = None
                raise

    def _current(self, real: str) -> State:
        """The state as the files hold it now: the copy in memory when nobody changed the files since, with
        the journal lines others appended, or read again."""
        try:
            file = _identity(os.stat(real))
        except OSError:
            file = ()
        journal = _size(real + ".journal")
        state = self._state
        # A small file may be edited by hand within one tick of its timestamps: compare its bytes.
        if state is not None and file == self._file and journal >= self._journal and (
                file[1] > WRITE_THROUGH_BYTES or _read(real, self.state_path)[0] == self._raw):
            if journal > self._journal:
                self._catch_up(real, state)
            return state
        raw, mode = _read(real, self.state_path)
        state = _parse(raw, self.state_path)
        state.mode = mode
        self._state, self._raw, self._file, self._journal = state, raw, file, 0
        if journal:
            self._catch_up(real, state)
        # Objects that are gone from the file: their ids are of deleted objects from now on.
        state.vanished = [key for key in self._ids if key not in state.objects]
        return state

    def _catch_up(self, real: str, state: State) -> None:
        """Apply the journal lines appended since this copy was made; drop what no call completed."""
        path = real + ".journal"
        try:
            with open(path, "rb") as handle:
                start = self._journal
                if not start:
                    header = _changes().journal_header(self._raw)
                    if handle.read(len(header)) != header:
                        os.unlink(path)  # already folded into the state file, or the file was replaced since
                        return
                    start = len(header)
                # Only what was appended since this copy was brought up to date.
                handle.seek(start)
                lines = handle.read()
            end = start + _changes().replay(state, lines, start, path)
            if end < start + len(lines):
                # The end of a line whose writer died before finishing it (the lock is ours now).
                os.truncate(path, end)
        except OSError as exc:
            raise StateFileError("cannot read or repair simulator journal %s: %s" % (path, exc.strerror),
                                 path=path) from None
        self._journal = end

    def _persist(self, real: str, state: State) -> None:
        """Make this call's changes durable before it returns: rewrite a small file, journal a large one. Inside
        :meth:`executing` a small file is journalled too, and folded in as soon as the caller is told to wait."""
        size = self._file[1] if self._file else 0
        if not state.log:
            if state.caller_waits and self._deferring and self._journal and size <= WRITE_THROUGH_BYTES:
                self._fold(real, state)
            return
        changes, state.log = state.log, []
        if (size <= WRITE_THROUGH_BYTES and (state.caller_waits or not self._deferring)) or self._journal >= size:
            self._fold(real, state)
            return
        line = json.dumps(changes, separators=(",", ":")).encode() + b"\n"
        path = real + ".journal"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        if not self._journal:
            line = _changes().journal_header(self._raw) + line
            flags |= os.O_TRUNC
        try:
            fd = os.open(path, flags, state.mode)
            try:
                # Written, not flushed to disk: a process killed at any moment loses nothing it reported, and a
                # flush per call would cost more than the call. The fold flushes everything.
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateFileError("cannot write simulator journal %s: %s" % (path, exc.strerror), path=path) from None
        self._journal += len(line)

    def _fold(self, real: str, state: State) -> None:
        """Rewrite the state file with everything, then drop the journal it now includes."""
        raw = _changes().serialise(state)
        # Only a rewrite that drops a journal goes to disk first: a flush per call would cost more than the call,
        # and like a journal line, a rewrite survives the death of the process without it.
        _changes().write_file(real, raw, state.mode, self.state_path, flush=bool(self._journal))
        if self._journal:
            # The new file must be on disk before the journal goes; should this process die in between, the
            # journal names the previous content and is ignored.
            _changes().sync_directory(real, self.state_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(real + ".journal")
        self._raw, self._file, self._journal = raw, _identity(os.stat(real)), 0

    @contextlib.contextmanager
    def executing(self) -> t.Iterator[None]:
        """The engine's steps come back to back: journal them whatever the file's size, and fold the journal in when
        they end, so that a small file is rewritten once rather than at every call."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            self.close()

    def close(self) -> None:
        """Fold the journal into the state file, so that the file alone shows the state again."""
        if self._state is None or not self._journal:
            return
        try:
            with self._locked() as real:
                state = self._current(real)
                if self._journal:
                    self._fold(real, state)
        except VdsError:
            # Every call is in the journal still; the next execution on the file folds it in.
            self._state = None

    def _settle(self, state: State) -> None:
        """Apply every operation that has completed by now; there are only any while operations run."""
        if state.operations:
            self._calls().settle(state)

    # -- ids --

    def object_id(self, key: Key) -> str:
        """The id of an object, made at first sight: ids live only in this instance."""
        object_id = self._ids.get(key)
        if object_id is None:
            object_id = new_guid()
            self._ids[key] = object_id
            self._keys[object_id] = key
        return object_id

    def resolve(self, state: State, object_id: str, kind: str, action: str, gone: int) -> Key:
        """Map an id back to its object: unknown ids are not found, ids of vanished objects are ``gone``."""
        key = self._keys.get(object_id)
        if key is None or key[0] != kind:
            raise HResultError(VDS_E_OBJECT_NOT_FOUND, action, "call", object_id=object_id)
        if self._ids.get(key) != object_id or key not in state.objects:
            raise HResultError(gone, action, "call", object_id=object_id)
        return key

    # -- Backend interface: reading here, the calls that start, follow or cancel operations in the other half --

    def snapshot(self, subsystem: str | None = None) -> Snapshot:
        with self.session() as state:
            subsystems = state.data["subsystems"]
            if subsystem is not None:
                subsystems = [known_subsystem(state, subsystem)]
            if subsystems and state.data.get("count_reads"):
                # Only when asked: a provider's reads change nothing, and a run that changes nothing writes nothing.
                state.change("count", "Snapshot", len(subsystems))
            call_fault(state, "QueryPortalGroups")
            return Snapshot(tuple(self._view(state, sub) for sub in subsystems))

    def _view(self, state: State, sub: Json) -> Subsystem:
        name = sub["name"]
        portals = sorted((Portal(self.object_id(("portal", name, portal["address"])),
                                 state.addresses[portal["address"]], portal.get("status", "online"))
                          for portal in sub.get("portals", [])), key=lambda portal: portal.address)
        targets = tuple(
            Target(self.object_id(("target", name, target["iqn"])), target["iqn"], target.get("alias", ""),
                   tuple(PortalGroup(self.object_id(("group", name, target["iqn"], group["tag"])), group["tag"],
                                     frozenset(state.addresses[address] for address in group.get("portals", [])))
                         for group in target.get("groups", [])))
            for target in sub.get("targets", []))
        return Subsystem(self.object_id(("subsystem", name)), name, tuple(portals), targets)

    def _calls(self) -> Calls:
        if self._operations is None:
            self._operations = _changes().Calls(self, self._sleep)
        return self._operations

    def add_portal(self, group_id: str, portal_id: str) -> Operation:
        return self._calls().membership("AddPortal", group_id, portal_id)

    def remove_portal(self, group_id: str, portal_id: str) -> Operation:
        return self._calls().membership("RemovePortal", group_id, portal_id)

    def create_group(self, target_id: str, tag: int | None = None) -> Operation:
        return self._calls().create_group(target_id, tag)

    def delete_group(self, group_id: str) -> Operation:
        return self._calls().delete_group(group_id)

    def set_portal_status(self, portal_id: str, status: str) -> Operation:
        return self._calls().set_portal_status(portal_id, status)

    def query_status(self, operation: Operation) -> OperationStatus:
        return self._calls().query_status(operation)

    def result(self, operation: Operation) -> OperationResult:
        return self._calls().result(operation)

    def cancel(self, operation: Operation) -> int:
        return self._calls().cancel(operation)

    def recover_cache(self, subsystem: str | None) -> None:
        return self._calls().recover_cache(subsystem)


def consume_fault(state: State, name: str, phase: str) -> int | None:
    """Fire the first fault listed for this operation and phase, if any."""
    for index, fault in enumerate(state.data.get("faults", [])):
        if fault["operation"] == name and fault.get("phase", "call") == phase:
            hresult = parse_hresult(fault["hresult"])
            state.change("fault", index)
            return hresult
    return None


def call_fault(state: State, name: str) -> int | None:
    """A call-phase fault: an error fails the call, a success code is passed on to the operation."""
    hresult = consume_fault(state, name, "call")
    if hresult is not None and not is_success(hresult):
        raise HResultError(hresult, name, "call", injected=True)
    return hresult


def known_subsystem(state: State, name: str) -> Json:
    found = state.objects.get(("subsystem", name))
    if found is None:
        known = ", ".join(sorted(sub["name"] for sub in state.data["subsystems"])) or "(none)"
        raise NotFoundError("subsystem %r does not exist; known subsystems: %s" % (name, known), subsystem=name)
    return found
