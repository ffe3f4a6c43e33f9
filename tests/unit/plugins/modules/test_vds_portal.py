# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""storage.vds.vds_portal run for real (AnsibleModule, argument spec) on the simulated provider."""

from __future__ import annotations

import pytest

from ansible_collections.storage.vds.plugins.modules import vds_portal
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2


def portal_args(simulator_args, **options):
    args = dict(simulator_args, target=IQN1)
    args.update(options)
    return args


def test_move_with_status_check_real_check_real(run_module, state_file, simulator_args):
    args = portal_args(simulator_args, portal="10.0.0.1", tag=2, status="offline")
    before = state_file.provider()

    checked = run_module(vds_portal, args, check_mode=True, diff=True)
    assert checked.result["changed"] is True
    assert state_file.provider() == before and state_file.mutating_calls() == {}

    real = run_module(vds_portal, args, diff=True)
    for run in (checked, real):
        assert run.result["portal"] == "10.0.0.1:3260"
        assert (run.result["previous_tag"], run.result["tag"], run.result["status"]) == (1, 2, "offline")
        assert run.result["steps"] == [
            {"action": "remove_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.1:3260"},
            {"action": "add_portal", "target": IQN1, "tag": 2, "portal": "10.0.0.1:3260", "from_tag": 1},
            {"action": "set_status", "target": IQN1, "tag": None, "portal": "10.0.0.1:3260", "status": "offline"},
        ]
        assert run.result["diff"] == {
            "before": {"target": IQN1, "portal_status": "online", "groups": [
                {"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]}, {"tag": 2, "portals": ["10.0.0.3:3260"]}]},
            "after": {"target": IQN1, "portal_status": "offline", "groups": [
                {"tag": 1, "portals": ["10.0.0.2:3260"]}, {"tag": 2, "portals": ["10.0.0.1:3260", "10.0.0.3:3260"]}]},
        }
    assert state_file.groups() == {1: ["10.0.0.2:3260"], 2: ["10.0.0.1:3260", "10.0.0.3:3260"]}
    assert state_file.status("10.0.0.1:3260") == "offline"
    mutations = state_file.mutating_calls()
    assert mutations == {"AddPortal": 1, "RemovePortal": 1, "SetStatus": 1}

    again = run_module(vds_portal, args, check_mode=True, diff=True)
    assert again.result["changed"] is False
    final = run_module(vds_portal, args, diff=True)
    assert final.result["changed"] is False and final.result["steps"] == []
    assert (final.result["previous_tag"], final.result["tag"], final.result["status"]) == (2, 2, "offline")
    assert state_file.mutating_calls() == mutations


def test_absent_takes_the_portal_out_of_whichever_group_holds_it(run_module, state_file, simulator_args):
    args = portal_args(simulator_args, portal="10.0.0.3:3260", state="absent")
    result = run_module(vds_portal, args).result
    assert result["changed"] is True
    assert (result["previous_tag"], result["tag"]) == (2, None)
    assert state_file.groups() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: []}
    assert run_module(vds_portal, args).result["changed"] is False


def test_absent_from_another_group_changes_nothing(run_module, state_file, simulator_args):
    result = run_module(vds_portal, portal_args(simulator_args, portal="10.0.0.3", tag=1, state="absent")).result
    assert result["changed"] is False and result["tag"] == 2
    assert state_file.mutating_calls() == {}


def test_ipv6_portal_is_normalised(run_module, state_file, simulator_args):
    result = run_module(vds_portal, portal_args(simulator_args, portal="[FD00:0:0::1]", tag=1)).result
    assert result["portal"] == "[fd00::1]:3260" and result["tag"] == 1
    assert "[fd00::1]:3260" in state_file.groups()[1]


def test_the_same_portal_may_serve_another_target(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data["subsystems"][0]["targets"][1].update(groups=[{"tag": 1, "portals": []}]))
    result = run_module(vds_portal, portal_args(simulator_args, target=IQN2, portal="10.0.0.1", tag=1)).result
    assert result["changed"] is True and result["previous_tag"] is None
    assert state_file.groups(IQN2) == {1: ["10.0.0.1:3260"]}
    assert state_file.groups()[1] == ["10.0.0.1:3260", "10.0.0.2:3260"]


def test_put_back_when_the_add_of_a_move_fails(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data.update(faults=[
        {"operation": "AddPortal", "hresult": "VDS_E_PROVIDER_FAILURE", "phase": "wait"}]))
    run = run_module(vds_portal, portal_args(simulator_args, portal="10.0.0.1", tag=2))
    assert run.failed
    assert run.result["msg"].startswith(
        "AddPortal 10.0.0.1:3260 -> group 2 of %s: VDS_E_PROVIDER_FAILURE (0x80042442)" % IQN1)
    assert run.result["msg"].endswith("10.0.0.1:3260 was put back in group 1, where it was before")
    assert state_file.groups() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


@pytest.mark.parametrize("options, fragment", [
    ({"portal": "10.0.0.1:0", "tag": 1}, "port 0 is outside 1..65535"),
    ({"portal": "10.0.0.1:70000", "tag": 1}, "port 70000 is outside 1..65535"),
    ({"portal": "10.0.0.1:http", "tag": 1}, "port 'http' is not a number"),
    ({"portal": "10.0.0.1:\u00b2", "tag": 1}, "port"),   # str.isdigit() but not int(): no traceback either
    ({"portal": "300.0.0.1", "tag": 1}, "'300.0.0.1' is not an IPv4 or IPv6 address"),
    ({"portal": "[fe80::1%eth0]", "tag": 1}, "scoped IPv6 addresses"),
    ({"portal": "10.0.0.1", "tag": 0}, "tag 0 is outside 1..65535"),
    ({"portal": "10.0.0.1", "tag": 70000}, "tag 70000 is outside 1..65535"),
    ({"portal": "10.0.0.1", "tag": 1, "target": "eui.123"}, "'eui.123' is not an iSCSI name"),
    ({"portal": "10.0.0.1", "tag": 1, "wait_timeout": 0}, "wait_timeout 0 must be at least 1 second"),
    ({"portal": "10.0.0.1"}, "state is present but all of the following are missing: tag"),
    ({"portal": "10.0.0.1", "tag": 1, "status": "failed"}, "status"),
])
def test_bad_input_fails_before_touching_the_file(run_module, state_file, simulator_args, options, fragment):
    before = state_file.raw()
    run = run_module(vds_portal, portal_args(simulator_args, **options))
    assert run.failed and fragment in run.result["msg"]
    assert "exception" not in run.result
    assert state_file.raw() == before


@pytest.mark.parametrize("options, fragments", [
    ({"portal": "10.0.0.9", "tag": 1}, ["10.0.0.9:3260 is not a portal of subsystem array-a",
                                        "known portals: 10.0.0.1:3260"]),
    ({"portal": "10.0.0.4", "tag": 7}, ["tag 7 does not exist on target %s" % IQN1, "existing tags: 1, 2"]),
    ({"portal": "10.0.0.4", "tag": 1, "target": "iqn.2000-01.com.example:none"},
     ["target iqn.2000-01.com.example:none does not exist", "known targets: %s, %s" % (IQN1, IQN2)]),
])
def test_unknown_names_fail_before_any_change(run_module, state_file, simulator_args, options, fragments):
    before = state_file.provider()
    run = run_module(vds_portal, portal_args(simulator_args, **options))
    assert run.failed
    for fragment in fragments:
        assert fragment in run.result["msg"]
    assert state_file.provider() == before and state_file.mutating_calls() == {}


def test_lio_without_rtslib_fails_with_the_missing_library(run_module, monkeypatch):
    from ansible_collections.storage.vds.plugins.module_utils._backends import lio

    monkeypatch.setattr(lio, "RTSLIB_IMPORT_ERROR", "ModuleNotFoundError: No module named 'rtslib_fb'")
    run = run_module(vds_portal, {"backend": "lio", "target": IQN1, "portal": "10.0.0.1", "tag": 1})
    assert run.failed and "Failed to import the required Python library (rtslib-fb)" in run.result["msg"]


def test_simulator_needs_its_state_file(run_module):
    run = run_module(vds_portal, {"backend": "simulator", "target": IQN1, "portal": "10.0.0.1", "tag": 1})
    assert run.failed and "simulator_state" in run.result["msg"]


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_diff_only_in_diff_mode(run_module, simulator_args, check_mode):
    args = portal_args(simulator_args, portal="10.0.0.4", tag=1, status="offline")
    assert "diff" not in run_module(vds_portal, args, check_mode=check_mode).result
    shown = run_module(vds_portal, args, check_mode=check_mode, diff=True).result["diff"]
    assert shown["after"]["portal_status"] == "offline"
