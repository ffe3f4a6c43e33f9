#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vds_portal_info
short_description: Read iSCSI subsystems, their portals, targets and portal groups
version_added: 1.0.0
description:
  - Reads every storage subsystem of the provider with its portals (address and status) and its iSCSI targets
    (name, alias, portal groups with their tags and member portals). Changes nothing.
author:
  - storage.vds maintainers (@storage-vds)
extends_documentation_fragment:
  - storage.vds.backend
  - storage.vds.backend.actiongroup
attributes:
  check_mode:
    description: Reads the same in check mode.
    support: full
  diff_mode:
    description: Reports no diff; it changes nothing.
    support: none
options:
  target:
    description:
      - Report only this target (iSCSI name). An unknown target fails, naming the targets that exist.
    type: str
  subsystem:
    description:
      - Report only this subsystem. An unknown subsystem fails, naming the subsystems that exist.
    type: str
seealso:
  - module: storage.vds.vds_portal_group
  - module: storage.vds.vds_portal
"""

EXAMPLES = r"""
- name: Read everything the provider holds
  storage.vds.vds_portal_info:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
  register: vds

- name: Portals of group 1 of one target
  ansible.builtin.debug:
    msg: >-
      {{ (vds.subsystems[0].targets
          | selectattr('iqn', 'equalto', 'iqn.1991-05.com.microsoft:array-a-t1') | first).groups
         | selectattr('tag', 'equalto', 1) | map(attribute='portals') | first }}
"""

RETURN = r"""
subsystems:
  description: Subsystems, sorted by name (only the filtered ones, when filters are given).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The subsystem's name.
      type: str
      sample: array-a
    portals:
      description: Every portal of the subsystem (portals belong to the subsystem, not to a target).
      type: list
      elements: dict
      contains:
        address:
          description: C(ip:port), IPv6 as C([address]:port).
          type: str
          sample: 10.0.0.1:3260
        status:
          description: V(online), V(offline), V(not_ready), V(failed) or V(unknown).
          type: str
          sample: online
    targets:
      description: Targets of the subsystem, sorted by name (only O(target) when given).
      type: list
      elements: dict
      contains:
        iqn:
          description: The target's iSCSI name, in lower case.
          type: str
          sample: iqn.1991-05.com.microsoft:array-a-t1
        alias:
          description: The target's friendly name (iSCSI alias).
          type: str
          sample: t1
        groups:
          description: Portal groups, sorted by tag, each with C(tag) and sorted member C(portals).
          type: list
          elements: dict
          sample: [{tag: 1, portals: ["10.0.0.1:3260"]}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.storage.vds.plugins.module_utils._runner import (
    BACKEND_REQUIRED_IF,
    argument_spec,
    run_module,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.module_tasks import portal_info


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            target={"type": "str"},
            subsystem={"type": "str"},
        ),
        required_if=BACKEND_REQUIRED_IF,
        supports_check_mode=True,
    )
    run_module(module, portal_info)


if __name__ == "__main__":
    main()
