# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The role's restore service for backend lio, rendered by Ansible's own templating: the one module task asks
for it on lio hosts that did not opt out, and passes nothing to the other backends."""

from __future__ import annotations

import pathlib
import typing as t

import pytest
import yaml

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "portal_groups"


def load(relative: str) -> t.Any:
    return yaml.safe_load((ROLE / relative).read_text())


def module_arguments(**variables: t.Any) -> dict[str, t.Any]:
    (task,) = load("tasks/main.yml")
    arguments = task["storage.vds.vds_portal_groups"]
    merged = dict(load("defaults/main.yml"), **variables)
    templar = Templar(loader=DataLoader(), variables=merged)
    return templar.template({key: trust_as_template(value) if isinstance(value, str) else value
                             for key, value in arguments.items() if key == "lio_restore_at_boot"})


def test_the_role_is_one_module_task_and_no_restore_task_file():
    assert len(load("tasks/main.yml")) == 1
    assert sorted(path.name for path in (ROLE / "tasks").iterdir()) == ["main.yml"]


@pytest.mark.parametrize("backend, opt_in, expected", [
    ("lio", True, {"lio_restore_at_boot": True}), ("lio", "no", {"lio_restore_at_boot": False}),
    ("simulator", True, {}), ("vds", True, {})])
def test_only_lio_hosts_ask_for_it(backend, opt_in, expected):
    assert module_arguments(portal_groups_backend=backend, portal_groups_lio_restore_service=opt_in) == expected


def test_asked_for_by_default():
    assert module_arguments(portal_groups_backend="lio") == {"lio_restore_at_boot": True}
