# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""pypsrp's exception classes, with the same hierarchy and the same ``args`` layout."""

from __future__ import annotations


class WinRMError(Exception):
    pass


class AuthenticationError(WinRMError):
    pass


class WinRMTransportError(WinRMError):
    """args: protocol, HTTP status code, response text."""

    @property
    def code(self) -> int:
        return self.args[1]

    def __str__(self) -> str:
        return "Bad %s response returned from the server. Code: %d, Content: '%s'" % (
            str(self.args[0]).upper(), self.args[1], self.args[2])


class WSManFaultError(WinRMError):
    """args: code, machine, reason, provider, provider path, provider fault."""

    @property
    def reason(self) -> str:
        return self.args[2]

    def __str__(self) -> str:
        return "Received a WSManFault message. (Code: %s, Reason: %s)" % (self.args[0], self.args[2])
