# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Value types of the engine: addresses, portals, groups, targets, subsystems, snapshots.

Objects carry the provider's ids only to call it; identity for the user is the IQN, the address
and the tag, because VDS ids do not survive a service restart.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import NotFoundError, ValidationError

DEFAULT_PORT = 3260

PORTAL_STATUSES = {0: "unknown", 1: "online", 2: "not_ready", 4: "offline", 5: "failed"}
STATUS_CODES = {name: code for code, name in PORTAL_STATUSES.items()}

_IQN = re.compile(r"^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
                  r"(:[^\s]+)?$")
_EUI = re.compile(r"^eui\.[0-9a-f]{16}$")
_NAA = re.compile(r"^naa\.([0-9a-f]{16}|[0-9a-f]{32})$")
_MAX_ISCSI_NAME = 223

_V = t.TypeVar("_V", bound="Value")

IPNetwork = t.Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def normalize_iqn(text: t.Any) -> str:
    """Validate an iSCSI name (iqn., eui., naa.) and return it in its canonical lower case."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("target %r is not an iSCSI name: expected iqn.YYYY-MM.reversed.domain[:id], "
                              "eui.<16 hex> or naa.<16 or 32 hex>" % (text,))
    name = text.strip().lower()
    if len(name.encode("utf-8")) > _MAX_ISCSI_NAME:
        raise ValidationError("target %r is longer than the 223 bytes an iSCSI name may have" % text)
    if not (_IQN.match(name) or _EUI.match(name) or _NAA.match(name)):
        raise ValidationError("target %r is not an iSCSI name: expected iqn.YYYY-MM.reversed.domain[:id], "
                              "eui.<16 hex> or naa.<16 or 32 hex>" % text)
    return name


class Value:
    """An immutable value: equal to another of its class with equal fields, hashable, picklable.

    Defined by hand rather than as a frozen dataclass: every module execution defines these classes
    again, and a dataclass costs several times more to define.
    """

    __slots__: t.Tuple[str, ...] = ()
    _fields: t.Tuple[str, ...] = ()

    def __init__(self, *values: t.Any) -> None:
        for name, value in zip(self._fields, values):
            object.__setattr__(self, name, value)

    def _values(self) -> t.Tuple[t.Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == t.cast(Value, other)._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join("%s=%r" % (name, getattr(self, name)) for name in self._fields)
        return "%s(%s)" % (type(self).__name__, fields)

    def __setattr__(self, name: str, value: t.Any) -> None:
        raise AttributeError("cannot assign to field %r of an immutable %s" % (name, type(self).__name__))

    def __reduce__(self) -> t.Tuple[t.Any, ...]:
        return type(self), self._values()

    def replace(self: _V, **changes: t.Any) -> _V:
        """A copy with ``changes`` to some fields (the constructor takes every field, in order)."""
        return type(self)(*[changes.pop(name, getattr(self, name)) for name in self._fields], **changes)


def validate_tag(tag: t.Any, what: str = "tag") -> int:
    if isinstance(tag, bool) or not isinstance(tag, int) or not 1 <= tag <= 65535:
        raise ValidationError("%s %r is outside 1..65535" % (what, tag))
    return tag


class PortalAddress(Value):
    """An iSCSI portal endpoint, normalised so that equal endpoints compare equal."""

    __slots__ = ("sort_key", "ip", "port")
    _fields = ("ip", "port")

    def __init__(self, sort_key: t.Tuple[int, bytes, int], ip: str, port: int) -> None:
        # Sorting by (family, packed address, port) gives a numeric, stable order; ip and port follow from it.
        object.__setattr__(self, "sort_key", sort_key)
        object.__setattr__(self, "ip", ip)
        object.__setattr__(self, "port", port)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not PortalAddress:
            return NotImplemented
        return self.sort_key == t.cast(PortalAddress, other).sort_key

    def __hash__(self) -> int:
        return hash(self.sort_key)

    def __lt__(self, other: "PortalAddress") -> bool:
        return self.sort_key < other.sort_key

    def __le__(self, other: "PortalAddress") -> bool:
        return self.sort_key <= other.sort_key

    def __gt__(self, other: "PortalAddress") -> bool:
        return self.sort_key > other.sort_key

    def __ge__(self, other: "PortalAddress") -> bool:
        return self.sort_key >= other.sort_key

    def __reduce__(self) -> t.Tuple[t.Any, ...]:
        return PortalAddress, (self.sort_key, self.ip, self.port)

    @classmethod
    def of(cls, ip: str, port: int = DEFAULT_PORT) -> "PortalAddress":
        try:
            parsed = ipaddress.ip_address(ip)
        except ValueError:
            raise ValidationError("portal %r: %r is not an IPv4 or IPv6 address" % (ip, ip)) from None
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValidationError("portal %s: port %r is outside 1..65535" % (ip, port))
        text = str(parsed)
        if parsed.version == 6 and parsed.ipv4_mapped is not None:
            # Written the way RFC 5952 recommends, which Python's own text of it became only in 3.13.
            text = "::ffff:%s" % parsed.ipv4_mapped
        return cls((parsed.version, parsed.packed, port), text, port)

    @classmethod
    def parse(cls, text: t.Any) -> "PortalAddress":
        """Read ``ip``, ``ip:port``, ``[ipv6]`` or ``[ipv6]:port``; the port defaults to 3260."""
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("portal %r is not an address: expected ip[:port] or [ipv6]:port" % (text,))
        raw = text.strip()
        host, port_text = raw, None
        if raw.startswith("["):
            end = raw.find("]")
            if end < 0:
                raise ValidationError("portal %r: missing ']' after the IPv6 address" % text)
            host, rest = raw[1:end], raw[end + 1:]
            if rest:
                if not rest.startswith(":"):
                    raise ValidationError("portal %r: expected ':port' after ']'" % text)
                port_text = rest[1:]
        elif raw.count(":") == 1:
            host, port_text = raw.split(":")
        elif raw.count(":") > 1:
            raise ValidationError("portal %r: write an IPv6 portal as [address]:port" % text)
        port = DEFAULT_PORT
        if port_text is not None:
            if not (port_text.isascii() and port_text.isdigit()):
                raise ValidationError("portal %r: port %r is not a number" % (text, port_text))
            port = int(port_text)
            if not 1 <= port <= 65535:
                raise ValidationError("portal %r: port %d is outside 1..65535" % (text, port))
        if "%" in host:
            raise ValidationError("portal %r: scoped IPv6 addresses (with %%zone) are not supported" % text)
        try:
            address = cls.of(host, port)
        except ValidationError:
            raise ValidationError("portal %r: %r is not an IPv4 or IPv6 address" % (text, host)) from None
        if raw.startswith("[") and address.version == 4:
            raise ValidationError("portal %r: brackets are for IPv6 addresses only; write an IPv4 portal as %s"
                                  % (text, host if port_text is None else "%s:%s" % (host, port_text)))
        return address

    @property
    def version(self) -> int:
        return self.sort_key[0]

    @property
    def is_wildcard(self) -> bool:
        return ipaddress.ip_address(self.ip).is_unspecified

    def __str__(self) -> str:
        if self.version == 6:
            return "[%s]:%d" % (self.ip, self.port)
        return "%s:%d" % (self.ip, self.port)


def parse_portal_list(values: t.Iterable[t.Any], option: str = "portals") -> t.Tuple[PortalAddress, ...]:
    """Parse a list of portal strings, refusing duplicates (after normalisation) by name."""
    seen: dict[PortalAddress, str] = {}
    for value in values:
        address = PortalAddress.parse(value)
        if address in seen:
            raise ValidationError("%s: %r and %r are the same portal %s; list each portal once"
                                  % (option, seen[address], value, address))
        seen[address] = value
    return tuple(sorted(seen))


class Portal(Value):
    __slots__ = _fields = ("id", "address", "status")
    id: str
    address: PortalAddress
    status: str

    def __init__(self, id: str, address: PortalAddress, status: str = "online") -> None:
        super().__init__(id, address, status)


class PortalGroup(Value):
    __slots__ = _fields = ("id", "tag", "portals")
    id: str
    tag: int
    portals: t.FrozenSet[PortalAddress]

    def __init__(self, id: str, tag: int,
                 portals: t.FrozenSet[PortalAddress] = frozenset()) -> None:
        super().__init__(id, tag, portals)

    def sorted_portals(self) -> t.List[str]:
        return [str(address) for address in sorted(self.portals)]


class Target(Value):
    __slots__ = _fields = ("id", "iqn", "alias", "groups")
    id: str
    iqn: str
    alias: str
    groups: t.Tuple[PortalGroup, ...]

    def __init__(self, id: str, iqn: str, alias: str = "",
                 groups: t.Tuple[PortalGroup, ...] = ()) -> None:
        super().__init__(id, iqn, alias, groups)

    def group_by_tag(self, tag: int) -> PortalGroup | None:
        for group in self.groups:
            if group.tag == tag:
                return group
        return None

    def group_holding(self, address: PortalAddress) -> PortalGroup | None:
        for group in self.groups:
            if address in group.portals:
                return group
        return None

    def membership(self) -> t.Dict[int, t.FrozenSet[PortalAddress]]:
        return {group.tag: group.portals for group in self.groups}


class Subsystem(Value):
    _fields = ("id", "name", "portals", "targets", "portal_networks")
    __slots__ = _fields + ("_by_address",)
    id: str
    name: str
    portals: t.Tuple[Portal, ...]
    targets: t.Tuple[Target, ...]
    #: Providers whose portals are not a fixed list (LIO: any port of an address the host can bind) name
    #: the networks whose every address and port is a portal; VDS providers list their portals instead.
    portal_networks: t.Tuple[IPNetwork, ...]
    _by_address: t.Dict[PortalAddress, Portal]

    def __init__(self, id: str, name: str, portals: t.Tuple[Portal, ...] = (),
                 targets: t.Tuple[Target, ...] = (), portal_networks: t.Tuple[IPNetwork, ...] = ()) -> None:
        super().__init__(id, name, portals, targets, portal_networks)

    def portal(self, address: PortalAddress) -> Portal | None:
        try:
            index = self._by_address
        except AttributeError:
            # Built at the first lookup: planning looks up every declared portal, so a scan would be quadratic.
            index = {portal.address: portal for portal in self.portals}
            object.__setattr__(self, "_by_address", index)
        found = index.get(address)
        if found is not None:
            return found
        ip = ipaddress.ip_address(address.ip)
        if any(ip in network for network in self.portal_networks):
            return Portal(str(address), address)
        return None

    def target(self, iqn: str) -> Target | None:
        for target in self.targets:
            if target.iqn == iqn:
                return target
        return None


class Snapshot(Value):
    __slots__ = _fields = ("subsystems",)
    subsystems: t.Tuple[Subsystem, ...]

    def __init__(self, subsystems: t.Tuple[Subsystem, ...] = ()) -> None:
        super().__init__(subsystems)

    def locate_target(self, iqn: str, subsystem: str | None = None) -> t.Tuple[Subsystem, Target]:
        """Find a target by IQN (narrowed by subsystem name); fail naming what exists."""
        candidates = [s for s in self.subsystems if subsystem is None or s.name == subsystem]
        if subsystem is not None and not candidates:
            raise NotFoundError("subsystem %r does not exist; known subsystems: %s"
                                % (subsystem, _names(s.name for s in self.subsystems)))
        found = [(s, target) for s in candidates for target in (s.target(iqn),) if target is not None]
        if not found:
            where = "subsystem %r" % subsystem if subsystem else "any subsystem"
            known = sorted({target.iqn for s in candidates for target in s.targets})
            raise NotFoundError("target %s does not exist on %s; known targets: %s" % (iqn, where, _names(known)))
        if len(found) > 1:
            raise ValidationError("target %s exists on several subsystems (%s): set subsystem to choose one"
                                  % (iqn, ", ".join(pair[0].name for pair in found)))
        return found[0]


def _names(values: t.Iterable[str]) -> str:
    listed = sorted(values)
    return ", ".join(listed) if listed else "(none)"


def unknown_portals(subsystem: Subsystem, addresses: t.Iterable[PortalAddress]) -> t.List[str]:
    return [str(address) for address in addresses if subsystem.portal(address) is None]


def require_known_portals(subsystem: Subsystem, addresses: t.Iterable[PortalAddress]) -> None:
    missing = unknown_portals(subsystem, addresses)
    if missing and subsystem.portal_networks:
        networks = ", ".join(str(network) if network.num_addresses > 1 else str(network.network_address)
                             for network in subsystem.portal_networks)
        raise NotFoundError("portal %s: no interface of %s has that address, so it cannot listen there (portals "
                            "may use any port of the host's addresses: %s)" % (", ".join(missing), subsystem.name,
                                                                               networks))
    if missing:
        known = ", ".join(str(p.address) for p in sorted(subsystem.portals, key=lambda p: p.address)) or "(none)"
        raise NotFoundError("portal %s is not a portal of subsystem %s (portals belong to the subsystem; "
                            "known portals: %s)" % (", ".join(missing), subsystem.name, known))
