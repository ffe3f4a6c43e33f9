# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Brackets around a portal address are for IPv6 only."""

from __future__ import annotations

import pytest

from ansible_collections.storage.vds.plugins.module_utils._vds.errors import ValidationError
from ansible_collections.storage.vds.plugins.module_utils._vds.model import PortalAddress, parse_portal_list


@pytest.mark.parametrize("text, advice", [
    ("[10.0.0.1]", "write an IPv4 portal as 10.0.0.1"),
    ("[10.0.0.1]:3261", "write an IPv4 portal as 10.0.0.1:3261"),
    (" [192.168.1.20]:3260 ", "write an IPv4 portal as 192.168.1.20:3260"),
])
def test_a_bracketed_ipv4_address_is_refused(text: str, advice: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PortalAddress.parse(text)
    assert str(refused.value) == "portal %r: brackets are for IPv6 addresses only; %s" % (text, advice)


def test_a_bracketed_ipv4_address_is_refused_in_a_portal_list() -> None:
    with pytest.raises(ValidationError, match=r"portal '\[10.0.0.1\]': brackets are for IPv6 addresses only"):
        parse_portal_list(["10.0.0.2", "[10.0.0.1]"])


@pytest.mark.parametrize("text, shown", [
    ("[fd00::1]", "[fd00::1]:3260"),
    # an IPv4-mapped IPv6 address keeps its dotted quad, whichever Python runs (3.12 wrote ::ffff:a00:1)
    ("[::ffff:10.0.0.1]:3261", "[::ffff:10.0.0.1]:3261"),
    ("[::ffff:a00:1]:3261", "[::ffff:10.0.0.1]:3261"),
    ("10.0.0.1", "10.0.0.1:3260"),
])
def test_ipv6_in_brackets_and_bare_ipv4_are_still_accepted(text: str, shown: str) -> None:
    assert str(PortalAddress.parse(text)) == shown
