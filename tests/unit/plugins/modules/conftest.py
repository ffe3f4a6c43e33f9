# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Running the real modules: the real AnsibleModule, arguments given with ``patch_module_args``,
the result read back from the JSON the module prints, and a simulator state file per test."""

from __future__ import annotations

import copy
import json
import pathlib
import types
import typing as t

import pytest

from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

IQN1 = "iqn.1991-05.com.microsoft:array-a-t1"
IQN2 = "iqn.1991-05.com.microsoft:array-a-t2"

#: The simulated array the module tests start from (the documented state format, version 1).
STATE: dict[str, t.Any] = {
    "version": 1,
    "subsystems": [{
        "name": "array-a",
        "max_groups_per_target": 0,
        "portals": [{"address": address, "status": "online"} for address in (
            "10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260", "10.0.0.4:3260", "10.0.0.5:3260",
            "[fd00::1]:3260")],
        "targets": [
            {"iqn": IQN1, "alias": "t1", "groups": [
                {"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]},
                {"tag": 2, "portals": ["10.0.0.3:3260"]},
            ]},
            {"iqn": IQN2, "alias": "t2", "groups": []},
        ],
    }],
    "latency_ms": 0,
    "faults": [],
}

#: Simulator call counters of operations that change something.
MUTATING = ("AddPortal", "RemovePortal", "CreatePortalGroup", "DeletePortalGroup", "SetStatus")


class ModuleRun(t.NamedTuple):
    failed: bool
    result: dict[str, t.Any]


class StateFile:
    """A simulator state file in the test's temporary directory, and ways to look at it."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def write(self, data: dict[str, t.Any]) -> "StateFile":
        self.path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return self

    def edit(self, change: t.Callable[[dict[str, t.Any]], None]) -> "StateFile":
        data = self.data()
        change(data)
        return self.write(data)

    def raw(self) -> bytes:
        return self.path.read_bytes()

    def data(self) -> dict[str, t.Any]:
        return json.loads(self.path.read_text(encoding="utf-8"))

    def provider(self) -> dict[str, t.Any]:
        """What the simulated provider holds, without the simulator's bookkeeping (call counters)."""
        data = self.data()
        return {"subsystems": data["subsystems"], "faults": data.get("faults", []),
                "operations": data.get("operations", [])}

    def calls(self) -> dict[str, int]:
        return dict(self.data().get("calls", {}))

    def mutating_calls(self) -> dict[str, int]:
        return {name: count for name, count in self.calls().items() if name in MUTATING and count}

    def groups(self, iqn: str = IQN1) -> dict[int, list[str]]:
        for subsystem in self.data()["subsystems"]:
            for target in subsystem.get("targets", []):
                if target["iqn"] == iqn:
                    return {group["tag"]: sorted(group.get("portals", [])) for group in target.get("groups", [])}
        raise KeyError(iqn)

    def status(self, address: str) -> str:
        for portal in self.data()["subsystems"][0]["portals"]:
            if portal["address"] == address:
                return portal.get("status", "online")
        raise KeyError(address)


@pytest.fixture
def state_file(tmp_path: pathlib.Path) -> StateFile:
    return StateFile(tmp_path / "array-a.json").write(copy.deepcopy(STATE))


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
        arguments = dict(args)
        arguments.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        capsys.readouterr()
        with patch_module_args(arguments):
            with pytest.raises(SystemExit) as exited:
                module.main()
        output = capsys.readouterr().out
        lines = [line for line in output.splitlines() if line.strip()]
        assert lines, "the module printed no result"
        result = json.loads(lines[-1])
        failed = bool(result.get("failed"))
        assert exited.value.code == (1 if failed else 0), (exited.value.code, result)
        return ModuleRun(failed, result)

    return run


@pytest.fixture
def simulator_args(state_file: StateFile) -> dict[str, t.Any]:
    return {"backend": "simulator", "simulator_state": str(state_file.path)}
