# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""vds_portal_groups with backend lio, on the fake kernel target: whole targets in one execution."""

from __future__ import annotations

from ansible_collections.storage.vds.plugins.modules import vds_portal_groups

from ansible_collections.storage.vds.tests.unit.plugins.constants import LIO_IQN1 as IQN1, LIO_IQN2 as IQN2

from .conftest import HOST


def quartet(run_module, kernel, args):
    """check, real, check, real: the real run does what check mode planned; then nothing is left to do."""
    checked = run_module(vds_portal_groups, args, check_mode=True)
    assert checked.result["changed"] and kernel.mutations == 0 and kernel.saved == []
    real = run_module(vds_portal_groups, args)
    assert real.result["changed"] and real.result["steps"] == checked.result["steps"]
    assert real.result["after"] == checked.result["after"]
    assert real.result["saved"] is True and kernel.saved[-1][1] == kernel.dump()
    for check_mode in (True, False):
        again = run_module(vds_portal_groups, args, check_mode=check_mode)
        assert not again.result["changed"] and again.result["steps"] == [] and again.result["saved"] is False
    assert len(kernel.saved) == 1
    return real.result


def test_overridden_replaces_the_wildcard_and_creates_the_declared_tags(run_module, kernel):
    config = [{"target": IQN1, "groups": [{"tag": 1, "portals": ["127.0.0.1", "[::1]"]},
                                          {"tag": 7, "portals": ["192.0.2.10:3270"]}]}]
    result = quartet(run_module, kernel, {"state": "overridden", "config": config})
    # the wildcard went before any specific address joined its port; TPG 2 was emptied and deleted
    assert kernel.groups() == {1: ["127.0.0.1:3260", "[::1]:3260"], 7: ["192.0.2.10:3270"]}
    actions = [(step["action"], step["tag"], step.get("portal")) for step in result["steps"]]
    assert actions.index(("remove_portal", 1, "0.0.0.0:3260")) < actions.index(("add_portal", 1, "127.0.0.1:3260"))
    assert ("create_group", 7, None) in actions and ("delete_group", 2, None) in actions
    assert kernel.targets[IQN1][7].enable is True
    assert kernel.groups(IQN2) == {1: ["192.0.2.10:3262"]}  # not declared: untouched


def test_merged_without_a_tag_takes_the_lowest_free_one(run_module, kernel):
    config = [{"target": IQN2, "groups": [{"portals": ["192.0.2.11:3263"]}]}]
    quartet(run_module, kernel, {"state": "merged", "config": config})
    assert kernel.groups(IQN2) == {1: ["192.0.2.10:3262"], 2: ["192.0.2.11:3263"]}


def test_gathered_has_the_shape_of_config(run_module, kernel):
    gathered = run_module(vds_portal_groups, {"state": "gathered", "config": [{"target": IQN1}]})
    assert gathered.result["gathered"] == [{"target": IQN1, "subsystem": HOST, "groups": [
        {"tag": 1, "portals": ["0.0.0.0:3260"]}, {"tag": 2, "portals": ["127.0.0.1:3261"]}]}]
    assert kernel.mutations == 0 and gathered.result["saved"] is False


def test_a_conflict_with_the_wildcard_fails_before_any_change(run_module, kernel):
    # t1's wildcard in TPG 1 holds port 3260 on every IPv4 address of the host: planning refuses the
    # whole execution, so t2's valid entry is not applied either
    run = run_module(vds_portal_groups, {"state": "merged", "config": [
        {"target": IQN2, "groups": [{"tag": 1, "portals": ["192.0.2.11:3264"]}]},
        {"target": IQN1, "groups": [{"tag": 2, "portals": ["192.0.2.10:3260"]}]}]})
    assert run.failed and not run.result["changed"] and kernel.mutations == 0 and kernel.saved == []
    assert "the wildcard portal 0.0.0.0:3260 (in group 1 of %s)" % IQN1 in run.result["msg"]


def test_a_wildcard_removed_for_one_target_frees_its_port_for_the_next(run_module, kernel):
    # t1's wildcard goes first (t1 is declared first, and targets run in the order declared), so t2 may
    # then take a specific address on port 3260: planning replays the targets in that order
    config = [{"target": IQN1, "groups": [{"tag": 1, "portals": ["192.0.2.11:3265"], "purge_portals": True}]},
              {"target": IQN2, "groups": [{"tag": 1, "portals": ["127.0.0.1:3260"]}]}]
    quartet(run_module, kernel, {"state": "merged", "config": config})
    assert kernel.groups(IQN1) == {1: ["192.0.2.11:3265"], 2: ["127.0.0.1:3261"]}
    assert kernel.groups(IQN2) == {1: ["127.0.0.1:3260", "192.0.2.10:3262"]}


def test_in_the_other_order_the_wildcard_is_still_there_and_planning_refuses(run_module, kernel):
    config = [{"target": IQN2, "groups": [{"tag": 1, "portals": ["127.0.0.1:3260"]}]},
              {"target": IQN1, "groups": [{"tag": 1, "portals": ["192.0.2.11:3265"], "purge_portals": True}]}]
    run = run_module(vds_portal_groups, {"state": "merged", "config": config}, check_mode=True)
    assert run.failed and "the wildcard portal 0.0.0.0:3260 (in group 1 of %s)" % IQN1 in run.result["msg"]
    run = run_module(vds_portal_groups, {"state": "merged", "config": config})
    assert run.failed and kernel.mutations == 0 and kernel.saved == []


def test_listeners_two_targets_would_add_on_one_port_conflict_in_planning(run_module, kernel):
    # each declaration alone is fine; together the kernel would refuse the second, after the first
    # took effect: planning sees both and refuses before any change, in check mode too
    config = [{"target": IQN1, "groups": [{"tag": 2, "portals": ["192.0.2.11:3266"]}]},
              {"target": IQN2, "groups": [{"tag": 1, "portals": ["0.0.0.0:3266"]}]}]
    for check_mode in (True, False):
        run = run_module(vds_portal_groups, {"state": "merged", "config": config}, check_mode=check_mode)
        assert run.failed and not run.result["changed"]
        assert "portal 192.0.2.11:3266 (in group 2 of %s) already listens on port 3266" % IQN1 in run.result["msg"]
    assert kernel.mutations == 0 and kernel.saved == []
