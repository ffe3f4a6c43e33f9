# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Value types: portal addresses, iSCSI names, tags, and finding a target in a snapshot."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import NotFoundError, ValidationError
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    DEFAULT_PORT,
    Portal,
    PortalAddress,
    PortalGroup,
    Snapshot,
    Subsystem,
    Target,
    normalize_iqn,
    parse_portal_list,
    require_known_portals,
    unknown_portals,
    validate_tag,
)
from ansible_collections.storage.vds.tests.unit.plugins.constants import IQN1 as IQN, IQN2 as OTHER

# --- PortalAddress.parse ------------------------------------------------------------------------


@pytest.mark.parametrize("text, ip, port, shown", [
    ("10.0.0.1", "10.0.0.1", 3260, "10.0.0.1:3260"),
    ("10.0.0.1:3260", "10.0.0.1", 3260, "10.0.0.1:3260"),
    ("10.0.0.1:860", "10.0.0.1", 860, "10.0.0.1:860"),
    ("  192.168.1.20:1 ", "192.168.1.20", 1, "192.168.1.20:1"),
    ("10.0.0.1:65535", "10.0.0.1", 65535, "10.0.0.1:65535"),
    ("10.0.0.1:03260", "10.0.0.1", 3260, "10.0.0.1:3260"),
    ("0.0.0.0", "0.0.0.0", 3260, "0.0.0.0:3260"),
    ("[fd00::1]", "fd00::1", 3260, "[fd00::1]:3260"),
    ("[fd00::1]:3261", "fd00::1", 3261, "[fd00::1]:3261"),
    ("[FD00:0000:0000:0000:0000:0000:0000:0010]:3260", "fd00::10", 3260, "[fd00::10]:3260"),
    ("[FD00::0010]", "fd00::10", 3260, "[fd00::10]:3260"),
    ("[2001:db8:0:0:1:0:0:1]:3260", "2001:db8::1:0:0:1", 3260, "[2001:db8::1:0:0:1]:3260"),
    ("[::]", "::", 3260, "[::]:3260"),
    # IPv4-mapped: Python's own spelling (3.13 changed it), whatever it is, is the normal form
    ("[::FFFF:10.0.0.1]:3260", str(ipaddress.ip_address("::ffff:10.0.0.1")), 3260,
     "[%s]:3260" % ipaddress.ip_address("::ffff:10.0.0.1")),
])
def test_parse_valid(text, ip, port, shown):
    address = PortalAddress.parse(text)
    assert (address.ip, address.port, str(address)) == (ip, port, shown)
    assert PortalAddress.parse(str(address)) == address  # the normal form reads back as itself


def test_default_port_is_3260():
    assert DEFAULT_PORT == 3260
    assert PortalAddress.parse("10.0.0.1") == PortalAddress.parse("10.0.0.1:3260") == PortalAddress.of("10.0.0.1")


@pytest.mark.parametrize("left, right", [
    ("[fd00::10]", "[FD00:0:0:0:0:0:0:10]:3260"),
    ("[fd00::a]:3260", "[fd00::A]"),
    ("10.0.0.1", " 10.0.0.1:3260"),
])
def test_equal_endpoints_compare_and_hash_equal(left, right):
    a, b = PortalAddress.parse(left), PortalAddress.parse(right)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


@pytest.mark.parametrize("left, right", [
    ("10.0.0.1:3260", "10.0.0.1:3261"),
    ("10.0.0.1", "10.0.0.2"),
    ("[::ffff:10.0.0.1]", "10.0.0.1"),
])
def test_different_endpoints_differ(left, right):
    assert PortalAddress.parse(left) != PortalAddress.parse(right)


@pytest.mark.parametrize("text, fragment", [
    ("10.0.0.256", "'10.0.0.256' is not an IPv4 or IPv6 address"),
    ("10.0.0", "'10.0.0' is not an IPv4 or IPv6 address"),
    ("010.0.0.1", "'010.0.0.1' is not an IPv4 or IPv6 address"),
    ("host.example.com", "'host.example.com' is not an IPv4 or IPv6 address"),
    ("host.example.com:3260", "'host.example.com' is not an IPv4 or IPv6 address"),
    ("10.0.0.1 :3260", "is not an IPv4 or IPv6 address"),
    ("[fd00::g]", "'fd00::g' is not an IPv4 or IPv6 address"),
    ("[]", "'' is not an IPv4 or IPv6 address"),
    ("10.0.0.1:0", "port 0 is outside 1..65535"),
    ("10.0.0.1:65536", "port 65536 is outside 1..65535"),
    ("10.0.0.1:70000", "port 70000 is outside 1..65535"),
    ("[fd00::1]:0", "port 0 is outside 1..65535"),
    ("[fd00::1]:65536", "port 65536 is outside 1..65535"),
    ("10.0.0.1:abc", "port 'abc' is not a number"),
    ("10.0.0.1:", "port '' is not a number"),
    ("10.0.0.1:-1", "port '-1' is not a number"),
    ("10.0.0.1:+3260", "port '+3260' is not a number"),
    ("10.0.0.1: 3260", "port ' 3260' is not a number"),
    ("[fd00::1]:x", "port 'x' is not a number"),
    ("fd00::1", "write an IPv6 portal as [address]:port"),
    ("fd00::1:3260", "write an IPv6 portal as [address]:port"),
    ("fe80::1%eth0", "write an IPv6 portal as [address]:port"),
    ("[fe80::1%eth0]:3260", "scoped IPv6 addresses (with %zone) are not supported"),
    ("[fe80::1%2]", "scoped IPv6 addresses (with %zone) are not supported"),
    ("[fd00::1", "missing ']' after the IPv6 address"),
    ("[fd00::1]3260", "expected ':port' after ']'"),
    ("[fd00::1]]", "expected ':port' after ']'"),
    ("", "is not an address"),
    ("   ", "is not an address"),
])
def test_parse_invalid_names_the_value(text, fragment):
    with pytest.raises(ValidationError) as raised:
        PortalAddress.parse(text)
    message = str(raised.value)
    assert fragment in message
    assert message.startswith("portal %r" % text)


@pytest.mark.parametrize("value", [None, 3260, 10.5, ["10.0.0.1"], b"10.0.0.1"])
def test_parse_rejects_non_strings(value):
    with pytest.raises(ValidationError, match="is not an address"):
        PortalAddress.parse(value)


@pytest.mark.parametrize("text", ["10.0.0.1:\u00b2", "10.0.0.1:\u2460", "[fd00::1]:\u00b3\u00b2\u2076\u2070"])
def test_parse_non_ascii_digit_ports_fail_as_validation_errors(text):
    # str.isdigit() is true for superscripts and circled digits, which int() cannot read: the parser
    # must still answer with a ValidationError naming the port (the module edge turns only VdsError
    # into fail_json; a ValueError would reach the user as a traceback).
    with pytest.raises(ValidationError, match="port"):
        PortalAddress.parse(text)


@pytest.mark.parametrize("ip, port, fragment", [
    ("10.0.0.1", 0, "port 0 is outside 1..65535"),
    ("10.0.0.1", 65536, "port 65536 is outside 1..65535"),
    ("10.0.0.1", True, "port True is outside 1..65535"),
    ("10.0.0.1", "3260", "port '3260' is outside 1..65535"),
    ("nope", 3260, "'nope' is not an IPv4 or IPv6 address"),
])
def test_of_validates(ip, port, fragment):
    with pytest.raises(ValidationError) as raised:
        PortalAddress.of(ip, port)
    assert fragment in str(raised.value)


def test_version_and_wildcard():
    assert PortalAddress.parse("10.0.0.1").version == 4
    assert PortalAddress.parse("[fd00::1]").version == 6
    assert PortalAddress.parse("0.0.0.0").is_wildcard
    assert PortalAddress.parse("[::]").is_wildcard
    assert not PortalAddress.parse("10.0.0.1").is_wildcard


def test_sort_order_is_family_then_numeric_address_then_port():
    texts = ["[fd00::2]", "10.0.0.10", "[fd00::1]:3261", "10.0.0.2:3261", "[fd00::1]", "10.0.0.2",
             "9.255.255.255", "[::1]"]
    ordered = [str(a) for a in sorted(PortalAddress.parse(x) for x in texts)]
    assert ordered == ["9.255.255.255:3260", "10.0.0.2:3260", "10.0.0.2:3261", "10.0.0.10:3260",
                       "[::1]:3260", "[fd00::1]:3260", "[fd00::1]:3261", "[fd00::2]:3260"]


_ADDRESSES = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).filter(lambda a: a.scope_id is None).map(lambda a: "[%s]" % a.exploded.upper()),
)


@given(_ADDRESSES, st.one_of(st.none(), st.integers(1, 65535)))
@settings(max_examples=200, deadline=None)
def test_parse_round_trips_and_normalises(host, port):
    text = host if port is None else "%s:%d" % (host, port)
    address = PortalAddress.parse(text)
    assert address.port == (DEFAULT_PORT if port is None else port)
    assert ipaddress.ip_address(address.ip) == ipaddress.ip_address(host.strip("[]"))
    assert address.ip == str(ipaddress.ip_address(address.ip))  # the compressed, lower-case spelling
    again = PortalAddress.parse(str(address))
    assert again == address and str(again) == str(address)


# --- parse_portal_list --------------------------------------------------------------------------


def test_parse_portal_list_sorts():
    parsed = parse_portal_list(["[fd00::1]", "10.0.0.10", "10.0.0.2"])
    assert [str(a) for a in parsed] == ["10.0.0.2:3260", "10.0.0.10:3260", "[fd00::1]:3260"]
    assert parse_portal_list([]) == ()


@pytest.mark.parametrize("first, second, shown", [
    ("10.0.0.1", "10.0.0.1:3260", "10.0.0.1:3260"),
    ("[fd00::10]", "[FD00:0:0:0:0:0:0:10]:3260", "[fd00::10]:3260"),
    ("10.0.0.1:3260", "10.0.0.1:3260", "10.0.0.1:3260"),
])
def test_parse_portal_list_refuses_duplicates_after_normalisation(first, second, shown):
    with pytest.raises(ValidationError) as raised:
        parse_portal_list(["10.0.0.9", first, "10.0.0.8", second])
    message = str(raised.value)
    assert repr(first) in message and repr(second) in message and shown in message
    assert message.startswith("portals: ")
    assert "list each portal once" in message


def test_parse_portal_list_names_the_option_and_bad_value():
    with pytest.raises(ValidationError, match="'10.0.0.1' and '10.0.0.1:3260'") as raised:
        parse_portal_list(["10.0.0.1", "10.0.0.1:3260"], option="portal_groups_desired[0].portals")
    assert str(raised.value).startswith("portal_groups_desired[0].portals: ")
    with pytest.raises(ValidationError, match="10.0.0.300"):
        parse_portal_list(["10.0.0.1", "10.0.0.300"])


# --- normalize_iqn ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("iqn.1991-05.com.microsoft:array-a-t1", "iqn.1991-05.com.microsoft:array-a-t1"),
    ("IQN.1991-05.COM.Microsoft:Array-A-T1", "iqn.1991-05.com.microsoft:array-a-t1"),
    ("  iqn.2003-01.org.linux-iscsi.host:sn.1234  ", "iqn.2003-01.org.linux-iscsi.host:sn.1234"),
    ("iqn.2001-04.com.example", "iqn.2001-04.com.example"),
    ("iqn.2001-12.com.example:storage:disk2.sys1.xyz", "iqn.2001-12.com.example:storage:disk2.sys1.xyz"),
    ("eui.02004567A425678D", "eui.02004567a425678d"),
    ("EUI.0123456789abcdef", "eui.0123456789abcdef"),
    ("naa.52004567BA64678D", "naa.52004567ba64678d"),
    ("naa.600A0B800012345600000000ABCDEF01", "naa.600a0b800012345600000000abcdef01"),
])
def test_normalize_iqn_valid(text, expected):
    assert normalize_iqn(text) == expected
    assert normalize_iqn(expected) == expected


@pytest.mark.parametrize("text", [
    "iqn.1991-5.com.microsoft:x",            # month needs two digits
    "iqn.1991-13.com.microsoft:x",           # no month 13
    "iqn.1991-00.com.microsoft:x",
    "iqn.91-05.com.microsoft:x",             # four-digit year
    "iqn.1991-05",                            # no naming authority
    "iqn.1991-05.:x",
    "iqn.1991-05.-com.microsoft:x",           # label cannot start with '-'
    "iqn.1991-05.com-.microsoft:x",           # ... nor end with it
    "iqn.1991-05.com..microsoft:x",
    "iqn.1991-05.com.microsoft:",             # empty unique part after ':'
    "iqn.1991-05.com.micro soft:x",
    "iqn.1991-05.com.microsoft:has space",
    "iqn.1991-05.com_microsoft:x",
    "iqn1991-05.com.microsoft:x",
    "eui.02004567A425678",                    # 15 hex digits
    "eui.02004567A425678D0",                  # 17
    "eui.02004567A425678G",
    "naa.52004567BA64678",                    # 15
    "naa.52004567BA64678D00",                 # 18: neither 16 nor 32
    "naa.600A0B800012345600000000ABCDEF0",    # 31
    "wwn.0x5000",
    "target1",
    "",
    "   ",
])
def test_normalize_iqn_invalid_names_the_value(text):
    with pytest.raises(ValidationError) as raised:
        normalize_iqn(text)
    assert repr(text) in str(raised.value)
    assert "iSCSI name" in str(raised.value)


@pytest.mark.parametrize("value", [None, 5, ["iqn.1991-05.com.microsoft:x"]])
def test_normalize_iqn_rejects_non_strings(value):
    with pytest.raises(ValidationError, match="is not an iSCSI name"):
        normalize_iqn(value)


def test_normalize_iqn_length_limit_is_223_bytes():
    base = "iqn.1991-05.com.microsoft:"
    assert normalize_iqn(base + "a" * (223 - len(base))) == base + "a" * (223 - len(base))
    with pytest.raises(ValidationError, match="223 bytes"):
        normalize_iqn(base + "a" * (224 - len(base)))
    # bytes, not characters: 2-byte characters count twice
    with pytest.raises(ValidationError, match="223 bytes"):
        normalize_iqn(base + "\u00e9" * 100)


# --- validate_tag -------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", [1, 2, 65535])
def test_validate_tag_accepts(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", [0, -1, 65536, 70000, True, False, "1", 1.0, None])
def test_validate_tag_rejects(tag):
    with pytest.raises(ValidationError) as raised:
        validate_tag(tag)
    assert str(raised.value) == "tag %r is outside 1..65535" % (tag,)


def test_validate_tag_names_the_option():
    with pytest.raises(ValidationError, match=r"^portal_groups_desired\[2\].tag 0 is outside 1..65535$"):
        validate_tag(0, "portal_groups_desired[2].tag")


# --- groups, targets, snapshots -----------------------------------------------------------------

A1, A2, A3 = (PortalAddress.parse("10.0.0.%d" % n) for n in (1, 2, 3))


def _target(iqn: str = IQN) -> Target:
    return Target("t", iqn, "t1", (PortalGroup("g2", 2, frozenset({A3})), PortalGroup("g1", 1, frozenset({A2, A1}))))


def _subsystem(name: str, *targets: Target) -> Subsystem:
    return Subsystem("s-" + name, name, (Portal("p1", A1), Portal("p2", A2), Portal("p3", A3, "offline")), targets)


def test_target_lookups():
    target = _target()
    assert target.group_by_tag(1).id == "g1" and target.group_by_tag(7) is None
    assert target.group_holding(A1).tag == 1 and target.group_holding(A3).tag == 2
    assert target.group_holding(PortalAddress.parse("10.0.0.9")) is None
    assert target.membership() == {1: frozenset({A1, A2}), 2: frozenset({A3})}
    assert target.group_by_tag(1).sorted_portals() == ["10.0.0.1:3260", "10.0.0.2:3260"]


def test_subsystem_lookups_and_unknown_portals():
    subsystem = _subsystem("array-a", _target())
    assert subsystem.portal(A3).status == "offline"
    assert subsystem.portal(PortalAddress.parse("10.0.0.9")) is None
    assert subsystem.target(IQN).id == "t" and subsystem.target(OTHER) is None
    unknown = PortalAddress.parse("[fd00::9]:3261")
    assert unknown_portals(subsystem, [A1, unknown]) == ["[fd00::9]:3261"]
    require_known_portals(subsystem, [A1, A2])
    with pytest.raises(NotFoundError) as raised:
        require_known_portals(subsystem, [A1, unknown])
    message = str(raised.value)
    assert "[fd00::9]:3261" in message and "array-a" in message
    assert "known portals: 10.0.0.1:3260, 10.0.0.2:3260, 10.0.0.3:3260" in message


def test_locate_target_finds_it():
    snapshot = Snapshot((_subsystem("array-a", _target()), _subsystem("array-b", _target(OTHER))))
    subsystem, target = snapshot.locate_target(OTHER)
    assert subsystem.name == "array-b" and target.iqn == OTHER


def test_locate_target_unknown_lists_known_targets():
    snapshot = Snapshot((_subsystem("array-a", _target()), _subsystem("array-b", _target(OTHER))))
    missing = "iqn.1991-05.com.microsoft:nope"
    with pytest.raises(NotFoundError) as raised:
        snapshot.locate_target(missing)
    message = str(raised.value)
    assert missing in message and "any subsystem" in message
    assert "known targets: %s, %s" % (IQN, OTHER) in message


def test_locate_target_unknown_in_a_subsystem_lists_that_subsystems_targets():
    snapshot = Snapshot((_subsystem("array-a", _target()), _subsystem("array-b", _target(OTHER))))
    with pytest.raises(NotFoundError) as raised:
        snapshot.locate_target(OTHER, "array-a")
    message = str(raised.value)
    assert "subsystem 'array-a'" in message and "known targets: %s" % IQN in message
    assert "known targets: %s, " % IQN not in message


def test_locate_target_with_no_targets_says_none():
    with pytest.raises(NotFoundError, match=r"known targets: \(none\)"):
        Snapshot((_subsystem("array-a"),)).locate_target(IQN)
    with pytest.raises(NotFoundError, match=r"known targets: \(none\)"):
        Snapshot().locate_target(IQN)


def test_locate_target_ambiguous_across_subsystems():
    snapshot = Snapshot((_subsystem("array-a", _target()), _subsystem("array-b", _target())))
    with pytest.raises(ValidationError) as raised:
        snapshot.locate_target(IQN)
    message = str(raised.value)
    assert "array-a, array-b" in message and "set subsystem" in message and IQN in message
    subsystem, target = snapshot.locate_target(IQN, "array-b")
    assert subsystem.name == "array-b" and target.iqn == IQN


def test_locate_target_unknown_subsystem_lists_known_subsystems():
    snapshot = Snapshot((_subsystem("array-b", _target()), _subsystem("array-a", _target(OTHER))))
    with pytest.raises(NotFoundError) as raised:
        snapshot.locate_target(IQN, "array-z")
    assert str(raised.value) == "subsystem 'array-z' does not exist; known subsystems: array-a, array-b"
