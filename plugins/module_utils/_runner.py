# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The module runner, every module's edge: shared options, backend selection, and the one place errors become
fail_json."""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import env_fallback, missing_required_lib

# First of the collection's imports: each one after it compiles once from Ansible's zip, not twice.
from ansible_collections.storage.vds.plugins.module_utils import _compile_once  # noqa: F401 pylint: disable=unused-import
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BackendUnavailable,
    ValidationError,
    VdsError,
)

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible.module_utils.basic import AnsibleModule

    from ansible_collections.storage.vds.plugins.module_utils._vds.provider import Backend

BACKEND_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "backend": {"type": "str", "required": True, "choices": ["simulator", "vds", "lio"]},
    "simulator_state": {"type": "path"},
    "wait_timeout": {"type": "int", "default": 300},
    # backend vds: PowerShell Remoting to the Windows host (names follow Ansible's psrp connection)
    "vds_host": {"type": "str", "fallback": (env_fallback, ["VDS_HOST"])},
    "vds_port": {"type": "int"},
    "vds_username": {"type": "str", "fallback": (env_fallback, ["VDS_USERNAME"])},
    "vds_password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["VDS_PASSWORD"])},
    "vds_auth": {"type": "str", "default": "negotiate",
                 "choices": ["negotiate", "kerberos", "ntlm", "credssp", "certificate", "basic"]},
    "vds_ssl": {"type": "bool", "default": True},
    "vds_cert_validation": {"type": "bool", "default": True},
    "vds_ca_cert": {"type": "path"},
    "vds_certificate_pem": {"type": "path"},
    "vds_certificate_key_pem": {"type": "path", "no_log": False},
    "vds_connection_timeout": {"type": "int", "default": 30},
    # backend lio: the Linux kernel target of the host the module runs on
    "lio_save_config": {"type": "bool", "default": True},
    "lio_save_file": {"type": "path"},
}

BACKEND_REQUIRED_IF: list[tuple[str, str, list[str]]] = [
    ("backend", "simulator", ["simulator_state"]),
    ("backend", "vds", ["vds_host"]),
    ("vds_auth", "certificate", ["vds_certificate_pem", "vds_certificate_key_pem"]),
]


def argument_spec(**options: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """The module's own options merged with the shared backend options."""
    spec = dict(BACKEND_ARGUMENT_SPEC)
    spec.update(options)
    return spec


def select_backend(module: AnsibleModule) -> Backend:
    """Build the backend once; nothing after this point branches on which backend it is."""
    params = module.params
    name = params["backend"]
    if name == "simulator":
        # Imported here so that other backends never pay for it.
        from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend

        return SimulatorBackend(params["simulator_state"])
    if name == "vds":
        # Imported here: pypsrp is needed by this backend only, and only where the module runs.
        from ansible_collections.storage.vds.plugins.module_utils._backends import vds

        if vds.PYPSRP_IMPORT_ERROR is not None:
            raise BackendUnavailable(missing_required_lib("pypsrp", reason="for backend=vds"),
                                     exception=vds.PYPSRP_IMPORT_ERROR)
        return vds.VdsBackend(vds.Connection.from_params(params))
    # backend=lio. Imported here: rtslib-fb is needed by this backend only, on the Linux target host.
    from ansible_collections.storage.vds.plugins.module_utils._backends import lio

    if lio.RTSLIB_IMPORT_ERROR is not None:
        raise BackendUnavailable(missing_required_lib("rtslib-fb", reason="for backend=lio"),
                                 exception=lio.RTSLIB_IMPORT_ERROR)
    # Only vds_portal_groups has lio_restore_at_boot; a read (state gathered) enables nothing. Imported only then.
    restore = None
    if params.get("lio_restore_at_boot") and params.get("state") != "gathered":
        from ansible_collections.storage.vds.plugins.module_utils._backends._lio_restore import RestoreAtBoot

        restore = RestoreAtBoot(module.check_mode, module.run_command)
    return lio.LioBackend(save_config=params["lio_save_config"], save_file=params["lio_save_file"],
                          restore_at_boot=restore)


#: What a module does with its validated parameters: ``task(engine, params, diff)``. ``engine`` is None for
#: ``state=rendered``, which plans offline and contacts no provider.
Task = t.Callable[[t.Optional[Engine], t.Mapping[str, t.Any], bool], t.Dict[str, t.Any]]


def run_module(module: AnsibleModule, task: Task) -> None:
    """Run ``task`` with an engine on the selected backend; exit or fail with a clear message."""
    params = module.params
    warnings: t.List[str] = []
    try:
        if params["wait_timeout"] < 1:
            raise ValidationError("wait_timeout %r must be at least 1 second" % params["wait_timeout"])
        if params.get("state") == "rendered":
            result = task(None, params, module._diff)
        else:
            result = _converge(module, task, warnings)
        warnings[:0] = result.pop("warnings", [])
    except VdsError as error:
        for warning in warnings:
            module.warn(warning)
        # A failure after some steps took effect has changed the provider: say so.
        changed = bool(error.details.pop("changed", False) or error.details.get("steps_done"))
        module.fail_json(msg=str(error), changed=changed, **error.details)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


def _converge(module: AnsibleModule, task: Task, warnings: t.List[str]) -> dict[str, t.Any]:
    """``task`` on the selected backend; what the backend warns of is added to ``warnings``, failed or not."""
    params = module.params
    with select_backend(module) as backend:
        try:
            result = task(Engine(backend, params["wait_timeout"], check_mode=module.check_mode), params, module._diff)
        except VdsError as error:
            # Steps done before a failure are kept by the provider too (LIO saves them).
            try:
                error.details.update(backend.finish())
            except VdsError as also:
                error.amend(str(also))
            raise
        finally:
            warnings.extend(backend.warnings)
        try:
            finished = backend.finish()
        except VdsError as error:
            # The change took effect but could not be kept (or have restored at boot): fail, saying what was done.
            error.details.setdefault("steps_done", [] if module.check_mode else result.get("steps", []))
            raise
    # Enabling the lio restore service is a change of its own.
    if finished.pop("changed", False):
        result["changed"] = True
    result.update(finished)
    return result
