# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""storage.vds.vds_portal_info run for real (AnsibleModule, argument spec) on the simulated provider."""

from __future__ import annotations

import pytest

from ansible_collections.storage.vds.plugins.modules import vds_portal_info
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2


EXPECTED = [{
    "name": "array-a",
    "portals": [{"address": address, "status": "online"} for address in (
        "10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260", "10.0.0.4:3260", "10.0.0.5:3260", "[fd00::1]:3260")],
    "targets": [
        {"iqn": IQN1, "alias": "t1", "groups": [{"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]},
                                                {"tag": 2, "portals": ["10.0.0.3:3260"]}]},
        {"iqn": IQN2, "alias": "t2", "groups": []},
    ],
}]


@pytest.mark.parametrize("check_mode", [False, True])
def test_reads_everything_and_changes_nothing(run_module, state_file, simulator_args, check_mode):
    before = state_file.provider()
    run = run_module(vds_portal_info, simulator_args, check_mode=check_mode)
    assert not run.failed
    assert run.result["changed"] is False
    assert run.result["subsystems"] == EXPECTED
    assert state_file.provider() == before and state_file.mutating_calls() == {}


def test_sorted_and_normalised_whatever_the_file_order(run_module, state_file, simulator_args):
    def shuffle(data):
        subsystem = data["subsystems"][0]
        subsystem["portals"].reverse()
        subsystem["portals"][0] = {"address": "[FD00:0::1]", "status": "offline"}
        subsystem["targets"].reverse()
        subsystem["targets"][1]["groups"].reverse()
        subsystem["targets"][1]["groups"][1]["portals"] = ["10.0.0.2", "10.0.0.1:3260"]
        subsystem["targets"][1]["iqn"] = IQN1.upper()

    state_file.edit(shuffle)
    subsystem = run_module(vds_portal_info, simulator_args).result["subsystems"][0]
    assert [p["address"] for p in subsystem["portals"]] == [p["address"] for p in EXPECTED[0]["portals"]]
    assert subsystem["portals"][-1] == {"address": "[fd00::1]:3260", "status": "offline"}
    assert subsystem["targets"] == EXPECTED[0]["targets"]


def test_filters(run_module, state_file, simulator_args):
    result = run_module(vds_portal_info, dict(simulator_args, target=IQN2.upper())).result
    assert [t["iqn"] for t in result["subsystems"][0]["targets"]] == [IQN2]
    result = run_module(vds_portal_info, dict(simulator_args, subsystem="array-a")).result
    assert result["subsystems"] == EXPECTED


@pytest.mark.parametrize("options, fragment", [
    ({"target": "iqn.1991-05.com.microsoft:nope"}, "known targets: %s, %s" % (IQN1, IQN2)),
    ({"subsystem": "array-z"}, "subsystem 'array-z' does not exist; known subsystems: array-a"),
    ({"target": "nope"}, "'nope' is not an iSCSI name"),
])
def test_unknown_or_bad_filters_fail_naming_what_exists(run_module, state_file, simulator_args, options, fragment):
    run = run_module(vds_portal_info, dict(simulator_args, **options))
    assert run.failed and fragment in run.result["msg"]
    assert "exception" not in run.result


def test_a_provider_error_on_read_fails_clearly(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data.update(faults=[{"operation": "QueryPortalGroups",
                                                      "hresult": "VDS_E_ACCESS_DENIED"}]))
    run = run_module(vds_portal_info, simulator_args)
    assert run.failed
    assert run.result["msg"].startswith("reading the state of every subsystem: VDS_E_ACCESS_DENIED (0x80042427)")


def test_a_busy_read_is_retried(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data.update(faults=[{"operation": "QueryPortalGroups",
                                                      "hresult": "VDS_E_ANOTHER_CALL_IN_PROGRESS", "times": 2}]))
    run = run_module(vds_portal_info, simulator_args)
    assert not run.failed and run.result["subsystems"] == EXPECTED


def test_a_broken_state_file_fails_naming_the_place(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data["subsystems"][0]["portals"].append({"address": "10.0.0.1:99999"}))
    run = run_module(vds_portal_info, simulator_args)
    assert run.failed
    assert str(state_file.path) in run.result["msg"] and "99999" in run.result["msg"]


@pytest.mark.parametrize("args, fragment", [
    ({"backend": "vds"}, "backend is vds but all of the following are missing: vds_host"),
    ({"backend": "lio"}, "Failed to import the required Python library (rtslib-fb)"),
    ({"backend": "simulator"}, "simulator_state"),
    ({"backend": "simulator", "simulator_state": "/nonexistent/dir/state.json"}, "/nonexistent/dir/state.json"),
])
def test_backend_choice(run_module, monkeypatch, args, fragment):
    from ansible_collections.storage.vds.plugins.module_utils._backends import lio

    monkeypatch.setattr(lio, "RTSLIB_IMPORT_ERROR", "ModuleNotFoundError: No module named 'rtslib_fb'")
    run = run_module(vds_portal_info, args)
    assert run.failed and fragment in run.result["msg"]
