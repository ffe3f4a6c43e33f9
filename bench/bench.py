# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Benchmarks of storage.vds against the simulated provider; run through bench/run.sh.

The figures, measured side by side in one run, each printed with its goal and whether it was met:

1. planner scaling: plan time of one target with 1k, 10k and 100k portals over 64 groups;
2. module start cost: one storage.vds.vds_portal_group task against 50 hosts, next to ansible.builtin.ping;
3. fleet apply: the storage.vds.portal_groups role on 200 hosts, next to a ping playbook and to one
   module execution per portal;
4. provider call counts: mutating calls against the minimum the change needs, reads per execution;
5. waiting overhead: how late the engine notices a finished operation, and the CPU time it spends waiting;
6. large apply: one storage.vds.vds_portal_group task putting 1k and 10k portals in one group, for real and
   in check mode.
7. Windows over the wire: round trips and compiles of the vds backend on the fake PowerShell Remoting
   transport, and the wall time of each run against the floor its round trips set.

``--quick`` runs every figure small and fast, to keep the benchmarks working in CI: timings are printed
but not judged. The exit status is 1 only when a call count (figure 4), a round-trip or compile count
(figure 7) is wrong or a run fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import ipaddress
import json
import math
import os
import platform
import random
import resource as rusage
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t

# The collection copy scripts/_env.sh builds; playbooks find it through the same variable.
sys.path.insert(0, os.environ.get("ANSIBLE_COLLECTIONS_PATH", ""))

# pylint: disable=wrong-import-position
from ansible.release import __version__ as ANSIBLE_VERSION  # noqa: E402

from ansible_collections.storage.vds.plugins.module_utils._backends import vds  # noqa: E402
from ansible_collections.storage.vds.plugins.module_utils._backends.simulator import SimulatorBackend  # noqa: E402
from ansible_collections.storage.vds.plugins.module_utils._vds import module_tasks, resource  # noqa: E402
from ansible_collections.storage.vds.plugins.module_utils._vds.engine import Engine  # noqa: E402
from ansible_collections.storage.vds.plugins.module_utils._vds.model import (  # noqa: E402
    Portal,
    PortalAddress,
    PortalGroup,
    Subsystem,
    Target,
)
from ansible_collections.storage.vds.plugins.module_utils._vds.module_tasks import portal_group  # noqa: E402
from ansible_collections.storage.vds.plugins.module_utils._vds.wait import Waiter  # noqa: E402
from ansible_collections.storage.vds.tests.fakes import pypsrp as fake_pypsrp  # noqa: E402
from ansible_collections.storage.vds.tests.fakes.pypsrp import _host  # noqa: E402

MUTATING = ("AddPortal", "RemovePortal", "CreatePortalGroup", "DeletePortalGroup")
IMPORT_RUNS = 15
IQN = "iqn.2024-01.bench.vds:%s"


@dataclasses.dataclass(frozen=True)
class Sizes:
    planner: t.Tuple[int, ...]
    planner_repeats: int
    start_hosts: int
    fleet_hosts: int
    fleet_groups: int          # per host, half on each of two targets
    fleet_portals: int         # per group
    naive_hosts: int
    repeats: int
    latencies_ms: t.Tuple[int, ...]
    waits: int
    large: t.Tuple[int, int]   # portals of the large apply: a size and ten times it


FULL = Sizes(planner=(1000, 10000, 100000), planner_repeats=5, start_hosts=50, fleet_hosts=200, fleet_groups=8,
             fleet_portals=8, naive_hosts=20, repeats=3, latencies_ms=(50, 200, 1000), waits=10,
             large=(1000, 10000))
QUICK = Sizes(planner=(500, 1000, 2000), planner_repeats=1, start_hosts=3, fleet_hosts=3, fleet_groups=2,
              fleet_portals=2, naive_hosts=1, repeats=1, latencies_ms=(20, 50), waits=2, large=(50, 500))


@dataclasses.dataclass
class Figure:
    number: int
    title: str
    goal: str
    lines: t.List[str]
    met: bool
    summary: str
    timing: bool = True       # judged only in a full run


class Failed(Exception):
    """A run the benchmark depends on failed: its figures cannot be measured."""


# --- helpers -------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "%.1f ms" % (seconds * 1000)


def verdict(figure: Figure, quick: bool) -> str:
    if quick and figure.timing:
        return "not judged (quick run)"
    return "met" if figure.met else "NOT MET"


def portal_address(number: int) -> str:
    return "%s:3260" % ipaddress.IPv4Address(0x0A000000 + number)


def state_data(portals: t.Sequence[str], targets: t.Mapping[str, t.Mapping[int, t.Sequence[str]]],
               latency_ms: float = 0, name: str = "array", count_reads: bool = False) -> dict[str, t.Any]:
    """A simulator state file of one subsystem; reads are counted only where a figure counts them, since
    counting them writes the file."""
    return {"version": 1, "count_reads": count_reads, "latency_ms": latency_ms, "faults": [],
            "subsystems": [{"name": name, "portals": [{"address": address} for address in portals],
                            "targets": [{"iqn": iqn, "groups": [{"tag": tag, "portals": list(members)}
                                                                for tag, members in sorted(groups.items())]}
                                        for iqn, groups in targets.items()]}]}


def write_json(path: str, data: t.Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def read_json(path: str) -> t.Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class Ansible:
    """Runs ansible-playbook from the same environment, with the same forks, output kept in a log."""

    def __init__(self, work: str, forks: int) -> None:
        self.work = work
        self.forks = forks
        self.playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        self.env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                        ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_HOST_KEY_CHECKING="0")

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.work, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def inventory(self, name: str, hosts: t.Mapping[str, t.Mapping[str, t.Any]],
                  variables: t.Mapping[str, t.Any]) -> str:
        data = {"all": {"vars": dict(variables, ansible_connection="local",
                                     ansible_python_interpreter="{{ ansible_playbook_python }}"),
                        "hosts": dict(hosts)}}
        path = os.path.join(self.work, name + ".json")
        write_json(path, data)
        return path

    def run(self, inventory: str, playbook: str, *extra: str, env: t.Mapping[str, str] | None = None) -> float:
        """Wall time of one ansible-playbook run; a failed run stops the benchmark, showing its end."""
        log = os.path.join(self.work, "ansible.log")
        start = time.perf_counter()
        with open(log, "w", encoding="utf-8") as output:
            code = subprocess.call([self.playbook, "-i", inventory, "-f", str(self.forks), playbook] + list(extra),
                                   stdout=output, stderr=subprocess.STDOUT, cwd=self.work,
                                   env=dict(self.env, **(env or {})))
        elapsed = time.perf_counter() - start
        if code != 0:
            with open(log, encoding="utf-8") as output:
                tail = output.read()[-3000:]
            raise Failed("ansible-playbook %s failed (exit code %d):\n%s" % (os.path.basename(playbook), code, tail))
        return elapsed


PLAY = """- name: {name}
  hosts: all
  gather_facts: false
{body}"""


def play(name: str, body: str) -> str:
    return PLAY.format(name=name, body=body)


# --- 1. planner scaling ----------------------------------------------------------------------------


def planner_case(portals: int, seed: int) -> t.Tuple[Subsystem, Target, resource.TargetSpec]:
    """A target with ``portals`` portals over 64 groups, and a declaration moving a random 10% of them."""
    rnd = random.Random(seed)
    addresses = [PortalAddress.parse(portal_address(number)) for number in range(portals)]
    members: t.List[t.List[PortalAddress]] = [[] for _group in range(64)]
    for number, address in enumerate(addresses):
        members[number % 64].append(address)
    target = Target("t", IQN % "planner", "", tuple(PortalGroup("g%d" % tag, tag + 1, frozenset(group))
                                                    for tag, group in enumerate(members)))
    subsystem = Subsystem("s", "array", tuple(Portal("p%d" % n, a) for n, a in enumerate(addresses)), (target,))
    declared = [list(group) for group in members]
    for number in rnd.sample(range(portals), portals // 10):
        home = number % 64
        declared[home].remove(addresses[number])
        declared[(home + rnd.randrange(1, 64)) % 64].append(addresses[number])
    # Declared addresses are objects of their own, as they are when parsed from the task's arguments.
    groups = tuple(resource.GroupSpec(tag + 1, tuple(sorted(PortalAddress.of(a.ip, a.port) for a in group)))
                   for tag, group in enumerate(declared))
    return subsystem, target, resource.TargetSpec(target.iqn, None, groups)


def figure_planner(sizes: Sizes) -> Figure:
    timings: dict[int, float] = {}
    steps: dict[int, int] = {}
    for portals in sizes.planner:
        subsystem, target, spec = planner_case(portals, seed=portals)
        best = math.inf
        for _repeat in range(sizes.planner_repeats):
            gc.collect()
            start = time.perf_counter()
            index = resource.index_portals(portal.address for portal in subsystem.portals)
            plan = resource.plan_target(subsystem, target, spec, resource.REPLACED, True, index)
            best = min(best, time.perf_counter() - start)
        timings[portals], steps[portals] = best, len(plan.steps)
    lines = ["%8s  %10s  %13s  %8s  %16s" % ("portals", "plan time", "per portal", "growth", "n log n growth")]
    growth_ok = True
    previous = None
    for portals in sizes.planner:
        growth = allowed = ""
        if previous is not None:
            ratio = timings[portals] / timings[previous]
            limit = portals * math.log(portals) / (previous * math.log(previous))
            growth_ok = growth_ok and ratio <= limit
            growth, allowed = "x%.1f" % ratio, "x%.1f" % limit
        lines.append("%8d  %10s  %10.2f us  %8s  %16s   (%d steps)" % (
            portals, ms(timings[portals]), timings[portals] / portals * 1e6, growth, allowed, steps[portals]))
        previous = portals
    middle = sizes.planner[1]
    fast = timings[middle] < 0.050
    lines.append("plan time: index the subsystem's portals and plan the target (state replaced, 64 groups, a random "
                 "10%% of the portals moved); best of %d" % sizes.planner_repeats)
    summary = "%dk: %s; growth %s" % (middle // 1000, ms(timings[middle]), " ".join(
        "x%.1f" % (timings[b] / timings[a]) for a, b in zip(sizes.planner, sizes.planner[1:])))
    return Figure(1, "Planner scaling", "%d portals planned in under 50 ms; growth no worse than n log n" % middle,
                  lines, fast and growth_ok, summary)


# --- 2. module start cost ----------------------------------------------------------------------------


def figure_start(ansible: Ansible, sizes: Sizes) -> Figure:
    hosts = {}
    for number in range(sizes.start_hosts):
        path = os.path.join(ansible.work, "start-%03d.json" % number)
        write_json(path, state_data([portal_address(1)], {IQN % "t1": {1: [portal_address(1)]}}))
        hosts["h%03d" % number] = {"bench_state": path}
    inventory = ansible.inventory("start", hosts, {})
    playbooks = {
        "no task": ansible.write("start-empty.yml", play("Nothing", "  tasks: []\n")),
        "ansible.builtin.ping": ansible.write(
            "start-ping.yml", play("Ping", "  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n")),
        "storage.vds.vds_portal_group": ansible.write("start-group.yml", play("One group", """  tasks:
    - name: Keep one portal group (already as declared)
      storage.vds.vds_portal_group:
        backend: simulator
        simulator_state: "{{ bench_state }}"
        target: %s
        tag: 1
        portals: [%s]
""" % (IQN % "t1", portal_address(1)))),
    }
    runs: dict[str, t.List[float]] = {name: [] for name in playbooks}
    for _repeat in range(sizes.repeats):
        for name, playbook in playbooks.items():
            runs[name].append(ansible.run(inventory, playbook))
    wall = {name: statistics.median(values) for name, values in runs.items()}
    base = wall["no task"]
    ping, group = wall["ansible.builtin.ping"] - base, wall["storage.vds.vds_portal_group"] - base
    ratio = group / ping
    lines = ["%-30s %9s  %s" % ("playbook (%d hosts, forks %d)" % (sizes.start_hosts, ansible.forks), "wall",
                                "task time (wall minus the play with no task)")]
    for name in playbooks:
        lines.append("%-30s %8.2fs  %s" % (name, wall[name], "" if name == "no task" else "%.2fs" % (wall[name] - base)))
    lines.append("task time vds_portal_group / ping: x%.2f (whole playbooks: x%.2f); median of %d runs"
                 % (ratio, wall["storage.vds.vds_portal_group"] / wall["ansible.builtin.ping"], sizes.repeats))
    lines.extend(module_process_costs(ansible, inventory))
    return Figure(2, "Module start cost", "one vds_portal_group task with nothing to change at most x1.15 one ping "
                  "task (same hosts, forks)", lines, ratio <= 1.15, "x%.2f ping" % ratio)


def module_process_costs(ansible: Ansible, inventory: str) -> t.List[str]:
    """Where a module execution's time goes: the module process alone, and the storage.vds imports in it."""
    kept = os.path.join(ansible.work, "kept")
    os.makedirs(kept, exist_ok=True)
    for module, arguments in (("ansible.builtin.ping", {}),
                              ("storage.vds.vds_portal_group",
                               {"backend": "simulator", "simulator_state": "{{ bench_state }}", "target": IQN % "t1",
                                "tag": 1, "portals": [portal_address(1)]})):
        kept_play = ansible.write("kept.yml", play("Keep the module file", "  tasks:\n    - name: Run once\n"
                                                   "      %s: %s\n" % (module, json.dumps(arguments))))
        ansible.run(inventory, kept_play, "--limit", "h000",
                    env={"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": kept})
    wrappers = {}
    for directory, _dirs, files in os.walk(kept):
        for name in files:
            if name.startswith("AnsiballZ_"):
                wrappers[name[len("AnsiballZ_"):-3]] = os.path.join(directory, name)
    cpu: dict[str, float] = {}
    for name, wrapper in sorted(wrappers.items()):
        samples = []
        for _repeat in range(5):
            before = rusage.getrusage(rusage.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, wrapper], stdout=subprocess.DEVNULL, check=True)
            after = rusage.getrusage(rusage.RUSAGE_CHILDREN)
            samples.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        cpu[name] = statistics.median(samples)
    # Each module's own import time (its compile included), the least of several runs: on a shared machine a
    # single run measures the neighbours as much as the imports.
    own: dict[str, int] = {}
    for _repeat in range(IMPORT_RUNS):
        imports = subprocess.run([sys.executable, "-X", "importtime", wrappers["vds_portal_group"]],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True).stderr
        for line in imports.splitlines():
            parts = [part.strip() for part in line.split("|")]
            if len(parts) == 3 and parts[2].startswith("ansible_collections.storage.vds.plugins.module_utils."):
                name, micro = parts[2].rsplit(".", 1)[-1], int(parts[0].rsplit(":", 1)[-1])
                own[name] = min(own.get(name, micro), micro)
    total = sum(own.values()) / 1e6
    top = ", ".join("%s %.0f" % (name, micro / 1000) for name, micro in sorted(own.items(), key=lambda i: -i[1]))
    extra = cpu["vds_portal_group"] - cpu["ping"]
    return ["module process alone (CPU, median of 5): ping %s, vds_portal_group %s (+%s)"
            % (ms(cpu["ping"]), ms(cpu["vds_portal_group"]), ms(extra)),
            "of which storage.vds module_utils imports (compiled from the module's zip on every run; python -X "
            "importtime on the AnsiballZ payload, least of %d runs): %s; ms each: %s" % (IMPORT_RUNS, ms(total), top)]


# --- 3. fleet apply, and 4. call counts ----------------------------------------------------------------


FLEET_PORTALS = [portal_address(number) for number in range(1, 65)]


def fleet_groups(sizes: Sizes) -> t.List[dict[str, t.Any]]:
    """The groups of every host, half on each of two targets, each with its own portals. Tags are those the
    provider gives groups made in this order on targets without groups."""
    half = sizes.fleet_groups // 2
    return [{"target": IQN % ("t%d" % (1 + number // half)), "tag": 1 + number % half,
             "portals": FLEET_PORTALS[number * sizes.fleet_portals:(number + 1) * sizes.fleet_portals]}
            for number in range(sizes.fleet_groups)]


def figure_fleet(ansible: Ansible, sizes: Sizes) -> t.Tuple[Figure, t.List[str], bool]:
    empty = state_data(FLEET_PORTALS[:sizes.fleet_groups * sizes.fleet_portals], {IQN % "t1": {}, IQN % "t2": {}})
    hosts = {}
    for number in range(sizes.fleet_hosts):
        hosts["h%03d" % number] = {"bench_state": os.path.join(ansible.work, "fleet-%03d.json" % number)}
    groups = fleet_groups(sizes)
    inventory = ansible.inventory("fleet", hosts, {
        "portal_groups_backend": "simulator", "portal_groups_simulator_state": "{{ bench_state }}",
        "portal_groups_desired": [{"target": group["target"], "portals": group["portals"], "purge_portals": True}
                                  for group in groups],
        "bench_groups": [dict(group, rest=group["portals"][1:]) for group in groups]})
    role = ansible.write("fleet-role.yml", play("Role", "  roles:\n    - role: storage.vds.portal_groups\n"))
    ping = ansible.write("fleet-ping.yml", play("Ping", "  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n"))
    naive = ansible.write("fleet-naive.yml", play("One module execution per portal", """  module_defaults:
    group/storage.vds.vds:
      backend: simulator
      simulator_state: "{{ bench_state }}"
  tasks:
    - name: Create each group with its first portal (the provider assigns tags 1 to 4 on each target)
      storage.vds.vds_portal_group:
        target: "{{ item.target }}"
        portals: ["{{ item.portals[0] }}"]
      loop: "{{ bench_groups }}"
    - name: Add every other portal to its group
      storage.vds.vds_portal:
        target: "{{ item.0.target }}"
        tag: "{{ item.0.tag }}"
        portal: "{{ item.1 }}"
      loop: "{{ bench_groups | subelements('rest') }}"
"""))

    def reset() -> None:
        for variables in hosts.values():
            write_json(variables["bench_state"], empty)

    runs: dict[str, t.List[float]] = {"ping": [], "role": [], "rerun": []}
    for _repeat in range(sizes.repeats):
        reset()
        runs["role"].append(ansible.run(inventory, role))
        runs["rerun"].append(ansible.run(inventory, role))
        runs["ping"].append(ansible.run(inventory, ping))
    counts_lines, counts_ok = fleet_counts(hosts, groups)
    limit = ["--limit", ",".join(sorted(hosts)[:sizes.naive_hosts])]
    reset()
    role_small = ansible.run(inventory, role, *limit)
    reset()
    naive_small = ansible.run(inventory, naive, *limit)
    wall = {name: statistics.median(values) for name, values in runs.items()}
    first, rerun = wall["role"] / wall["ping"], wall["rerun"] / wall["ping"]
    lines = [
        "%d hosts x %d groups x %d portals, forks %d, median of %d runs:" % (
            sizes.fleet_hosts, sizes.fleet_groups, sizes.fleet_portals, ansible.forks, sizes.repeats),
        "  ping playbook (one ping task per host)   %7.2fs" % wall["ping"],
        "  role, from no group to declared         %7.2fs  x%.2f ping" % (wall["role"], first),
        "  role again (nothing to change)          %7.2fs  x%.2f ping" % (wall["rerun"], rerun),
        "%d hosts, from no group to declared:" % sizes.naive_hosts,
        "  role (one module execution per host)    %7.2fs" % role_small,
        "  one module execution per portal         %7.2fs  x%.1f the role (%d executions per host)" % (
            naive_small, naive_small / role_small, sizes.fleet_groups * sizes.fleet_portals),
    ]
    figure = Figure(3, "Fleet apply", "role within x1.5 the ping playbook; the rerun at most that", lines,
                    first <= 1.5 and rerun <= 1.5, "x%.2f, rerun x%.2f ping" % (first, rerun))
    return figure, counts_lines, counts_ok


def mutating(calls: t.Mapping[str, int]) -> int:
    return sum(calls.get(name, 0) for name in MUTATING)


def minimum(before: dict[str, t.Any], after: dict[str, t.Any]) -> int:
    """Mutating calls the difference between two states needs: each portal leaving or entering a group,
    each group created or deleted (the identity of groups is their target and tag)."""
    def members(data: dict[str, t.Any]) -> dict[tuple, set]:
        return {(sub["name"], target["iqn"], group["tag"]): set(group.get("portals", []))
                for sub in data["subsystems"] for target in sub.get("targets", []) for group in target.get("groups", [])}
    old, new = members(before), members(after)
    calls = 0
    for key in set(old) | set(new):
        calls += len(old.get(key, set()) ^ new.get(key, set())) + (key not in old) + (key not in new)
    return calls


def fleet_counts(hosts: t.Mapping[str, t.Mapping[str, str]], groups: t.Sequence[dict[str, t.Any]]
                 ) -> t.Tuple[t.List[str], bool]:
    """After the last repeat (role from empty, then again): the calls each host's provider counted."""
    adds = sum(len(group["portals"]) for group in groups)
    needed = len(groups) + adds  # one create per group, one add per portal
    wrong = []
    for host, variables in sorted(hosts.items()):
        calls = read_json(variables["bench_state"]).get("calls", {})
        if mutating(calls) != needed:
            wrong.append("%s: %s" % (host, calls))
    lines = ["fleet (role from no group, then again, %d hosts): %s" % (
        len(hosts), "every host: %d mutating calls = the minimum (%d creates + %d adds), 0 on the rerun"
                    % (needed, len(groups), adds) if not wrong
        else "WRONG on %s" % "; ".join(wrong[:3]))]
    return lines, not wrong


def scrambled_state(latency_ms: float = 0) -> dict[str, t.Any]:
    """Two subsystems with groups out of order: moves, purges, a group to delete, a group to create."""
    data = state_data(FLEET_PORTALS[:16], {
        IQN % "a1": {1: FLEET_PORTALS[0:4] + FLEET_PORTALS[8:10], 2: FLEET_PORTALS[4:6], 3: FLEET_PORTALS[6:8]},
        IQN % "a2": {1: FLEET_PORTALS[0:8]}}, latency_ms, name="array-a", count_reads=True)
    data["subsystems"].append(state_data(FLEET_PORTALS[:16], {IQN % "b1": {2: FLEET_PORTALS[:3]}},
                                         name="array-b")["subsystems"][0])
    return data


SCRAMBLED_CONFIG = [
    {"target": IQN % "a1", "groups": [{"tag": 1, "portals": FLEET_PORTALS[0:4]},
                                      {"tag": 2, "portals": FLEET_PORTALS[4:6] + FLEET_PORTALS[8:10]},
                                      {"portals": FLEET_PORTALS[10:12]}]},
    {"target": IQN % "a2", "groups": [{"tag": 1, "portals": FLEET_PORTALS[0:2]}]},
    {"target": IQN % "b1", "groups": [{"tag": 2, "portals": FLEET_PORTALS[2:5]}]},
]


def figure_counts(work: str, fleet_lines: t.List[str], fleet_ok: bool) -> Figure:
    lines = list(fleet_lines)
    ok = fleet_ok
    for label, faults in (("", []),
                          (" with one VDS_E_OBJECT_DELETED", [{"operation": "AddPortal",
                                                               "hresult": "VDS_E_OBJECT_DELETED"}])):
        path = os.path.join(work, "counts.json")
        data = scrambled_state()
        data["faults"] = faults
        write_json(path, data)
        before = read_json(path)
        params = {"state": resource.OVERRIDDEN, "config": SCRAMBLED_CONFIG}
        first = resource.resource(Engine(SimulatorBackend(path), 30), params)
        after = read_json(path)
        calls = after.get("calls", {})
        refused = len(faults)
        expected_reads = 2 + first["operations"]["rereads"]
        needed = minimum(before, after)
        resource.resource(Engine(SimulatorBackend(path), 30), params)
        again = read_json(path).get("calls", {})
        good = (mutating(calls) - refused == needed == len(first["steps"]) and calls.get("Snapshot") == expected_reads
                and mutating(again) == mutating(calls) and again.get("Snapshot") == expected_reads + 2
                and first["operations"]["rereads"] == refused)
        ok = ok and good
        lines.append("overridden, 2 subsystems, moves, purges, a create and a delete%s: %d mutating calls%s, "
                     "minimum %d; %d Snapshots (2 subsystems%s); rerun: 0 mutating, 2 Snapshots%s"
                     % (label, mutating(calls) - refused, " (+%d refused by the fault)" % refused if refused else "",
                        needed, calls.get("Snapshot", 0), " + 1 read again" if refused else "",
                        "" if good else "  WRONG: %s then %s" % (calls, again)))
    return Figure(4, "Provider call counts", "mutating calls = the minimum, 0 on rerun; one Snapshot per subsystem per "
                  "execution (plus one per recovery)", lines, ok, "as required" if ok else "WRONG", timing=False)


# --- 5. waiting overhead -------------------------------------------------------------------------------


def figure_waiting(work: str, sizes: Sizes) -> Figure:
    lines = ["%8s  %12s  %12s  %10s  %12s  %6s" % ("latency", "lag median", "lag max", "lag goal", "wait CPU", "polls")]
    ok = True
    summary = []
    for latency_ms in sizes.latencies_ms:
        latency = latency_ms / 1000.0
        path = os.path.join(work, "wait.json")
        write_json(path, state_data(FLEET_PORTALS[:1], {IQN % "w": {1: []}}, latency_ms))
        lags, cpu_shares, polls = [], [], []
        for number in range(sizes.waits):
            backend = SimulatorBackend(path)
            snapshot = backend.snapshot()
            target = snapshot.subsystems[0].targets[0]
            portal = snapshot.subsystems[0].portals[0]
            call = backend.remove_portal if number % 2 else backend.add_portal
            operation = call(target.groups[0].id, portal.id)
            completes_at = next(record["completes_at"] for record in read_json(path).get("operations", [])
                                if record["id"] == operation.id)
            waiter = Waiter(backend, 30)
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            waiter.wait(operation, "bench")
            cpu, wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
            lags.append(time.time() - completes_at)
            cpu_shares.append(cpu / wall)
            polls.append(waiter.polls)
        goal = max(0.020, 0.1 * latency)
        worst = max(lags)
        share = max(cpu_shares)
        ok = ok and worst < goal and share <= 0.10
        lines.append("%6d ms  %12s  %12s  %10s  %11.1f%%  %6d" % (
            latency_ms, ms(statistics.median(lags)), ms(worst), "< %s" % ms(goal), share * 100, max(polls)))
        summary.append("%d ms: lag max %s" % (latency_ms, ms(worst)))
    lines.append("lag: from the operation's completion time (the simulator's record) to the waiter returning; wait "
                 "CPU: the most CPU time any wait used, as a share of its wall time (time.process_time); %d waits "
                 "per latency" % sizes.waits)
    return Figure(5, "Waiting overhead", "lag under max(20 ms, 10% of the latency); no busy polling (wait CPU at most "
                  "10% of the wait)", lines, ok, "; ".join(summary))


# --- 6. large apply -------------------------------------------------------------------------------------


def figure_large(ansible: Ansible, sizes: Sizes) -> Figure:
    """One task adds every portal of an array to an empty group: check mode, then for real, from the same state."""
    iqn = IQN % "large"
    playbook = ansible.write("large.yml", play("Apply a large group", """  tasks:
    - name: Group 1 holds every portal of the array
      storage.vds.vds_portal_group:
        backend: simulator
        simulator_state: "{{ bench_state }}"
        target: %s
        tag: 1
        portals: "{{ bench_portals }}"
""" % iqn))
    wall: dict[int, dict[str, float]] = {}
    for portals in sizes.large:
        addresses = [portal_address(number) for number in range(portals)]
        path = os.path.join(ansible.work, "large-state.json")
        inventory = ansible.inventory("large", {"h000": {"bench_state": path}}, {"bench_portals": addresses})
        runs: dict[str, t.List[float]] = {"--check": [], "real": []}
        for _repeat in range(sizes.repeats):
            for mode in runs:
                write_json(path, state_data(addresses, {iqn: {1: []}}))
                runs[mode].append(ansible.run(inventory, playbook, *([mode] if mode == "--check" else [])))
        data = read_json(path)
        held = data["subsystems"][0]["targets"][0]["groups"][0]["portals"]
        if sorted(held) != sorted(addresses) or data["calls"].get("AddPortal") != portals \
                or os.path.exists(path + ".journal"):
            raise Failed("the large apply of %d portals left %d in the group, %s AddPortal calls counted%s"
                         % (portals, len(held), data["calls"].get("AddPortal"),
                            ", and a journal behind" if os.path.exists(path + ".journal") else ""))
        wall[portals] = {mode: statistics.median(values) for mode, values in runs.items()}
        # The same apply in this process: the engine and the simulator without Ansible's fixed costs.
        params = {"target": iqn, "tag": 1, "portals": addresses}
        for mode in runs:
            write_json(path, state_data(addresses, {iqn: {1: []}}))
            start = time.perf_counter()
            with SimulatorBackend(path) as backend:
                portal_group(Engine(backend, 30, check_mode=mode == "--check"), params)
            wall[portals]["engine " + mode] = time.perf_counter() - start
    small, large = sizes.large
    header = ("portals", "--check", "real", "real / check", "in one process: check, real")
    lines = ["%8s  %10s  %10s  %12s    %s" % header]
    ratios = {}
    for portals in sizes.large:
        ratios[portals] = wall[portals]["real"] / wall[portals]["--check"]
        lines.append("%8d  %9.2fs  %9.2fs  %11s     %s, %s" % (
            portals, wall[portals]["--check"], wall[portals]["real"], "x%.2f" % ratios[portals],
            ms(wall[portals]["engine --check"]), ms(wall[portals]["engine real"])))
    growth = wall[large]["real"] / wall[small]["real"]
    lines.append("x%d portals: the real run takes x%.2f the time; whole ansible-playbook runs, one host, median of "
                 "%d; every real run made one AddPortal per portal. In one process: the module's work (engine and "
                 "simulator) without Ansible, one run each" % (large // small, growth, sizes.repeats))
    return Figure(6, "Large apply", "real run within x3 of --check; x10 portals at most x12 the time", lines,
                  max(ratios.values()) <= 3 and growth <= 12,
                  "real/check %s; x10 portals x%.2f time" % (
                      ", ".join("%dk x%.2f" % (n // 1000, r) if n >= 1000 else "%d x%.2f" % (n, r)
                                for n, r in ratios.items()), growth))


# --- 7. Windows over the wire -------------------------------------------------------------------------


WIRE_LATENCY_MS = 50      # per round trip
WIRE_COMPILE_MS = 1500    # per compile of the interop class


def figure_wire(work: str, quick: bool) -> Figure:
    """The vds backend over the fake pypsrp (tests/fakes/pypsrp), which counts invocations and compiles per host
    and charges a latency per invocation and a cost per compile."""
    latency_ms, compile_ms, runs = (5, 50, 5) if quick else (WIRE_LATENCY_MS, WIRE_COMPILE_MS, 20)
    saved = {name: os.environ.get(name) for name in (_host.LATENCY_VARIABLE, _host.COMPILE_VARIABLE)}
    real_pypsrp, real_error = getattr(vds, "pypsrp", None), vds.PYPSRP_IMPORT_ERROR
    os.environ[_host.LATENCY_VARIABLE], os.environ[_host.COMPILE_VARIABLE] = str(latency_ms), str(compile_ms)
    vds.pypsrp, vds.PYPSRP_IMPORT_ERROR = fake_pypsrp, None
    addresses = [portal_address(number) for number in range(12)]
    # The fake host's files on a memory file system where there is one: the figure is about the wire and the
    # controller, not about this machine's disk.
    folder = tempfile.mkdtemp(prefix="vds-bench-wire-", dir="/dev/shm" if os.path.isdir("/dev/shm") else work)
    path = os.path.join(folder, "wire.json")
    write_json(path, state_data(addresses, {IQN % "wire": {1: addresses[:1]}}))

    def run(portals: t.Sequence[str]) -> t.Tuple[int, int, int, float]:
        before = _host.counters(path)
        start = time.perf_counter()
        with vds.VdsBackend(vds.Connection(host=path, username="bench", password="bench", wait_timeout=30)) as backend:
            result = module_tasks.portal_group(Engine(backend, 30), {"target": IQN % "wire", "tag": 1, "portals": list(portals)})
        wall = time.perf_counter() - start
        after = _host.counters(path)
        fake_pypsrp.JOURNAL.clear()
        return (len(result["steps"]), after["invocations"] - before["invocations"],
                after["compiles"] - before["compiles"], wall)

    try:
        compiles = sum(run(addresses[:1])[2] for _run in range(runs))
        measured = [("no change", run(addresses[:1])), ("1 step", run(addresses[:2])),
                    ("10 steps", run(addresses[:12]))]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        vds.pypsrp, vds.PYPSRP_IMPORT_ERROR = real_pypsrp, real_error
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    header = ("run", "steps", "round trips", "goal", "wall", "floor", "ratio")
    lines = ["%-10s  %5s  %11s  %11s  %9s  %9s  %6s" % header]
    counts_ok = compiles == 1
    times_ok = True
    for name, (steps, trips, _compiles, wall) in measured:
        goal = 2 if steps == 0 else steps + 2
        floor = trips * latency_ms / 1000.0
        counts_ok = counts_ok and trips <= goal
        times_ok = times_ok and wall <= 1.2 * floor
        lines.append("%-10s  %5d  %11d  %11s  %9s  %9s  %5.2fx"
                     % (name, steps, trips, "<= %d" % goal, ms(wall), ms(floor), wall / floor))
    lines.append("compiles of the interop class across %d runs on one host: %d (goal 1)" % (runs, compiles))
    lines.append("%d ms per round trip, %d ms per compile; wall: one module run's engine and backend, the class "
                 "already kept on the host; floor: round trips x %d ms" % (latency_ms, compile_ms, latency_ms))
    if quick:
        lines.append("wall times not judged (quick run)")
    met = counts_ok and (quick or times_ok)
    trips_text = "/".join(str(trips) for _name, (_steps, trips, _compiles, _wall) in measured)
    summary = "round trips %s; %d compile(s)" % (trips_text, compiles)
    return Figure(7, "Windows over the wire", "no change <= 2 round trips, k steps <= k + 2; 1 compile in %d runs; "
                  "wall within x1.2 of the floor" % runs, lines, met, summary, timing=False)


# --- the run -------------------------------------------------------------------------------------------


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bash bench/run.sh", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small and fast: proves the benchmarks work; "
                        "timings are not judged")
    parser.add_argument("--forks", type=int, default=5, help="forks of every ansible-playbook run (default 5)")
    parser.add_argument("--only", type=int, action="append", choices=range(1, 8), metavar="N",
                        help="measure only figure N (repeatable); 4 needs 3")
    parser.add_argument("--hosts", type=int, metavar="N",
                        help="hosts of figures 2 and 3 (default 50 and 200, quick 3; a tenth of them, at most 20, for "
                        "the naive way): a try on fewer hosts; the goals are for the default sizes")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.hosts:
        sizes = dataclasses.replace(sizes, start_hosts=args.hosts, fleet_hosts=args.hosts,
                                    naive_hosts=max(1, min(sizes.naive_hosts, args.hosts // 10)))
    wanted = set(args.only or range(1, 8))
    if 4 in wanted:
        wanted.add(3)
    print("storage.vds benchmarks (%s run): simulated provider, Python %s, ansible-core %s, %d CPUs, forks %d"
          % ("quick" if args.quick else "full", platform.python_version(), ANSIBLE_VERSION, os.cpu_count() or 0,
             args.forks))
    print("command: bash bench/run.sh%s" % " ".join([""] + list(argv if argv is not None else sys.argv[1:])))
    # Other work on the machine slows every figure that is a time: say how busy it was.
    print("load average at the start: %.2f %.2f %.2f" % os.getloadavg())
    figures: t.List[Figure] = []
    work = tempfile.mkdtemp(prefix="vds-bench-")
    try:
        ansible = Ansible(work, args.forks)
        if 1 in wanted:
            figures.append(report(figure_planner(sizes), args.quick))
        if 2 in wanted:
            figures.append(report(figure_start(ansible, sizes), args.quick))
        if 3 in wanted:
            fleet, counts_lines, counts_ok = figure_fleet(ansible, sizes)
            figures.append(report(fleet, args.quick))
            if 4 in wanted:
                figures.append(report(figure_counts(work, counts_lines, counts_ok), args.quick))
        if 5 in wanted:
            figures.append(report(figure_waiting(work, sizes), args.quick))
        if 6 in wanted:
            figures.append(report(figure_large(ansible, sizes), args.quick))
        if 7 in wanted:
            figures.append(report(figure_wire(work, args.quick), args.quick))
    except Failed as failure:
        print("\nFAILED: %s" % failure)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nload average at the end: %.2f %.2f %.2f" % os.getloadavg())
    print("\nSummary")
    for figure in figures:
        print("  %d. %-22s %-40s goal: %s -> %s"
              % (figure.number, figure.title, figure.summary, figure.goal, verdict(figure, args.quick)))
    return 0 if all(figure.met for figure in figures if not figure.timing) else 1


def report(figure: Figure, quick: bool) -> Figure:
    print("\n%d. %s" % (figure.number, figure.title))
    for line in figure.lines:
        print("   " + line)
    print("   goal: %s -> %s" % (figure.goal, verdict(figure, quick)))
    sys.stdout.flush()
    return figure


if __name__ == "__main__":
    sys.exit(main())
