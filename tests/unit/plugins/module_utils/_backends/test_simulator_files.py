# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The simulator's files: where it writes (symlinks), what it leaves behind, what it refuses to read."""

from __future__ import annotations

import json
import os
import pathlib
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend, read_state
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import S_OK, StateFileError

IQN = "iqn.1991-05.com.microsoft:array-a-t1"
P1, P2 = "10.0.0.1:3260", "10.0.0.2:3260"


def small_state() -> dict[str, t.Any]:
    return {"version": 1, "subsystems": [{"name": "array-a", "portals": [{"address": P1}, {"address": P2}],
                                          "targets": [{"iqn": IQN, "groups": [{"tag": 1, "portals": [P1]}]}]}]}


def add_p2(path: pathlib.Path) -> None:
    """One AddPortal of P2 to group 1, through the path given."""
    backend = SimulatorBackend(str(path))
    subsystem = backend.snapshot().subsystems[0]
    portal = next(portal for portal in subsystem.portals if str(portal.address) == P2)
    operation = backend.add_portal(subsystem.targets[0].groups[0].id, portal.id)
    assert backend.result(operation).operation_hresult == S_OK
    backend.close()


def test_a_symlinked_state_file_is_written_through_to_its_target(tmp_path: pathlib.Path) -> None:
    real = tmp_path / "arrays" / "real.json"
    real.parent.mkdir()
    real.write_text(json.dumps(small_state()), encoding="utf-8")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    add_p2(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text(encoding="utf-8"))["subsystems"][0]["targets"][0]["groups"][0]["portals"] == [
        P1, P2]
    # The lock and any temporary file live beside the file written, not beside the link.
    assert sorted(os.listdir(real.parent)) == ["real.json", "real.json.lock"]
    assert sorted(os.listdir(tmp_path)) == ["arrays", "link.json"]


def test_a_missing_state_file_leaves_no_lock_file(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(StateFileError, match="simulator state file %s does not exist" % missing):
        SimulatorBackend(str(missing)).snapshot()
    assert os.listdir(tmp_path) == []


def test_a_dangling_symlink_is_a_missing_state_file_named_as_given(tmp_path: pathlib.Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "gone.json")
    with pytest.raises(StateFileError, match="simulator state file %s does not exist" % link):
        SimulatorBackend(str(link)).snapshot()
    assert os.listdir(tmp_path) == ["link.json"]


@pytest.mark.parametrize("text", ["[" * 100000, '{"a":' * 100000, '[{"a":' * 50000])
def test_deeply_nested_json_is_not_valid_json(tmp_path: pathlib.Path, text: str) -> None:
    path = tmp_path / "deep.json"
    path.write_text(text, encoding="utf-8")
    expected = "simulator state file %s is not valid JSON: arrays or objects are nested too deeply" % path
    with pytest.raises(StateFileError) as refused:
        SimulatorBackend(str(path)).snapshot()
    assert str(refused.value) == expected
    with pytest.raises(StateFileError) as refused:
        read_state(str(path))
    assert str(refused.value) == expected
