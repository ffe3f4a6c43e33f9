# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The wire to the Windows host: round trips and compiles per module run, counted by the fake transport."""

from __future__ import annotations

import json
import pathlib
import time
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends import vds
from ansible_collections.storage.vds.plugins.module_utils._vds import tasks
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.tests.fakes.pypsrp import _host

from .conftest import PASSWORD

IQN = "iqn.1991-05.com.microsoft:wire-t1"
ADDRESSES = ["10.0.1.%d:3260" % number for number in range(1, 13)]


@pytest.fixture
def host(tmp_path: pathlib.Path) -> str:
    """A host with one group holding the first of twelve portals."""
    path = tmp_path / "wire.json"
    path.write_text(json.dumps({
        "version": 1, "latency_ms": 0, "faults": [],
        "subsystems": [{"name": "array-w", "max_groups_per_target": 0,
                        "portals": [{"address": address, "status": "online"} for address in ADDRESSES],
                        "targets": [{"iqn": IQN, "alias": "w", "groups": [{"tag": 1, "portals": ADDRESSES[:1]}]}]}],
    }), encoding="utf-8")
    return str(path)


def run(host: str, portals: t.Sequence[str], wait_timeout: int = 30) -> tuple[dict[str, int], dict[str, t.Any]]:
    """One module run's worth of work; what it cost on the wire."""
    before = _host.counters(host)
    with vds.VdsBackend(vds.Connection(host=host, username="Administrator", password=PASSWORD,
                                       wait_timeout=wait_timeout)) as backend:
        result = tasks.portal_group(Engine(backend, wait_timeout), {"target": IQN, "tag": 1, "portals": list(portals)})
    after = _host.counters(host)
    return {key: after[key] - before.get(key, 0) for key in after}, result


def test_the_fake_counts_invocations_and_compiles(fake, host):
    assert _host.counters(host) == {"invocations": 0, "compiles": 0}
    with vds.VdsBackend(vds.Connection(host=host, username="Administrator", password=PASSWORD)) as backend:
        backend.snapshot()
        backend.snapshot()
    counts = _host.counters(host)
    assert counts["invocations"] == len([entry for entry in fake.JOURNAL if entry["event"] == "invoke"])
    assert counts["compiles"] == len([entry for entry in fake.JOURNAL if entry["event"] == "compile"]) == 1


def test_the_fake_charges_latency_and_compile_time(fake, host, monkeypatch):
    monkeypatch.setenv(_host.LATENCY_VARIABLE, "40")
    monkeypatch.setenv(_host.COMPILE_VARIABLE, "300")
    start = time.monotonic()
    counts, _result = run(host, ADDRESSES[:1])
    elapsed = time.monotonic() - start
    floor = counts["invocations"] * 0.040 + counts["compiles"] * 0.300
    assert floor <= elapsed < floor + 0.5


def steps_and_counts(host: str, portals: t.Sequence[str]) -> tuple[int, dict[str, int]]:
    counts, result = run(host, portals)
    return len(result["steps"]), counts


def test_a_step_costs_one_round_trip(fake, host):
    """The host waits on each operation: a step's start and its wait are one invocation, no polls."""
    assert steps_and_counts(host, ADDRESSES[:1]) == (0, {"invocations": 3, "compiles": 1})
    assert steps_and_counts(host, ADDRESSES[:2]) == (1, {"invocations": 1 + 3, "compiles": 1})
    assert steps_and_counts(host, ADDRESSES[:12]) == (10, {"invocations": 10 + 3, "compiles": 1})
    assert not [entry for entry in fake.JOURNAL if entry["event"] == "invoke"
                and ("QueryStatus" in entry["script"] or "::Wait(" in entry["script"])]
