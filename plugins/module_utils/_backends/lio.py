# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The Linux kernel iSCSI target (LIO) through rtslib-fb, on the host the module runs on.

Mapping: target = iSCSI ``Target`` by IQN, group = ``TPG`` by tag, portal = ``NetworkPortal``. Every
call completes before it returns, so operation handles are finished at once.

The kernel reports every portal error as EINVAL (an ip:port already in another TPG of the target, a
port another listener holds, a malformed address), so conflicts are found from the state read
before acting (:meth:`LioBackend.review`), and a refusal after that is reported with its likely
causes.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import socket
import traceback
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._backends.base import (
    Backend,
    Operation,
    OperationResult,
    OperationStatus,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    S_OK,
    VDS_E_CANCEL_TOO_LATE,
    VDS_E_OBJECT_DELETED,
    VDS_E_OBJECT_NOT_FOUND,
    BackendUnavailable,
    HResultError,
    ValidationError,
    VdsError,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    DEFAULT_PORT,
    IPNetwork,
    Portal,
    PortalAddress,
    PortalGroup,
    Snapshot,
    Subsystem,
    Target,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import (
    ADD_PORTAL,
    DELETE_GROUP,
    REMOVE_PORTAL,
    SET_STATUS,
    Step,
)

RTSLIB_IMPORT_ERROR: str | None = None
try:
    import rtslib_fb
except ImportError:
    rtslib_fb = None
    RTSLIB_IMPORT_ERROR = traceback.format_exc()

#: What a new TPG gets, so that initiators can discover it: no CHAP, and demo-mode ACLs generated for
#: any initiator (LUNs stay read-only to them: the kernel's default demo_mode_write_protect=1 is kept).
NEW_TPG_ATTRIBUTES = (("authentication", "0"), ("generate_node_acls", "1"), ("cache_dynamic_acls", "1"))

_WILDCARDS = (ipaddress.ip_network("0.0.0.0/32"), ipaddress.ip_network("::/128"))
_IFA_F_DADFAILED = 0x08
_IFA_F_TENTATIVE = 0x40
_IPV6_SCOPE_LINK = 0x20

Holder = t.Tuple[str, int]  # (target IQN, TPG tag)


def ipv4_local_networks(fib_trie: str) -> t.List[IPNetwork]:
    """The addresses the host owns, from ``/proc/net/fib_trie`` (``127.0.0.0/8`` is local as a whole)."""
    networks: t.List[IPNetwork] = []
    last = None
    for line in fib_trie.splitlines():
        words = line.replace("|--", " ").split()
        if len(words) == 1 and not line.lstrip().startswith("+--"):
            last = words[0]
        elif len(words) >= 3 and words[0].startswith("/") and words[-1] == "LOCAL" and last is not None:
            network = ipaddress.ip_network("%s%s" % (last, words[0]), strict=False)
            if network not in networks:
                networks.append(network)
    return networks


def ipv6_local_networks(if_inet6: str) -> t.List[IPNetwork]:
    """The IPv6 addresses the host can bind, from ``/proc/net/if_inet6`` (link-local ones need a zone
    and tentative ones cannot be bound yet, so both are left out)."""
    networks: t.List[IPNetwork] = []
    for line in if_inet6.splitlines():
        words = line.split()
        if len(words) < 6:
            continue
        scope, flags = int(words[3], 16), int(words[4], 16)
        if scope == _IPV6_SCOPE_LINK or flags & (_IFA_F_TENTATIVE | _IFA_F_DADFAILED):
            continue
        network = ipaddress.ip_network((int(words[0], 16), 128))
        if network not in networks:
            networks.append(network)
    return networks


def read_host_networks(proc: str = "/proc") -> t.Tuple[IPNetwork, ...]:
    """Every network whose addresses this host can listen on, then the two wildcards."""
    found: t.List[IPNetwork] = []
    for name, parse in (("net/fib_trie", ipv4_local_networks), ("net/if_inet6", ipv6_local_networks)):
        try:
            with open(os.path.join(proc, name)) as source:
                found.extend(parse(source.read()))
        except OSError:  # no IPv6 in this kernel, or /proc not mounted: those addresses are unknown
            continue
    return tuple(found) + _WILDCARDS


def lio_ip(address: PortalAddress) -> str:
    """How configfs names the address of a NetworkPortal: IPv6 in brackets."""
    return "[%s]" % address.ip if address.version == 6 else address.ip


def parse_lio_portal(ip: str, port: int) -> PortalAddress:
    return PortalAddress.of(ip[1:-1] if ip.startswith("[") else ip, int(port))


def _group_id(iqn: str, tag: int) -> str:
    return "%s#%d" % (iqn, tag)


def _split_group_id(group_id: str) -> Holder:
    iqn, _sep, tag = group_id.rpartition("#")
    return iqn, int(tag)


def _holders(holders: t.Iterable[Holder]) -> str:
    return ", ".join("group %d of %s" % (tag, iqn) for iqn, tag in sorted(holders))


def _blocks(existing: PortalAddress, new: PortalAddress) -> bool:
    """Whether a listener on ``existing`` makes the kernel refuse one on ``new`` (bind conflict).

    A wildcard takes its port on every address of its family; an IPv6 wildcard is dual-stack (the
    kernel sets no IPV6_V6ONLY), so it takes IPv4 too. The same ip:port is shared, not a conflict.
    """
    if existing.port != new.port or existing == new:
        return False
    if existing.is_wildcard and new.is_wildcard:
        return True
    wildcard, specific = (existing, new) if existing.is_wildcard else (new, existing)
    if not wildcard.is_wildcard:
        return False
    return wildcard.version == 6 or specific.version == 4


def _refusal(what: str, error: Exception) -> VdsError:
    """A kernel refusal that planning did not predict, told with its likely causes."""
    cause = error.__cause__ or error.__context__
    code = getattr(cause, "errno", None)
    name = "%s, %s" % (errno.errorcode.get(code, str(code)), os.strerror(code)) if code else str(error)
    return VdsError(
        "%s: the kernel refused (%s). The kernel target reports every portal error this way; likely causes: "
        "another program listens on that address and port (or on 0.0.0.0 or [::] with that port); the address "
        "left the host after its state was read; another tool changed the target at the same time. The kernel "
        "log (dmesg) names the cause. Nothing else was changed by this step." % (what, name),
        errno=code, rtslib_error=str(error))


class LioBackend(Backend):
    """One host's LIO iSCSI targets, seen as one subsystem named after the host."""

    assigns_tags = False

    def __init__(self, save_config: bool = True, save_file: str | None = None, rtslib: t.Any = None,
                 networks: t.Callable[[], t.Tuple[IPNetwork, ...]] | None = None,
                 hostname: t.Callable[[], str] | None = None) -> None:
        self._rtslib = rtslib if rtslib is not None else rtslib_fb
        self._save_config = save_config
        self._save_file = save_file
        self._networks = networks if networks is not None else read_host_networks
        self._hostname = hostname if hostname is not None else socket.gethostname
        self._ids = itertools.count(1)
        self._done: dict[str, OperationResult] = {}
        self._changed = False
        # (iqn, tag) -> LUNs and ACLs, from the last read: a group holding them is not deleted.
        self._contents: dict[Holder, t.Tuple[int, int]] = {}
        # ip:port -> the groups listening there, as the plans reviewed since the last read leave it.
        self._listening: dict[PortalAddress, t.Set[Holder]] | None = None

    # -- reading --

    def _fabric(self) -> t.Any:
        """The iSCSI fabric, after checking that configfs and the target core are reachable."""
        lib = self._rtslib
        try:
            lib.RTSRoot()
            return lib.FabricModule("iscsi")
        except (lib.RTSLibError, OSError) as error:
            raise BackendUnavailable(
                "backend=lio cannot reach the kernel target through configfs (/sys/kernel/config/target): %s. "
                "It runs on the target host as root, and needs configfs and the target_core_mod and "
                "iscsi_target_mod kernel modules" % (error or type(error).__name__)) from None

    def _subsystem_name(self) -> str:
        return self._hostname() or "lio"

    def snapshot(self, subsystem: str | None = None) -> Snapshot:
        """The host's one subsystem, whatever ``subsystem`` names: the engine reports a wrong name."""
        name = self._subsystem_name()
        fabric = self._fabric()
        networks = self._networks()
        self._contents = {}
        self._listening = None
        targets: t.List[Target] = []
        members: t.Set[PortalAddress] = set()
        for lio_target in sorted(fabric.targets, key=lambda found: found.wwn):
            groups: t.List[PortalGroup] = []
            for tpg in sorted(lio_target.tpgs, key=lambda found: found.tag):
                if not 1 <= tpg.tag <= 65535:
                    continue
                portals = frozenset(parse_lio_portal(np.ip_address, np.port) for np in tpg.network_portals)
                members.update(portals)
                self._contents[(lio_target.wwn, tpg.tag)] = (len(list(tpg.luns)), len(list(tpg.node_acls)))
                groups.append(PortalGroup(_group_id(lio_target.wwn, tpg.tag), tpg.tag, portals))
            targets.append(Target(lio_target.wwn, lio_target.wwn, "", tuple(groups)))
        # Listed for information: every portal in use, and each host address on the default port.
        listed = members | {PortalAddress.of(str(network.network_address), DEFAULT_PORT) for network in networks
                            if network.num_addresses == 1 and not network.network_address.is_unspecified}
        portals = tuple(Portal(str(address), address) for address in sorted(listed))
        return Snapshot((Subsystem(name, name, portals, tuple(targets), tuple(networks)),))

    # -- planning --

    def review(self, subsystem: Subsystem, target: Target, steps: t.Sequence[Step]) -> None:
        """Replay the plan over every portal of the host, refusing what the kernel would refuse.

        Listeners are host-wide, and the plans of one execution (one per target) run one after another
        in the order they are reviewed, so each plan is replayed over the state the plans reviewed
        before it leave: a port one target frees is free for the next, and two targets cannot both
        take it. Reading the state again starts over from what was read.
        """
        if self._listening is None:
            self._listening = {}
            for other in subsystem.targets:
                for group in other.groups:
                    for address in group.portals:
                        self._listening.setdefault(address, set()).add((other.iqn, group.tag))
        listening = self._listening
        for step in steps:
            if step.action == SET_STATUS:
                raise ValidationError("portal %s: the Linux kernel target has no portal status (online/offline); "
                                      "remove the portal from its group instead" % step.portal)
            if step.action == DELETE_GROUP and step.tag is not None:
                luns, acls = self._contents.get((target.iqn, step.tag), (0, 0))
                if luns or acls:
                    raise ValidationError(
                        "group %d of %s has %d LUN(s) and %d ACL(s): deleting the TPG would delete them too, and "
                        "this collection does not manage LUNs or ACLs; remove them first (for example with "
                        "targetcli), or keep the group" % (step.tag, target.iqn, luns, acls))
            if step.portal is None:
                continue
            holder = (target.iqn, t.cast(int, step.tag))  # never None here: LIO groups are created by tag
            if step.action == REMOVE_PORTAL:
                listening.get(step.portal, set()).discard(holder)
            elif step.action == ADD_PORTAL:
                self._check_bind(listening, step, target)
                listening.setdefault(step.portal, set()).add(holder)

    @staticmethod
    def _check_bind(listening: dict[PortalAddress, t.Set[Holder]], step: Step, target: Target) -> None:
        address = t.cast(PortalAddress, step.portal)
        group = "group %s of %s" % (step.tag, target.iqn)
        for existing, holders in sorted(listening.items()):
            if not holders or not _blocks(existing, address):
                continue
            if existing.is_wildcard:
                raise ValidationError(
                    "portal %s cannot be added to %s: the wildcard portal %s (in %s) listens on every address on "
                    "port %d, and the kernel refuses a second listener there. Remove the wildcard first (with "
                    "purge_portals=true on its group it is removed before any add), or use another port"
                    % (address, group, existing, _holders(holders), address.port))
            raise ValidationError(
                "the wildcard portal %s cannot be added to %s: portal %s (in %s) already listens on port %d, and "
                "the kernel refuses a wildcard listener beside it. Remove the specific portals on that port "
                "first, or use another port" % (address, group, existing, _holders(holders), address.port))

    # -- changing --

    def _target(self, iqn: str) -> t.Any:
        lib = self._rtslib
        try:
            return lib.Target(self._fabric(), iqn, mode="lookup")
        except lib.RTSLibNotInCFS:
            raise HResultError(VDS_E_OBJECT_DELETED, "", "call", reason="target %s is gone" % iqn) from None

    def _tpg(self, group_id: str) -> t.Any:
        lib = self._rtslib
        iqn, tag = _split_group_id(group_id)
        target = self._target(iqn)
        try:
            return lib.TPG(target, tag, mode="lookup")
        except lib.RTSLibNotInCFS:
            raise HResultError(VDS_E_OBJECT_DELETED, "", "call",
                               reason="TPG %d of %s is gone" % (tag, iqn)) from None

    def _finished(self, name: str, objects: t.Tuple[str, ...], group: Holder | None = None) -> Operation:
        operation = Operation("lio-%d" % next(self._ids), name, objects)
        self._done[operation.id] = OperationResult(S_OK, S_OK, _group_id(*group) if group else None,
                                                   group[1] if group else None)
        self._changed = True
        return operation

    def add_portal(self, group_id: str, portal_id: str) -> Operation:
        lib = self._rtslib
        address = PortalAddress.parse(portal_id)
        tpg = self._tpg(group_id)
        try:
            lib.NetworkPortal(tpg, lio_ip(address), address.port, mode="create")
        except lib.RTSLibError as error:
            iqn, tag = _split_group_id(group_id)
            if any(parse_lio_portal(np.ip_address, np.port) == address for np in tpg.network_portals):
                raise VdsError("adding %s to TPG %d of %s: it is already there (another tool added it since the "
                               "state was read)" % (address, tag, iqn)) from None
            raise _refusal("adding NetworkPortal %s to TPG %d of %s" % (address, tag, iqn), error) from None
        return self._finished("AddPortal", (group_id, portal_id))

    def remove_portal(self, group_id: str, portal_id: str) -> Operation:
        address = PortalAddress.parse(portal_id)
        tpg = self._tpg(group_id)
        for np in tpg.network_portals:
            if parse_lio_portal(np.ip_address, np.port) == address:
                np.delete()
                return self._finished("RemovePortal", (group_id, portal_id))
        raise HResultError(VDS_E_OBJECT_NOT_FOUND, "", "call", reason="%s is not in that TPG" % address)

    def create_group(self, target_id: str, tag: int | None = None) -> Operation:
        lib = self._rtslib
        if tag is None:  # the planner always names the tag here (assigns_tags is False)
            raise ValidationError("creating a TPG on %s: no tag given" % target_id)
        target = self._target(target_id)
        try:
            tpg = lib.TPG(target, tag, mode="create")
        except lib.RTSLibError as error:
            raise VdsError("creating TPG %d of %s failed: %s" % (tag, target_id, error)) from None
        try:
            for attribute, value in NEW_TPG_ATTRIBUTES:
                tpg.set_attribute(attribute, value)
            tpg.enable = True
        except lib.RTSLibError as error:
            tpg.delete()  # a half-configured TPG would be listed as a group: take it away again
            raise VdsError("configuring new TPG %d of %s failed, so it was deleted again: %s"
                           % (tag, target_id, error)) from None
        return self._finished("CreatePortalGroup", (target_id,), (target_id, tag))

    def delete_group(self, group_id: str) -> Operation:
        self._tpg(group_id).delete()
        return self._finished("DeletePortalGroup", (group_id,))

    def set_portal_status(self, portal_id: str, status: str) -> Operation:
        raise ValidationError("portal %s: the Linux kernel target has no portal status" % portal_id)

    # -- operations: each one finished when its call returned --

    def query_status(self, operation: Operation) -> OperationStatus:
        return OperationStatus(self._done[operation.id].operation_hresult, 100)

    def result(self, operation: Operation) -> OperationResult:
        return self._done[operation.id]

    def cancel(self, operation: Operation) -> int:
        return VDS_E_CANCEL_TOO_LATE

    def recover_cache(self, subsystem: str | None) -> None:
        """rtslib reads configfs afresh on every call: there is no cache to recover."""

    # -- persistence --

    def finish(self) -> dict[str, t.Any]:
        """Save the running configuration (as ``targetctl save`` does) when this run changed it."""
        if not (self._changed and self._save_config):
            return {"saved": False}
        lib = self._rtslib
        path = self._save_file or lib.root.default_save_file
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            lib.RTSRoot().save_to_file(path)
        except Exception as error:  # rtslib raises RTSLibError, OSError, and a NameError on some failures
            raise VdsError("the change took effect in the running kernel target, but saving the configuration "
                           "to %s failed (%s): it will be lost at the next reboot unless it is saved, for "
                           "example with 'targetctl save'" % (path, error), saved=False) from None
        return {"saved": True, "save_file": path}
