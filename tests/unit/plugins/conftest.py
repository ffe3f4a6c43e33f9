# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Running a real module: the real AnsibleModule, arguments given with ``patch_module_args``, the result
read back from the JSON the module prints, with what it printed and logged besides."""

from __future__ import annotations

import json
import types
import typing as t

import pytest

from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args


class ModuleRun(t.NamedTuple):
    failed: bool
    result: dict[str, t.Any]
    output: str          # everything the module printed
    log: list[str]       # everything it logged (syslog/journal)

    @property
    def warnings(self) -> list[str]:
        """The texts of the result's warnings (ansible-core 2.19+ wraps each in a summary dict)."""
        return [w["event"]["msg"] if isinstance(w, dict) else w for w in self.result.get("warnings", [])]


@pytest.fixture
def run_module(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> t.Callable[..., ModuleRun]:
    """Run a module's ``main()`` with ``args`` as the controller would pass them; return its result."""

    def run(module: types.ModuleType, args: dict[str, t.Any], check_mode: bool = False,
            diff: bool = False) -> ModuleRun:
        # A module runs in its own process, where ansible's controller code is not loaded; pytest
        # plugins (pytest-ansible, ansible-test's collection loader) load it here, which would send
        # module.warn() to the controller's display instead of the result.
        monkeypatch.setattr(ansible_internal, "is_controller", False)
        # Warnings are process-global in AnsibleModule: start every run with none.
        monkeypatch.setattr(ansible_warnings, "_global_warnings", {})
        monkeypatch.setattr(ansible_warnings, "_global_deprecations", {})
        log: list[str] = []
        monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: log.append(
            "%s %s" % (msg, json.dumps(log_args, default=str))))
        arguments = dict(args)
        arguments.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        capsys.readouterr()
        with patch_module_args(arguments):
            with pytest.raises(SystemExit) as exited:
                module.main()
        captured = capsys.readouterr()
        lines = [line for line in captured.out.splitlines() if line.strip()]
        assert lines, "the module printed no result"
        result = json.loads(lines[-1])
        failed = bool(result.get("failed"))
        assert exited.value.code == (1 if failed else 0), (exited.value.code, result)
        return ModuleRun(failed, result, captured.out + captured.err, log)

    return run
