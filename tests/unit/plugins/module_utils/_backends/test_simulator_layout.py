# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The state file's layout: JSON indented down to the containers that hold no objects, each of those on one line
exactly as json.dumps writes it, whatever the values."""

from __future__ import annotations

import json
import typing as t

from hypothesis import given, settings, strategies as st

from ansible_collections.storage.vds.plugins.module_utils._backends import _simulator_changes

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
JSON = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=5), children, max_size=4), max_leaves=25)


def reference_layout(value: t.Any, indent: str = "") -> str:
    """The layout as written with json.dumps for every line."""
    def holds_objects(container: t.Any) -> bool:
        items = container.values() if isinstance(container, dict) else container if isinstance(container, list) else ()
        return any(isinstance(item, dict) or (isinstance(item, list) and holds_objects(item)) for item in items)
    if not holds_objects(value):
        return json.dumps(value)
    inner = indent + "  "
    if isinstance(value, dict):
        return "{\n%s\n%s}" % (",\n".join("%s%s: %s" % (inner, json.dumps(key), reference_layout(item, inner))
                                          for key, item in value.items()), indent)
    return "[\n%s\n%s]" % (",\n".join(inner + reference_layout(item, inner) for item in value), indent)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_each_line_is_what_json_dumps_writes(value):
    assert _simulator_changes._dumps(value) == reference_layout(value)


def test_a_state_reads_back_equal():
    state = {"version": 1, "faults": [{"operation": "AddPortal", "hresult": "VDS_E_OBJECT_BUSY", "times": 2}],
             "latency_ms": 0.5, "subsystems": [{"name": "array \u00e9", "portals": [{"address": "10.0.0.1:3260"}],
                                                "targets": [{"iqn": "iqn.x", "groups": [{"tag": 1, "portals": []}]}]}]}
    text = _simulator_changes._dumps(state)
    assert json.loads(text) == state
    assert '\n            {"tag": 1, "portals": []}\n' in text
