# SPDX-License-Identifier: GPL-3.0-or-later
"""What the guest's playbooks cannot do with the collection itself: set up the targets, look at the
kernel's state without the collection's code, and restore a saved configuration.

    fixture.py setup              the targets (creating targets is outside the collection's scope)
    fixture.py check EXPECTED     configfs and discovery hold exactly EXPECTED (JSON, see check())
    fixture.py restore            clear the running configuration, restore the saved one, compare
"""
import ipaddress
import json
import os
import socket
import subprocess
import sys

import rtslib_fb

ISCSI = "/sys/kernel/config/target/iscsi"
ANCHOR = "iqn.2003-01.org.example.vds:anchor"
# The anchor target's portal is where discovery asks; it is no test target's business.
DISCOVERY = ("127.0.0.1", 3999)
TARGETS = ("iqn.2003-01.org.example.vds:t1", "iqn.2003-01.org.example.vds:t2")


def discoverable(tpg):
    tpg.set_attribute("authentication", "0")
    tpg.set_attribute("generate_node_acls", "1")
    tpg.enable = True


def setup():
    fabric = rtslib_fb.FabricModule("iscsi")
    anchor = rtslib_fb.TPG(rtslib_fb.Target(fabric, ANCHOR, mode="create"), 1, mode="create")
    rtslib_fb.NetworkPortal(anchor, DISCOVERY[0], DISCOVERY[1], mode="create")
    discoverable(anchor)
    # t1 as targetcli leaves a new target: TPG 1 with the wildcard portal 0.0.0.0:3260.
    first = rtslib_fb.TPG(rtslib_fb.Target(fabric, TARGETS[0], mode="create"), 1, mode="create")
    rtslib_fb.NetworkPortal(first, "0.0.0.0", 3260, mode="create")
    discoverable(first)
    rtslib_fb.Target(fabric, TARGETS[1], mode="create")


def normal(text):
    """``ip:port`` / ``[ip]:port`` as the collection writes it."""
    host, port = text.rsplit(":", 1)
    ip = ipaddress.ip_address(host.strip("[]"))
    return ("[%s]:%s" if ip.version == 6 else "%s:%s") % (ip, port)


def configfs(iqn):
    """tag -> (enabled, sorted portals), read straight from configfs."""
    found = {}
    base = os.path.join(ISCSI, iqn)
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if entry.startswith("tpgt_"):
            with open(os.path.join(base, entry, "enable")) as enable:
                enabled = enable.read().strip() == "1"
            found[int(entry[5:])] = (enabled, sorted(normal(np) for np in os.listdir(os.path.join(base, entry, "np"))))
    return found


def discovery():
    """iqn -> sorted 'portal,tag' entries that SendTargets returns."""
    output = subprocess.run(
        ["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", "%s:%d" % DISCOVERY, "-o", "nonpersistent"],
        check=True, capture_output=True, text=True, timeout=60).stdout
    found = {}
    for line in output.splitlines():
        address, iqn = line.split()
        portal, tag = address.rsplit(",", 1)
        found.setdefault(iqn, []).append("%s,%s" % (normal(portal), tag))
    return {iqn: sorted(entries) for iqn, entries in found.items()}


def accepts(portal):
    host, port = portal.rsplit(":", 1)
    ip = host.strip("[]")
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect((ip, int(port)))
        except ConnectionRefusedError:
            return False
    return True


def expected_discovery(groups):
    """Each enabled TPG's portals. The kernel announces a wildcard portal at the address and port of
    the discovery session's own connection (the anchor's portal here), not at the wildcard's port."""
    result = {}
    for iqn, tpgs in groups.items():
        entries = []
        for tag, portals in tpgs.items():
            for portal in portals:
                ip = portal.rsplit(":", 1)[0]
                if ipaddress.ip_address(ip.strip("[]")).is_unspecified:
                    portal = "%s:%d" % DISCOVERY
                entries.append("%s,%s" % (portal, tag))
        if entries:
            result[iqn] = sorted(entries)
    return result


def check(expected_json):
    """EXPECTED: {"groups": {iqn: {tag: [portal, ...]}}, "closed": [portal, ...]}. Every TPG listed is
    enabled, holds exactly those portals, and no other TPG exists on those targets; discovery lists
    exactly them; each specific portal accepts connections and each closed one refuses them."""
    expected = json.loads(expected_json)
    groups = {iqn: {int(tag): sorted(normal(p) for p in portals) for tag, portals in tpgs.items()}
              for iqn, tpgs in expected["groups"].items()}
    problems = []
    for iqn, tpgs in groups.items():
        actual = configfs(iqn)
        wanted = {tag: (True, portals) for tag, portals in tpgs.items()}
        if actual != wanted:
            problems.append("configfs of %s: expected %s, found %s" % (iqn, wanted, actual))
    found = {iqn: entries for iqn, entries in discovery().items() if iqn in groups}
    if found != expected_discovery(groups):
        problems.append("discovery: expected %s, found %s" % (expected_discovery(groups), found))
    for portals in (portals for tpgs in groups.values() for portals in tpgs.values()):
        for portal in portals:
            if not ipaddress.ip_address(portal.rsplit(":", 1)[0].strip("[]")).is_unspecified and not accepts(portal):
                problems.append("%s refuses connections" % portal)
    for portal in expected.get("closed", []):
        if accepts(normal(portal)):
            problems.append("%s still accepts connections" % portal)
    print(json.dumps({"configfs": {iqn: configfs(iqn) for iqn in groups}, "discovery": found}, sort_keys=True))
    if problems:
        sys.exit("\n".join(problems))


def restore():
    """Clear the kernel's running configuration, restore the saved file, and compare discovery."""
    before = discovery()
    root = rtslib_fb.RTSRoot()
    root.clear_existing(confirm=True)
    if os.listdir(ISCSI) and any(os.path.isdir(os.path.join(ISCSI, name, "tpgt_1")) for name in os.listdir(ISCSI)):
        sys.exit("clear_existing left targets behind")
    errors = root.restore_from_file(rtslib_fb.root.default_save_file)
    if errors:
        sys.exit("restore reported: %s" % errors)
    after = discovery()
    print(json.dumps({"before": before, "after": after}, sort_keys=True))
    if before != after:
        sys.exit("discovery differs after restoring the saved configuration")


if __name__ == "__main__":
    {"setup": setup, "check": check, "restore": restore}[sys.argv[1]](*sys.argv[2:])
