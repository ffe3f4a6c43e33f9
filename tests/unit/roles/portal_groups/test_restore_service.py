# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The role's restore-service step for backend lio, rendered by Ansible's own templating: which unit it
enables on which distribution, that it only enables (never starts), and when it runs at all."""

from __future__ import annotations

import pathlib
import typing as t

import pytest
import yaml

from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROLE = pathlib.Path(__file__).resolve().parents[4] / "roles" / "portal_groups"
INCLUDE = "Restore the saved LIO configuration at boot"


def load(relative: str) -> t.Any:
    return yaml.safe_load((ROLE / relative).read_text())


def include() -> dict[str, t.Any]:
    (task,) = [task for task in load("tasks/main.yml") if task.get("name") == INCLUDE]
    assert task["ansible.builtin.include_tasks"] == "lio_restore_service.yml"
    return task


def included() -> list[dict[str, t.Any]]:
    return load("tasks/%s" % include()["ansible.builtin.include_tasks"])


def templar(**variables: t.Any) -> Templar:
    merged = dict(load("defaults/main.yml"), **load("vars/main.yml"))
    merged.update(variables)
    return Templar(loader=DataLoader(), variables=merged)


def expression(template: str) -> str:
    return trust_as_template("{{ %s }}" % template)


def runs(**variables: t.Any) -> bool:
    return bool(templar(**variables).template(expression(include()["when"])))


def enable_task() -> dict[str, t.Any]:
    (task,) = [task for task in included() if "ansible.builtin.service" in task]
    return task


@pytest.mark.parametrize("os_family, unit", [("Debian", "rtslib-fb-targetctl"), ("RedHat", "target")])
def test_the_distributions_unit_is_enabled_and_never_started(os_family, unit):
    service = enable_task()["ansible.builtin.service"]
    rendered = templar(ansible_facts={"os_family": os_family}).template(trust_as_template(service["name"]))
    assert rendered.strip() == unit
    # Started, the unit would run 'targetctl restore', replacing the running configuration with the saved one.
    assert service["enabled"] is True and "state" not in service


def test_an_unknown_os_family_fails_naming_the_opt_out():
    service = enable_task()["ansible.builtin.service"]
    with pytest.raises(AnsibleError, match="no LIO restore service is known for OS family Suse.*"
                                           "portal_groups_lio_restore_service=false"):
        templar(ansible_facts={"os_family": "Suse"}).template(trust_as_template(service["name"]))


@pytest.mark.parametrize("backend, opt_in, expected", [
    ("lio", True, True), ("lio", False, False), ("simulator", True, False), ("vds", True, False)])
def test_only_lio_hosts_that_did_not_opt_out(backend, opt_in, expected):
    assert runs(portal_groups_backend=backend, portal_groups_lio_restore_service=opt_in) is expected


def test_enabled_by_default():
    assert runs(portal_groups_backend="lio") is True


def test_facts_are_gathered_only_when_missing():
    (gather,) = [task for task in included() if "ansible.builtin.setup" in task]
    assert templar(ansible_facts={}).template(expression(gather["when"])) is True
    assert templar(ansible_facts={"os_family": "Debian"}).template(expression(gather["when"])) is False
    assert "ansible_os_family" in gather["ansible.builtin.setup"]["filter"]
