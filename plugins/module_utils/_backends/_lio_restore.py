# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""backend lio: the distribution's service that restores the saved kernel target configuration at boot.

configfs lives in memory; a unit that runs ``targetctl restore`` at boot brings the saved configuration back.
It is enabled here, never started: starting it replaces the running configuration with the saved one.
"""

from __future__ import annotations

import shutil
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import BackendUnavailable, VdsError

#: Units that run 'targetctl restore' at boot: python3-rtslib-fb ships the first (Debian, Ubuntu),
#: target-restore the second (Fedora, RHEL).
UNITS = ("rtslib-fb-targetctl.service", "target.service")
PACKAGES = "python3-rtslib-fb (Debian, Ubuntu) or target-restore (Fedora, RHEL)"
OPT_OUT = ("or set lio_restore_at_boot=false (with the role storage.vds.portal_groups: "
           "portal_groups_lio_restore_service=false) and have the saved configuration restored at boot "
           "(targetctl restore) another way")
#: Runs a command: AnsibleModule.run_command, which returns the exit code, stdout and stderr.
RunCommand = t.Callable[[t.List[str]], t.Tuple[int, str, str]]
#: What 'systemctl is-enabled' prints for a unit that boot does not start but 'systemctl enable' fixes.
_ENABLEABLE = ("disabled", "enabled-runtime")


class RestoreAtBoot:
    """Finds the restore unit this host has, and enables it unless it is already."""

    def __init__(self, check_mode: bool, run_command: RunCommand) -> None:
        self._check_mode = check_mode
        self._run_command = run_command
        self._systemctl = ""
        self._unit = ""
        self._enabled = False
        self._lookup_failed = False

    def _run(self, *arguments: str) -> t.Tuple[int, str, str]:
        return self._run_command([self._systemctl, *arguments])

    def find(self) -> str:
        """The restore unit, looked up once. Fails, naming the way out, when there is none that boot can start."""
        if self._unit:
            return self._unit
        try:
            self._unit = self._lookup()
        except VdsError:
            self._lookup_failed = True
            raise
        return self._unit

    def _lookup(self) -> str:
        self._systemctl = shutil.which("systemctl") or ""
        if not self._systemctl:
            raise BackendUnavailable("backend=lio: systemctl was not found, so the service that restores the "
                                     "kernel target's configuration at boot cannot be enabled: run on a host with "
                                     "systemd, %s" % OPT_OUT)
        for unit in UNITS:
            # Prints the unit's state; nothing, or 'not-found' (newer systemd), when it is not installed.
            state = self._run("is-enabled", unit)[1].strip()
            if state and state != "not-found":
                break
        else:
            raise BackendUnavailable("backend=lio: no service that restores the kernel target's configuration at "
                                     "boot is installed (%s): install %s, %s" % (", ".join(UNITS), PACKAGES, OPT_OUT))
        if state != "enabled" and state not in _ENABLEABLE:
            raise VdsError("backend=lio: %s, which restores the kernel target's configuration at boot, is %s, so it "
                           "cannot be enabled: unmask it or repair its unit file, %s" % (unit, state, OPT_OUT))
        self._enabled = state == "enabled"
        return unit

    def enable(self) -> dict[str, t.Any]:
        """Enable the unit (in check mode: say it would be); the result's keys, ``changed`` among them. Nothing
        when the lookup failed already: that failure is the task's."""
        if self._lookup_failed:
            return {}
        unit = self.find()
        enabling = not self._enabled
        if enabling and not self._check_mode:
            code, out, err = self._run("enable", unit)
            if code:
                raise VdsError("backend=lio: 'systemctl enable %s' failed (exit code %d): %s" % (
                    unit, code, (err or out).strip() or "no message"))
            self._enabled = True
        return {"restore_service": unit, "restore_service_enabled": enabling, "changed": enabling}
