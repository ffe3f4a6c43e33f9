# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The fake Windows host: a runspace that runs the backend's scripts against the simulator.

It does what PowerShell and the compiled C# class would do with them: binds the script's typed
parameters by name (refusing unknown ones, turning $null into "" for [string]), refuses the facade
before the class is compiled, and answers each facade method with the JSON document the class
returns, computed by the simulator's engine on the state file the host is named after.

The wire is counted and timed: every invocation (one round trip) and every compile of the class is
added to the host's counters (``counters(host)``, kept in ``<state file>.host/counts.json`` so that
module runs in other processes add to them too), each invocation costs ``VDS_FAKE_LATENCY_MS`` and
each compile ``VDS_FAKE_COMPILE_MS`` milliseconds (environment variables of the fake, 0 when unset).
"""

from __future__ import annotations

import json
import os
import re
import time
import typing as t
import uuid

from ansible_collections.storage.vds.plugins.module_utils._backends.base import Operation
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
    try:
        with open(os.path.join(host_folder(host), "counts.json"), encoding="utf-8") as stream:
            return {str(key): int(value) for key, value in json.load(stream).items()}
    except FileNotFoundError:
        return {"invocations": 0, "compiles": 0}


def count(host: str, what: str) -> None:
    counts = counters(host)
    counts[what] = counts.get(what, 0) + 1
    os.makedirs(host_folder(host), exist_ok=True)
    path = os.path.join(host_folder(host), "counts.json")
    with open(path + ".tmp", "w", encoding="utf-8") as stream:
        json.dump(counts, stream)
    os.replace(path + ".tmp", path)


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

    def run(self, script: str, parameters: dict[str, t.Any]) -> tuple[list[t.Any], list[ErrorRecord]]:
        JOURNAL.append({"event": "invoke", "script": script, "parameters": dict(parameters)})
        declared = _PARAMS.match(script)
        bound: dict[str, t.Any] = {}
        kinds = dict((name, kind) for kind, name in _PARAM.findall(declared.group(1))) if declared else {}
        for name, value in parameters.items():
            if name not in kinds:
                return [], [ErrorRecord("A parameter cannot be found that matches parameter name '%s'." % name)]
            bound[name] = _bind(kinds[name], value)
        if "Add-Type" in script:
            fault = FAULTS.get("Add-Type")
            if isinstance(fault, str):
                return [], [ErrorRecord(fault)]
            if "namespace StorageVds.Interop" not in str(bound.get("Source", "")):
                return [], [ErrorRecord("Add-Type: the source does not define %s" % FACADE)]
            self.compile()
            return [], []
        call = _CALL.search(script)
        if call is None:
            return [], [ErrorRecord("The fake host runs only the storage.vds scripts")]
        if not self.compiled:
            return [], [ErrorRecord("Unable to find type [%s]." % FACADE)]
        method = call.group(1)
        fault = FAULTS.get(method)
        if isinstance(fault, BaseException):
            raise fault
        if isinstance(fault, str):
            return [], [ErrorRecord(fault)]
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
            return [], [ErrorRecord(str(error))]
        dropped = FAULTS.get(method + " answered")
        if isinstance(dropped, BaseException):
            raise dropped
        return [json.dumps(answer)], []

    def compile(self) -> None:
        JOURNAL.append({"event": "compile"})
        count(self.state_path, "compiles")
        time.sleep(cost(COMPILE_VARIABLE))
        self.compiled = True

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
