# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""backend=lio against a fake rtslib whose kernel refuses what the real one refuses (EINVAL)."""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import re
import stat

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends import lio
from ansible_collections.storage.vds.plugins.module_utils._vds import module_tasks
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import NotFoundError, ValidationError, VdsError
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import ADD_PORTAL, Step
from ansible_collections.storage.vds.plugins.modules import vds_portal, vds_portal_group, vds_portal_info

from ansible_collections.storage.vds.tests.unit.plugins.constants import LIO_IQN1 as IQN1, LIO_IQN2 as IQN2

from .conftest import HOST


def converge(backend, check_mode=False, **params):
    params.setdefault("target", IQN1)
    return module_tasks.portal_group(Engine(backend, 30, check_mode=check_mode), params)


# --- reading -------------------------------------------------------------------------------------


def test_snapshot_is_one_subsystem_named_after_the_host(backend):
    (subsystem,) = backend.snapshot().subsystems
    assert subsystem.name == HOST
    target = subsystem.target(IQN1)
    assert {group.tag: group.sorted_portals() for group in target.groups} == {
        1: ["0.0.0.0:3260"], 2: ["127.0.0.1:3261"]}
    listed = [str(portal.address) for portal in subsystem.portals]
    # Portals in use, then each host address on the default port.
    assert "0.0.0.0:3260" in listed and "192.0.2.10:3262" in listed and "[fd00::10]:3260" in listed


def test_another_subsystem_name_fails_naming_the_host(backend):
    with pytest.raises(NotFoundError, match="subsystem 'elsewhere' does not exist; known subsystems: target-host"):
        converge(backend, subsystem="elsewhere", tag=2, portals=["127.0.0.1:3261"])


def test_info_has_the_shape_of_vds(run_module):
    run = run_module(vds_portal_info, {})
    assert not run.failed
    (subsystem,) = run.result["subsystems"]
    assert set(subsystem) == {"name", "portals", "targets"}
    assert subsystem["name"] == HOST
    assert [target["iqn"] for target in subsystem["targets"]] == [IQN1, IQN2]
    assert subsystem["targets"][0]["groups"] == [{"tag": 1, "portals": ["0.0.0.0:3260"]},
                                                 {"tag": 2, "portals": ["127.0.0.1:3261"]}]
    assert {"address": "127.0.0.1:3260", "status": "online"} in subsystem["portals"]
    assert "saved" not in run.result or run.result["saved"] is False


def test_unreachable_configfs_fails_clearly(run_module, kernel):
    kernel.reachable = False
    run = run_module(vds_portal_info, {})
    assert run.failed and "cannot reach the kernel target through configfs" in run.result["msg"]
    assert "%s does not exist" % kernel.configfs_dir in run.result["msg"]
    assert "as root" in run.result["msg"] and "target_core_mod" in run.result["msg"]


# --- a host with only the rtslib-fb package: no folder for rtslib-fb's dbroot ---------------------


@pytest.mark.parametrize("check_mode", [True, False])
def test_reading_needs_no_dbroot_and_creates_nothing(run_module, kernel, check_mode):
    info = run_module(vds_portal_info, {}, check_mode=check_mode)
    unchanged = run_module(vds_portal_group, {"target": IQN1, "tag": 1, "portals": ["0.0.0.0:3260"]},
                           check_mode=check_mode)
    planned = run_module(vds_portal, {"target": IQN1, "tag": 1, "portal": "127.0.0.1:3399"}, check_mode=True)
    assert not info.failed and not unchanged.failed and not planned.failed
    assert not unchanged.result["changed"] and planned.result["changed"]
    assert not kernel.preferred_dbroot.exists() and kernel.roots == 0 and kernel.dbroot == "/var/target"
    assert kernel.mutations == 0 and kernel.saved == []


def test_the_first_change_creates_the_dbroot_folder_then_saves_there(run_module, kernel):
    run = run_module(vds_portal, {"target": IQN1, "tag": 2, "portal": "127.0.0.1:3399"})
    assert run.result["changed"] and run.result["saved"] is True
    folder = kernel.preferred_dbroot
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert folder.stat().st_uid == os.geteuid()
    saved = folder / "saveconfig.json"
    assert run.result["save_file"] == str(saved) and stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert kernel.dbroot == str(folder) and kernel.roots == 1
    kernel.rtslib.RTSRoot()  # what 'targetctl restore' does at boot: it no longer fails


def test_an_existing_dbroot_folder_is_left_as_it_is(run_module, kernel):
    kernel.preferred_dbroot.mkdir(mode=0o750)
    os.chmod(kernel.preferred_dbroot, 0o750)
    run = run_module(vds_portal, {"target": IQN1, "tag": 2, "portal": "127.0.0.1:3399"})
    assert run.result["saved"] is True and stat.S_IMODE(kernel.preferred_dbroot.stat().st_mode) == 0o750


def test_without_saving_no_folder_is_created(run_module, kernel):
    run = run_module(vds_portal, {"target": IQN1, "tag": 2, "portal": "127.0.0.1:3399", "lio_save_config": False})
    assert run.result["changed"] and run.result["saved"] is False
    assert not kernel.preferred_dbroot.exists() and kernel.roots == 0


def test_a_save_file_elsewhere_gets_a_private_folder(run_module, kernel, tmp_path):
    path = tmp_path / "private" / "lio.json"
    run = run_module(vds_portal, {"target": IQN1, "tag": 2, "portal": "127.0.0.1:3399", "lio_save_file": str(path)})
    assert run.result["save_file"] == str(path) and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kernel.preferred_dbroot.is_dir()  # rtslib-fb still points the kernel's dbroot there


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_change_whose_save_would_drop_saved_targets_is_refused(run_module, kernel, check_mode):
    kernel.preferred_dbroot.mkdir()
    saved = {"targets": [{"fabric": "iscsi", "wwn": IQN1}, {"fabric": "iscsi", "wwn": "iqn.2003-01.org.example:gone"},
                         {"fabric": "loopback", "wwn": "naa.5001405abcdef012"}]}
    pathlib.Path(kernel.default_save_file).write_text(json.dumps(saved))
    run = run_module(vds_portal, {"target": IQN1, "tag": 2, "portal": "127.0.0.1:3399"}, check_mode=check_mode)
    assert run.failed and run.result["changed"] is False and kernel.mutations == 0 and kernel.saved == []
    assert ("the saved configuration %s holds iSCSI targets the kernel is not running: iqn.2003-01.org.example:gone."
            % kernel.default_save_file) in run.result["msg"]
    assert json.loads(pathlib.Path(kernel.default_save_file).read_text()) == saved
    # Without saving, the file is not the module's business.
    off = run_module(vds_portal, {"target": IQN1, "tag": 2, "portal": "127.0.0.1:3399", "lio_save_config": False})
    assert off.result["changed"] and not off.failed


def test_an_unreadable_saved_file_is_refused_before_any_change(run_module, kernel):
    kernel.preferred_dbroot.mkdir()
    pathlib.Path(kernel.default_save_file).write_text("{not json")
    run = run_module(vds_portal, {"target": IQN1, "tag": 2, "portal": "127.0.0.1:3399"})
    assert run.failed and kernel.mutations == 0
    assert "the saved configuration %s cannot be read" % kernel.default_save_file in run.result["msg"]


def test_nothing_to_change_reads_no_saved_file(run_module, kernel):
    kernel.preferred_dbroot.mkdir()
    pathlib.Path(kernel.default_save_file).write_text("{not json")
    assert not run_module(vds_portal, {"target": IQN1, "tag": 1, "portal": "0.0.0.0:3260"}).failed


def test_a_dbroot_that_cannot_be_created_fails_before_any_change(run_module, kernel):
    kernel.preferred_dbroot.write_text("a file where the folder should be")
    run = run_module(vds_portal_group, {"target": IQN1, "tag": 2, "portals": ["127.0.0.1:3399"]})
    assert run.failed and run.result["changed"] is False and kernel.mutations == 0
    assert "cannot prepare to save the kernel target's configuration (%s)" % kernel.preferred_dbroot \
        in run.result["msg"]
    assert "nothing was changed" in run.result["msg"] and "lio_save_config=false" in run.result["msg"]


def test_missing_rtslib_names_the_package(run_module, monkeypatch):
    monkeypatch.setattr(lio, "RTSLIB_IMPORT_ERROR", "Traceback: No module named 'rtslib_fb'")
    run = run_module(vds_portal_info, {})
    assert run.failed and "rtslib-fb" in run.result["msg"] and "backend=lio" in run.result["msg"]


def test_missing_target_fails_naming_the_existing_ones(backend):
    with pytest.raises(NotFoundError, match="iqn.2003-01.org.example:t9 does not exist.*t1"):
        converge(backend, target="iqn.2003-01.org.example:t9", tag=1, portals=["127.0.0.1"])


# --- host networks -------------------------------------------------------------------------------

FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 192.0.2.0
        /24 link UNICAST
     |-- 192.0.2.10
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 192.0.2.10
        /32 host LOCAL
"""

IF_INET6 = """00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
fd000000000000000000000000000010 04 40 00 80     eth0
fd000000000000000000000000000011 04 40 00 c0     eth0
"""


def test_host_networks_from_proc(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "fib_trie").write_text(FIB_TRIE)
    (tmp_path / "net" / "if_inet6").write_text(IF_INET6)
    assert [str(network) for network in lio.read_host_networks(str(tmp_path))] == [
        "127.0.0.0/8", "127.0.0.1/32", "192.0.2.10/32", "::1/128", "fd00::10/128", "0.0.0.0/32", "::/128"]


def test_without_ipv6_only_ipv4_and_the_wildcards(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "fib_trie").write_text(FIB_TRIE)
    assert ipaddress.ip_network("::1/128") not in lio.read_host_networks(str(tmp_path))


@pytest.mark.parametrize("check_mode", [True, False])
def test_an_address_not_on_the_host_is_accepted_with_a_warning(run_module, kernel, check_mode):
    args = {"target": IQN1, "tag": 2, "portals": ["198.51.100.7:3270", "127.0.0.1:3399"]}
    run = run_module(vds_portal_group, args, check_mode=check_mode)
    assert run.result["changed"] and not run.failed
    assert run.warnings == [
        "portal 198.51.100.7:3270: no interface of target-host has the address 198.51.100.7 now. The kernel target "
        "accepts the portal and listens there as soon as the address is configured (a floating address, for "
        "example); until then initiators cannot connect to it"]
    if not check_mode:
        assert kernel.groups()[2] == ["127.0.0.1:3261", "127.0.0.1:3399", "198.51.100.7:3270"]
        again = run_module(vds_portal_group, args)
        assert not again.result["changed"] and again.warnings == []  # nothing added, nothing to warn of


@pytest.mark.parametrize("portal, reason", [
    ("[fe80::1]:3260", "a link-local IPv6 address is valid only with its interface"),
    ("239.1.2.3:3260", "239.1.2.3 is a multicast address"),
    ("[ff02::1]:3260", "ff02::1 is a multicast address")])
def test_addresses_no_listener_can_take_fail_in_planning(backend, kernel, portal, reason):
    with pytest.raises(ValidationError, match=re.escape("portal %s: %s" % (portal, reason))):
        converge(backend, tag=2, portals=[portal], check_mode=True)
    assert kernel.mutations == 0


def test_an_address_not_on_the_host_keeps_every_listener_check(backend, kernel):
    with pytest.raises(ValidationError, match=r"portal 198\.51\.100\.7:3260 cannot be added .* wildcard portal"):
        converge(backend, tag=2, portals=["198.51.100.7"], check_mode=True)
    assert kernel.mutations == 0


def test_any_port_of_a_host_address_is_a_portal(backend, kernel):
    result = converge(backend, tag=2, portals=["192.0.2.11:40000", "[fd00::10]:3270"])
    assert result["changed"]
    assert kernel.groups()[2] == ["127.0.0.1:3261", "192.0.2.11:40000", "[fd00::10]:3270"]


# --- groups --------------------------------------------------------------------------------------


def test_a_declared_tag_is_honoured_and_the_tpg_is_discoverable(backend, kernel):
    result = converge(backend, tag=7, portals=["127.0.0.1:3270"])
    assert result["group"] == {"tag": 7, "target": IQN1, "portals": ["127.0.0.1:3270"]}
    tpg = kernel.targets[IQN1][7]
    assert tpg.enable
    assert tpg.attributes == {"authentication": "0", "generate_node_acls": "1", "cache_dynamic_acls": "1",
                              "demo_mode_write_protect": "1"}


def test_without_tag_membership_then_the_lowest_free_tag(backend, kernel):
    assert converge(backend, portals=["127.0.0.1:3261", "127.0.0.1:3271"])["group"]["tag"] == 2
    assert converge(backend, portals=["127.0.0.1:3280"])["group"]["tag"] == 3
    assert sorted(kernel.targets[IQN1]) == [1, 2, 3]


def test_a_tpg_that_cannot_be_enabled_is_taken_away_again(backend, kernel):
    kernel.refuse_enable = True
    with pytest.raises(VdsError, match="configuring new TPG 3 .* so it was deleted again"):
        converge(backend, tag=3, portals=["127.0.0.1:3280"])
    assert sorted(kernel.targets[IQN1]) == [1, 2]


def test_move_between_tpgs_of_one_target(backend, kernel):
    # The kernel refuses an ip:port in two TPGs of one target: the remove must come first.
    result = converge(backend, tag=1, portals=["127.0.0.1:3261"])
    assert [(step["action"], step["tag"]) for step in result["steps"]] == [("remove_portal", 2), ("add_portal", 1)]
    assert kernel.groups() == {1: ["0.0.0.0:3260", "127.0.0.1:3261"], 2: []}


def test_same_portal_in_tpgs_of_two_targets_is_shared(backend, kernel):
    assert converge(backend, target=IQN2, tag=1, portals=["127.0.0.1:3261"])["changed"]
    assert kernel.groups(IQN2) == {1: ["127.0.0.1:3261", "192.0.2.10:3262"]}


def test_delete_removes_portals_then_the_tpg(backend, kernel):
    result = converge(backend, tag=2, state="absent")
    assert [step["action"] for step in result["steps"]] == ["remove_portal", "delete_group"]
    assert sorted(kernel.targets[IQN1]) == [1]


def test_a_tpg_with_luns_or_acls_is_not_deleted(backend, kernel):
    kernel.targets[IQN1][2].luns = 1
    with pytest.raises(ValidationError, match="group 2 of .* has 1 LUN.*do not manage LUNs|does not manage LUNs"):
        converge(backend, tag=2, state="absent", check_mode=True)
    with pytest.raises(ValidationError):
        converge(backend, tag=2, state="absent")
    assert kernel.mutations == 0


def test_ipv6_portal_and_idempotence(backend, kernel):
    assert converge(backend, tag=2, portals=["[::1]:3260"], purge_portals=True)["changed"]
    assert kernel.targets[IQN1][2].portals == [("[::1]", 3260)]
    again = converge(backend, tag=2, portals=["[0:0::1]"], purge_portals=True)
    assert not again["changed"] and again["steps"] == []


# --- the wildcard portal -------------------------------------------------------------------------


def test_wildcard_blocks_a_specific_address_on_its_port_in_planning(backend, kernel):
    for check_mode in (True, False):
        with pytest.raises(ValidationError, match=r"the wildcard portal 0\.0\.0\.0:3260 \(in group 1 of "
                                                  r"iqn\.2003-01\.org\.example:t1\) listens on every address"):
            converge(backend, tag=2, portals=["127.0.0.1"], check_mode=check_mode)
    assert kernel.mutations == 0


def test_wildcard_of_another_target_blocks_too(backend, kernel):
    with pytest.raises(ValidationError, match="wildcard portal 0.0.0.0:3260"):
        converge(backend, target=IQN2, tag=1, portals=["192.0.2.10:3260"])


def test_purging_the_wildcard_removes_it_before_any_add(backend, kernel):
    checked = converge(backend, tag=1, portals=["127.0.0.1", "[::1]"], purge_portals=True, check_mode=True)
    real = converge(backend, tag=1, portals=["127.0.0.1", "[::1]"], purge_portals=True)
    assert checked["steps"] == real["steps"]
    assert real["steps"][0] == {"action": "remove_portal", "target": IQN1, "tag": 1, "portal": "0.0.0.0:3260"}
    assert kernel.groups()[1] == ["127.0.0.1:3260", "[::1]:3260"]


def test_a_wildcard_cannot_join_specific_listeners_on_its_port(backend, kernel):
    with pytest.raises(ValidationError, match=r"the wildcard portal 0\.0\.0\.0:3262 cannot be added .* "
                                              r"192\.0\.2\.10:3262 \(in group 1 of iqn\.2003-01\.org\.example:t2\)"):
        converge(backend, tag=2, portals=["0.0.0.0:3262"])


def test_plans_reviewed_since_the_last_read_add_up_and_a_new_read_starts_over(backend):
    (subsystem,) = backend.snapshot().subsystems
    specific = [Step(ADD_PORTAL, IQN1, 2, lio.PortalAddress.parse("192.0.2.11:3266"))]
    wildcard = [Step(ADD_PORTAL, IQN2, 1, lio.PortalAddress.parse("0.0.0.0:3266"))]
    backend.review(subsystem, subsystem.target(IQN1), specific)
    with pytest.raises(ValidationError, match=r"portal 192\.0\.2\.11:3266 \(in group 2 of iqn\.2003-01\.org\.example"
                                              r":t1\) already listens on port 3266"):
        backend.review(subsystem, subsystem.target(IQN2), wildcard)
    (subsystem,) = backend.snapshot().subsystems  # nothing ran: the port is free again
    backend.review(subsystem, subsystem.target(IQN2), wildcard)


def test_ipv6_wildcard_is_dual_stack_and_ipv4_wildcard_is_not(backend):
    assert lio._blocks(lio.PortalAddress.parse("[::]:3260"), lio.PortalAddress.parse("127.0.0.1:3260"))
    assert lio._blocks(lio.PortalAddress.parse("0.0.0.0:3260"), lio.PortalAddress.parse("[::]:3260"))
    assert not lio._blocks(lio.PortalAddress.parse("0.0.0.0:3260"), lio.PortalAddress.parse("[::1]:3260"))
    assert not lio._blocks(lio.PortalAddress.parse("0.0.0.0:3260"), lio.PortalAddress.parse("127.0.0.1:3261"))
    assert not lio._blocks(lio.PortalAddress.parse("0.0.0.0:3260"), lio.PortalAddress.parse("0.0.0.0:3260"))


def test_the_wildcard_is_an_ordinary_member(backend, kernel):
    result = converge(backend, tag=2, portals=["0.0.0.0:3300"])
    assert result["changed"] and kernel.groups()[2] == ["0.0.0.0:3300", "127.0.0.1:3261"]


# --- refusals the state could not predict --------------------------------------------------------


def test_an_unexpected_refusal_names_the_likely_causes(backend, kernel):
    kernel.foreign.add(("127.0.0.1", 3290))
    with pytest.raises(VdsError) as failure:
        converge(backend, tag=2, portals=["127.0.0.1:3281", "127.0.0.1:3290"])
    message = str(failure.value)
    assert "adding NetworkPortal 127.0.0.1:3290 to TPG 2 of %s: the kernel refused (EINVAL" % IQN1 in message
    assert "another program listens on that address and port" in message and "dmesg" in message
    assert failure.value.details["steps_done"] == [
        {"action": "add_portal", "target": IQN1, "tag": 2, "portal": "127.0.0.1:3281"}]
    assert kernel.groups()[2] == ["127.0.0.1:3261", "127.0.0.1:3281"]


def test_a_move_the_kernel_refuses_puts_the_portal_back(backend, kernel, monkeypatch):
    original = kernel.create_portal
    refused = []

    def refuse_once_in_tpg_1(iqn, tag, ip, port):
        if tag == 1 and not refused:
            refused.append((ip, port))
            raise OSError(22, "Invalid argument")
        original(iqn, tag, ip, port)

    monkeypatch.setattr(kernel, "create_portal", refuse_once_in_tpg_1)
    with pytest.raises(VdsError, match="127.0.0.1:3261 was put back in group 2"):
        converge(backend, tag=1, portals=["127.0.0.1:3261"])
    assert kernel.groups() == {1: ["0.0.0.0:3260"], 2: ["127.0.0.1:3261"]}


def test_status_is_refused_in_planning(backend, kernel):
    engine = Engine(backend, 30)
    with pytest.raises(ValidationError, match="no portal status"):
        module_tasks.portal(engine, {"target": IQN1, "portal": "127.0.0.1:3261", "tag": 2, "state": "present",
                                     "status": "offline"})
    assert kernel.mutations == 0


def test_a_group_that_vanished_is_read_again(backend, kernel, monkeypatch):
    snapshot = backend.snapshot

    def stale_then_fresh(subsystem=None):
        found = snapshot(subsystem)
        if kernel.mutations == 0 and 2 in kernel.targets[IQN1]:
            del kernel.targets[IQN1][2]  # another tool deletes TPG 2 right after the read
        return found

    monkeypatch.setattr(backend, "snapshot", stale_then_fresh)
    result = converge(backend, tag=2, portals=["127.0.0.1:3282"])
    assert result["operations"]["rereads"] == 1
    assert kernel.groups()[2] == ["127.0.0.1:3282"]


# --- the modules, and saving ---------------------------------------------------------------------


def test_module_quartet_saves_only_real_changes(run_module, kernel):
    args = {"target": IQN1, "tag": 3, "portals": ["127.0.0.1:3300", "[fd00::10]"], "purge_portals": True}
    checked = run_module(vds_portal_group, args, check_mode=True)
    assert checked.result["changed"] and checked.result["saved"] is False and kernel.mutations == 0
    real = run_module(vds_portal_group, args)
    assert real.result["changed"] and real.result["saved"] is True
    assert real.result["save_file"] == kernel.default_save_file
    assert real.result["steps"] == checked.result["steps"]
    assert real.result["diff"] == checked.result["diff"]
    (path, saved), = kernel.saved
    assert saved == kernel.dump()
    assert not run_module(vds_portal_group, args, check_mode=True).result["changed"]
    again = run_module(vds_portal_group, args)
    assert not again.result["changed"] and again.result["saved"] is False and len(kernel.saved) == 1


def test_save_can_be_turned_off_or_sent_elsewhere(run_module, kernel, tmp_path):
    off = run_module(vds_portal, {"target": IQN1, "portal": "127.0.0.1:3301", "tag": 2, "lio_save_config": False})
    assert off.result["changed"] and off.result["saved"] is False and kernel.saved == []
    path = str(tmp_path / "conf" / "saveconfig.json")
    moved = run_module(vds_portal, {"target": IQN1, "portal": "127.0.0.1:3301", "tag": 1, "lio_save_file": path})
    assert moved.result["previous_tag"] == 2 and moved.result["saved"] is True
    assert kernel.saved[0][0] == path and (tmp_path / "conf").is_dir()


def test_a_failed_save_fails_the_task_saying_the_change_took_effect(run_module, kernel):
    kernel.save_error = OSError(28, "No space left on device")
    run = run_module(vds_portal, {"target": IQN1, "portal": "127.0.0.1:3302", "tag": 2})
    assert run.failed and run.result["changed"] is True
    assert "took effect in the running kernel target, but saving" in run.result["msg"]
    assert run.result["steps_done"] == [{"action": "add_portal", "target": IQN1, "tag": 2, "portal": "127.0.0.1:3302"}]


def test_steps_done_before_a_refusal_are_saved(run_module, kernel):
    kernel.foreign.add(("127.0.0.1", 3290))
    run = run_module(vds_portal_group, {"target": IQN1, "tag": 2, "portals": ["127.0.0.1:3281", "127.0.0.1:3290"]})
    assert run.failed and run.result["changed"] is True and run.result["saved"] is True
    assert "the kernel refused" in run.result["msg"]
