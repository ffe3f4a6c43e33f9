# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The fake Windows host: a runspace that runs the backend's scripts against the simulator.

It does what PowerShell and the compiled C# class would do with them: binds the script's typed
parameters by name (refusing unknown ones, turning $null into "" for [string]), refuses the facade
before the class is compiled, and answers each facade method with the JSON document the class
returns, computed by the simulator's engine on the state file the host is named after.

The wire is counted and timed: every invocation (one round trip) and every compile of the class is
added to the host's counters (``counters(host)``, kept in ``<state file>.host/counts`` so that
module runs in other processes add to them too), each invocation costs ``VDS_FAKE_LATENCY_MS`` and
each compile ``VDS_FAKE_COMPILE_MS`` milliseconds (environment variables of the fake, 0 when unset).
Its file system holds the folder where the backend keeps the compiled class (``assembly_folder``), with
that folder's owner and the accounts that may write it (``read_acl``/``write_acl``), so that the tests
can change, remove or expose what the host keeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import typing as t
import uuid

from ansible_collections.storage.vds.plugins.module_utils._vds.provider import Operation
from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend, read_state
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BY_NAME,
    VDS_E_OPERATION_PENDING,
    HResultError,
    NotFoundError,
    VdsError,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PORTAL_STATUSES, STATUS_CODES
from ansible_collections.storage.vds.plugins.module_utils._vds.wait import PollPolicy

#: Everything the host was asked, in order: connections, runspace events, scripts with their parameters.
JOURNAL: list[dict[str, t.Any]] = []

#: Failures to inject, by where they strike: "open" (an exception raised by RunspacePool.open),
#: "Add-Type" (a compiler error) or a facade method name (an exception raised by the transport, or a
#: string: a PowerShell error record); "<method> answered" raises its exception after the host did the
#: method, as a connection that drops before the answer comes back.
FAULTS: dict[str, t.Any] = {}

FACADE = "StorageVds.Interop.Vds"
LATENCY_VARIABLE = "VDS_FAKE_LATENCY_MS"
COMPILE_VARIABLE = "VDS_FAKE_COMPILE_MS"
_CALL = re.compile(r"\[%s\]::(\w+)\(([^()]*)\)" % re.escape(FACADE))
_FINISH = re.compile(r"\[%s\]::Finish\((.*), \$(\w+)\)\)" % re.escape(FACADE))
_PARAMS = re.compile(r"^param\(([^)]*)\)")
_PARAM = re.compile(r"\[(\w+)\]\$(\w+)")

# The COM method the C# class names when the simulator's operation fails.
_COM_CALLS = {
    "AddPortal": "IVdsIscsiPortalGroup::AddPortal",
    "RemovePortal": "IVdsIscsiPortalGroup::RemovePortal",
    "CreatePortalGroup": "IVdsIscsiTarget::CreatePortalGroup",
    "DeletePortalGroup": "IVdsIscsiPortalGroup::Delete",
    "SetStatus": "IVdsIscsiPortal::SetStatus",
    "QueryPortalGroups": "IVdsIscsiTarget::QueryPortalGroups",
    "Reenumerate": "IVdsHwProvider::Reenumerate",
    "Refresh": "IVdsHwProvider::Refresh",
}
_E_INVALIDARG = BY_NAME["E_INVALIDARG"].value
_ADDRESS_TYPES = {4: 1, 6: 2}  # VDS_IPT_IPV4, VDS_IPT_IPV6


class ErrorRecord:
    """What pypsrp yields for a PowerShell error: its text is the record's message."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __str__(self) -> str:
        return self.message


def cost(variable: str) -> float:
    """Seconds one invocation or one compile costs, from the fake's environment variable (milliseconds)."""
    return float(os.environ.get(variable) or 0) / 1000.0


def host_folder(host: str) -> str:
    """What the fake Windows host keeps beside its state file: counters and its file system."""
    return host + ".host"


def counters(host: str) -> dict[str, int]:
    """How many invocations and compiles the host has seen, over every process."""
    counts = {"invocations": 0, "compiles": 0}
    try:
        with open(os.path.join(host_folder(host), "counts"), encoding="utf-8") as stream:
            for line in stream:
                counts[line.strip()] = counts.get(line.strip(), 0) + 1
    except FileNotFoundError:
        pass
    return counts


def count(host: str, what: str) -> None:
    """One more of ``what``: a line appended (one small write, so processes that share the host do not race)."""
    os.makedirs(host_folder(host), exist_ok=True)
    with open(os.path.join(host_folder(host), "counts"), "a", encoding="utf-8") as stream:
        stream.write(what + "\n")


#: Administrators and SYSTEM: the only ones who may write the folder of the kept assembly.
TRUSTED = ("S-1-5-32-544", "S-1-5-18")
_BOOTSTRAP = "[System.Reflection.Assembly]::Load("


def assembly_folder(host: str) -> str:
    """$env:ProgramData\\StorageVds of the fake host."""
    return os.path.join(host_folder(host), "ProgramData", "StorageVds")


def read_acl(folder: str) -> dict[str, t.Any]:
    """The folder's owner and the accounts allowed to write it (SIDs), kept beside it."""
    with open(folder + ".acl.json", encoding="utf-8") as stream:
        return dict(json.load(stream))


def write_acl(folder: str, owner: str, writers: t.Sequence[str]) -> None:
    with open(folder + ".acl.json", "w", encoding="utf-8") as stream:
        json.dump({"owner": owner, "writers": list(writers)}, stream)


def _assembly(source: str) -> bytes:
    """The bytes compiling ``source`` gives on the fake host."""
    return b"MZ storage.vds interop " + hashlib.sha256(source.encode("utf-8")).hexdigest().encode("ascii")


def _signed(hresult: int) -> int:
    """HRESULTs leave the C# class as signed 32-bit integers."""
    return hresult - (1 << 32) if hresult & 0x80000000 else hresult


def _failure(hresult: int, call: str, message: str) -> dict[str, t.Any]:
    return {"ok": False, "hresult": _signed(hresult), "call": call, "message": message}


class Runspace:
    """One runspace of the host: whether the class is compiled, and the class's static state."""

    def __init__(self, state_path: str) -> None:
        self.state_path = state_path
        self.compiled = False
        self.session: SimulatorBackend | None = None
        self.operations: dict[str, Operation] = {}

    def run(self, script: str, parameters: dict[str, t.Any]) -> tuple[list[t.Any], list[ErrorRecord], list[str]]:
        """Output, error records and warnings of one command."""
        JOURNAL.append({"event": "invoke", "script": script, "parameters": dict(parameters)})
        declared = _PARAMS.match(script)
        bound: dict[str, t.Any] = {}
        kinds = dict((name, kind) for kind, name in _PARAM.findall(declared.group(1))) if declared else {}
        for name, value in parameters.items():
            if name not in kinds:
                return [], [ErrorRecord("A parameter cannot be found that matches parameter name '%s'." % name)], []
            bound[name] = _bind(kinds[name], value)
        warnings: list[str] = []
        if _BOOTSTRAP in script and not self.compiled:
            failure = self.bootstrap(str(bound.get("Source", "")), warnings)
            if failure is not None:
                return [], [failure], warnings
        call = _CALL.search(script)
        if call is None:
            return [], [ErrorRecord("The fake host runs only the storage.vds scripts")], warnings
        if not self.compiled:
            return [], [ErrorRecord("Unable to find type [%s]." % FACADE)], warnings
        method = call.group(1)
        fault = FAULTS.get(method)
        if isinstance(fault, BaseException):
            raise fault
        if isinstance(fault, str):
            return [], [ErrorRecord(fault)], warnings
        arguments = [bound.get(name) for name in re.findall(r"\$(\w+)", call.group(2))]
        finish = _FINISH.search(script)
        try:
            answer = getattr(self, "facade_" + method)(*arguments)
            answer.setdefault("ok", True)
            if finish is not None and answer["ok"]:
                answer = self.facade_Finish(answer["operation"], float(bound[finish.group(2)]))
                answer.setdefault("ok", True)
        except VdsError as error:
            # The simulator's own trouble (its state file) is the host failing, not a VDS code.
            return [], [ErrorRecord(str(error))], warnings
        dropped = FAULTS.get(method + " answered")
        if isinstance(dropped, BaseException):
            raise dropped
        return [json.dumps(answer)], [], warnings

    def bootstrap(self, source: str, warnings: list[str]) -> ErrorRecord | None:
        """What the backend's BOOTSTRAP does on Windows: load the kept assembly when its hash matches, else
        compile (and keep it when the folder may be written only by Administrators and SYSTEM)."""
        name = hashlib.sha256(source.encode("utf-8")).hexdigest()
        folder = assembly_folder(self.state_path)
        if not os.path.isdir(folder):
            os.makedirs(folder)
            write_acl(folder, TRUSTED[0], list(TRUSTED))
        acl = read_acl(folder)
        others = [sid for sid in acl["writers"] if sid not in TRUSTED]
        cached: str | None = None
        if acl["owner"] not in TRUSTED or others:
            warnings.append("storage.vds: %s may be written by others than Administrators and SYSTEM (owner %s; "
                            "others who may write: %s), so the interop class was compiled in memory and not kept. "
                            "Remove the folder: the next run makes it again." % (folder, acl["owner"], ", ".join(others)))
        else:
            cached = os.path.join(folder, name + ".dll")
            try:
                with open(cached, "rb") as stream:
                    data = stream.read()
                with open(cached + ".sha256", encoding="utf-8") as stream:
                    expected: str | None = stream.read().strip()
            except OSError:
                data, expected = b"", None
            # Assembly.Load of the verified bytes: only a real assembly gives the type.
            if hashlib.sha256(data).hexdigest() == expected and data == _assembly(source):
                JOURNAL.append({"event": "load", "path": cached})
                self.compiled = True
                return None
        fault = FAULTS.get("Add-Type")
        if isinstance(fault, str):
            return ErrorRecord(fault)
        if "namespace StorageVds.Interop" not in source:
            return ErrorRecord("Add-Type: the source does not define %s" % FACADE)
        JOURNAL.append({"event": "compile", "kept": cached})
        count(self.state_path, "compiles")
        time.sleep(cost(COMPILE_VARIABLE))
        if cached is not None:
            data = _assembly(source)
            with open(cached + ".sha256", "w", encoding="utf-8") as stream:
                stream.write(hashlib.sha256(data).hexdigest())
            with open(cached, "wb") as stream:
                stream.write(data)
        self.compiled = True
        return None

    # -- the facade methods of the C# class --

    def _sim(self) -> SimulatorBackend:
        if self.session is None:
            self.session = SimulatorBackend(self.state_path)
        return self.session

    def _names(self) -> list[str]:
        return [subsystem["name"] for subsystem in read_state(self.state_path)["subsystems"]]

    def _start(self, start: t.Callable[[], Operation]) -> dict[str, t.Any]:
        try:
            operation = start()
        except HResultError as error:
            return _failure(error.hresult, _COM_CALLS.get(error.action, error.action), str(error))
        handle = str(uuid.uuid4())
        self.operations[handle] = operation
        return {"operation": handle, "hresult": 0}

    def facade_Snapshot(self, subsystem: str) -> dict[str, t.Any]:
        try:
            snapshot = self._sim().snapshot(subsystem or None)
        except NotFoundError:
            return {"subsystems": [], "names": self._names()}
        except HResultError as error:
            return _failure(error.hresult, _COM_CALLS.get(error.action, error.action), str(error))
        return {"names": self._names(), "subsystems": [{
            "id": found.id, "name": found.name,
            "portals": [{"id": portal.id, "address_type": _ADDRESS_TYPES[portal.address.version],
                         "ip": portal.address.ip, "port": portal.address.port,
                         "status": STATUS_CODES[portal.status]} for portal in found.portals],
            "targets": [{"id": target.id, "iqn": target.iqn, "alias": target.alias,
                         "groups": [{"id": group.id, "tag": group.tag,
                                     "portals": [portal.id for portal in found.portals
                                                 if portal.address in group.portals]}
                                    for group in target.groups]}
                        for target in found.targets],
        } for found in snapshot.subsystems]}

    def facade_AddPortal(self, group_id: str, portal_id: str) -> dict[str, t.Any]:
        return self._start(lambda: self._sim().add_portal(group_id, portal_id))

    def facade_RemovePortal(self, group_id: str, portal_id: str) -> dict[str, t.Any]:
        return self._start(lambda: self._sim().remove_portal(group_id, portal_id))

    def facade_CreatePortalGroup(self, target_id: str) -> dict[str, t.Any]:
        return self._start(lambda: self._sim().create_group(target_id))

    def facade_DeletePortalGroup(self, group_id: str) -> dict[str, t.Any]:
        return self._start(lambda: self._sim().delete_group(group_id))

    def facade_SetPortalStatus(self, portal_id: str, status: int) -> dict[str, t.Any]:
        return self._start(lambda: self._sim().set_portal_status(portal_id, PORTAL_STATUSES[status]))

    def facade_QueryStatus(self, handle: str) -> dict[str, t.Any]:
        operation = self.operations.get(handle)
        if operation is None:
            return _failure(_E_INVALIDARG, "operation handle", "no pending operation has this handle in this session")
        status = self._sim().query_status(operation)
        return {"hresult": _signed(status.hresult), "percent": status.percent}

    def facade_Wait(self, handle: str) -> dict[str, t.Any]:
        operation = self.operations.pop(handle, None)
        if operation is None:
            return _failure(_E_INVALIDARG, "operation handle", "no pending operation has this handle in this session")
        result = self._sim().result(operation)
        answer = {"call_hresult": _signed(result.call_hresult), "operation_hresult": _signed(result.operation_hresult)}
        if result.group_id is not None:
            answer.update(group_id=result.group_id, group_tag=result.group_tag)
        return answer

    def facade_Finish(self, handle: str, timeout: float) -> dict[str, t.Any]:
        """The class's wait on the host: QueryStatus with the waiter's backoff, Cancel at the deadline."""
        operation = self.operations[handle]
        policy = PollPolicy()
        start = time.monotonic()
        while True:
            status = self._sim().query_status(operation)
            if status.hresult != VDS_E_OPERATION_PENDING:
                answer = self.facade_Wait(handle)
                answer.update(finished=True, percent=status.percent)
                return answer
            waited = time.monotonic() - start
            if waited >= timeout:
                del self.operations[handle]
                return {"finished": False, "percent": status.percent,
                        "cancel_hresult": _signed(self._sim().cancel(operation))}
            time.sleep(min(policy.interval(waited), timeout - waited))

    def facade_Cancel(self, handle: str) -> dict[str, t.Any]:
        operation = self.operations.get(handle)
        if operation is None:
            return _failure(_E_INVALIDARG, "operation handle", "no pending operation has this handle in this session")
        return {"hresult": _signed(self._sim().cancel(operation))}

    def facade_RecoverCache(self, subsystem: str) -> dict[str, t.Any]:
        names = self._names()
        if subsystem and subsystem not in names:
            return {"providers": 0, "names": names}
        try:
            self._sim().recover_cache(subsystem or None)
        except HResultError as error:
            return _failure(error.hresult, _COM_CALLS.get(error.action, error.action), str(error))
        return {"providers": 1, "names": names}

    def facade_Close(self) -> dict[str, t.Any]:
        released = len(self.operations)
        self.operations.clear()
        self.session = None
        return {"released": released}


def _bind(kind: str, value: t.Any) -> t.Any:
    """PowerShell's conversion of a parameter value to its declared type."""
    if kind == "string":
        return "" if value is None else str(value)
    if kind == "int":
        return int(value)
    if kind == "double":
        return float(value)
    return value
