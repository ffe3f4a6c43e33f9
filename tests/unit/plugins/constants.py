# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Values the unit tests share: the targets of their simulated arrays and of the fake kernel target, the
provider's mutating calls, and the operations counters of a quiet provider."""

from __future__ import annotations

IQN1 = "iqn.1991-05.com.microsoft:array-a-t1"
IQN2 = "iqn.1991-05.com.microsoft:array-a-t2"
IQN3 = "iqn.1991-05.com.microsoft:array-b-t3"

#: Targets of the fake Linux kernel target (backend lio), with names as a Linux host gives them.
LIO_IQN1 = "iqn.2003-01.org.example:t1"
LIO_IQN2 = "iqn.2003-01.org.example:t2"

#: Provider calls that change something (the simulator's call counters, the fake provider's call names).
MUTATING = ("AddPortal", "RemovePortal", "CreatePortalGroup", "DeletePortalGroup", "SetStatus")

#: ``operations`` of a run on a provider that gave no trouble.
NO_TROUBLE = {"retries": 0, "recoveries": 0, "rereads": 0, "rollbacks": 0}
