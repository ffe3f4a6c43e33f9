# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""pypsrp.wsman.WSMan: records how it was asked to connect and checks options as pypsrp does."""

from __future__ import annotations

import typing as t

from ._host import JOURNAL

SUPPORTED_AUTHS = ["basic", "certificate", "credssp", "kerberos", "negotiate", "ntlm"]
# Authentications that can encrypt the messages themselves when TLS does not.
_ENCRYPTING_AUTHS = ["credssp", "kerberos", "negotiate", "ntlm"]


class WSMan:
    def __init__(self, server: str, port: int | None = None, username: str | None = None,
                 password: str | None = None, ssl: bool = True, auth: str = "negotiate",
                 cert_validation: t.Union[bool, str] = True, connection_timeout: int = 30,
                 **kwargs: t.Any) -> None:
        if auth not in SUPPORTED_AUTHS:
            raise ValueError("The specified auth '%s' is not supported, please select one of '%s'"
                             % (auth, ", ".join(SUPPORTED_AUTHS)))
        if not ssl and auth not in _ENCRYPTING_AUTHS:
            raise ValueError("Cannot use message encryption with auth '%s', either set encryption='never', "
                             "use ssl=True or use one of the following auth providers: %s"
                             % (auth, ", ".join(_ENCRYPTING_AUTHS)))
        self.server = server
        self.options = dict(server=server, port=port, username=username, password=password, ssl=ssl, auth=auth,
                            cert_validation=cert_validation, connection_timeout=connection_timeout, **kwargs)
        JOURNAL.append({"event": "wsman", "options": dict(self.options)})
