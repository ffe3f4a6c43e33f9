# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""What each module does with its validated parameters: parse, converge, shape the result.

Parameters arrive as the plain dict AnsibleModule validated; results leave as plain dicts. ``diff``:
whether the task runs in diff mode, the only time a result carries a ``diff``.
"""

from __future__ import annotations

import typing as t

from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine, Outcome
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (
    PortalAddress,
    normalize_iqn,
    parse_portal_list,
    validate_tag,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.plan import GroupDeclaration

Params = t.Mapping[str, t.Any]
Result = t.Dict[str, t.Any]


def _optional_tag(params: Params) -> int | None:
    return None if params.get("tag") is None else validate_tag(params["tag"])


def _common(outcome: Outcome, diff: bool) -> Result:
    result = {"changed": outcome.changed, "steps": outcome.steps, "operations": outcome.stats.as_dict(),
              "warnings": outcome.warnings}
    if diff:
        result["diff"] = outcome.diff()
    return result


def portal_group(engine: Engine, params: Params, diff: bool = False) -> Result:
    """``vds_portal_group``: one group's membership on one target."""
    declaration = GroupDeclaration(
        target=normalize_iqn(params["target"]),
        portals=parse_portal_list(params.get("portals") or []),
        tag=_optional_tag(params),
        purge_portals=bool(params.get("purge_portals")),
        state=params.get("state", "present"),
    )
    outcome = engine.converge_group(declaration, params.get("subsystem"))
    result = _common(outcome, diff)
    result["group"] = outcome.group(outcome.plan.group_tag)
    return result


def portal(engine: Engine, params: Params, diff: bool = False) -> Result:
    """``vds_portal``: one portal's membership (and optionally its status)."""
    iqn = normalize_iqn(params["target"])
    address = PortalAddress.parse(params["portal"])
    outcome = engine.converge_portal(iqn, address, _optional_tag(params), params.get("state", "present"),
                                     params.get("status"), params.get("subsystem"))
    previous = [tag for tag, members in outcome.before.items() if address in members]
    current = [tag for tag, members in outcome.after.items() if address in members]
    result = _common(outcome, diff)
    result.update({"portal": str(address), "previous_tag": previous[0] if previous else None,
                   "tag": current[0] if current else None})
    known = outcome.subsystem.portal(address) if outcome.subsystem else None
    if known is not None:
        status_after = next((step["status"] for step in outcome.steps if step["action"] == "set_status"), known.status)
        result["status"] = status_after
        if diff:
            result["diff"]["before"]["portal_status"] = known.status
            result["diff"]["after"]["portal_status"] = status_after
    return result


def portal_info(engine: Engine, params: Params, diff: bool = False) -> Result:
    """``vds_portal_info``: every subsystem (or the filtered ones) as the engine reads them."""
    target = normalize_iqn(params["target"]) if params.get("target") else None
    return {"changed": False, "subsystems": engine.info(target, params.get("subsystem"))}


def portal_groups(engine: Engine | None, params: Params, diff: bool = False) -> Result:
    """``vds_portal_groups``: every state through the engine, but ``rendered``, which plans offline (no engine)."""
    # Imported here: the other modules never pay for the resource module's planner.
    from ansible_collections.storage.vds.plugins.module_utils._vds import resource

    if params["state"] != resource.RENDERED:
        return resource.resource(t.cast(Engine, engine), params, diff)
    # The Linux kernel target creates a group under the tag asked for; VDS providers assign tags.
    return resource.render(params, assigns_tags=params["backend"] != "lio")
