#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vds_portal_group
short_description: Keep the portals of one iSCSI portal group as declared
version_added: 1.0.0
description:
  - Keeps the membership of one portal group of an iSCSI target on a storage subsystem, through the
    Virtual Disk Service operations C(CreatePortalGroup), C(AddPortal), C(RemovePortal) and C(Delete), waiting on
    each asynchronous operation.
  - The group is found by O(tag). Without O(tag) it is the group that already holds the most of the declared
    O(portals) (ties go to the lowest tag); when no group holds any of them a new group is created and the
    provider assigns its tag, which the module returns.
  - A portal can belong to only one group of a target. A declared portal that sits in another group of the same
    target is moved, removed from the old group before it is added to this one; if the add fails, the portal is
    put back where it was.
  - The state is read once, the change is planned, and in check mode only the plan is reported.
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
    description: The diff shows every group of the target, before and after.
    support: full
options:
  target:
    description:
      - iSCSI name of the target (C(iqn.), C(eui.) or C(naa.)); compared case-insensitively.
    type: str
    required: true
  subsystem:
    description:
      - Name of the storage subsystem holding the target. Needed only when several subsystems have a target of
        that name.
    type: str
  tag:
    description:
      - Tag of the portal group, 1 to 65535.
      - VDS providers assign tags themselves, so a tag that does not exist yet cannot be created. The module then
        fails and says so instead of creating a group under another tag. Omit O(tag) to let the provider choose.
      - With O(backend=lio) a new group (TPG) gets the declared tag; without O(tag), and when no group holds any
        of O(portals), it gets the lowest free tag.
    type: int
  portals:
    description:
      - Portals the group must hold, each C(ip[:port]); write IPv6 as C([address]:port). The port defaults to
        V(3260).
      - Every portal must be a portal of the subsystem. A portal listed twice (after normalisation) is an error.
    type: list
    elements: str
    default: []
  purge_portals:
    description:
      - With V(true) the group holds exactly O(portals); portals not listed are removed from it.
      - With V(false) the listed portals are added and the others are left in place.
    type: bool
    default: false
  state:
    description:
      - V(present) keeps the group with its portals; V(absent) removes every portal of the group and deletes it.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Object ids are not persistent in VDS, so the module never takes one as input; targets, portals and groups
    are named by IQN, address and tag.
seealso:
  - module: storage.vds.vds_portal
  - module: storage.vds.vds_portal_info
"""

EXAMPLES = r"""
- name: Group 1 of the target holds exactly two portals
  storage.vds.vds_portal_group:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    target: iqn.1991-05.com.microsoft:array-a-t1
    tag: 1
    portals:
      - 10.0.0.1
      - 10.0.0.2:3260
    purge_portals: true

- name: A group holding these portals exists (found by its members, or created)
  storage.vds.vds_portal_group:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    target: iqn.1991-05.com.microsoft:array-a-t1
    portals:
      - "[fd00::10]:3260"
  register: group

- name: Show the tag the provider assigned
  ansible.builtin.debug:
    msg: "{{ group.group.tag }}"

- name: Delete group 2, removing its portals first
  storage.vds.vds_portal_group:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    target: iqn.1991-05.com.microsoft:array-a-t1
    tag: 2
    state: absent
"""

RETURN = r"""
group:
  description:
    - The group after the change; in check mode, as it would be. V(null) after O(state=absent).
    - A group still to be created shows C(tag) V(null) in check mode.
  returned: success
  type: dict
  contains:
    tag:
      description: The group's tag.
      type: int
      sample: 1
    target:
      description: The target's iSCSI name, in lower case.
      type: str
      sample: iqn.1991-05.com.microsoft:array-a-t1
    portals:
      description: Member portals, sorted.
      type: list
      elements: str
      sample: ["10.0.0.1:3260", "10.0.0.2:3260"]
steps:
  description:
    - The steps executed, in order (in check mode, the steps planned). Empty when nothing changed.
    - C(from_tag) is set on the add half of a move and names the group the portal came from.
  returned: always
  type: list
  elements: dict
  sample:
    - {action: remove_portal, target: "iqn.1991-05.com.microsoft:array-a-t1", tag: 2, portal: "10.0.0.3:3260"}
    - {action: add_portal, target: "iqn.1991-05.com.microsoft:array-a-t1", tag: 1, portal: "10.0.0.3:3260",
       from_tag: 2}
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
  description: Every group of the target with its portals, before and after.
  returned: in diff mode
  type: dict
  sample:
    before: {target: "iqn.1991-05.com.microsoft:array-a-t1", groups: [{tag: 1, portals: ["10.0.0.1:3260"]}]}
    after: {target: "iqn.1991-05.com.microsoft:array-a-t1", groups: [{tag: 1, portals: ["10.0.0.1:3260",
      "10.0.0.2:3260"]}]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.storage.vds.plugins.module_utils._runner import (
    BACKEND_REQUIRED_IF,
    argument_spec,
    run_module,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.module_tasks import portal_group


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            target={"type": "str", "required": True},
            subsystem={"type": "str"},
            tag={"type": "int"},
            portals={"type": "list", "elements": "str", "default": []},
            purge_portals={"type": "bool", "default": False},
            state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        ),
        required_if=BACKEND_REQUIRED_IF,
        supports_check_mode=True,
    )
    run_module(module, portal_group)


if __name__ == "__main__":
    main()
