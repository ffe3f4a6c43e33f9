# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""A fake rtslib-fb over an in-memory kernel target that refuses what the real one refuses.

The real kernel answers every NetworkPortal error with EINVAL from the configfs mkdir, which rtslib
turns into ``RTSLibError("Could not create NetworkPortal in configFS")``: an ip:port already in
another TPG of the same target, a port another listener holds (a wildcard on that port, or a
program outside LIO), and an address the host does not have (checked by the collection, not here:
the kernel binds with IP_FREEBIND).
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import json
import os
import pathlib
import types
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends import lio
from ansible_collections.storage.vds.tests.unit.plugins.constants import LIO_IQN1 as IQN1, LIO_IQN2 as IQN2

HOST = "target-host"
NETWORKS = tuple(ipaddress.ip_network(text) for text in (
    "127.0.0.0/8", "127.0.0.1/32", "192.0.2.10/32", "192.0.2.11/32", "::1/128", "fd00::10/128",
    "0.0.0.0/32", "::/128"))


class RTSLibError(Exception):
    pass


class RTSLibNotInCFS(RTSLibError):
    pass


@dataclasses.dataclass
class KernelTPG:
    enable: bool = False
    attributes: dict[str, str] = dataclasses.field(default_factory=lambda: {
        "authentication": "1", "generate_node_acls": "0", "cache_dynamic_acls": "0", "demo_mode_write_protect": "1"})
    portals: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    luns: int = 0
    acls: int = 0


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.strip("[]"))


def _bind_conflict(existing: tuple[str, int], new: tuple[str, int]) -> bool:
    """Linux bind rules for listeners (no SO_REUSEPORT): a wildcard takes the port on its family;
    an IPv6 wildcard is dual-stack. The kernel shares one listener between TPGs for equal ip:port."""
    if existing[1] != new[1] or _ip(existing[0]) == _ip(new[0]):
        return False
    old, fresh = _ip(existing[0]), _ip(new[0])
    if old.is_unspecified and fresh.is_unspecified:
        return True
    wildcard, specific = (old, fresh) if old.is_unspecified else (fresh, old)
    return wildcard.is_unspecified and (wildcard.version == 6 or specific.version == 4)


class Kernel:
    """The in-memory kernel target, and the fake rtslib module that drives it.

    Its files live under ``root``: ``configfs/`` stands for /sys/kernel/config/target (present while the
    kernel target is reachable), ``etc-target/`` for the folder rtslib-fb prefers as the kernel's dbroot
    (absent, as on a host that has only the rtslib-fb package).
    """

    def __init__(self, root: pathlib.Path) -> None:
        self.configfs_dir = root / "configfs"
        self.configfs_dir.mkdir()
        self.preferred_dbroot = root / "etc-target"
        self.dbroot = "/var/target"  # the kernel's own default
        self.roots = 0  # RTSRoot() instances: each one may write the dbroot
        self.targets: dict[str, dict[int, KernelTPG]] = {}
        self.foreign: set[tuple[str, int]] = set()   # ip:port held by programs outside LIO
        self.saved: list[tuple[str, dict[str, t.Any]]] = []
        self.save_error: Exception | None = None
        self.mutations = 0
        self.refuse_enable = False
        self.rtslib = self._module()

    # -- test helpers --

    @property
    def reachable(self) -> bool:
        return self.configfs_dir.is_dir()

    @reachable.setter
    def reachable(self, value: bool) -> None:
        if value:
            self.configfs_dir.mkdir(exist_ok=True)
        else:
            self.configfs_dir.rmdir()

    @property
    def default_save_file(self) -> str:
        return str(self.preferred_dbroot / "saveconfig.json")

    def add_target(self, iqn: str, groups: dict[int, list[str]] | None = None) -> None:
        self.targets[iqn] = {}
        for tag, portals in (groups or {}).items():
            tpg = self.targets[iqn][tag] = KernelTPG(enable=True)
            for text in portals:
                ip, port = text.rsplit(":", 1)
                tpg.portals.append((ip, int(port)))

    def groups(self, iqn: str = IQN1) -> dict[int, list[str]]:
        return {tag: sorted("%s:%d" % portal for portal in tpg.portals) for tag, tpg in self.targets[iqn].items()}

    def listeners(self) -> list[tuple[str, int]]:
        return [portal for tpgs in self.targets.values() for tpg in tpgs.values() for portal in tpg.portals]

    def dump(self) -> dict[str, t.Any]:
        return {"targets": [
            {"fabric": "iscsi", "wwn": iqn,
             "tpgs": [{"tag": tag, "portals": sorted(tpg.portals), "enable": tpg.enable} for tag, tpg in sorted(tpgs.items())]}
            for iqn, tpgs in sorted(self.targets.items())]}

    # -- the refusals --

    def create_portal(self, iqn: str, tag: int, ip: str, port: int) -> None:
        new = (ip, port)
        others = [portal for other_tag, tpg in self.targets[iqn].items() if other_tag != tag for portal in tpg.portals]
        if new in others or new in self.foreign or any(_bind_conflict(held, new) for held in self.listeners()) \
                or any(_bind_conflict(held, new) for held in self.foreign):
            raise OSError(errno.EINVAL, "Invalid argument")
        self.targets[iqn][tag].portals.append(new)
        self.mutations += 1

    # -- the module --

    def _module(self) -> types.SimpleNamespace:
        kernel = self

        def check_reachable() -> None:
            if not kernel.reachable:
                raise RTSLibError("Cannot mount configfs")

        class RTSRoot:
            configfs_dir = str(kernel.configfs_dir)
            _preferred_dbroot = str(kernel.preferred_dbroot)

            def __init__(self) -> None:
                check_reachable()
                kernel.roots += 1
                # As rtslib-fb does: the kernel refuses a dbroot that is not an existing folder.
                if kernel.dbroot != self._preferred_dbroot:
                    if not os.path.isdir(self._preferred_dbroot):
                        raise RTSLibError("Cannot set dbroot to {}. Please check if this directory exists."
                                          .format(self._preferred_dbroot))
                    kernel.dbroot = self._preferred_dbroot

            def save_to_file(self, path: str) -> None:
                if kernel.save_error is not None:
                    raise kernel.save_error
                # As rtslib-fb >= 2.1.74 does: the file is written readable by its owner only.
                descriptor = os.open(path + ".temp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as temp:
                    json.dump(kernel.dump(), temp)
                os.replace(path + ".temp", path)
                kernel.saved.append((path, kernel.dump()))

        class FabricModule:
            def __init__(self, name: str) -> None:
                assert name == "iscsi"
                check_reachable()

            @property
            def targets(self) -> t.Iterator["Target"]:
                for iqn in list(kernel.targets):
                    yield Target(self, iqn, mode="lookup")

        class Target:
            def __init__(self, fabric: FabricModule, wwn: str, mode: str = "any") -> None:
                assert mode == "lookup", "the collection never creates targets"
                if wwn not in kernel.targets:
                    raise RTSLibNotInCFS("No such Target in configfs: %s" % wwn)
                self.wwn = wwn

            @property
            def tpgs(self) -> t.Iterator["TPG"]:
                for tag in list(kernel.targets[self.wwn]):
                    yield TPG(self, tag, mode="lookup")

        class TPG:
            def __init__(self, target: Target, tag: int, mode: str = "any") -> None:
                self.target, self.tag = target, tag
                tpgs = kernel.targets[target.wwn]
                if mode == "lookup" and tag not in tpgs:
                    raise RTSLibNotInCFS("No such TPG in configfs")
                if mode == "create":
                    if tag in tpgs:
                        raise RTSLibError("This TPG already exists in configFS")
                    tpgs[tag] = KernelTPG()
                    kernel.mutations += 1

            @property
            def state(self) -> KernelTPG:
                return kernel.targets[self.target.wwn][self.tag]

            @property
            def network_portals(self) -> t.Iterator["NetworkPortal"]:
                for ip, port in list(self.state.portals):
                    yield NetworkPortal(self, ip, port, mode="lookup")

            @property
            def luns(self) -> list[int]:
                return list(range(self.state.luns))

            @property
            def node_acls(self) -> list[int]:
                return list(range(self.state.acls))

            def set_attribute(self, name: str, value: str) -> None:
                if name not in self.state.attributes:
                    raise RTSLibError("Cannot find attribute: %s" % name)
                self.state.attributes[name] = value

            @property
            def enable(self) -> bool:
                return self.state.enable

            @enable.setter
            def enable(self, value: bool) -> None:
                if kernel.refuse_enable:
                    raise RTSLibError("Cannot change enable state: [Errno 22] Invalid argument")
                self.state.enable = bool(value)

            def delete(self) -> None:
                del kernel.targets[self.target.wwn][self.tag]
                kernel.mutations += 1

        class NetworkPortal:
            def __init__(self, tpg: TPG, ip_address: str, port: int = 3260, mode: str = "any") -> None:
                self.tpg, self.ip_address, self.port = tpg, ip_address, int(port)
                present = (ip_address, self.port) in tpg.state.portals
                if mode == "lookup" and not present:
                    raise RTSLibNotInCFS("No such NetworkPortal in configfs")
                if mode == "create":
                    if present:
                        raise RTSLibError("This NetworkPortal already exists in configFS")
                    try:
                        kernel.create_portal(tpg.target.wwn, tpg.tag, ip_address, self.port)
                    except OSError:
                        # As rtslib does: the errno only survives as the exception's context.
                        raise RTSLibError("Could not create NetworkPortal in configFS")

            def delete(self) -> None:
                self.tpg.state.portals.remove((self.ip_address, self.port))
                kernel.mutations += 1

        return types.SimpleNamespace(
            RTSRoot=RTSRoot, FabricModule=FabricModule, Target=Target, TPG=TPG, NetworkPortal=NetworkPortal,
            RTSLibError=RTSLibError, RTSLibNotInCFS=RTSLibNotInCFS,
            root=types.SimpleNamespace(default_save_file=kernel.default_save_file))


@pytest.fixture
def kernel(tmp_path: pathlib.Path) -> Kernel:
    """Target t1 with the wildcard portal targetcli adds by default in TPG 1; t2 with one portal."""
    found = Kernel(tmp_path)
    found.add_target(IQN1, {1: ["0.0.0.0:3260"], 2: ["127.0.0.1:3261"]})
    found.add_target(IQN2, {1: ["192.0.2.10:3262"]})
    return found


@pytest.fixture
def backend(kernel: Kernel) -> lio.LioBackend:
    return lio.LioBackend(rtslib=kernel.rtslib, networks=lambda: NETWORKS, hostname=lambda: HOST)


@pytest.fixture
def run_module(run_module: t.Callable[..., t.Any], monkeypatch: pytest.MonkeyPatch,
               kernel: Kernel) -> t.Callable[..., t.Any]:
    """``run_module`` of tests/unit/plugins/conftest.py with backend lio, in diff mode, on the fake rtslib."""
    monkeypatch.setattr(lio, "rtslib_fb", kernel.rtslib)
    monkeypatch.setattr(lio, "RTSLIB_IMPORT_ERROR", None)
    monkeypatch.setattr(lio, "read_host_networks", lambda: NETWORKS)
    monkeypatch.setattr(lio.socket, "gethostname", lambda: HOST)

    def run(module: types.ModuleType, args: dict[str, t.Any], check_mode: bool = False) -> t.Any:
        return run_module(module, dict(args, backend="lio"), check_mode=check_mode, diff=True)

    return run
