# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""A simulator state file per module test (the module runs through ``run_module`` of
tests/unit/plugins/conftest.py)."""

from __future__ import annotations

import copy
import pathlib
import typing as t

import pytest

from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2
from ansible_collections.storage.vds.tests.unit.plugins.state_file import StateFile


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


@pytest.fixture
def state_file(tmp_path: pathlib.Path) -> StateFile:
    return StateFile(tmp_path / "array-a.json").write(copy.deepcopy(STATE))


@pytest.fixture
def simulator_args(state_file: StateFile) -> dict[str, t.Any]:
    return {"backend": "simulator", "simulator_state": str(state_file.path)}
