# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""storage.vds.vds_portal_group run for real (AnsibleModule, argument spec) on the simulated provider."""

from __future__ import annotations

import pytest

from ansible_collections.storage.vds.plugins.modules import vds_portal_group
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, NO_TROUBLE


def warning_texts(result):
    """Warning messages of a module result (ansible-core 2.19+ sends them as WarningSummary events)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def group_args(simulator_args, **options):
    args = dict(simulator_args, target=IQN1)
    args.update(options)
    return args


# --- the quartet: check, real, check again, real again -------------------------------------------


def test_check_real_check_real(run_module, state_file, simulator_args):
    args = group_args(simulator_args, tag=1, portals=["10.0.0.1", "10.0.0.3:3260", "[FD00::1]"], purge_portals=True)
    before = state_file.provider()

    checked = run_module(vds_portal_group, args, check_mode=True, diff=True)
    assert not checked.failed and checked.result["changed"] is True
    assert state_file.provider() == before
    assert state_file.mutating_calls() == {}

    real = run_module(vds_portal_group, args, diff=True)
    assert not real.failed and real.result["changed"] is True
    assert real.result["steps"] == checked.result["steps"] == [
        {"action": "remove_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.2:3260"},
        {"action": "remove_portal", "target": IQN1, "tag": 2, "portal": "10.0.0.3:3260"},
        {"action": "add_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.3:3260", "from_tag": 2},
        {"action": "add_portal", "target": IQN1, "tag": 1, "portal": "[fd00::1]:3260"},
    ]
    assert real.result["group"] == {"tag": 1, "target": IQN1,
                                    "portals": ["10.0.0.1:3260", "10.0.0.3:3260", "[fd00::1]:3260"]}
    assert real.result["diff"] == checked.result["diff"] == {
        "before": {"target": IQN1, "groups": [{"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.2:3260"]},
                                              {"tag": 2, "portals": ["10.0.0.3:3260"]}]},
        "after": {"target": IQN1, "groups": [{"tag": 1, "portals": ["10.0.0.1:3260", "10.0.0.3:3260",
                                                                    "[fd00::1]:3260"]},
                                             {"tag": 2, "portals": []}]},
    }
    assert real.result["operations"] == NO_TROUBLE
    assert state_file.groups() == {1: ["10.0.0.1:3260", "10.0.0.3:3260", "[fd00::1]:3260"], 2: []}
    mutations = state_file.mutating_calls()
    assert mutations == {"AddPortal": 2, "RemovePortal": 2}

    again = run_module(vds_portal_group, args, check_mode=True, diff=True)
    assert again.result["changed"] is False and again.result["steps"] == []
    final = run_module(vds_portal_group, args, diff=True)
    assert final.result["changed"] is False and final.result["steps"] == []
    assert final.result["group"] == real.result["group"]
    assert final.result["diff"]["before"] == final.result["diff"]["after"] == real.result["diff"]["after"]
    assert state_file.mutating_calls() == mutations  # no mutating call in the second real run


def test_group_found_by_membership_or_created_with_the_provider_tag(run_module, state_file, simulator_args):
    args = group_args(simulator_args, portals=["10.0.0.5", "10.0.0.4"])
    checked = run_module(vds_portal_group, args, check_mode=True)
    assert checked.result["group"] == {"tag": None, "target": IQN1, "portals": ["10.0.0.4:3260", "10.0.0.5:3260"]}
    assert state_file.groups() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}
    created = run_module(vds_portal_group, args)
    assert created.result["changed"] is True
    assert created.result["group"] == {"tag": 3, "target": IQN1, "portals": ["10.0.0.4:3260", "10.0.0.5:3260"]}
    assert created.result["steps"][0] == {"action": "create_group", "target": IQN1, "tag": 3}
    assert state_file.groups()[3] == ["10.0.0.4:3260", "10.0.0.5:3260"]
    found = run_module(vds_portal_group, args)
    assert found.result["changed"] is False and found.result["group"]["tag"] == 3


def test_absent_removes_portals_then_deletes(run_module, state_file, simulator_args):
    args = group_args(simulator_args, tag=1, state="absent")
    result = run_module(vds_portal_group, args).result
    assert result["changed"] is True and result["group"] is None
    assert [step["action"] for step in result["steps"]] == ["remove_portal", "remove_portal", "delete_group"]
    assert state_file.groups() == {2: ["10.0.0.3:3260"]}
    assert run_module(vds_portal_group, args).result["changed"] is False


def test_target_is_matched_case_insensitively(run_module, state_file, simulator_args):
    result = run_module(vds_portal_group, group_args(simulator_args, target=IQN1.upper(), tag=2,
                                                     portals=["10.0.0.4"])).result
    assert result["group"]["target"] == IQN1
    assert state_file.groups()[2] == ["10.0.0.3:3260", "10.0.0.4:3260"]


# --- the provider's troubles, through the module ---------------------------------------------------


def test_busy_and_corrupt_cache_are_handled_and_counted(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data.update(faults=[
        {"operation": "AddPortal", "hresult": "VDS_E_ANOTHER_CALL_IN_PROGRESS", "times": 2, "phase": "call"},
        {"operation": "AddPortal", "hresult": "VDS_E_PROVIDER_CACHE_CORRUPT", "phase": "wait"},
    ]))
    result = run_module(vds_portal_group, group_args(simulator_args, tag=1, portals=["10.0.0.4"])).result
    assert result["changed"] is True
    assert result["operations"]["retries"] == 2 and result["operations"]["recoveries"] == 1
    assert state_file.groups()[1] == ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.4:3260"]


def test_provider_error_fails_with_the_hresult_and_what_was_done(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data.update(faults=[
        {"operation": "AddPortal", "hresult": "VDS_E_ACCESS_DENIED", "phase": "call"}]))
    run = run_module(vds_portal_group, group_args(simulator_args, tag=1, portals=["10.0.0.1", "10.0.0.4"],
                                                  purge_portals=True))
    assert run.failed
    assert run.result["msg"].startswith(
        "AddPortal 10.0.0.4:3260 -> group 1 of %s: VDS_E_ACCESS_DENIED (0x80042427): access denied" % IQN1)
    assert run.result["hresult"] == "0x80042427" and run.result["hresult_name"] == "VDS_E_ACCESS_DENIED"
    assert run.result["steps_done"] == [{"action": "remove_portal", "target": IQN1, "tag": 1,
                                         "portal": "10.0.0.2:3260"}]
    assert "exception" not in run.result  # no traceback for an expected failure
    assert run.result["changed"] is True  # the removal before the failure did change the provider
    assert state_file.groups()[1] == ["10.0.0.1:3260"]


def test_move_whose_add_fails_is_put_back(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data.update(faults=[
        {"operation": "AddPortal", "hresult": "0x80070490", "phase": "wait"}]))
    run = run_module(vds_portal_group, group_args(simulator_args, tag=1, portals=["10.0.0.3"]))
    assert run.failed
    assert "0x80070490" in run.result["msg"]
    assert run.result["msg"].endswith("10.0.0.3:3260 was put back in group 2, where it was before")
    assert run.result["operations"]["rollbacks"] == 1
    assert state_file.groups() == {1: ["10.0.0.1:3260", "10.0.0.2:3260"], 2: ["10.0.0.3:3260"]}


def test_group_cap_applies_the_declaration_to_the_existing_group_with_a_warning(
        run_module, state_file, simulator_args):
    state_file.edit(lambda data: data["subsystems"][0].update(max_groups_per_target=2))
    result = run_module(vds_portal_group, group_args(simulator_args, portals=["10.0.0.5"])).result
    assert result["changed"] is True
    assert result["group"] == {"tag": 1, "target": IQN1,
                               "portals": ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.5:3260"]}
    warnings = warning_texts(result)
    assert any("VDS_S_ALREADY_EXISTS" in w and "existing group 1" in w for w in warnings), warnings
    assert state_file.groups() == {1: ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.5:3260"], 2: ["10.0.0.3:3260"]}


# --- bad input: fails naming the value, changes nothing --------------------------------------------


@pytest.mark.parametrize("options, fragment", [
    ({"tag": 1, "portals": ["10.0.0.300"]}, "'10.0.0.300' is not an IPv4 or IPv6 address"),
    ({"tag": 1, "portals": ["10.0.0.4:70000"]}, "port 70000 is outside 1..65535"),
    ({"tag": 1, "portals": ["fd00::1"]}, "write an IPv6 portal as [address]:port"),
    ({"tag": 1, "portals": ["10.0.0.4", "10.0.0.4:3260"]}, "'10.0.0.4' and '10.0.0.4:3260' are the same portal"),
    ({"tag": 0, "portals": ["10.0.0.4"]}, "tag 0 is outside 1..65535"),
    ({"tag": 70000, "portals": ["10.0.0.4"]}, "tag 70000 is outside 1..65535"),
    ({"target": "iqn.1991-5.com.microsoft:x", "tag": 1}, "'iqn.1991-5.com.microsoft:x' is not an iSCSI name"),
    ({"target": "array-a-t1", "tag": 1}, "'array-a-t1' is not an iSCSI name"),
    ({"portals": []}, "give tag or at least one portal"),
    ({"tag": 1, "wait_timeout": 0}, "wait_timeout 0 must be at least 1 second"),
    ({"tag": 1, "wait_timeout": -5}, "wait_timeout -5 must be at least 1 second"),
])
def test_bad_input_fails_before_touching_the_file(run_module, state_file, simulator_args, options, fragment):
    before = state_file.raw()
    run = run_module(vds_portal_group, group_args(simulator_args, **options))
    assert run.failed
    assert fragment in run.result["msg"]
    assert "exception" not in run.result
    assert run.result["changed"] is False
    assert state_file.raw() == before


@pytest.mark.parametrize("options, fragments", [
    ({"target": "iqn.1991-05.com.microsoft:nope", "tag": 1},
     ["target iqn.1991-05.com.microsoft:nope does not exist", "known targets: %s" % IQN1]),
    ({"tag": 1, "portals": ["10.0.0.9:3261"]}, ["10.0.0.9:3261 is not a portal of subsystem array-a"]),
    ({"tag": 9, "portals": ["10.0.0.4"]}, ["tag 9 does not exist", "assigns tags itself", "existing tags: 1, 2"]),
    ({"tag": 1, "subsystem": "array-z"}, ["subsystem 'array-z' does not exist", "known subsystems: array-a"]),
])
def test_unknown_names_fail_before_any_change(run_module, state_file, simulator_args, options, fragments):
    before = state_file.provider()
    run = run_module(vds_portal_group, group_args(simulator_args, **options))
    assert run.failed
    for fragment in fragments:
        assert fragment in run.result["msg"]
    assert run.result["changed"] is False
    assert state_file.provider() == before
    assert state_file.mutating_calls() == {}


def test_lio_without_rtslib_fails_with_the_missing_library(run_module, state_file, monkeypatch):
    from ansible_collections.storage.vds.plugins.module_utils._backends import lio

    monkeypatch.setattr(lio, "RTSLIB_IMPORT_ERROR", "ModuleNotFoundError: No module named 'rtslib_fb'")
    before = state_file.raw()
    run = run_module(vds_portal_group, {"backend": "lio", "target": IQN1, "tag": 1, "portals": ["10.0.0.4"]})
    assert run.failed
    assert "Failed to import the required Python library (rtslib-fb)" in run.result["msg"]
    assert "for backend=lio" in run.result["msg"]
    assert state_file.raw() == before


def test_simulator_needs_its_state_file(run_module):
    run = run_module(vds_portal_group, {"backend": "simulator", "target": IQN1, "tag": 1})
    assert run.failed
    assert "simulator_state" in run.result["msg"] and "backend is simulator" in run.result["msg"]


def test_missing_state_file_fails_clearly(run_module, tmp_path):
    path = tmp_path / "nowhere.json"
    run = run_module(vds_portal_group, {"backend": "simulator", "simulator_state": str(path), "target": IQN1,
                                        "tag": 1})
    assert run.failed
    assert str(path) in run.result["msg"] and "does not exist" in run.result["msg"]
    assert not path.exists()


@pytest.mark.parametrize("options, fragment", [
    ({"backend": "windows"}, "backend"),
    ({"state": "gone"}, "state"),
    ({"purge_portals": "maybe"}, "purge_portals"),
    ({"tag": "one"}, "tag"),
    ({"unknown_option": 1}, "unknown_option"),
])
def test_argument_spec_rejects_wrong_options(run_module, state_file, simulator_args, options, fragment):
    before = state_file.raw()
    run = run_module(vds_portal_group, group_args(simulator_args, **options))
    assert run.failed and fragment in run.result["msg"]
    assert state_file.raw() == before


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_diff_only_in_diff_mode(run_module, simulator_args, check_mode):
    args = group_args(simulator_args, tag=1, portals=["10.0.0.4"])
    assert "diff" not in run_module(vds_portal_group, args, check_mode=check_mode).result
    assert "diff" in run_module(vds_portal_group, args, check_mode=check_mode, diff=True).result
