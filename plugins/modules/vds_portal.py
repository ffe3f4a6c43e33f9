#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vds_portal
short_description: Keep one iSCSI portal in (or out of) a portal group of a target
version_added: 1.0.0
description:
  - Keeps the membership of one portal in one portal group of an iSCSI target, through the Virtual Disk Service
    operations C(AddPortal) and C(RemovePortal), waiting on each asynchronous operation.
  - A portal can belong to only one group of a target. If the portal sits in another group of the same target,
    it is moved there (removed from the old group, then added to the group of O(tag)). If the add fails, the
    portal is put back in its old group.
  - Optionally sets the portal's status (C(IVdsIscsiPortal::SetStatus)); the status belongs to the portal, on
    every target of the subsystem.
author:
  - storage.vds maintainers (@storage-vds)
extends_documentation_fragment:
  - storage.vds.backend
  - storage.vds.backend.actiongroup
attributes:
  check_mode:
    description: Reports the planned steps and the diff without calling any mutating operation.
    support: full
  diff_mode:
    description: The diff shows every group of the target and the portal's status, before and after.
    support: full
options:
  portal:
    description:
      - The portal, C(ip[:port]); write IPv6 as C([address]:port). The port defaults to V(3260).
      - It must be a portal of the subsystem.
    type: str
    required: true
  target:
    description:
      - iSCSI name of the target (C(iqn.), C(eui.) or C(naa.)); compared case-insensitively.
    type: str
    required: true
  subsystem:
    description:
      - Name of the storage subsystem holding the target, when several subsystems have a target of that name.
    type: str
  tag:
    description:
      - Tag of the group the portal belongs in, 1 to 65535. Required with O(state=present); the group must exist
        (create it with M(storage.vds.vds_portal_group)).
      - With O(state=absent), the portal is removed only from this group; without it, from whichever group of the
        target holds it.
    type: int
  status:
    description:
      - Status the portal must have. Omit it to leave the status alone.
    type: str
    choices: [online, offline]
  state:
    description:
      - V(present) puts the portal in the group of O(tag); V(absent) takes it out.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: storage.vds.vds_portal_group
  - module: storage.vds.vds_portal_info
"""

EXAMPLES = r"""
- name: Portal 10.0.0.3 serves the target through group 2 (moved there if it is in group 1)
  storage.vds.vds_portal:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    target: iqn.1991-05.com.microsoft:array-a-t1
    portal: 10.0.0.3
    tag: 2

- name: Take an IPv6 portal out of the target's groups and set it offline
  storage.vds.vds_portal:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    target: iqn.1991-05.com.microsoft:array-a-t1
    portal: "[fd00::10]:3260"
    status: offline
    state: absent
"""

RETURN = r"""
portal:
  description: The portal, normalised.
  returned: success
  type: str
  sample: 10.0.0.3:3260
tag:
  description: The group of the target holding the portal afterwards (in check mode, as it would be); V(null) if
    none.
  returned: success
  type: int
  sample: 2
previous_tag:
  description: The group of the target that held the portal before; V(null) if none.
  returned: success
  type: int
  sample: 1
status:
  description: The portal's status afterwards (in check mode, as it would be).
  returned: success
  type: str
  sample: online
steps:
  description:
    - The steps executed, in order (in check mode, the steps planned). Empty when nothing changed.
    - C(from_tag) is set on the add half of a move.
  returned: always
  type: list
  elements: dict
  sample:
    - {action: remove_portal, target: "iqn.1991-05.com.microsoft:array-a-t1", tag: 1, portal: "10.0.0.3:3260"}
    - {action: add_portal, target: "iqn.1991-05.com.microsoft:array-a-t1", tag: 2, portal: "10.0.0.3:3260",
       from_tag: 1}
operations:
  description: How often the provider was busy (retries), had its cache recovered, was read again, or had a move
    rolled back.
  returned: always
  type: dict
  sample: {retries: 0, recoveries: 0, rereads: 0, rollbacks: 0}
saved:
  description:
    - With O(backend=lio), whether the run saved the kernel target's configuration (O(lio_save_config)); it
      saves only after a change.
  returned: when O(backend=lio)
  type: bool
  sample: true
save_file:
  description: The file the configuration was saved to.
  returned: when O(backend=lio) and RV(saved) is true
  type: str
  sample: /etc/rtslib-fb-target/saveconfig.json
diff:
  description: Every group of the target with its portals, and the portal's status, before and after.
  returned: in diff mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.storage.vds.plugins.module_utils._runner import (
    BACKEND_REQUIRED_IF,
    argument_spec,
    run_module,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.module_tasks import portal


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            portal={"type": "str", "required": True},
            target={"type": "str", "required": True},
            subsystem={"type": "str"},
            tag={"type": "int"},
            status={"type": "str", "choices": ["online", "offline"]},
            state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        ),
        required_if=BACKEND_REQUIRED_IF + [("state", "present", ["tag"])],
        supports_check_mode=True,
    )
    run_module(module, portal)


if __name__ == "__main__":
    main()
