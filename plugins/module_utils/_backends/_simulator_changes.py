# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""How the simulated provider's state changes: the changes a call makes, the effects of a completed
operation, the journal that records them and the rewrite of the state file.

Loaded by :mod:`.simulator` at the first change of an execution: a run with nothing to change, which
only reads the state file, does not compile it.
"""

from __future__ import annotations

import contextlib
import json
import os
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import (
    JOURNAL_VERSION,
    MAX_TAG,
    Json,
    State,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    S_OK,
    VDS_E_ASSOCIATED_PORTALS_EXIST,
    VDS_E_OBJECT_DELETED,
    VDS_E_OBJECT_EXISTS,
    VDS_E_OBJECT_NOT_FOUND,
    VDS_S_ALREADY_EXISTS,
    StateFileError,
)


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


def _holds_objects(value: t.Any) -> bool:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(isinstance(item, dict) or (isinstance(item, list) and _holds_objects(item)) for item in items)


def _dumps(value: t.Any, indent: str = "") -> str:
    """JSON indented down to the containers that hold no objects, which stay on one line: a portal,
    a group or a fault per line reads well, and the C encoder writes those lines fast."""
    if not _holds_objects(value):
        return json.dumps(value)
    inner = indent + "  "
    if isinstance(value, dict):
        body = ",\n".join("%s%s: %s" % (inner, json.dumps(key), _dumps(item, inner)) for key, item in value.items())
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
