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
import json
import os
import socket
import traceback
import typing as t
import warnings

from ansible_collections.storage.vds.plugins.module_utils._vds.provider import (
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

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.storage.vds.plugins.module_utils._backends._lio_restore import RestoreAtBoot

RTSLIB_IMPORT_ERROR: str | None = None
try:
    import rtslib_fb
except ImportError:
    rtslib_fb = None
    RTSLIB_IMPORT_ERROR = traceback.format_exc()

#: What a new TPG gets, so that initiators can discover it: no CHAP, and demo-mode ACLs generated for
#: any initiator (LUNs stay read-only to them: the kernel's default demo_mode_write_protect=1 is kept).
NEW_TPG_ATTRIBUTES = (("authentication", "0"), ("generate_node_acls", "1"), ("cache_dynamic_acls", "1"))

#: Where configfs shows the kernel target, when rtslib-fb does not say.
CONFIGFS_TARGET = "/sys/kernel/config/target"
#: The kernel target listens on any address, also one the host does not have yet (a floating address):
#: it binds with IP_FREEBIND. So every address is a portal, and one not on the host draws a warning.
EVERY_ADDRESS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
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
        "another program listens on that address and port (or on 0.0.0.0 or [::] with that port); another tool "
        "changed the target at the same time. The kernel log (dmesg) names the cause. Nothing else was changed by "
        "this step." % (what, name),
        errno=code, rtslib_error=str(error))


class LioBackend(Backend):
    """One host's LIO iSCSI targets, seen as one subsystem named after the host."""

    assigns_tags = False

    def __init__(self, save_config: bool = True, save_file: str | None = None, rtslib: t.Any = None,
                 networks: t.Callable[[], t.Tuple[IPNetwork, ...]] | None = None,
                 hostname: t.Callable[[], str] | None = None, restore_at_boot: RestoreAtBoot | None = None) -> None:
        self._rtslib = rtslib if rtslib is not None else rtslib_fb
        self._save_config = save_config
        self._save_file = save_file
        self._restore_at_boot = restore_at_boot
        self._networks = networks if networks is not None else read_host_networks
        self._hostname = hostname if hostname is not None else socket.gethostname
        self._ids = itertools.count(1)
        self._root: t.Any = None
        #: Folders this run created for the saved configuration.
        self.created: t.List[str] = []
        self.warnings: t.List[str] = []
        self._host_networks: t.Tuple[IPNetwork, ...] = ()
        self._saved_checked = False
        self._done: dict[str, OperationResult] = {}
        self._changed = False
        # (iqn, tag) -> LUNs and ACLs, from the last read: a group holding them is not deleted.
        self._contents: dict[Holder, t.Tuple[int, int]] = {}
        # ip:port -> the groups listening there, as the plans reviewed since the last read leave it.
        self._listening: dict[PortalAddress, t.Set[Holder]] | None = None

    # -- reading --

    def _fabric(self) -> t.Any:
        """The iSCSI fabric, after checking that configfs and the target core are there.

        ``rtslib_fb.RTSRoot()`` is not used here: it writes the kernel's dbroot, which fails while the
        folder rtslib-fb prefers does not exist, and reading must neither need nor create it.
        """
        lib = self._rtslib
        configfs = getattr(lib.RTSRoot, "configfs_dir", CONFIGFS_TARGET)
        if not os.path.isdir(configfs):
            raise BackendUnavailable(
                "backend=lio cannot reach the kernel target through configfs: %s does not exist. It runs on the "
                "target host as root, and needs configfs mounted and the target_core_mod and iscsi_target_mod "
                "kernel modules loaded (loading happens when targets are created, for example with targetcli, "
                "or restored at boot by the distribution's restore service)" % configfs)
        try:
            return lib.FabricModule("iscsi")
        except (lib.RTSLibError, OSError) as error:
            raise BackendUnavailable("backend=lio cannot reach the iSCSI fabric in configfs (%s): %s. It runs "
                                     "on the target host as root" % (configfs, error or type(error).__name__)) from None

    def _rtsroot(self) -> t.Any:
        """The configfs root, for saving, once this run is about to change the target.

        rtslib-fb points the kernel's dbroot at the folder it prefers (``/etc/rtslib-fb-target`` on
        Debian and Ubuntu, ``/etc/target`` on Fedora and RHEL) and refuses to go on while that folder
        does not exist; only targetcli's packages create it. It is created here as those packages lay
        it out (root's, not writable by others), so that the distribution's restore service finds the
        configuration saved there at the next boot.
        """
        if self._root is not None:
            return self._root
        lib = self._rtslib
        dbroot = getattr(lib.RTSRoot, "_preferred_dbroot", None) or os.path.dirname(lib.root.default_save_file)
        folders = [(dbroot, 0o755)]
        save_folder = os.path.dirname(self._save_path())
        if save_folder and save_folder != dbroot:
            folders.append((save_folder, 0o700))  # a folder of the user's choosing: the file holds secrets
        try:
            for folder, mode in folders:
                if not os.path.isdir(folder):
                    os.makedirs(folder, mode=mode)
                    os.chmod(folder, mode)  # makedirs applies the umask
                    self.created.append(folder)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._root = lib.RTSRoot()
        except (lib.RTSLibError, OSError) as error:
            raise BackendUnavailable(
                "backend=lio cannot prepare to save the kernel target's configuration (%s), so nothing was "
                "changed: %s. Create that folder (root's, mode 0755), or set lio_save_config=false to change the "
                "running kernel target only" % (", ".join(folder for folder, _mode in folders),
                                                error or type(error).__name__)) from None
        # rtslib-fb warns when the kernel keeps its dbroot because devices are registered already.
        self.warnings.extend("rtslib-fb: %s" % warning.message for warning in caught)
        return self._root

    def _before_change(self) -> None:
        """Everything a change needs that could fail, done before the first change of this run."""
        if self._save_config:
            self._rtsroot()
        if self._restore_at_boot is not None:
            self._restore_at_boot.find()

    def _subsystem_name(self) -> str:
        return self._hostname() or "lio"

    def snapshot(self, subsystem: str | None = None) -> Snapshot:
        """The host's one subsystem, whatever ``subsystem`` names: the engine reports a wrong name."""
        name = self._subsystem_name()
        fabric = self._fabric()
        networks = self._host_networks = self._networks()
        self._contents = {}
        self._listening = None
        self._saved_checked = False
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
        return Snapshot((Subsystem(name, name, portals, tuple(targets), EVERY_ADDRESS),))

    # -- planning --

    def review(self, subsystem: Subsystem, target: Target, steps: t.Sequence[Step]) -> None:
        """Replay the plan over every portal of the host, refusing what the kernel would refuse.

        Listeners are host-wide, and the plans of one execution (one per target) run one after another
        in the order they are reviewed, so each plan is replayed over the state the plans reviewed
        before it leave: a port one target frees is free for the next, and two targets cannot both
        take it. Reading the state again starts over from what was read.
        """
        if steps:
            self._check_saved_file(subsystem)
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
                self._check_listenable(step.portal)
                self._check_bind(listening, step, target)
                listening.setdefault(step.portal, set()).add(holder)
                self._warn_if_not_on_host(subsystem, step.portal)

    def _check_saved_file(self, subsystem: Subsystem) -> None:
        """Refuse a change whose save would drop iSCSI targets that the saved file holds and the kernel
        does not run (a host rebooted without its restore service, for example): saving writes the
        running configuration over the whole file."""
        if not self._save_config or self._saved_checked:
            return
        self._saved_checked = True
        path = self._save_path()
        try:
            with open(path) as saved:
                config = json.load(saved)
        except (FileNotFoundError, NotADirectoryError):  # nothing saved yet (a bad folder is reported later)
            return
        except (OSError, ValueError) as error:
            raise ValidationError("the saved configuration %s cannot be read (%s), and saving after this change "
                                  "would replace it: repair or move it away, or set lio_save_config=false"
                                  % (path, error)) from None
        entries = config.get("targets", []) if isinstance(config, dict) else []
        saved_targets = {entry.get("wwn") for entry in entries if isinstance(entry, dict)
                         and entry.get("fabric") == "iscsi"}
        missing = sorted(str(wwn) for wwn in saved_targets - {target.iqn for target in subsystem.targets})
        if missing:
            raise ValidationError(
                "the saved configuration %s holds iSCSI targets the kernel is not running: %s. Saving after this "
                "change would drop them from the file. Restore the file first ('targetctl restore', which replaces "
                "the running configuration), or move it away, or set lio_save_config=false; nothing was changed"
                % (path, ", ".join(missing)))

    @staticmethod
    def _check_listenable(address: PortalAddress) -> None:
        """Refuse the addresses no listener can take, whatever the host's interfaces."""
        ip = ipaddress.ip_address(address.ip)
        if ip.is_multicast:
            raise ValidationError("portal %s: %s is a multicast address, which no listener can take" % (address, ip))
        if ip.version == 6 and ip.is_link_local:
            raise ValidationError("portal %s: a link-local IPv6 address is valid only with its interface, and a "
                                  "portal cannot name one; use a global or unique-local address" % address)

    def _warn_if_not_on_host(self, subsystem: Subsystem, address: PortalAddress) -> None:
        ip = ipaddress.ip_address(address.ip)
        if any(ip in network for network in self._host_networks):
            return
        warning = ("portal %s: no interface of %s has the address %s now. The kernel target accepts the portal and "
                   "listens there as soon as the address is configured (a floating address, for example); until "
                   "then initiators cannot connect to it" % (address, subsystem.name, address.ip))
        if warning not in self.warnings:
            self.warnings.append(warning)

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
        self._before_change()
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
        self._before_change()
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
        self._before_change()
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
        tpg = self._tpg(group_id)
        self._before_change()
        tpg.delete()
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

    def _save_path(self) -> str:
        return self._save_file or self._rtslib.root.default_save_file

    def finish(self) -> dict[str, t.Any]:
        """Save the running configuration when this run changed it; have it restored at boot when asked to."""
        result = self._save()
        if self._restore_at_boot is not None:
            try:
                result.update(self._restore_at_boot.enable())
            except VdsError as error:
                error.details.update(result)  # what was saved stays reported
                raise
        return result

    def _save(self) -> dict[str, t.Any]:
        """Save the running configuration (as ``targetctl save`` does) when this run changed it."""
        if not (self._changed and self._save_config):
            return {"saved": False}
        path = self._save_path()
        try:
            self._rtsroot().save_to_file(path)
            os.chmod(path, 0o600)  # it may hold CHAP secrets: older rtslib-fb wrote it readable by all
        except Exception as error:  # rtslib raises RTSLibError, OSError, and a NameError on some failures
            raise VdsError("the change took effect in the running kernel target, but saving the configuration "
                           "to %s failed (%s): it will be lost at the next reboot unless it is saved, for "
                           "example with 'targetctl save'" % (path, error), saved=False) from None
        return {"saved": True, "save_file": path}
