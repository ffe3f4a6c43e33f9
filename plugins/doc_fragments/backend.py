# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors

from __future__ import annotations


class ModuleDocFragment:
    # Options every module shares; set them once with module_defaults and group/storage.vds.vds.
    DOCUMENTATION = r"""
options:
  backend:
    description:
      - Which provider the module talks to.
      - V(simulator) is the embedded simulated VDS provider, kept in the JSON file O(simulator_state). Use it
        to rehearse playbooks and in CI; see the simulator guide for the file format.
      - V(vds) drives the Windows Virtual Disk Service of a Windows host and V(lio) the Linux kernel target;
        this release does not provide them yet and fails with a message saying so.
    type: str
    required: true
    choices: [simulator, vds, lio]
  simulator_state:
    description:
      - Path of the simulated provider's state file, on the host that runs the module.
      - Required when O(backend=simulator).
    type: path
  wait_timeout:
    description:
      - Seconds to wait for each asynchronous provider operation (one C(AddPortal), one C(RemovePortal), ...).
      - When an operation outlives it, the module asks the provider to cancel it, reads the state again and
        fails saying what is known.
    type: int
    default: 300
"""

    ACTIONGROUP = r"""
attributes:
  action_group:
    description: Use C(group/storage.vds.vds) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - storage.vds.vds
"""
