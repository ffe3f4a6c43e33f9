# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""storage.vds.vds_portal_groups run for real (AnsibleModule, argument spec) on the simulated provider."""

from __future__ import annotations

import pytest

from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalGroup, Target
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import missing_tag_error
from ansible_collections.storage.vds.plugins.modules import vds_portal_groups
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1, IQN2, IQN3, NO_TROUBLE


def warning_texts(result):
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def groups_of(view):
    return {group["tag"]: group["portals"] for group in view["groups"]}


# --- the quartet for each state: check, real, check again, real again ----------------------------

QUARTETS = [
    ("merged", [{"target": IQN1, "groups": [{"tag": 1, "portals": ["10.0.0.3", "10.0.0.4"]}]}],
     {IQN1: {1: ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260", "10.0.0.4:3260"], 2: []}},
     {"RemovePortal": 1, "AddPortal": 2}),
    ("replaced", [{"target": IQN1, "groups": [{"tag": 1, "portals": ["10.0.0.1", "[FD00::1]"]}]},
                  {"target": IQN2, "groups": [{"portals": ["10.0.0.1", "10.0.0.5"]}]}],
     {IQN1: {1: ["10.0.0.1:3260", "[fd00::1]:3260"], 2: ["10.0.0.3:3260"]},
      IQN2: {1: ["10.0.0.1:3260", "10.0.0.5:3260"]}},
     {"RemovePortal": 1, "AddPortal": 2}),
    ("overridden", [{"target": IQN1, "groups": [{"portals": ["10.0.0.3"]}, {"portals": ["10.0.0.6"]}]}],
     {IQN1: {2: ["10.0.0.3:3260"], 3: ["10.0.0.6:3260"]}},
     {"RemovePortal": 2, "DeletePortalGroup": 1, "CreatePortalGroup": 1, "AddPortal": 1}),
    ("deleted", [{"target": IQN1, "groups": [{"tag": 2}]}, {"target": IQN2}],
     {IQN1: {1: ["10.0.0.1:3260", "10.0.0.2:3260"]}, IQN2: {}},
     {"RemovePortal": 2, "DeletePortalGroup": 2}),
]


@pytest.mark.parametrize("state, declared, final, mutations", QUARTETS, ids=[case[0] for case in QUARTETS])
def test_check_real_check_real(run_module, state_file, simulator_args, state, declared, final, mutations):
    args = dict(simulator_args, state=state, config=declared)
    before = state_file.provider()

    checked = run_module(vds_portal_groups, args, check_mode=True, diff=True)
    assert not checked.failed and checked.result["changed"] is True
    assert state_file.provider() == before and state_file.calls() == {"Snapshot": 2}

    real = run_module(vds_portal_groups, args, diff=True)
    assert not real.failed and real.result["changed"] is True
    assert real.result["before"] == checked.result["before"]
    assert [step["action"] for step in real.result["steps"]] == [step["action"] for step in checked.result["steps"]]
    assert {view["target"]: groups_of(view) for view in real.result["after"]} == final
    assert {iqn: state_file.groups(iqn) for iqn in final} == final
    assert state_file.mutating_calls() == mutations
    assert sum(mutations.values()) == len(real.result["steps"])
    assert real.result["operations"] == NO_TROUBLE
    assert [entry["before"] for entry in real.result["diff"]] == real.result["before"]
    assert [entry["after"] for entry in real.result["diff"]] == real.result["after"]

    again = run_module(vds_portal_groups, args, check_mode=True, diff=True)
    assert again.result["changed"] is False and again.result["steps"] == []
    final_run = run_module(vds_portal_groups, args)
    assert final_run.result["changed"] is False and final_run.result["steps"] == []
    assert "diff" not in final_run.result  # only in diff mode
    assert final_run.result["before"] == final_run.result["after"] == real.result["after"]
    assert state_file.mutating_calls() == mutations
    assert state_file.calls()["Snapshot"] == 4 * 2  # four executions, two subsystems each


def test_check_mode_shows_new_groups_with_tag_null(run_module, simulator_args):
    args = dict(simulator_args, config=[{"target": IQN3, "groups": [{"portals": ["10.0.0.1"]},
                                                                    {"portals": ["10.0.0.2"]}]}])
    checked = run_module(vds_portal_groups, args, check_mode=True)
    assert checked.result["after"] == [{"target": IQN3, "subsystem": "array-b", "groups": [
        {"tag": None, "portals": ["10.0.0.1:3260"]}, {"tag": None, "portals": ["10.0.0.2:3260"]}]}]
    assert [(step["action"], step["tag"], step["new_group"]) for step in checked.result["steps"]] == [
        ("create_group", None, 1), ("create_group", None, 2), ("add_portal", None, 1), ("add_portal", None, 2)]
    real = run_module(vds_portal_groups, args)
    assert real.result["after"][0]["groups"] == [{"tag": 1, "portals": ["10.0.0.1:3260"]},
                                                 {"tag": 2, "portals": ["10.0.0.2:3260"]}]


def test_gathered(run_module, simulator_args, state_file):
    result = run_module(vds_portal_groups, dict(simulator_args, state="gathered")).result
    assert result["changed"] is False
    assert [(view["target"], view["subsystem"]) for view in result["gathered"]] == [
        (IQN1, "array-a"), (IQN2, "array-a"), (IQN3, "array-b")]
    assert "before" not in result and state_file.mutating_calls() == {}


def test_gathered_output_renders_offline_with_no_provider_at_all(run_module, simulator_args, tmp_path):
    gathered = run_module(vds_portal_groups, dict(simulator_args, state="gathered")).result["gathered"]
    # a Windows host that does not exist: rendered must not try to reach it
    args = {"backend": "vds", "vds_host": "vds.invalid", "state": "rendered", "render_as": "replaced", "running_config": gathered,
            "config": [{"target": IQN1, "subsystem": "array-a", "groups": [{"tag": 2, "portals": ["10.0.0.1"]}]}]}
    rendered = run_module(vds_portal_groups, args)
    assert not rendered.failed and rendered.result["changed"] is False
    assert rendered.result["rendered"] == [
        {"action": "remove_portal", "target": IQN1, "tag": 2, "portal": "10.0.0.3:3260", "subsystem": "array-a"},
        {"action": "remove_portal", "target": IQN1, "tag": 1, "portal": "10.0.0.1:3260", "subsystem": "array-a"},
        {"action": "add_portal", "target": IQN1, "tag": 2, "portal": "10.0.0.1:3260", "from_tag": 1,
         "subsystem": "array-a"}]
    assert groups_of(rendered.result["after"][0]) == {1: ["10.0.0.2:3260"], 2: ["10.0.0.1:3260"]}
    assert "operations" not in rendered.result
    missing = dict(args, backend="simulator", simulator_state=str(tmp_path / "nowhere.json"))
    assert not run_module(vds_portal_groups, missing).failed


@pytest.mark.parametrize("args, fragment", [
    ({"config": [{"target": "iqn.2024", "groups": []}]}, "config[0]: target 'iqn.2024' is not an iSCSI name"),
    ({"config": [{"target": IQN1, "groups": [{"portals": ["10.0.0.256"]}]}]}, "'10.0.0.256'"),
    ({"config": [{"target": IQN1, "groups": [{"tag": 70000, "portals": []}]}]}, "tag 70000 is outside 1..65535"),
    ({"config": [{"target": IQN1, "groups": [{"tag": 1, "portals": ["10.0.0.1"]},
                                             {"tag": 2, "portals": ["10.0.0.1"]}]}]},
     "portal 10.0.0.1:3260 is declared in groups[0] and groups[1]"),
    ({"config": []}, "config is empty: state=merged needs at least one target"),
    ({"state": "replaced"}, "state is replaced but any of the following are missing: config, groups"),
    ({"config": [{"target": IQN1}], "groups": [{"target": IQN1, "tag": 1}]},
     "parameters are mutually exclusive: config|groups"),
    ({"config": [{"target": IQN1}], "groups_label": "desired"},
     "missing parameter(s) required by 'groups_label': groups"),
    ({"groups": [{"target": IQN1, "tag": 1}, {"target": IQN1, "portals": ["10.0.0.5"]}, {"tag": 2}]},
     "missing required arguments: target found in groups"),
    ({"groups": [{"target": IQN1, "tag": 1}, {"target": IQN1.upper(), "tag": 1, "portals": ["10.0.0.5"]}],
      "groups_label": "desired"}, "desired[0] and desired[1] both declare tag 1"),
    ({"groups": [{"target": IQN2, "tag": 1}, {"target": IQN1, "portals": ["10.0.0.9"]}], "groups_label": "desired"},
     "desired[1]: portal 10.0.0.9:3260 is not a portal of subsystem array-a"),
    ({"groups": [{"target": IQN1, "tag": 1}, {"target": IQN1, "tag": 7}]},
     "groups[1]: portal group with tag 7 does not exist on target %s" % IQN1),
    ({"groups": [], "groups_label": "desired"}, "desired is empty: state=merged needs at least one group"),
    ({"config": [{"target": IQN1}], "running_config": []}, "running_config is used only with state=rendered"),
    ({"config": [{"target": IQN1, "groups": [{"tag": "one"}]}]}, "'one'"),
    ({"config": [{"target": IQN1, "groups": [{"portals": ["10.0.0.9"]}]}]},
     "portal 10.0.0.9:3260 is not a portal of subsystem array-a"),
    ({"config": [{"target": IQN1}], "wait_timeout": 0}, "wait_timeout 0 must be at least 1 second"),
    ({"state": "rendered", "config": [{"target": IQN1}], "running_config": [{"target": IQN1, "groups": [{}]}]},
     "missing required arguments: tag"),
])
def test_bad_input_fails_cleanly_and_changes_nothing(run_module, state_file, simulator_args, args, fragment):
    before = state_file.provider()
    failed = run_module(vds_portal_groups, dict(simulator_args, **args))
    assert failed.failed and fragment in failed.result["msg"]
    assert "exception" not in failed.result and "Traceback" not in failed.result["msg"]
    assert failed.result.get("changed", False) is False
    assert state_file.provider() == before and state_file.mutating_calls() == {}


def test_rendered_refuses_a_wait_timeout_every_other_state_refuses(run_module):
    args = {"backend": "simulator", "simulator_state": "/nowhere.json", "state": "rendered", "wait_timeout": 0,
            "config": [{"target": IQN1, "groups": [{"portals": ["10.0.0.1"]}]}]}
    failed = run_module(vds_portal_groups, args)
    assert failed.failed and failed.result["msg"] == "wait_timeout 0 must be at least 1 second"
    assert not run_module(vds_portal_groups, dict(args, wait_timeout=1)).failed


def test_a_missing_tag_is_explained(run_module, simulator_args):
    failed = run_module(vds_portal_groups, dict(simulator_args, config=[
        {"target": IQN1, "groups": [{"tag": 7, "portals": ["10.0.0.4"]}]}]))
    target = Target("", IQN1, "", (PortalGroup("", 1), PortalGroup("", 2)))
    assert failed.result["msg"] == "config[0].groups[0]: %s" % missing_tag_error(target, 7)


def test_a_failure_after_some_steps_reports_them_and_changed(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data.update(faults=[
        {"operation": "DeletePortalGroup", "hresult": "VDS_E_ASYNC_OBJECT_FAILURE", "phase": "wait"}]))
    failed = run_module(vds_portal_groups, dict(simulator_args, state="deleted", config=[{"target": IQN2}]))
    assert failed.failed and failed.result["changed"] is True
    assert failed.result["msg"].startswith("Delete group 1 of %s: VDS_E_ASYNC_OBJECT_FAILURE (0x8004244E)" % IQN2)
    assert failed.result["steps_done"] == [
        {"action": "remove_portal", "target": IQN2, "tag": 1, "portal": "10.0.0.1:3260", "subsystem": "array-a"}]
    assert failed.result["operations"] == NO_TROUBLE
    assert failed.result["hresult_name"] == "VDS_E_ASYNC_OBJECT_FAILURE"


def test_a_capped_provider_warns(run_module, state_file, simulator_args):
    state_file.edit(lambda data: data["subsystems"][0].update(max_groups_per_target=2))
    result = run_module(vds_portal_groups, dict(simulator_args, config=[
        {"target": IQN1, "groups": [{"portals": ["10.0.0.6"]}]}])).result
    assert warning_texts(result) == [
        "the provider allows no more portal groups on %s: CreatePortalGroup answered VDS_S_ALREADY_EXISTS and "
        "returned existing group 1, so config[0].groups[0] was applied to group 1" % IQN1]
    assert state_file.groups(IQN1)[1] == ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.6:3260"]


def test_module_defaults_group_lists_the_module():
    import pathlib

    import yaml

    runtime = pathlib.Path(vds_portal_groups.__file__).parents[2] / "meta" / "runtime.yml"
    assert "vds_portal_groups" in yaml.safe_load(runtime.read_text(encoding="utf-8"))["action_groups"]["vds"]


def test_rendered_for_a_provider_that_takes_the_declared_tag(run_module):
    args = {"backend": "lio", "state": "rendered", "config": [{"target": IQN1, "groups": [
        {"tag": 5, "portals": ["10.0.0.1"]}, {"portals": ["10.0.0.2"]}]}]}
    rendered = run_module(vds_portal_groups, args)
    assert [(step["action"], step["tag"]) for step in rendered.result["rendered"]] == [
        ("create_group", 5), ("create_group", 1), ("add_portal", 1), ("add_portal", 5)]
    with_vds = run_module(vds_portal_groups, dict(args, backend="vds", vds_host="vds.invalid"))
    assert with_vds.failed and "portal group with tag 5 does not exist" in with_vds.result["msg"]


# --- groups, one per entry as the role takes them, and the summary ----------------------------------

#: One declaration of two targets, one group per entry: group 1 of t1 gains 10.0.0.3 from group 2, which is
#: left undeclared (deleted), t1 gets a new group for 10.0.0.4 (its entry spelled in upper case), and t2's one
#: group is replaced by a new one.
DESIRED = [
    {"target": IQN1, "tag": 1, "portals": ["10.0.0.1", "10.0.0.3"]},
    {"target": IQN2, "portals": ["10.0.0.5"]},
    {"target": IQN1.upper(), "portals": ["10.0.0.4"]},
]


def test_groups_quartet_with_a_summary(run_module, state_file, simulator_args):
    args = dict(simulator_args, state="overridden", purge_portals=False, groups=DESIRED,
                groups_label="portal_groups_desired")
    before = state_file.provider()

    checked = run_module(vds_portal_groups, args, check_mode=True, diff=True)
    assert not checked.failed and checked.result["changed"] is True
    assert state_file.provider() == before
    assert checked.result["summary"] == [
        "check mode: nothing was changed; these are the steps a real run would take",
        "%s group 1: 10.0.0.1:3260, 10.0.0.2:3260, 10.0.0.3:3260 [+10.0.0.3:3260 from group 2]" % IQN1,
        "%s group (new): 10.0.0.4:3260 [create the group, +10.0.0.4:3260]" % IQN1,
        "%s group 2: (none) [delete the group]" % IQN1,
        "%s group (new): 10.0.0.5:3260 [create the group, +10.0.0.5:3260]" % IQN2,
        "%s group 1: (none) [-10.0.0.1:3260, delete the group]" % IQN2,
    ]

    real = run_module(vds_portal_groups, args)
    assert not real.failed and real.result["changed"] is True
    assert [step["action"] for step in real.result["steps"]] == [step["action"] for step in checked.result["steps"]]
    assert state_file.groups(IQN1) == {1: ["10.0.0.1:3260", "10.0.0.2:3260", "10.0.0.3:3260"], 3: ["10.0.0.4:3260"]}
    assert state_file.groups(IQN2) == {2: ["10.0.0.5:3260"]}
    assert real.result["summary"] == [
        "%s: 5 steps" % IQN1,
        "%s group 1: 10.0.0.1:3260, 10.0.0.2:3260, 10.0.0.3:3260" % IQN1,
        "%s group 3: 10.0.0.4:3260" % IQN1,
        "%s: 4 steps" % IQN2,
        "%s group 2: 10.0.0.5:3260" % IQN2,
    ]

    again = run_module(vds_portal_groups, args, check_mode=True)
    assert again.result["changed"] is False
    assert again.result["summary"] == [
        "check mode: nothing was changed; these are the steps a real run would take",
        "%s group 1: 10.0.0.1:3260, 10.0.0.2:3260, 10.0.0.3:3260 [unchanged]" % IQN1,
        "%s group 3: 10.0.0.4:3260 [unchanged]" % IQN1,
        "%s group 2: 10.0.0.5:3260 [unchanged]" % IQN2,
    ]
    final_run = run_module(vds_portal_groups, args)
    assert final_run.result["changed"] is False and final_run.result["summary"] == []
    assert state_file.calls()["Snapshot"] == 4 * 2  # one execution each, reading both subsystems (none named)


def test_groups_give_the_result_config_gives(run_module, state_file, simulator_args):
    config = [{"target": IQN1, "groups": [{"tag": 1, "portals": ["10.0.0.1", "10.0.0.3"], "purge_portals": False},
                                          {"portals": ["10.0.0.4"], "purge_portals": False}]},
              {"target": IQN2, "groups": [{"portals": ["10.0.0.5"], "purge_portals": False}]}]
    start = state_file.provider()
    with_config = run_module(vds_portal_groups, dict(simulator_args, state="overridden", config=config),
                             check_mode=True, diff=True).result
    with_groups = run_module(vds_portal_groups, dict(simulator_args, state="overridden", purge_portals=False,
                                                     groups=DESIRED), check_mode=True, diff=True).result
    assert with_groups == with_config
    assert state_file.provider() == start
