# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Fixtures of the resource-module tests: simulator state files and engines on them (the module runs
through ``run_module`` of tests/unit/plugins/conftest.py)."""

from __future__ import annotations

import copy
import pathlib
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.retry import RetryPolicy
from ansible_collections.storage.vds.tests.unit.plugins.state_file import StateFile
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2, IQN3


PORTALS = ("10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260", "10.0.0.4:3260", "10.0.0.5:3260",
           "10.0.0.6:3260", "[fd00::1]:3260", "[fd00::2]:3260")

#: Two simulated subsystems: array-a with two targets, array-b with one.
STATE: dict[str, t.Any] = {
    "version": 1,
    "count_reads": True,
    "subsystems": [
        {"name": "array-a", "max_groups_per_target": 0,
         "portals": [{"address": address, "status": "online"} for address in PORTALS],
         "targets": [
             {"iqn": IQN1, "alias": "t1", "groups": [
                 {"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]},
                 {"tag": 2, "portals": ["10.0.0.3:3260"]},
             ]},
             {"iqn": IQN2, "alias": "t2", "groups": [
                 {"tag": 1, "portals": ["10.0.0.1:3260"]},
             ]},
         ]},
        {"name": "array-b", "max_groups_per_target": 0,
         "portals": [{"address": address, "status": "online"} for address in PORTALS[:4]],
         "targets": [{"iqn": IQN3, "alias": "t3", "groups": []}]},
    ],
    "latency_ms": 0,
    "faults": [],
}


@pytest.fixture
def state_file(tmp_path: pathlib.Path) -> StateFile:
    return StateFile(tmp_path / "arrays.json").write(copy.deepcopy(STATE))


@pytest.fixture
def engine_on(state_file: StateFile) -> t.Callable[..., Engine]:
    """An engine on the simulator; retries back off for no time at all."""

    def factory(check_mode: bool = False, wait_timeout: float = 30) -> Engine:
        backend = SimulatorBackend(str(state_file.path))
        return Engine(backend, wait_timeout, check_mode=check_mode, sleep=lambda _seconds: None,
                      retry=RetryPolicy(attempts=3, initial=0.0))

    return factory


@pytest.fixture
def simulator_args(state_file: StateFile) -> dict[str, t.Any]:
    return {"backend": "simulator", "simulator_state": str(state_file.path)}
