# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""How the simulated provider's state changes: the calls that start, follow and cancel operations,
the changes a call makes, the effects of a completed operation, the journal that records them and
the rewrite of the state file.

Loaded by :mod:`.simulator` at the first change or operation of an execution: a run with nothing
to change, which only reads the state file, does not compile it.
"""

from __future__ import annotations

import contextlib
import json
import os
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import (
    JOURNAL_VERSION,
    MAX_TAG,
    OPERATION_RETENTION_S,
    SETTABLE_STATUSES,
    Json,
    Key,
    SimulatorBackend,
    State,
    call_fault,
    consume_fault,
    known_subsystem,
    new_guid,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BY_NAME,
    S_OK,
    VDS_E_ANOTHER_CALL_IN_PROGRESS,
    VDS_E_ASSOCIATED_PORTALS_EXIST,
    VDS_E_CANCEL_TOO_LATE,
    VDS_E_OBJECT_DELETED,
    VDS_E_OBJECT_EXISTS,
    VDS_E_OBJECT_NOT_FOUND,
    VDS_E_OPERATION_CANCELED,
    VDS_E_OPERATION_PENDING,
    VDS_S_ALREADY_EXISTS,
    HResultError,
    StateFileError,
    hresult_name,
    is_success,
    parse_hresult,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
    Operation,
    OperationResult,
    OperationStatus,
)

_E_INVALIDARG = BY_NAME["E_INVALIDARG"].value


# --- changes: what a journal line records, applied the same way live and on replay --------------


def _change_count(state: State, name: str, amount: int) -> None:
    calls = state.data.setdefault("calls", {})
    calls[name] = calls.get(name, 0) + amount


def _change_fault(state: State, index: int) -> None:
    faults = state.data["faults"]
    times = faults[index].get("times", 1)
    if times <= 1:
        del faults[index]
    else:
        faults[index]["times"] = times - 1


def _change_start(state: State, record: Json) -> None:
    state.data.setdefault("operations", []).append(dict(record))


def _change_finish(state: State, operation_id: str, result: str, finished_at: float, tag: int | None) -> None:
    record = next(record for record in state.operations if record["id"] == operation_id)
    record["result"] = result
    record["finished_at"] = finished_at
    if tag is not None:
        record["group_tag"] = tag


def _change_drop(state: State, operation_ids: list[str]) -> None:
    dropped = set(operation_ids)
    state.data["operations"] = [record for record in state.operations if record["id"] not in dropped]


def _change_create(state: State, sub: str, iqn: str, tag: int) -> None:
    groups = state.objects[("target", sub, iqn)].setdefault("groups", [])
    group: Json = {"tag": tag, "portals": []}
    groups.append(group)
    groups.sort(key=lambda item: item["tag"])
    state.objects[("group", sub, iqn, tag)] = group


def _change_delete(state: State, sub: str, iqn: str, tag: int) -> None:
    group = state.objects.pop(("group", sub, iqn, tag))
    target = state.objects[("target", sub, iqn)]
    target["groups"] = [other for other in target["groups"] if other is not group]
    state.vanished.append(("group", sub, iqn, tag))


def _change_add(state: State, sub: str, iqn: str, tag: int, address: str) -> None:
    state.objects[("group", sub, iqn, tag)].setdefault("portals", []).append(address)
    state.holders[(sub, iqn, address)] = tag


def _change_remove(state: State, sub: str, iqn: str, tag: int, address: str) -> None:
    state.objects[("group", sub, iqn, tag)]["portals"].remove(address)
    del state.holders[(sub, iqn, address)]


def _change_status(state: State, sub: str, address: str, status: str) -> None:
    state.objects[("portal", sub, address)]["status"] = status


CHANGES: dict[str, t.Callable[..., None]] = {
    "count": _change_count, "fault": _change_fault, "start": _change_start, "finish": _change_finish,
    "drop": _change_drop, "create": _change_create, "delete": _change_delete, "add": _change_add,
    "remove": _change_remove, "status": _change_status,
}


def _digest(raw: bytes) -> str:
    import hashlib  # only where a journal is written or read: most runs never need it

    return hashlib.sha256(raw).hexdigest()


def journal_header(raw: bytes) -> bytes:
    """The first line of a journal: the state file it continues, by the hash of its bytes."""
    return json.dumps({"journal": JOURNAL_VERSION, "state": _digest(raw)}).encode() + b"\n"


def replay(state: State, lines: bytes, offset: int, journal_path: str) -> int:
    """Apply the complete lines of ``lines``, found at byte ``offset`` of the journal; return how many bytes
    they take. A line without its newline is a call whose write was cut short: it did not happen."""
    end = lines.rfind(b"\n") + 1
    position = 0
    for line in lines[:end].splitlines(keepends=True):
        try:
            for entry in json.loads(line):
                CHANGES[entry[0]](state, *entry[1:])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, StopIteration, RecursionError):
            with open(journal_path, "rb") as handle:
                number = handle.read(offset + position).count(b"\n") + 1
            raise StateFileError("simulator journal %s: line %d is not a change this simulator wrote; the journal "
                                 "holds calls not yet in the state file: remove it to drop them"
                                 % (journal_path, number), path=journal_path) from None
        position += len(line)
    return end


def _one_line_encoder() -> t.Callable[[t.Any], str]:
    """json.dumps for the lines of the state file, without its cost per call: the C encoder json.dumps builds on
    every call, built once (json.dumps where the interpreter has no C encoder)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    encoder = make(None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False,
                   False, True)
    return lambda value: "".join(encoder(value, 0))


_encode_line = _one_line_encoder()


def _holds_objects(items: t.Iterable[t.Any]) -> bool:
    # A plain loop: this runs for every line of every rewrite.
    for item in items:
        if isinstance(item, dict) or (isinstance(item, list) and _holds_objects(item)):
            return True
    return False


def _dumps(value: t.Any, indent: str = "") -> str:
    """JSON indented down to the containers that hold no objects, which stay on one line: a portal,
    a group or a fault per line reads well, and the C encoder writes those lines fast."""
    is_dict = isinstance(value, dict)
    if not (is_dict or isinstance(value, list)) or not _holds_objects(value.values() if is_dict else value):
        return _encode_line(value)
    inner = indent + "  "
    if is_dict:
        body = ",\n".join("%s%s: %s" % (inner, _encode_line(key), _dumps(item, inner)) for key, item in value.items())
        return "{\n%s\n%s}" % (body, indent)
    return "[\n%s\n%s]" % (",\n".join(inner + _dumps(item, inner) for item in value), indent)


def serialise(state: State) -> bytes:
    data = state.data
    if "calls" in data:
        data["calls"] = dict(sorted(data["calls"].items()))
    if "operations" in data and not data["operations"]:
        del data["operations"]
    return (_dumps(data) + "\n").encode("utf-8")


def write_file(path: str, raw: bytes, mode: int, shown: str, flush: bool) -> None:
    """Replace the file at ``path`` (no symlink) atomically: readers, and a process killed at any moment, see
    the old or the new content, never a torn one. ``flush`` puts the new content on disk before it replaces
    the old, for when a journal is dropped next. ``shown``: the path as the user gave it, for messages."""
    directory, base = os.path.split(path)
    temporary = os.path.join(directory, ".%s.%s.tmp" % (base, os.urandom(16).hex()))
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                if flush:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise StateFileError("cannot write simulator state file %s: %s" % (shown, exc.strerror), path=shown) from None


def sync_directory(path: str, shown: str) -> None:
    try:
        fd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StateFileError("cannot write simulator state file %s: %s" % (shown, exc.strerror), path=shown) from None


# --- effects (applied when an operation completes) --------------------------------------------


def create_group(state: State, sub: str, iqn: str, existing: bool) -> t.Tuple[int, int | None]:
    """New group with the lowest free tag; at the cap (or asked to) hand back the lowest-tag group."""
    target = state.objects.get(("target", sub, iqn))
    if target is None:
        return VDS_E_OBJECT_DELETED, None
    groups = target.get("groups", [])
    cap = state.objects[("subsystem", sub)].get("max_groups_per_target", 0) or MAX_TAG
    if groups and (existing or len(groups) >= cap):
        return VDS_S_ALREADY_EXISTS, groups[0]["tag"]
    used = {group["tag"] for group in groups}
    tag = next(candidate for candidate in range(1, MAX_TAG + 1) if candidate not in used)
    state.change("create", sub, iqn, tag)
    return S_OK, tag


def delete_group(state: State, sub: str, iqn: str, tag: int) -> int:
    group = state.objects.get(("group", sub, iqn, tag))
    if group is None:
        return VDS_E_OBJECT_DELETED
    if group.get("portals"):
        return VDS_E_ASSOCIATED_PORTALS_EXIST
    state.change("delete", sub, iqn, tag)
    return S_OK


def set_status(state: State, sub: str, address: str, status: str) -> int:
    if ("portal", sub, address) not in state.objects:
        return VDS_E_OBJECT_DELETED
    state.change("status", sub, address, status)
    return S_OK


def change_membership(state: State, name: str, sub: str, iqn: str, tag: int, address: str) -> int:
    if ("group", sub, iqn, tag) not in state.objects:
        return VDS_E_OBJECT_DELETED
    if ("portal", sub, address) not in state.objects:
        return VDS_E_OBJECT_NOT_FOUND
    holder = state.group_holding(sub, iqn, address)
    if name == "AddPortal":
        # Already here or in another group of the target: VDS leaves this open; the simulator refuses.
        if holder is not None:
            return VDS_E_OBJECT_EXISTS
        state.change("add", sub, iqn, tag, address)
        return S_OK
    if holder != tag:
        return VDS_E_OBJECT_NOT_FOUND
    state.change("remove", sub, iqn, tag, address)
    return S_OK


# --- the calls that start, follow and cancel operations ----------------------------------------


class _Outcome(t.NamedTuple):
    """The final result of an operation this backend has collected."""

    hresult: int
    group: Key | None = None


class Calls:
    """The operations half of a :class:`~.simulator.SimulatorBackend`: each call runs in one of its sessions
    and resolves ids through it."""

    def __init__(self, backend: SimulatorBackend, sleep: t.Callable[[float], None]) -> None:
        self.backend = backend
        self._sleep = sleep
        self._finished: dict[str, _Outcome] = {}

    def settle(self, state: State) -> None:
        """Apply every operation that has completed by now, in completion order; forget old results."""
        due = [record for record in state.operations if "result" not in record and record["completes_at"] <= state.now]
        for record in sorted(due, key=lambda record: record["completes_at"]):
            hresult, tag = self._apply(state, record)
            state.change("finish", record["id"], hresult_name(hresult), record["completes_at"], tag)
        expired = [record["id"] for record in state.operations
                   if "result" in record and state.now - record["finished_at"] > OPERATION_RETENTION_S]
        if expired:
            state.change("drop", expired)

    def _begin(self, state: State, fields: Json, keys: t.Sequence[Key], ids: t.Tuple[str, ...],
               fault_at_call: int | None) -> Operation:
        """Start an operation on objects nobody else is working on; apply it now without latency."""
        name = fields["name"]
        wanted = set(keys)
        for other in state.operations:
            if "result" not in other and any(tuple(key) in wanted for key in other["objects"]):
                raise HResultError(VDS_E_ANOTHER_CALL_IN_PROGRESS, name, "call", operation_id=other["id"])
        wait_fault = consume_fault(state, name, "wait")
        fault = wait_fault if wait_fault is not None else fault_at_call
        latency = state.data.get("latency_ms", 0) / 1000.0
        record: Json = {"id": new_guid()}
        record.update(fields, objects=[list(key) for key in keys], started_at=state.now,
                      completes_at=state.now + latency)
        if fault is not None:
            record["fault"] = hresult_name(fault)
        if latency > 0:
            state.change("start", record)
        else:
            hresult, tag = self._apply(state, record)
            self._finished[record["id"]] = _Outcome(hresult, _group_key(record, tag))
        return Operation(record["id"], name, ids)

    @staticmethod
    def _apply(state: State, record: Json) -> t.Tuple[int, int | None]:
        """The effect of a completed operation: its final HRESULT and, for a create, the group's tag."""
        fault = parse_hresult(record["fault"]) if "fault" in record else None
        if fault is not None and not is_success(fault):
            return fault, None
        name, sub = record["name"], record["subsystem"]
        tag: int | None = None
        if name == "CreatePortalGroup":
            if fault == VDS_S_ALREADY_EXISTS:
                # Acts as the cap: hands back an existing group, or creates one when there is none.
                return create_group(state, sub, record["target"], True)
            hresult, tag = create_group(state, sub, record["target"], False)
        elif name == "DeletePortalGroup":
            hresult = delete_group(state, sub, record["target"], record["tag"])
        elif name == "SetStatus":
            hresult = set_status(state, sub, record["portal"], record["status"])
        else:
            hresult = change_membership(state, name, sub, record["target"], record["tag"], record["portal"])
        if hresult == S_OK and fault is not None:
            hresult = fault
        return hresult, tag

    def _find(self, state: State, operation: Operation) -> Json:
        for record in state.operations:
            if record["id"] == operation.id:
                return record
        raise StateFileError("operation %s (%s) is not in simulator state file %s: the file was replaced while it "
                             "ran, or it finished more than %d seconds ago and was discarded"
                             % (operation.id, operation.name, self.backend.state_path, OPERATION_RETENTION_S),
                             path=self.backend.state_path, operation_id=operation.id)

    def _collect(self, state: State, record: Json) -> _Outcome:
        """Take a finished operation out of the file: its caller now holds the result."""
        outcome = _Outcome(parse_hresult(record["result"]), _group_key(record, record.get("group_tag")))
        self._finished[record["id"]] = outcome
        state.change("drop", [record["id"]])
        return outcome

    def _starting(self, state: State, name: str) -> int | None:
        """Count the call and fire its call-phase fault."""
        state.change("count", name, 1)
        return call_fault(state, name)

    def membership(self, name: str, group_id: str, portal_id: str) -> Operation:
        with self.backend.session() as state:
            fault = self._starting(state, name)
            group = self.backend.resolve(state, group_id, "group", name, VDS_E_OBJECT_DELETED)
            portal = self.backend.resolve(state, portal_id, "portal", name, VDS_E_OBJECT_NOT_FOUND)
            if portal[1] != group[1]:
                # Portals belong to a subsystem: another subsystem's portal does not exist here.
                raise HResultError(VDS_E_OBJECT_NOT_FOUND, name, "call", object_id=portal_id)
            fields = {"name": name, "subsystem": group[1], "target": group[2], "tag": group[3], "portal": portal[2]}
            return self._begin(state, fields, (group, portal), (group_id, portal_id), fault)

    def create_group(self, target_id: str, tag: int | None) -> Operation:
        with self.backend.session() as state:
            fault = self._starting(state, "CreatePortalGroup")
            if tag is not None:
                raise HResultError(_E_INVALIDARG, "CreatePortalGroup", "call",
                                   reason="the provider assigns tags; CreatePortalGroup takes no tag")
            target = self.backend.resolve(state, target_id, "target", "CreatePortalGroup", VDS_E_OBJECT_DELETED)
            fields = {"name": "CreatePortalGroup", "subsystem": target[1], "target": target[2]}
            return self._begin(state, fields, (target,), (target_id,), fault)

    def delete_group(self, group_id: str) -> Operation:
        with self.backend.session() as state:
            fault = self._starting(state, "DeletePortalGroup")
            group = self.backend.resolve(state, group_id, "group", "DeletePortalGroup", VDS_E_OBJECT_DELETED)
            fields = {"name": "DeletePortalGroup", "subsystem": group[1], "target": group[2], "tag": group[3]}
            return self._begin(state, fields, (group,), (group_id,), fault)

    def set_portal_status(self, portal_id: str, status: str) -> Operation:
        with self.backend.session() as state:
            fault = self._starting(state, "SetStatus")
            if status not in SETTABLE_STATUSES:
                raise HResultError(_E_INVALIDARG, "SetStatus", "call",
                                   reason="status %r is not one of %s" % (status, ", ".join(SETTABLE_STATUSES)))
            portal = self.backend.resolve(state, portal_id, "portal", "SetStatus", VDS_E_OBJECT_DELETED)
            fields = {"name": "SetStatus", "subsystem": portal[1], "portal": portal[2], "status": status}
            return self._begin(state, fields, (portal,), (portal_id,), fault)

    def query_status(self, operation: Operation) -> OperationStatus:
        outcome = self._finished.get(operation.id)
        if outcome is not None:
            return OperationStatus(outcome.hresult, 100)
        with self.backend.session() as state:
            record = self._find(state, operation)
            if "result" in record:
                return OperationStatus(self._collect(state, record).hresult, 100)
            state.caller_waits = True
            started, duration = record["started_at"], record["completes_at"] - record["started_at"]
            percent = int(100 * (state.now - started) / duration) if duration > 0 else 0
            return OperationStatus(VDS_E_OPERATION_PENDING, max(0, min(99, percent)))

    def result(self, operation: Operation) -> OperationResult:
        """IVdsAsync::Wait: blocks (sleeping, not polling) until the operation has finished."""
        outcome = self._finished.get(operation.id)
        while outcome is None:
            remaining = 0.0
            with self.backend.session() as state:
                record = self._find(state, operation)
                if "result" in record:
                    outcome = self._collect(state, record)
                else:
                    state.caller_waits = True
                    remaining = record["completes_at"] - state.now
            if remaining > 0:
                self._sleep(remaining)
        group_id = self.backend.object_id(outcome.group) if outcome.group is not None else None
        group_tag = outcome.group[3] if outcome.group is not None else None
        return OperationResult(S_OK, outcome.hresult, group_id, group_tag)

    def cancel(self, operation: Operation) -> int:
        with self.backend.session() as state:
            state.change("count", "Cancel", 1)
            fault = consume_fault(state, "Cancel", "call")
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
        with self.backend.session() as state:
            if subsystem is not None:
                known_subsystem(state, subsystem)
            for name in ("Reenumerate", "Refresh"):
                self._starting(state, name)


def _group_key(record: Json, tag: int | None) -> Key | None:
    return None if tag is None else ("group", record["subsystem"], record["target"], tag)
