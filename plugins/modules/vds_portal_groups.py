#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: vds_portal_groups
short_description: Keep every iSCSI portal group of a host's targets as declared, in one execution
version_added: 1.0.0
description:
  - A resource module for the portal groups of iSCSI targets. O(config) lists targets, each with the portal
    groups it must have; one execution reads the current state once per subsystem, plans every declared
    target and applies the plan through the Virtual Disk Service operations C(CreatePortalGroup),
    C(AddPortal), C(RemovePortal) and C(Delete), waiting on each asynchronous operation.
  - O(groups) declares the same one group per entry, each entry naming its target, as the role
    C(storage.vds.portal_groups) takes them. The module gathers the entries of each target itself, and its
    messages name each entry as the list was written (O(groups_label)).
  - A declared group is found by its O(config[].groups[].tag). Without a tag it is the group that holds the
    most of its declared portals (ties go to the lowest tag), among the groups no other declaration of the
    target has taken; when no such group holds any of them a new group is created and the provider assigns
    its tag. Tags are matched first, then the groups without a tag in the order they are listed.
  - A portal can belong to only one group of a target. A declared portal that sits in another group of the
    same target is moved, removed from the old group before it is added to the new one. No step ever puts a
    portal in two groups of one target.
  - The steps of a target come in this order. First the removal of portals that leave every group, then the
    creation of every new group, then each move (its removal directly followed by its addition), then the
    other additions, then the deletion of the groups that are no longer wanted (their portals are removed
    first). A portal that only moves is therefore out of every group for one step at most.
  - When a step fails, every portal a move took out of its group and did not yet add to its new one is put
    back where it was, and each put-back is listed in RV(steps_done); if a put-back fails too, the message
    names each portal left in no group, with the group it was in.
  - Every input is validated before anything is read or changed. Failures say which entry and which value
    is wrong, and a failure after some steps took effect lists them in RV(steps_done).
  - RV(summary) tells in a few lines what the run did, or in check mode what a real run would do.
author:
  - storage.vds maintainers (@storage-vds)
extends_documentation_fragment:
  - storage.vds.backend
  - storage.vds.backend.actiongroup
attributes:
  check_mode:
    description: Reports the planned steps and the groups before and after, without calling any mutating
      operation.
    support: full
  diff_mode:
    description: The diff shows every group of each declared target, before and after, one target at a time.
    support: full
options:
  config:
    description:
      - The targets and the portal groups each must have.
      - This option or O(groups) is required, and must list at least one target, except with
        O(state=gathered), where it only narrows which targets are reported (their O(config[].groups) are
        ignored).
      - Mutually exclusive with O(groups).
    type: list
    elements: dict
    suboptions:
      target:
        description:
          - iSCSI name of the target (C(iqn.), C(eui.) or C(naa.)); compared case-insensitively.
          - Each target is listed once, with all its groups.
        type: str
        required: true
      subsystem:
        description:
          - Name of the storage subsystem holding the target. Needed only when several subsystems have a
            target of that name.
          - When every entry names its subsystem, only those subsystems are read.
        type: str
      groups:
        description:
          - The portal groups of the target.
          - With O(state=deleted), an empty list deletes every group of the target. With O(state=overridden),
            it deletes every group of the target.
        type: list
        elements: dict
        default: []
        suboptions:
          tag:
            description:
              - Tag of the portal group, 1 to 65535.
              - VDS providers assign the tags of new groups themselves, so a tag that does not exist cannot be
                created; the module then fails and says so. Omit the tag for a new group.
              - With O(backend=lio) a new group (TPG) gets the declared tag; a new group declared without a tag
                gets the lowest tag neither in use nor declared.
            type: int
          portals:
            description:
              - Portals of the group, each C(ip[:port]); write IPv6 as C([address]:port). The port defaults
                to V(3260).
              - Every portal must be a portal of the subsystem, and may be declared in only one group of the
                target. A group without O(config[].groups[].tag) needs at least one portal.
              - With O(state=deleted) the portals only identify a group that has no tag given.
            type: list
            elements: str
            default: []
          purge_portals:
            description:
              - Whether the group holds exactly O(config[].groups[].portals) (V(true)) or gains them and keeps
                its other portals (V(false)).
              - Unset, it follows O(purge_portals), and when that is unset too, O(state). V(false) with
                V(merged), V(true) with V(replaced) and V(overridden). Ignored with O(state=deleted).
            type: bool
  groups:
    description:
      - The portal groups the targets must have, one group per entry, each entry naming its target. It
        declares what O(config) declares, written as the role C(storage.vds.portal_groups) takes its variable
        C(portal_groups_desired), which the role passes as it is.
      - The entries are gathered per target, the target's name compared case-insensitively and the subsystem
        exactly, each target's groups in the order they are listed. Each target is then planned as a whole,
        as with O(config). Two entries must not name the same tag of a target, and a portal may be listed in
        only one group of a target.
      - Messages name each entry by its place in the list, as O(groups_label) says (C(groups[3])).
      - This option or O(config) is required, and must list at least one group, except with
        O(state=gathered), where only the targets of the entries count (they narrow which targets are
        reported).
      - Mutually exclusive with O(config).
    type: list
    elements: dict
    suboptions:
      target:
        description:
          - iSCSI name of the target (C(iqn.), C(eui.) or C(naa.)); compared case-insensitively.
        type: str
        required: true
      subsystem:
        description:
          - Name of the storage subsystem holding the target, as in O(config[].subsystem). Entries of one target
            that name different subsystems (or one names none) declare different targets.
        type: str
      tag:
        description:
          - Tag of the portal group, as O(config[].groups[].tag) says, including what each backend does with a
            tag that does not exist.
        type: int
      portals:
        description:
          - Portals of the group, as in O(config[].groups[].portals).
        type: list
        elements: str
        default: []
      purge_portals:
        description:
          - As O(config[].groups[].purge_portals).
        type: bool
  groups_label:
    description:
      - How messages name O(groups). With V(portal_groups_desired), the fourth entry is named
        C(portal_groups_desired[3]); the role C(storage.vds.portal_groups) sets it so, so that its messages
        name what the user wrote.
      - Unset, messages name the option, C(groups[3]).
      - Only valid with O(groups).
    type: str
  lio_restore_at_boot:
    description:
      - With O(backend=lio), also enable the distribution's service that restores the saved configuration of the
        kernel target at boot (C(targetctl restore)), whichever of the two is installed. C(rtslib-fb-targetctl)
        comes with the package C(python3-rtslib-fb) on Debian and Ubuntu. C(target) comes with C(target-restore)
        on Fedora and RHEL. With O(lio_save_config), the declared configuration then survives a reboot.
      - The service is enabled on every run where it is not enabled yet (in check mode, reported as a change),
        and never started, since starting it replaces the running configuration with the saved one.
        RV(restore_service) and RV(restore_service_enabled) report it.
      - Looked up before any change. The task fails, naming this option, when C(systemctl) is missing, neither
        service is installed, or the service cannot be enabled (masked, for example).
      - The role C(storage.vds.portal_groups) sets it from its C(portal_groups_lio_restore_service).
      - Ignored with other backends and with O(state=gathered) and O(state=rendered).
    type: bool
    default: false
  purge_portals:
    description:
      - What each declared group that does not set its own O(config[].groups[].purge_portals) or
        O(groups[].purge_portals) does with the portals it holds and does not list. V(true), it holds exactly
        its portals; V(false), it keeps them.
      - Unset, it follows O(state). V(false) with V(merged), V(true) with V(replaced) and V(overridden).
      - Ignored with O(state=deleted) and O(state=gathered).
      - The role C(storage.vds.portal_groups) sets V(false), so that with O(state=overridden) its entries
        still keep the portals they do not list unless they say otherwise.
    type: bool
  state:
    description:
      - V(merged) adds the declared portals to the declared groups (creating groups as needed); nothing is
        removed, except that a portal declared in another group of the target moves there.
      - V(replaced) makes each declared group hold exactly its declared portals. Groups not declared keep
        their portals, except those that move to a declared group.
      - V(overridden) makes each declared target hold exactly the declared groups, each with exactly its
        portals; every other group of the target is emptied and deleted.
      - V(deleted) removes the portals of each declared group and deletes it; for a target with no groups
        listed, every group of the target. A group that does not exist is left alone.
      - With V(deleted), a group declared without a tag whose portals are spread over several groups fails
        before any change, naming those groups, since deleting one of them would leave the others for the
        next run. Give the tag of the group to delete.
      - V(gathered) returns the current groups in RV(gathered), in the shape of O(config), and changes
        nothing.
      - V(rendered) plans O(config) against O(running_config) as O(render_as) says, offline, and returns the
        steps in RV(rendered). The provider is never contacted, and nothing is read or saved; the backend
        options are still validated (O(backend) stays required).
    type: str
    choices: [merged, replaced, overridden, deleted, gathered, rendered]
    default: merged
  running_config:
    description:
      - With O(state=rendered), the current groups to plan against, in the shape RV(gathered) returns. A
        declared target it does not list is taken to have no groups.
      - Offline the portals of the subsystem are not known, so every portal is taken to exist. New groups
        are planned as the provider of O(backend) makes them; with V(simulator) and V(vds) the provider
        assigns their tags, with V(lio) a declared tag is created.
      - Only valid with O(state=rendered).
    type: list
    elements: dict
    suboptions:
      target:
        description: iSCSI name of the target.
        type: str
        required: true
      subsystem:
        description: Name of the subsystem holding the target.
        type: str
      groups:
        description: The target's portal groups.
        type: list
        elements: dict
        default: []
        suboptions:
          tag:
            description: The group's tag, 1 to 65535.
            type: int
            required: true
          portals:
            description: The group's portals, each C(ip[:port]) or C([ipv6]:port).
            type: list
            elements: str
            default: []
  render_as:
    description:
      - With O(state=rendered), the state whose plan is rendered.
    type: str
    choices: [merged, replaced, overridden, deleted]
    default: merged
notes:
  - Object ids are not persistent in VDS, so the module never takes one as input; targets, portals and groups
    are named by IQN, address and tag.
  - One execution reads each subsystem it needs once (a re-read follows only when the provider reports that
    an object vanished, or hands back an existing group instead of a new one), so declaring a whole host in
    one task costs one module execution instead of one per group.
seealso:
  - module: storage.vds.vds_portal_group
  - module: storage.vds.vds_portal_info
  - ref: ansible_collections.storage.vds.docsite.guide_portal_groups.role
    description: The role C(storage.vds.portal_groups) applies a host's declared portal groups with this module.
"""

EXAMPLES = r"""
- name: Two targets, each with exactly the declared groups and portals
  storage.vds.vds_portal_groups:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    state: overridden
    config:
      - target: iqn.1991-05.com.microsoft:array-a-db
        groups:
          - tag: 1
            portals: [10.0.1.1, 10.0.1.2]
          - portals: ["10.0.1.3", "[fd00:a::10]:3260"]
      - target: iqn.1991-05.com.microsoft:array-a-web
        groups:
          - portals: [10.0.1.1]

- name: One group per entry, as the role takes them; messages name the entries desired[0], desired[1], ...
  storage.vds.vds_portal_groups:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    state: overridden
    groups_label: desired
    groups:
      - target: iqn.1991-05.com.microsoft:array-a-db
        tag: 1
        portals: [10.0.1.1, 10.0.1.2]
      - target: iqn.1991-05.com.microsoft:array-a-web
        portals: [10.0.1.1]
      # Gathered with desired[0]: the database target has two groups.
      - target: IQN.1991-05.com.microsoft:array-a-db
        portals: ["10.0.1.3", "[fd00:a::10]:3260"]
  register: applied

- name: Show what changed
  ansible.builtin.debug:
    var: applied.summary

- name: Add portals, removing nothing
  storage.vds.vds_portal_groups:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    config:
      - target: iqn.1991-05.com.microsoft:array-a-db
        groups:
          - tag: 1
            portals: [10.0.1.4]

- name: Delete every group of a target
  storage.vds.vds_portal_groups:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    state: deleted
    config:
      - target: iqn.1991-05.com.microsoft:array-a-web

- name: Read the groups of every target
  storage.vds.vds_portal_groups:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    state: gathered
  register: current

- name: What replacing would do, worked out offline against what was gathered
  storage.vds.vds_portal_groups:
    backend: simulator
    simulator_state: /var/lib/vds-sim/array-a.json
    state: rendered
    render_as: replaced
    running_config: "{{ current.gathered }}"
    config:
      - target: iqn.1991-05.com.microsoft:array-a-db
        groups:
          - tag: 1
            portals: [10.0.1.1]
  register: plan

- name: Show the steps
  ansible.builtin.debug:
    var: plan.rendered
"""

RETURN = r"""
before:
  description:
    - Every group of each declared target before the change, in the shape of O(config), in the order of
      O(config). Each entry also names the subsystem the target was found on.
  returned: when O(state) is V(merged), V(replaced), V(overridden), V(deleted) or V(rendered)
  type: list
  elements: dict
  sample:
    - target: iqn.1991-05.com.microsoft:array-a-db
      subsystem: array-a
      groups:
        - {tag: 1, portals: ["10.0.1.1:3260", "10.0.1.3:3260"]}
after:
  description:
    - Every group of each declared target after the change; in check mode and with O(state=rendered), as it
      would be. A group still to be created shows tag V(null) and comes last.
  returned: when O(state) is V(merged), V(replaced), V(overridden), V(deleted) or V(rendered)
  type: list
  elements: dict
  sample:
    - target: iqn.1991-05.com.microsoft:array-a-db
      subsystem: array-a
      groups:
        - {tag: 1, portals: ["10.0.1.1:3260", "10.0.1.2:3260"]}
        - {tag: 2, portals: ["10.0.1.3:3260", "[fd00:a::10]:3260"]}
steps:
  description:
    - The steps executed, in order, for every target (in check mode and with O(state=rendered), the steps
      planned). Empty when nothing changed.
    - C(action) is one of C(create_group), C(add_portal), C(remove_portal), C(delete_group). C(from_tag) is
      set on the add half of a move and names the group the portal came from.
    - In check mode and with O(state=rendered) a group still to be created has tag V(null), and C(new_group)
      numbers it (1 for the first C(create_group) of the target, 2 for the second, ...) in its
      C(create_group) and in the steps that go to it.
  returned: when O(state) is V(merged), V(replaced), V(overridden), V(deleted) or V(rendered)
  type: list
  elements: dict
  sample:
    - {action: remove_portal, target: "iqn.1991-05.com.microsoft:array-a-db", subsystem: array-a, tag: 1,
       portal: "10.0.1.3:3260"}
    - {action: create_group, target: "iqn.1991-05.com.microsoft:array-a-db", subsystem: array-a, tag: 2}
    - {action: add_portal, target: "iqn.1991-05.com.microsoft:array-a-db", subsystem: array-a, tag: 2,
       portal: "10.0.1.3:3260", from_tag: 1}
gathered:
  description: The current groups of the listed targets (all targets when O(config) is not given), in the shape
    of O(config), sorted by subsystem and target when all are reported.
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample:
    - target: iqn.1991-05.com.microsoft:array-a-db
      subsystem: array-a
      groups:
        - {tag: 1, portals: ["10.0.1.1:3260", "10.0.1.3:3260"]}
rendered:
  description: The steps planned offline from O(config) and O(running_config), as in RV(steps).
  returned: when O(state=rendered)
  type: list
  elements: dict
  sample:
    - {action: remove_portal, target: "iqn.1991-05.com.microsoft:array-a-db", subsystem: array-a, tag: 1,
       portal: "10.0.1.3:3260"}
summary:
  description:
    - The run in a few lines.
    - In check mode, first a line saying that nothing was changed and that the lines after it are the steps a
      real run would take, then one line per group of each declared target, the groups to be deleted last. Each line holds the target,
      the tag (C((new)) for a group still to be created), the portals (C((none)) for a group to be deleted),
      and in brackets what a real run would do to the group. C(create the group), C(+P) adds portal P, C(-P)
      removes it, C(+P from group N) moves it here from group N of the target, C(delete the group), or
      C(unchanged).
    - After a real change, one line per declared target with the number of steps taken, then one line per
      group with its portals as they now are.
    - Empty after a real run that changed nothing.
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: list
  elements: str
  sample:
    - "check mode: nothing was changed; these are the steps a real run would take"
    - "iqn.1991-05.com.microsoft:array-a-db group 1: 10.0.1.1:3260, 10.0.1.2:3260 [-10.0.1.4:3260, +10.0.1.2:3260]"
    - "iqn.1991-05.com.microsoft:array-a-db group (new): 10.0.1.3:3260 [create the group, +10.0.1.3:3260 from group 1]"
    - "iqn.1991-05.com.microsoft:array-a-db group 2: (none) [-10.0.1.5:3260, delete the group]"
operations:
  description: How often the provider was busy (retries), had its cache recovered, was read again, or had a move
    rolled back.
  returned: when O(state) is not V(rendered)
  type: dict
  sample: {retries: 0, recoveries: 0, rereads: 0, rollbacks: 0}
steps_done:
  description: On failure, the steps that took effect before it, in order.
  returned: failure
  type: list
  elements: dict
saved:
  description:
    - With O(backend=lio), whether the run saved the kernel target's configuration (O(lio_save_config)); it
      saves only after a change.
  returned: when O(backend=lio) and O(state) is not V(rendered)
  type: bool
  sample: true
save_file:
  description: The file the configuration was saved to.
  returned: when O(backend=lio) and RV(saved) is true
  type: str
  sample: /etc/rtslib-fb-target/saveconfig.json
restore_service:
  description: With O(lio_restore_at_boot), the service that restores the saved configuration at boot.
  returned: when O(backend=lio), O(lio_restore_at_boot) is true and O(state) is not V(gathered) or V(rendered)
  type: str
  sample: rtslib-fb-targetctl.service
restore_service_enabled:
  description: Whether this run enabled RV(restore_service) (in check mode, would enable it).
  returned: when RV(restore_service) is
  type: bool
  sample: false
diff:
  description: One entry per declared target, its C(before) and C(after) as in RV(before) and RV(after), with
    headers naming the target and its subsystem.
  returned: in diff mode, when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.storage.vds.plugins.module_utils._runner import (
    BACKEND_REQUIRED_IF,
    argument_spec,
    run_module,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.resource import (
    CHANGING_STATES,
    MERGED,
    RENDERED,
    STATES,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.module_tasks import portal_groups

_GROUP = {"type": "list", "elements": "dict", "default": []}
_DECLARED_GROUP = {
    "tag": {"type": "int"},
    "portals": {"type": "list", "elements": "str", "default": []},
    "purge_portals": {"type": "bool"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            config={"type": "list", "elements": "dict", "options": {
                "target": {"type": "str", "required": True},
                "subsystem": {"type": "str"},
                "groups": dict(_GROUP, options=_DECLARED_GROUP),
            }},
            groups={"type": "list", "elements": "dict", "options": dict(
                _DECLARED_GROUP, target={"type": "str", "required": True}, subsystem={"type": "str"})},
            groups_label={"type": "str"},
            lio_restore_at_boot={"type": "bool", "default": False},
            purge_portals={"type": "bool"},
            state={"type": "str", "choices": list(STATES), "default": MERGED},
            running_config={"type": "list", "elements": "dict", "options": {
                "target": {"type": "str", "required": True},
                "subsystem": {"type": "str"},
                "groups": dict(_GROUP, options={
                    "tag": {"type": "int", "required": True},
                    "portals": {"type": "list", "elements": "str", "default": []},
                }),
            }},
            render_as={"type": "str", "choices": list(CHANGING_STATES), "default": MERGED},
        ),
        required_if=BACKEND_REQUIRED_IF + [("state", state, ["config", "groups"], True)
                                           for state in CHANGING_STATES + (RENDERED,)],
        mutually_exclusive=[("config", "groups")],
        required_by={"groups_label": "groups"},
        supports_check_mode=True,
    )
    run_module(module, portal_groups)


if __name__ == "__main__":
    main()
