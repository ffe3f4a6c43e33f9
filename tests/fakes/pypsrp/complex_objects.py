# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The enumerations of pypsrp.complex_objects the backend passes to RunspacePool ([MS-PSRP] values)."""

from __future__ import annotations


class ApartmentState:
    STA = 0
    MTA = 1
    UNKNOWN = 2


class PSThreadOptions:
    DEFAULT = 0
    USE_NEW_THREAD = 1
    REUSE_THREAD = 2
    USE_CURRENT_THREAD = 3
