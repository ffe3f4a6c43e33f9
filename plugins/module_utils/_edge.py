# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The module edge: shared options, backend selection, and the one place errors become fail_json."""

from __future__ import annotations

import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BackendUnavailable,
    ValidationError,
    VdsError,
)

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible.module_utils.basic import AnsibleModule

    from ansible_collections.storage.vds.plugins.module_utils._backends.base import Backend

BACKEND_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "backend": {"type": "str", "required": True, "choices": ["simulator", "vds", "lio"]},
    "simulator_state": {"type": "path"},
    "wait_timeout": {"type": "int", "default": 300},
}

BACKEND_REQUIRED_IF: list[tuple[str, str, list[str]]] = [
    ("backend", "simulator", ["simulator_state"]),
]


def argument_spec(**options: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """The module's own options merged with the shared backend options."""
    spec = dict(BACKEND_ARGUMENT_SPEC)
    spec.update(options)
    return spec


def select_backend(params: t.Mapping[str, t.Any]) -> Backend:
    """Build the backend once; nothing after this point branches on which backend it is."""
    name = params["backend"]
    if name == "simulator":
        # Imported here so that other backends never pay for it.
        from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend

        return SimulatorBackend(params["simulator_state"])
    raise BackendUnavailable("backend=%s is not available in this release of storage.vds; use backend=simulator "
                             "(the %s backend is planned)" % (name, name))


def run_module(module: AnsibleModule, task: t.Callable[[Engine, t.Mapping[str, t.Any]], dict[str, t.Any]]) -> None:
    """Run ``task`` with an engine on the selected backend; exit or fail with a clear message."""
    params = module.params
    try:
        if params["wait_timeout"] < 1:
            raise ValidationError("wait_timeout %r must be at least 1 second" % params["wait_timeout"])
        with select_backend(params) as backend:
            result = task(Engine(backend, params["wait_timeout"], check_mode=module.check_mode), params)
    except VdsError as error:
        # A failure after some steps took effect has changed the provider: say so.
        module.fail_json(msg=str(error), changed=bool(error.details.get("steps_done")), **error.details)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
