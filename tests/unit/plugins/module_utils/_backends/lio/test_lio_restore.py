# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""vds_portal_groups with lio_restore_at_boot: the restore service enabled (never started) through a fake
systemctl on PATH that keeps each unit's state in a file, as 'systemctl is-enabled' and 'enable' report it."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from ansible_collections.storage.vds.plugins.modules import vds_portal_groups

from ansible_collections.storage.vds.tests.unit.plugins.constants import LIO_IQN1 as IQN1

DEBIAN_UNIT = "rtslib-fb-targetctl.service"
RHEL_UNIT = "target.service"

# Units installed: a file named after the unit holding its state. Every call is logged.
FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$FAKE_SYSTEMD/calls"
unit="$FAKE_SYSTEMD/$2"
case $1 in
is-enabled)
    if [ ! -f "$unit" ]; then echo "Failed to get unit file state for $2: No such file or directory" >&2; exit 1; fi
    cat "$unit"; [ "$(cat "$unit")" = enabled ] ;;
enable)
    if [ -f "$FAKE_SYSTEMD/enable-fails" ]; then echo "Access denied" >&2; exit 1; fi
    echo enabled > "$unit" ;;
*) exit 2 ;;
esac
"""

# The fake kernel's target t1 holds 127.0.0.1:3261 in TPG 2 (see conftest): ARGS adds a portal to it, KEPT
# declares what it holds already.
ARGS = {"state": "merged", "lio_restore_at_boot": True,
        "config": [{"target": IQN1, "groups": [{"tag": 2, "portals": ["127.0.0.1:3399"]}]}]}
KEPT = dict(ARGS, config=[{"target": IQN1, "groups": [{"tag": 2, "portals": ["127.0.0.1:3261"]}]}])


class Systemd:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root

    def install(self, unit: str, state: str) -> None:
        (self.root / unit).write_text(state + "\n")

    def state(self, unit: str) -> str:
        return (self.root / unit).read_text().strip()

    @property
    def calls(self) -> list[str]:
        log = self.root / "calls"
        return log.read_text().splitlines() if log.exists() else []

    @property
    def enables(self) -> list[str]:
        return [call for call in self.calls if call.startswith("enable")]


@pytest.fixture
def systemd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Systemd:
    bin_dir, units = tmp_path / "bin", tmp_path / "units"
    bin_dir.mkdir()
    units.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL)
    systemctl.chmod(systemctl.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", "%s%s%s" % (bin_dir, os.pathsep, os.environ.get("PATH", "")))
    monkeypatch.setenv("FAKE_SYSTEMD", str(units))
    return Systemd(units)


@pytest.mark.parametrize("unit", [DEBIAN_UNIT, RHEL_UNIT])
def test_quartet_enables_the_installed_unit_once_and_never_starts_it(run_module, kernel, systemd, unit):
    systemd.install(unit, "disabled")
    checked = run_module(vds_portal_groups, ARGS, check_mode=True)
    assert checked.result["changed"] and checked.result["restore_service"] == unit
    assert checked.result["restore_service_enabled"] is True and systemd.enables == [] and kernel.mutations == 0
    real = run_module(vds_portal_groups, ARGS)
    assert real.result["changed"] and real.result["restore_service_enabled"] is True
    assert systemd.enables == ["enable %s" % unit] and systemd.state(unit) == "enabled"
    for check_mode in (True, False):
        again = run_module(vds_portal_groups, ARGS, check_mode=check_mode)
        assert not again.result["changed"] and again.result["restore_service"] == unit
        assert again.result["restore_service_enabled"] is False
    assert systemd.enables == ["enable %s" % unit]
    assert not any(call.split()[0] in ("start", "restart", "reload") for call in systemd.calls)


def test_an_enabled_unit_alone_is_no_change(run_module, kernel, systemd):
    systemd.install(DEBIAN_UNIT, "enabled")
    run = run_module(vds_portal_groups, KEPT)
    assert not run.failed and not run.result["changed"] and run.result["restore_service_enabled"] is False
    assert systemd.enables == []


def test_a_disabled_unit_alone_is_a_change(run_module, kernel, systemd):
    systemd.install(RHEL_UNIT, "disabled")
    run = run_module(vds_portal_groups, KEPT)
    assert run.result["changed"] and run.result["steps"] == [] and run.result["saved"] is False
    assert systemd.enables == ["enable %s" % RHEL_UNIT]


@pytest.mark.parametrize("check_mode", [True, False])
def test_no_unit_fails_before_any_change_naming_the_opt_outs(run_module, kernel, systemd, check_mode):
    run = run_module(vds_portal_groups, ARGS, check_mode=check_mode)
    assert run.failed and run.result["changed"] is False and kernel.mutations == 0 and kernel.saved == []
    message = run.result["msg"]
    assert "no service that restores the kernel target's configuration at boot is installed" in message
    assert DEBIAN_UNIT in message and RHEL_UNIT in message and "python3-rtslib-fb" in message
    assert "lio_restore_at_boot=false" in message and "portal_groups_lio_restore_service=false" in message
    assert message.count("no service that restores") == 1  # said once, not again when the task ends


def test_a_masked_unit_fails_before_any_change(run_module, kernel, systemd):
    systemd.install(DEBIAN_UNIT, "masked")
    run = run_module(vds_portal_groups, ARGS)
    assert run.failed and run.result["changed"] is False and kernel.mutations == 0
    assert "%s, which restores the kernel target's configuration at boot, is masked" % DEBIAN_UNIT in run.result["msg"]


def test_without_systemctl_it_fails_before_any_change(run_module, kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    run = run_module(vds_portal_groups, ARGS)
    assert run.failed and run.result["changed"] is False and kernel.mutations == 0
    assert run.result["msg"].startswith("backend=lio: systemctl was not found")
    assert run.result["msg"].count("systemctl was not found") == 1


def test_a_failed_enable_fails_saying_the_change_was_saved(run_module, kernel, systemd):
    systemd.install(DEBIAN_UNIT, "disabled")
    (systemd.root / "enable-fails").touch()
    run = run_module(vds_portal_groups, ARGS)
    assert run.failed and run.result["changed"] is True and run.result["saved"] is True
    assert "'systemctl enable %s' failed (exit code 1): Access denied" % DEBIAN_UNIT in run.result["msg"]
    assert run.result["steps_done"] and "127.0.0.1:3399" in kernel.groups(IQN1)[2]


def test_off_by_default_and_in_gathered(run_module, kernel, systemd):
    plain = run_module(vds_portal_groups, {key: value for key, value in ARGS.items() if key != "lio_restore_at_boot"})
    gathered = run_module(vds_portal_groups, {"state": "gathered", "lio_restore_at_boot": True})
    assert not plain.failed and not gathered.failed and "restore_service" not in plain.result
    assert "restore_service" not in gathered.result and systemd.calls == []
