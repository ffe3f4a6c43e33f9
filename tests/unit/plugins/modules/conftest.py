# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""A simulator state file per module test (the module runs through ``run_module`` of
tests/unit/plugins/conftest.py)."""

from __future__ import annotations

import copy
import json
import pathlib
import typing as t

import pytest

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
def simulator_args(state_file: StateFile) -> dict[str, t.Any]:
    return {"backend": "simulator", "simulator_state": str(state_file.path)}
