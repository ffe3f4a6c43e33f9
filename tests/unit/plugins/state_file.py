# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""A simulator state file in a test's temporary directory, and ways to look at it."""

from __future__ import annotations

import json
import pathlib
import typing as t

from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, MUTATING


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
        """The simulator's call counters that are not zero."""
        return {name: count for name, count in self.data().get("calls", {}).items() if count}

    def mutating_calls(self) -> dict[str, int]:
        return {name: count for name, count in self.calls().items() if name in MUTATING}

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
