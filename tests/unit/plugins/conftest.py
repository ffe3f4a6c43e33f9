# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Running a real module: the real AnsibleModule, arguments given with ``patch_module_args``, the result
read back from the JSON the module prints, with what it printed and logged besides.

Two things make a pytest process differ from the process a module gets on a managed host, and the
fixture deals with both without patching any private part of ansible-core:

* Controller code. Importing ansible-core's controller package (``ansible._internal``, imported by
  ``ansible.template``, ``ansible.errors``, ``ansible.utils.display``, ``ansible.plugins`` ...) marks the
  whole process as a controller, and from then on ``AnsibleModule.warn()`` and ``deprecate()`` go to the
  controller's display instead of into the module's result. The module tests never import it, and
  ``ansible-test units`` (what ``scripts/test.sh units`` runs) gives tests/unit/plugins/modules,
  tests/unit/plugins/module_utils and the controller tests (tests/unit/roles, which use ansible-core's
  Templar) a pytest process each, so the module runs here always see a module's process. It only
  happens when one pytest process collects tests/unit/roles as well (plain ``pytest tests/unit``), or
  with the pytest plugin pytest-ansible installed, which imports ``ansible.errors`` when pytest loads
  it (``-p no:pytest-ansible`` leaves it out). Then a run would silently lose every warning, so the
  fixture refuses to run a module and says why.

* Warnings are process-wide. ``ansible.module_utils.common.warnings`` keeps the warnings and
  deprecations of "the current module run" in module-level storage that nothing public empties; a
  real module runs once per process. A test that runs modules several times would read in a later
  result the warnings of the earlier runs. Reloading that (public) module with ``importlib.reload``
  gives it the state a fresh module process starts with; the functions AnsibleModule imported from it
  share the reloaded module's namespace, so they record into the fresh storage.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
import typing as t

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args

#: The package whose import turns a process into an Ansible controller (see the module docstring).
CONTROLLER_PACKAGE = "ansible._internal"


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
        if CONTROLLER_PACKAGE in sys.modules:
            pytest.fail("ansible-core's controller code (%s) is loaded in this pytest process, so a module's "
                        "warnings would go to the controller's display, not into its result. Run the module "
                        "tests apart from tests/unit/roles (scripts/test.sh units does) and without the "
                        "pytest-ansible plugin (-p no:pytest-ansible)." % CONTROLLER_PACKAGE, pytrace=False)
        importlib.reload(module_warnings)
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
