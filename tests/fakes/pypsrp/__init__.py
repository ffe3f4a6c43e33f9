# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""A test double of pypsrp whose Windows host is the simulated VDS provider.

It offers the part of pypsrp's API the ``vds`` backend uses. The host named by
``WSMan(server=...)`` is the path of a simulator state file; its runspaces answer the facade methods
of the C# interop class from the simulator's engine, in the JSON the class returns, so the backend
and the modules run unchanged with ``backend: vds``. Integration tests put the folder holding this
package first on PYTHONPATH; unit tests import it through the collection.
"""

from __future__ import annotations

from . import complex_objects, exceptions, powershell, wsman
from ._host import FAULTS, JOURNAL

__all__ = ["FAULTS", "JOURNAL", "complex_objects", "exceptions", "powershell", "wsman"]
