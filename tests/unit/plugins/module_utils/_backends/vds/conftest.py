# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The ``vds`` backend over the fake pypsrp: its Windows host is a simulator state file."""

from __future__ import annotations

import copy
import json
import pathlib
import types
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends import vds
from ansible_collections.storage.vds.tests.fakes import pypsrp as fake_pypsrp
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2

PASSWORD = "Pa55-w0rd-never-shown"

STATE: dict[str, t.Any] = {
    "version": 1,
    "subsystems": [{
        "name": "array-a",
        "max_groups_per_target": 0,
        "portals": [{"address": address, "status": "online"} for address in (
            "10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260", "10.0.0.4:3260", "[fd00::1]:3260")],
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
def fake(monkeypatch: pytest.MonkeyPatch) -> t.Iterator[types.ModuleType]:
    """The backend uses the fake pypsrp; its journal and faults start empty."""
    monkeypatch.setattr(vds, "pypsrp", fake_pypsrp, raising=False)
    monkeypatch.setattr(vds, "PYPSRP_IMPORT_ERROR", None)
    fake_pypsrp.JOURNAL.clear()
    fake_pypsrp.FAULTS.clear()
    yield fake_pypsrp
    fake_pypsrp.JOURNAL.clear()
    fake_pypsrp.FAULTS.clear()


def write_state(path: pathlib.Path, data: dict[str, t.Any] | None = None) -> pathlib.Path:
    path.write_text(json.dumps(copy.deepcopy(STATE) if data is None else data, indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def state_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_state(tmp_path / "array-a.json")


def read(path: pathlib.Path) -> dict[str, t.Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def vds_args(state_path: pathlib.Path) -> dict[str, t.Any]:
    """Module arguments for backend vds; the fake host is the state file."""
    return {"backend": "vds", "vds_host": str(state_path), "vds_username": "Administrator",
            "vds_password": PASSWORD}


def invocations(journal: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return [entry for entry in journal if entry["event"] == "invoke"]
