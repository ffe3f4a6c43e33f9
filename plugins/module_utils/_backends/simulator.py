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

from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
    Backend,
    Operation,
    OperationResult,
    OperationStatus,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BY_NAME,
    S_OK,
    VDS_E_ANOTHER_CALL_IN_PROGRESS,
    VDS_E_CANCEL_TOO_LATE,
    VDS_E_OBJECT_DELETED,
    VDS_E_OBJECT_NOT_FOUND,
    VDS_E_OPERATION_CANCELED,
    VDS_E_OPERATION_PENDING,
    VDS_S_ALREADY_EXISTS,
    HResultError,
    NotFoundError,
    StateFileError,
    ValidationError,
    VdsError,
    hresult_name,
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

_E_INVALIDARG = BY_NAME["E_INVALIDARG"].value
MAX_TAG = 65535
_STATUSES = tuple(PORTAL_STATUSES.values())
_SETTABLE_STATUSES = ("online", "offline")

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
_Key = t.Tuple[t.Any, ...]
Json = t.Dict[str, t.Any]
_T = t.TypeVar("_T")


class _Outcome(t.NamedTuple):
    """The final result of an operation this instance has collected."""

    hresult: int
    group: _Key | None = None


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
        self.objects: dict[_Key, Json] = {}
        self.addresses: dict[str, PortalAddress] = {}
        #: (subsystem, iqn, address) -> tag of the group of that target holding the portal.
        self.holders: dict[t.Tuple[str, str, str], int] = {}
        self.now = 0.0
        #: The changes of the current call, as journal entries.
        self.log: list[list[t.Any]] = []
        #: Keys of objects deleted since the backend last looked.
        self.vanished: list[_Key] = []

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
        _in("status", _choice, record["status"], _SETTABLE_STATUSES, "a status SetStatus sets")
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


def _guid() -> str:
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
    """The half of the simulator that changes the state (:mod:`._simulator_changes`), loaded at the first
    change of an execution: a run that only reads does not compile it."""
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
        self._ids: dict[_Key, str] = {}
        self._keys: dict[str, _Key] = {}
        self._finished: dict[str, _Outcome] = {}
        # The state as of the last call, and what it was read from: the state file's bytes and identity,
        # and how much of the journal it includes.
        self._state: State | None = None
        self._raw = b""
        self._file: t.Tuple[int, ...] = ()
        self._journal = 0

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
    def _session(self) -> t.Iterator[State]:
        with self._locked() as real:
            try:
                state = self._current(real)
                state.now = self._now()
                self._settle(state)
                for key in state.vanished:
                    # A new object under the same natural key must get a new id, as a recreated VDS object does.
                    self._ids.pop(key, None)
                state.vanished = []
                try:
                    yield state
                except VdsError:
                    # An expected failure still counts its call and consumes its fault.
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
        if state is not None and file == self._file and journal >= self._journal:
            if file[1] > WRITE_THROUGH_BYTES:
                if journal > self._journal:
                    self._catch_up(real, state)
                return state
            # A small file may be edited by hand within one tick of its timestamps: compare its bytes.
            raw, _mode = _read(real, self.state_path)
            if raw == self._raw:
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
        """Make this call's changes durable before it returns: rewrite a small file, journal a large one."""
        if not state.log:
            return
        changes, state.log = state.log, []
        size = self._file[1] if self._file else 0
        if size <= WRITE_THROUGH_BYTES or self._journal >= size:
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
        """Apply every operation that has completed by now, in completion order."""
        due = [record for record in state.operations if "result" not in record and record["completes_at"] <= state.now]
        for record in sorted(due, key=lambda record: record["completes_at"]):
            hresult, tag = self._apply(state, record)
            state.change("finish", record["id"], hresult_name(hresult), record["completes_at"], tag)
        expired = [record["id"] for record in state.operations
                   if "result" in record and state.now - record["finished_at"] > OPERATION_RETENTION_S]
        if expired:
            state.change("drop", expired)

    # -- ids --

    def _id(self, key: _Key) -> str:
        object_id = self._ids.get(key)
        if object_id is None:
            object_id = _guid()
            self._ids[key] = object_id
            self._keys[object_id] = key
        return object_id

    def _resolve(self, state: State, object_id: str, kind: str, action: str, gone: int) -> _Key:
        """Map an id back to its object: unknown ids are not found, ids of vanished objects are ``gone``."""
        key = self._keys.get(object_id)
        if key is None or key[0] != kind:
            raise HResultError(VDS_E_OBJECT_NOT_FOUND, action, "call", object_id=object_id)
        if self._ids.get(key) != object_id or key not in state.objects:
            raise HResultError(gone, action, "call", object_id=object_id)
        return key

    # -- faults and counters --

    @staticmethod
    def _count(state: State, name: str, amount: int = 1) -> None:
        state.change("count", name, amount)

    @staticmethod
    def _consume(state: State, name: str, phase: str) -> int | None:
        """Fire the first fault listed for this operation and phase, if any."""
        for index, fault in enumerate(state.data.get("faults", [])):
            if fault["operation"] == name and fault.get("phase", "call") == phase:
                hresult = parse_hresult(fault["hresult"])
                state.change("fault", index)
                return hresult
        return None

    def _call_fault(self, state: State, name: str) -> int | None:
        """A call-phase fault: an error fails the call, a success code is passed on to the operation."""
        hresult = self._consume(state, name, "call")
        if hresult is not None and not is_success(hresult):
            raise HResultError(hresult, name, "call", injected=True)
        return hresult

    # -- operations --

    def _begin(self, state: State, fields: Json, keys: t.Sequence[_Key], ids: t.Tuple[str, ...],
               call_fault: int | None) -> Operation:
        """Start an operation on objects nobody else is working on; apply it now without latency."""
        name = fields["name"]
        wanted = set(keys)
        for other in state.operations:
            if "result" not in other and any(tuple(key) in wanted for key in other["objects"]):
                raise HResultError(VDS_E_ANOTHER_CALL_IN_PROGRESS, name, "call", operation_id=other["id"])
        wait_fault = self._consume(state, name, "wait")
        fault = wait_fault if wait_fault is not None else call_fault
        latency = state.data.get("latency_ms", 0) / 1000.0
        record: Json = {"id": _guid()}
        record.update(fields, objects=[list(key) for key in keys], started_at=state.now,
                      completes_at=state.now + latency)
        if fault is not None:
            record["fault"] = hresult_name(fault)
        if latency > 0:
            state.change("start", record)
        else:
            hresult, tag = self._apply(state, record)
            self._finished[record["id"]] = _Outcome(hresult, self._group_key(record, tag))
        return Operation(record["id"], name, ids)

    @staticmethod
    def _group_key(record: Json, tag: int | None) -> _Key | None:
        return None if tag is None else ("group", record["subsystem"], record["target"], tag)

    def _apply(self, state: State, record: Json) -> t.Tuple[int, int | None]:
        """The effect of a completed operation: its final HRESULT and, for a create, the group's tag."""
        fault = parse_hresult(record["fault"]) if "fault" in record else None
        if fault is not None and not is_success(fault):
            return fault, None
        name, sub = record["name"], record["subsystem"]
        tag: int | None = None
        if name == "CreatePortalGroup":
            if fault == VDS_S_ALREADY_EXISTS:
                # Acts as the cap: hands back an existing group, or creates one when there is none.
                return _changes().create_group(state, sub, record["target"], True)
            hresult, tag = _changes().create_group(state, sub, record["target"], False)
        elif name == "DeletePortalGroup":
            hresult = _changes().delete_group(state, sub, record["target"], record["tag"])
        elif name == "SetStatus":
            hresult = _changes().set_status(state, sub, record["portal"], record["status"])
        else:
            hresult = _changes().change_membership(state, name, sub, record["target"], record["tag"], record["portal"])
        if hresult == S_OK and fault is not None:
            hresult = fault
        return hresult, tag

    def _find(self, state: State, operation: Operation) -> Json:
        for record in state.operations:
            if record["id"] == operation.id:
                return record
        raise StateFileError("operation %s (%s) is not in simulator state file %s: the file was replaced while it "
                             "ran, or it finished more than %d seconds ago and was discarded"
                             % (operation.id, operation.name, self.state_path, OPERATION_RETENTION_S),
                             path=self.state_path, operation_id=operation.id)

    def _collect(self, state: State, record: Json) -> _Outcome:
        """Take a finished operation out of the file: its caller now holds the result."""
        outcome = _Outcome(parse_hresult(record["result"]), self._group_key(record, record.get("group_tag")))
        self._finished[record["id"]] = outcome
        state.change("drop", [record["id"]])
        return outcome

    # -- Backend interface --

    def snapshot(self, subsystem: str | None = None) -> Snapshot:
        with self._session() as state:
            subsystems = state.data["subsystems"]
            if subsystem is not None:
                subsystems = [_known_subsystem(state, subsystem)]
            if subsystems and state.data.get("count_reads"):
                # Only when asked: a provider's reads change nothing, and a run that changes nothing writes nothing.
                self._count(state, "Snapshot", len(subsystems))
            self._call_fault(state, "QueryPortalGroups")
            return Snapshot(tuple(self._view(state, sub) for sub in subsystems))

    def _view(self, state: State, sub: Json) -> Subsystem:
        name = sub["name"]
        portals = sorted((Portal(self._id(("portal", name, portal["address"])), state.addresses[portal["address"]],
                                 portal.get("status", "online"))
                          for portal in sub.get("portals", [])), key=lambda portal: portal.address)
        targets = tuple(
            Target(self._id(("target", name, target["iqn"])), target["iqn"], target.get("alias", ""),
                   tuple(PortalGroup(self._id(("group", name, target["iqn"], group["tag"])), group["tag"],
                                     frozenset(state.addresses[address] for address in group.get("portals", [])))
                         for group in target.get("groups", [])))
            for target in sub.get("targets", []))
        return Subsystem(self._id(("subsystem", name)), name, tuple(portals), targets)

    def add_portal(self, group_id: str, portal_id: str) -> Operation:
        return self._membership("AddPortal", group_id, portal_id)

    def remove_portal(self, group_id: str, portal_id: str) -> Operation:
        return self._membership("RemovePortal", group_id, portal_id)

    def _membership(self, name: str, group_id: str, portal_id: str) -> Operation:
        with self._session() as state:
            self._count(state, name)
            call_fault = self._call_fault(state, name)
            group = self._resolve(state, group_id, "group", name, VDS_E_OBJECT_DELETED)
            portal = self._resolve(state, portal_id, "portal", name, VDS_E_OBJECT_NOT_FOUND)
            if portal[1] != group[1]:
                # Portals belong to a subsystem: another subsystem's portal does not exist here.
                raise HResultError(VDS_E_OBJECT_NOT_FOUND, name, "call", object_id=portal_id)
            fields = {"name": name, "subsystem": group[1], "target": group[2], "tag": group[3], "portal": portal[2]}
            return self._begin(state, fields, (group, portal), (group_id, portal_id), call_fault)

    def create_group(self, target_id: str, tag: int | None = None) -> Operation:
        with self._session() as state:
            self._count(state, "CreatePortalGroup")
            call_fault = self._call_fault(state, "CreatePortalGroup")
            if tag is not None:
                raise HResultError(_E_INVALIDARG, "CreatePortalGroup", "call",
                                   reason="the provider assigns tags; CreatePortalGroup takes no tag")
            target = self._resolve(state, target_id, "target", "CreatePortalGroup", VDS_E_OBJECT_DELETED)
            fields = {"name": "CreatePortalGroup", "subsystem": target[1], "target": target[2]}
            return self._begin(state, fields, (target,), (target_id,), call_fault)

    def delete_group(self, group_id: str) -> Operation:
        with self._session() as state:
            self._count(state, "DeletePortalGroup")
            call_fault = self._call_fault(state, "DeletePortalGroup")
            group = self._resolve(state, group_id, "group", "DeletePortalGroup", VDS_E_OBJECT_DELETED)
            fields = {"name": "DeletePortalGroup", "subsystem": group[1], "target": group[2], "tag": group[3]}
            return self._begin(state, fields, (group,), (group_id,), call_fault)

    def set_portal_status(self, portal_id: str, status: str) -> Operation:
        with self._session() as state:
            self._count(state, "SetStatus")
            call_fault = self._call_fault(state, "SetStatus")
            if status not in _SETTABLE_STATUSES:
                raise HResultError(_E_INVALIDARG, "SetStatus", "call",
                                   reason="status %r is not one of %s" % (status, ", ".join(_SETTABLE_STATUSES)))
            portal = self._resolve(state, portal_id, "portal", "SetStatus", VDS_E_OBJECT_DELETED)
            fields = {"name": "SetStatus", "subsystem": portal[1], "portal": portal[2], "status": status}
            return self._begin(state, fields, (portal,), (portal_id,), call_fault)

    def query_status(self, operation: Operation) -> OperationStatus:
        outcome = self._finished.get(operation.id)
        if outcome is not None:
            return OperationStatus(outcome.hresult, 100)
        with self._session() as state:
            record = self._find(state, operation)
            if "result" in record:
                return OperationStatus(self._collect(state, record).hresult, 100)
            started, duration = record["started_at"], record["completes_at"] - record["started_at"]
            percent = int(100 * (state.now - started) / duration) if duration > 0 else 0
            return OperationStatus(VDS_E_OPERATION_PENDING, max(0, min(99, percent)))

    def result(self, operation: Operation) -> OperationResult:
        """IVdsAsync::Wait: blocks (sleeping, not polling) until the operation has finished."""
        outcome = self._finished.get(operation.id)
        while outcome is None:
            remaining = 0.0
            with self._session() as state:
                record = self._find(state, operation)
                if "result" in record:
                    outcome = self._collect(state, record)
                else:
                    remaining = record["completes_at"] - state.now
            if remaining > 0:
                self._sleep(remaining)
        group_id = self._id(outcome.group) if outcome.group is not None else None
        group_tag = outcome.group[3] if outcome.group is not None else None
        return OperationResult(S_OK, outcome.hresult, group_id, group_tag)

    def cancel(self, operation: Operation) -> int:
        with self._session() as state:
            self._count(state, "Cancel")
            fault = self._consume(state, "Cancel", "call")
            if fault is not None:
                return fault
            if operation.id in self._finished:
                return VDS_E_CANCEL_TOO_LATE
            record = self._find(state, operation)
            if "result" in record:
                self._collect(state, record)
                return VDS_E_CANCEL_TOO_LATE
            state.change("finish", record["id"], hresult_name(VDS_E_OPERATION_CANCELED), state.now, None)
            self._collect(state, record)
            return S_OK

    def recover_cache(self, subsystem: str | None) -> None:
        """One simulated provider owns every subsystem of the file: one Reenumerate, then one Refresh."""
        with self._session() as state:
            if subsystem is not None:
                _known_subsystem(state, subsystem)
            for name in ("Reenumerate", "Refresh"):
                self._count(state, name)
                self._call_fault(state, name)


def _known_subsystem(state: State, name: str) -> Json:
    found = state.objects.get(("subsystem", name))
    if found is None:
        known = ", ".join(sorted(sub["name"] for sub in state.data["subsystems"])) or "(none)"
        raise NotFoundError("subsystem %r does not exist; known subsystems: %s" % (name, known), subsystem=name)
    return found
