# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The Windows Virtual Disk Service of a remote host, over PowerShell Remoting (pypsrp).

VDS can be loaded only on the host itself, so the module opens one runspace pool on the Windows
host per run. Every backend call is one short invocation of a constant script whose values travel as
PowerShell parameters, never inside the script text; the first one also makes the interop class of
``_vds_interop`` available (BOOTSTRAP): loaded from the assembly the host keeps, compiled on the first
run of a collection version. The class answers one JSON
document per call (see ``_vds_interop``); HRESULTs come back as data and become ``HResultError``.

A step costs one invocation: the class starts the operation and waits on it on the host, with the
engine's deadline (``wait_timeout``) and Cancel at the deadline, and answers once. So the operations
of this backend come back to the engine already settled: the start is sent when the engine first asks
for the operation's status, and its status, result and the outcome of its Cancel are the host's answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import traceback
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._backends._vds_interop import (
    CSHARP_SOURCE,
    FACADE_TYPE,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
    Backend,
    Operation,
    OperationResult,
    OperationStatus,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BY_NAME,
    BackendUnavailable,
    HResultError,
    NotFoundError,
    ValidationError,
    VdsError,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    PORTAL_STATUSES,
    STATUS_CODES,
    Portal,
    PortalAddress,
    PortalGroup,
    Snapshot,
    Subsystem,
    Target,
    normalize_iqn,
)

try:
    import pypsrp.complex_objects
    import pypsrp.exceptions
    import pypsrp.powershell
    import pypsrp.wsman
    import requests.exceptions  # pypsrp's HTTP transport
except ImportError:
    PYPSRP_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    PYPSRP_IMPORT_ERROR = None

AUTH_CHOICES = ("negotiate", "kerberos", "ntlm", "credssp", "certificate", "basic")

_E_INVALIDARG = BY_NAME["E_INVALIDARG"].value
_VDS_E_OPERATION_PENDING = BY_NAME["VDS_E_OPERATION_PENDING"].value
_SETTABLE_STATUSES = ("online", "offline")
_MASK = "********"

#: The folder under ``$env:ProgramData`` where the host keeps the compiled class, one file per version.
ASSEMBLY_FOLDER = "StorageVds"

#: Runs before the first call of a runspace: makes the interop class available, in the same invocation.
#: The class's assembly is kept on the host in a folder only Administrators and SYSTEM may write (the
#: folder is made so; one that others may write, or that another account owns, is never used). It is
#: named by the SHA-256 of the source, and its own SHA-256 is kept beside it: the bytes read are loaded
#: only when their hash matches, so a file missing, unreadable or changed is compiled again.
BOOTSTRAP = r"""if (-not ('%(type)s' -as [type])) {
    $sha256 = [System.Security.Cryptography.SHA256]::Create()
    $hex = { param([byte[]]$Bytes) -join ($sha256.ComputeHash($Bytes) | ForEach-Object { $_.ToString('x2') }) }
    $name = & $hex ([System.Text.Encoding]::UTF8.GetBytes($Source))
    $folder = Join-Path $env:ProgramData '%(folder)s'
    $trusted = @('S-1-5-32-544', 'S-1-5-18')
    $cached = $null
    try {
        if (-not (Test-Path -LiteralPath $folder -PathType Container)) {
            $acl = New-Object System.Security.AccessControl.DirectorySecurity
            $acl.SetAccessRuleProtection($true, $false)
            $acl.SetOwner((New-Object System.Security.Principal.SecurityIdentifier $trusted[0]))
            foreach ($sid in $trusted) {
                $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule(
                    (New-Object System.Security.Principal.SecurityIdentifier $sid), 'FullControl',
                    'ContainerInherit, ObjectInherit', 'None', 'Allow')))
            }
            $null = New-Item -ItemType Directory -Path $folder
            Set-Acl -LiteralPath $folder -AclObject $acl
        }
        $acl = Get-Acl -LiteralPath $folder
        $owner = $acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
        $writing = [System.Security.AccessControl.FileSystemRights]('WriteData, AppendData, WriteAttributes, ' +
            'WriteExtendedAttributes, Delete, DeleteSubdirectoriesAndFiles, ChangePermissions, TakeOwnership')
        $others = @($acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier]) | Where-Object {
            $_.AccessControlType -eq 'Allow' -and ($_.FileSystemRights -band $writing) -and
            $trusted -notcontains $_.IdentityReference.Value })
        if ($trusted -notcontains $owner -or $others.Count -gt 0) {
            $format = 'storage.vds: {0} may be written by others than Administrators and SYSTEM (owner {1}; ' +
                'others who may write: {2}), so the interop class was compiled in memory and not kept. Remove ' +
                'the folder: the next run makes it again.'
            Write-Warning ($format -f $folder, $owner, (($others | ForEach-Object { $_.IdentityReference.Value }) -join ', '))
        } else {
            $cached = Join-Path $folder ($name + '.dll')
        }
    } catch {
        Write-Warning ('storage.vds: {0} cannot be used ({1}), so the interop class was compiled in memory.' -f
            $folder, $_.Exception.Message)
    }
    if ($cached) {
        try {
            $bytes = [System.IO.File]::ReadAllBytes($cached)
            if ((& $hex $bytes) -eq [System.IO.File]::ReadAllText($cached + '.sha256').Trim()) {
                $null = [System.Reflection.Assembly]::Load($bytes)
            }
        } catch {
            $null = $_  # missing, unreadable or not an assembly: compiled again below
        }
    }
    if (-not ('%(type)s' -as [type])) {
        if ($cached) {
            $temp = $cached + '.' + [guid]::NewGuid().ToString('N') + '.tmp'
            try {
                Add-Type -TypeDefinition $Source -Language CSharp -OutputAssembly $temp -OutputType Library
                $bytes = [System.IO.File]::ReadAllBytes($temp)
                [System.IO.File]::WriteAllText($cached + '.sha256', (& $hex $bytes))
                Move-Item -LiteralPath $temp -Destination $cached -Force
            } finally {
                Remove-Item -LiteralPath $temp -Force -ErrorAction SilentlyContinue
            }
            if (-not ('%(type)s' -as [type])) {
                $null = [System.Reflection.Assembly]::Load($bytes)
            }
        } else {
            Add-Type -TypeDefinition $Source -Language CSharp
        }
    }
}
""" % {"type": FACADE_TYPE, "folder": ASSEMBLY_FOLDER}


def _facade_script(method: str, *parameters: t.Tuple[str, str], waited: bool = False) -> str:
    """A constant script: typed parameters in, the facade's answer out as one JSON string. A ``waited``
    method starts an operation that the class waits on before it answers (``Finish``, up to $Timeout)."""
    call = "[%s]::%s(%s)" % (FACADE_TYPE, method, ", ".join("$" + name for _kind, name in parameters))
    if waited:
        parameters += (("double", "Timeout"),)
        call = "[%s]::Finish(%s, $Timeout)" % (FACADE_TYPE, call)
    return ("param(%s)\n"
            "$ErrorActionPreference = 'Stop'\n"
            "ConvertTo-Json -InputObject (%s) -Compress -Depth 16\n"
            % (", ".join("[%s]$%s" % (kind, name) for kind, name in parameters), call))


#: One script per facade method. A [string] parameter turns $null into "": the class reads it as "none".
SCRIPTS: t.Dict[str, str] = {
    "Snapshot": _facade_script("Snapshot", ("string", "Subsystem")),
    "AddPortal": _facade_script("AddPortal", ("string", "GroupId"), ("string", "PortalId"), waited=True),
    "RemovePortal": _facade_script("RemovePortal", ("string", "GroupId"), ("string", "PortalId"), waited=True),
    "CreatePortalGroup": _facade_script("CreatePortalGroup", ("string", "TargetId"), waited=True),
    "DeletePortalGroup": _facade_script("DeletePortalGroup", ("string", "GroupId"), waited=True),
    "SetPortalStatus": _facade_script("SetPortalStatus", ("string", "PortalId"), ("int", "Status"), waited=True),
    "RecoverCache": _facade_script("RecoverCache", ("string", "Subsystem")),
    "Close": _facade_script("Close"),
}


def _bootstrapped(script: str) -> str:
    """The same script, first loading or compiling the class (BOOTSTRAP); the C# source is $Source."""
    declared, rest = script.split("\n", 1)
    preference, call = rest.split("\n", 1)
    parameters = declared[len("param("):-1]
    return "param(%s[string]$Source)\n%s\n%s%s" % (parameters + ", " if parameters else "", preference, BOOTSTRAP, call)


#: The script of each method when it is the first call of a runspace.
FIRST_SCRIPTS: t.Dict[str, str] = {name: _bootstrapped(script) for name, script in SCRIPTS.items()}


@dataclasses.dataclass
class _Settled:
    """What the host answered for an operation it started and waited on."""

    status: OperationStatus
    result: OperationResult | None = None   # None: still running at the deadline
    cancel_hresult: int | None = None       # what Cancel answered at the deadline


@dataclasses.dataclass(frozen=True)
class Connection:
    """Where and how to reach the Windows host (the ``vds_*`` options)."""

    host: str
    port: int | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    auth: str = "negotiate"
    ssl: bool = True
    cert_validation: bool = True
    ca_cert: str | None = None
    certificate_pem: str | None = None
    certificate_key_pem: str | None = None
    connection_timeout: int = 30
    wait_timeout: float = 300             # how long the host waits on an operation before it cancels

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> "Connection":
        host = params.get("vds_host")
        if not isinstance(host, str) or not host.strip():
            raise ValidationError("vds_host is required with backend=vds: name the Windows host that runs VDS")
        port = params.get("vds_port")
        if port is not None and not 1 <= port <= 65535:
            raise ValidationError("vds_port %r is outside 1..65535" % port)
        timeout = params.get("vds_connection_timeout", 30)
        if timeout < 1:
            raise ValidationError("vds_connection_timeout %r must be at least 1 second" % timeout)
        auth = params.get("vds_auth") or "negotiate"
        if auth not in AUTH_CHOICES:
            raise ValidationError("vds_auth %r is not one of %s" % (auth, ", ".join(AUTH_CHOICES)))
        return cls(host=host.strip(), port=port, username=params.get("vds_username"),
                   password=params.get("vds_password"), auth=auth, ssl=params.get("vds_ssl", True),
                   cert_validation=params.get("vds_cert_validation", True), ca_cert=params.get("vds_ca_cert"),
                   certificate_pem=params.get("vds_certificate_pem"),
                   certificate_key_pem=params.get("vds_certificate_key_pem"), connection_timeout=timeout,
                   wait_timeout=params.get("wait_timeout", 300))

    @property
    def effective_port(self) -> int:
        return self.port or (5986 if self.ssl else 5985)

    @property
    def endpoint(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d/wsman" % ("https" if self.ssl else "http", host, self.effective_port)

    def wsman_options(self) -> dict[str, t.Any]:
        """Keyword arguments of ``pypsrp.wsman.WSMan``."""
        options: dict[str, t.Any] = {
            "server": self.host,
            "port": self.effective_port,
            "username": self.username,
            "password": self.password,
            "ssl": self.ssl,
            "auth": self.auth,
            # requests verifies against a CA bundle when given its path, else the system store.
            "cert_validation": (self.ca_cert or True) if self.cert_validation else False,
            "connection_timeout": self.connection_timeout,
        }
        if self.auth == "certificate":
            options.update(certificate_pem=self.certificate_pem, certificate_key_pem=self.certificate_key_pem)
        return options

    def scrub(self, text: str) -> str:
        """Foreign messages must not carry the password, whatever library wrote them."""
        return text.replace(self.password, _MASK) if self.password else text


class VdsBackend(Backend):
    """The iSCSI hardware providers of one Windows host's VDS service."""

    assigns_tags = True

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._pool: t.Any = None
        self._ids = itertools.count(1)
        self._unsent: dict[str, dict[str, t.Any]] = {}    # operation -> the parameters of its start
        self._settled: dict[str, _Settled] = {}
        self._names: dict[str, str] = {}                  # object id -> how an operator names it
        self._lost: str | None = None                     # why the connection can no longer be trusted
        self._loaded = False                              # whether the runspace has the interop class
        self.warnings: t.List[str] = []

    # -- transport --

    @contextlib.contextmanager
    def _transport(self, doing: str, opening: bool = False) -> t.Iterator[None]:
        """Turn the transport's failures into BackendUnavailable, naming the endpoint."""
        where = self.connection.endpoint
        scrub = self.connection.scrub
        try:
            yield
        except pypsrp.exceptions.AuthenticationError as exc:
            raise self._unavailable("%s: %s did not accept the credentials (vds_auth=%s, vds_username=%s): %s"
                                    % (doing, where, self.connection.auth, self.connection.username,
                                       scrub(str(exc))), "authentication") from None
        except pypsrp.exceptions.WinRMTransportError as exc:
            kind = "authentication" if exc.code in (401, 403) else "transport"
            raise self._unavailable("%s: %s answered HTTP %s: %s" % (doing, where, exc.code, scrub(str(exc))),
                                    kind) from None
        except pypsrp.exceptions.WinRMError as exc:
            raise self._unavailable("%s: WinRM on %s failed: %s" % (doing, where, scrub(str(exc))),
                                    "winrm") from None
        except requests.exceptions.SSLError as exc:
            raise self._unavailable("%s: the TLS certificate of %s could not be verified (%s); give the CA with "
                                    "vds_ca_cert, or set vds_cert_validation=false only on a network you trust"
                                    % (doing, where, scrub(str(exc))), "certificate") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._unavailable("%s: cannot reach %s (vds_connection_timeout=%ss): %s"
                                    % (doing, where, self.connection.connection_timeout, scrub(str(exc))),
                                    "connection") from None
        except requests.exceptions.RequestException as exc:
            raise self._unavailable("%s: HTTP to %s failed: %s" % (doing, where, scrub(str(exc))),
                                    "transport") from None
        except ValueError as exc:
            if not opening:
                raise
            # pypsrp checks option combinations (basic auth over plain HTTP, missing credentials).
            raise ValidationError("%s: the vds_* options do not work together: %s" % (doing, scrub(str(exc))),
                                  vds_endpoint=where) from None

    def _unavailable(self, message: str, kind: str) -> BackendUnavailable:
        return BackendUnavailable(message, vds_endpoint=self.connection.endpoint, vds_failure=kind)

    def _open(self) -> t.Any:
        """The runspace pool of this module run, opened (the class comes with the first call)."""
        if self._pool is None:
            with self._transport("opening PowerShell Remoting", opening=True):
                wsman = pypsrp.wsman.WSMan(**self.connection.wsman_options())
                # COM references outlive an invocation: in the MTA, any thread of the runspace may use them.
                pool = pypsrp.powershell.RunspacePool(
                    wsman, apartment_state=pypsrp.complex_objects.ApartmentState.MTA,
                    thread_options=pypsrp.complex_objects.PSThreadOptions.REUSE_THREAD)
                pool.open()
            self._pool = pool
        return self._pool

    def _invoke(self, pool: t.Any, script: str, parameters: dict[str, t.Any], doing: str,
                note: str = "") -> list[t.Any]:
        shell = pypsrp.powershell.PowerShell(pool)
        shell.add_script(script)
        shell.add_parameters(parameters)
        with self._transport(doing):
            output = shell.invoke()
        self.warnings.extend(self.connection.scrub(str(getattr(record, "message", record)))
                             for record in shell.streams.warning)
        errors = list(shell.streams.error)
        if shell.had_errors or errors:
            text = "; ".join(str(error) for error in errors) or "the pipeline failed without an error record"
            raise VdsError("%s on %s: PowerShell failed: %s%s"
                           % (doing, self.connection.host, self.connection.scrub(text), note),
                           vds_endpoint=self.connection.endpoint)
        return output

    def _call(self, method: str, **parameters: t.Any) -> dict[str, t.Any]:
        """One facade method: its answer when ``ok``, else HResultError with the COM call that failed."""
        doing = "VDS %s" % method
        if self._lost is not None:
            raise self._unavailable("%s: not sent, since the connection failed during a step (%s)"
                                    % (doing, self._lost), "connection")
        pool = self._open()
        if self._loaded:
            output = self._invoke(pool, SCRIPTS[method], parameters, doing)
        else:
            output = self._invoke(pool, FIRST_SCRIPTS[method], dict(parameters, Source=CSHARP_SOURCE), doing,
                                  " (this first call also loads or compiles the VDS interop class)")
            self._loaded = True
        answer: t.Any = None
        if len(output) == 1 and isinstance(output[0], str):
            try:
                answer = json.loads(output[0])
            except ValueError:
                answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise VdsError("%s on %s: the interop class answered %s instead of one JSON object"
                           % (doing, self.connection.host, _preview(output)), vds_endpoint=self.connection.endpoint)
        if not answer["ok"]:
            call = answer.get("call") or method
            raise HResultError(_number(answer, "hresult", doing), call, "call", vds_call=call,
                               vds_message=self.connection.scrub(str(answer.get("message", ""))))
        return answer

    # -- Backend interface --

    def snapshot(self, subsystem: str | None = None) -> Snapshot:
        answer = self._call("Snapshot", Subsystem=subsystem)
        try:
            names = [str(name) for name in answer["names"]]
            subsystems = tuple(_subsystem(item) for item in answer["subsystems"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VdsError("VDS Snapshot on %s: unexpected answer (%s: %s)"
                           % (self.connection.host, type(exc).__name__, exc)) from None
        if subsystem is not None and subsystem not in names:
            raise NotFoundError("subsystem %r does not exist; known subsystems: %s"
                                % (subsystem, ", ".join(sorted(names)) or "(none)"), subsystem=subsystem)
        for found in subsystems:
            self._names.update((portal.id, str(portal.address)) for portal in found.portals)
            for target in found.targets:
                self._names[target.id] = target.iqn
                self._names.update((group.id, "group %d of %s" % (group.tag, target.iqn)) for group in target.groups)
        return Snapshot(subsystems)

    def _start(self, method: str, objects: t.Tuple[str, ...], **parameters: t.Any) -> Operation:
        """The operation's start is sent with its wait, when the engine first asks for its status."""
        operation = Operation("%s-%d" % (method, next(self._ids)), method, objects)
        self._unsent[operation.id] = parameters
        return operation

    def _settle(self, operation: Operation) -> _Settled:
        """Start the operation and wait on it on the host, in one invocation; the host's answer."""
        parameters = self._unsent.pop(operation.id, None)
        if parameters is None:
            settled = self._settled.get(operation.id)
            if settled is None:
                raise VdsError("VDS %s on %s: no operation %s was started in this session"
                               % (operation.name, self.connection.host, operation.id))
            return settled
        try:
            answer = self._call(operation.name, Timeout=float(self.connection.wait_timeout), **parameters)
        except BackendUnavailable as error:
            self._lost = str(error)
            raise BackendUnavailable(
                "%s: the connection failed during the step, before the host answered, so the step may have taken "
                "effect on the host; run the task again: it reads the state and converges (%s)"
                % (self._describe(operation), error), **error.details) from None
        percent = _number(answer, "percent")
        if answer.get("finished") is True:
            tag = answer.get("group_tag")
            result = OperationResult(_number(answer, "call_hresult"), _number(answer, "operation_hresult"),
                                     answer.get("group_id"), None if tag is None else int(tag))
            settled = _Settled(OperationStatus(result.operation_hresult, percent), result)
        else:
            settled = _Settled(OperationStatus(_VDS_E_OPERATION_PENDING, percent),
                               cancel_hresult=_number(answer, "cancel_hresult"))
        self._settled[operation.id] = settled
        return settled

    def _describe(self, operation: Operation) -> str:
        """The step as an operator reads it, from the names of the last snapshot."""
        names = [self._names.get(object_id, object_id) for object_id in operation.objects]
        if operation.name in ("AddPortal", "RemovePortal"):
            return "%s %s %s %s" % (operation.name, names[1], "->" if operation.name == "AddPortal" else "<-",
                                    names[0])
        return "%s %s" % (operation.name, " ".join(names))

    def add_portal(self, group_id: str, portal_id: str) -> Operation:
        return self._start("AddPortal", (group_id, portal_id), GroupId=group_id, PortalId=portal_id)

    def remove_portal(self, group_id: str, portal_id: str) -> Operation:
        return self._start("RemovePortal", (group_id, portal_id), GroupId=group_id, PortalId=portal_id)

    def create_group(self, target_id: str, tag: int | None = None) -> Operation:
        if tag is not None:
            raise HResultError(_E_INVALIDARG, "CreatePortalGroup", "call",
                               reason="the provider assigns tags; CreatePortalGroup takes no tag")
        return self._start("CreatePortalGroup", (target_id,), TargetId=target_id)

    def delete_group(self, group_id: str) -> Operation:
        return self._start("DeletePortalGroup", (group_id,), GroupId=group_id)

    def set_portal_status(self, portal_id: str, status: str) -> Operation:
        if status not in _SETTABLE_STATUSES:
            raise HResultError(_E_INVALIDARG, "SetStatus", "call",
                               reason="status %r is not one of %s" % (status, ", ".join(_SETTABLE_STATUSES)))
        return self._start("SetPortalStatus", (portal_id,), PortalId=portal_id, Status=STATUS_CODES[status])

    def query_status(self, operation: Operation) -> OperationStatus:
        return self._settle(operation).status

    def result(self, operation: Operation) -> OperationResult:
        settled = self._settle(operation)
        if settled.result is None:
            raise VdsError("VDS %s on %s: the operation was still running at the deadline"
                           % (self._describe(operation), self.connection.host))
        del self._settled[operation.id]
        return settled.result

    def cancel(self, operation: Operation) -> int:
        """The host asked to cancel at the deadline: what Cancel answered there."""
        settled = self._settle(operation)
        if settled.cancel_hresult is None:
            raise VdsError("VDS %s on %s: the operation finished; there is nothing to cancel"
                           % (self._describe(operation), self.connection.host))
        del self._settled[operation.id]
        return settled.cancel_hresult

    def recover_cache(self, subsystem: str | None) -> None:
        answer = self._call("RecoverCache", Subsystem=subsystem)
        if subsystem is not None and not answer.get("providers"):
            names = ", ".join(sorted(str(name) for name in answer.get("names", []))) or "(none)"
            raise NotFoundError("subsystem %r does not exist; known subsystems: %s" % (subsystem, names),
                                subsystem=subsystem)

    def close(self) -> None:
        """Release the COM references the runspace holds, then the runspace pool.

        Best effort: closing must not hide the outcome of the run (or the error being raised), and
        the end of the remote shell releases whatever the runspace still held.
        """
        if self._pool is None:
            return
        try:
            with contextlib.suppress(VdsError):
                if self._loaded:
                    self._call("Close")
        finally:
            pool, self._pool = self._pool, None
            self._close_pool(pool)

    def _close_pool(self, pool: t.Any) -> None:
        with contextlib.suppress(VdsError):
            with self._transport("closing PowerShell Remoting"):
                pool.close()


def _number(answer: t.Mapping[str, t.Any], key: str, doing: str = "VDS") -> int:
    value = answer.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise VdsError("%s: the interop class answered %s=%r where a number belongs" % (doing, key, value))
    return value


def _preview(output: list[t.Any]) -> str:
    text = repr(output)
    return text if len(text) <= 200 else text[:200] + "..."


def _address(portal: t.Mapping[str, t.Any]) -> PortalAddress | None:
    """The portal's address, or None when VDS reports it empty or as a host name (not declarable)."""
    try:
        return PortalAddress.of(str(portal["ip"]), int(portal["port"]))
    except ValidationError:
        return None


def _iqn(text: t.Any) -> str:
    try:
        return normalize_iqn(text)
    except ValidationError:
        # A provider may hold a name this collection would refuse as input: keep it, compared lower case.
        return str(text).strip().lower()


def _subsystem(item: t.Mapping[str, t.Any]) -> Subsystem:
    portals: list[Portal] = []
    by_id: dict[str, PortalAddress] = {}
    for raw in item["portals"]:
        address = _address(raw)
        if address is None:
            continue
        by_id[raw["id"]] = address
        portals.append(Portal(raw["id"], address, PORTAL_STATUSES.get(int(raw["status"]), "unknown")))
    targets = tuple(
        Target(raw["id"], _iqn(raw["iqn"]), str(raw.get("alias") or ""),
               tuple(PortalGroup(group["id"], int(group["tag"]),
                                 frozenset(by_id[member] for member in group["portals"] if member in by_id))
                     for group in raw["groups"]))
        for raw in item["targets"])
    return Subsystem(item["id"], str(item["name"]), tuple(sorted(portals, key=lambda portal: portal.address)),
                     targets)
