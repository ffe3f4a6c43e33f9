# SPDX-License-Identifier: GPL-3.0-or-later
"""What the guest's playbook cannot do with the collection itself: set up the targets, look at the
kernel's state without the collection's code, and restore a saved configuration.

    fixture.py setup              the targets (creating targets is outside the collection's scope)
    fixture.py check EXPECTED     configfs, discovery and TCP listeners are exactly EXPECTED (see check())
    fixture.py restore EXPECTED   clear the kernel's configuration, 'targetctl restore' the saved file,
                                  then the same comparison as check
    fixture.py dbroot absent|saved
                                  the folder rtslib-fb prefers is absent (a fresh host), or holds the saved
                                  configuration as the collection leaves it (root's folder 0755, file 0600),
                                  with the kernel's dbroot pointing there
    fixture.py targetcli-host     as targetcli leaves a host: its folder, and another target with a LUN and an
                                  ACL, running and saved (prints that target's saved entry)
    fixture.py kept SAVED_JSON    the saved file still holds that other target exactly as SAVED_JSON

Each command prints what it observed as JSON on stdout; a difference is a line on stderr and exit status 1.
"""
import ipaddress
import json
import os
import socket
import subprocess
import sys

ISCSI = "/sys/kernel/config/target/iscsi"
ANCHOR = "iqn.2003-01.org.example.vds:anchor"
# The anchor target's portal is where discovery asks; it is no test target's business.
DISCOVERY = ("127.0.0.1", 3999)
TARGETS = ("iqn.2003-01.org.example.vds:t1", "iqn.2003-01.org.example.vds:t2")
# A target the collection does not manage, configured with targetcli: a LUN and an ACL.
OTHER = "iqn.2003-01.org.example.vds:other"
OTHER_INITIATOR = "iqn.2003-01.org.example.vds:other-initiator"
# Where the collection saves by default, and where targetctl restores from at boot, on Debian.
DBROOT = "/etc/rtslib-fb-target"
SAVE_FILE = DBROOT + "/saveconfig.json"


def setup():
    import rtslib_fb  # only here: its import costs a second under emulation, and check needs none of it

    def discoverable(tpg):
        tpg.set_attribute("authentication", "0")
        tpg.set_attribute("generate_node_acls", "1")
        tpg.enable = True

    fabric = rtslib_fb.FabricModule("iscsi")
    anchor = rtslib_fb.TPG(rtslib_fb.Target(fabric, ANCHOR, mode="create"), 1, mode="create")
    rtslib_fb.NetworkPortal(anchor, DISCOVERY[0], DISCOVERY[1], mode="create")
    discoverable(anchor)
    # t1 as targetcli leaves a new target: TPG 1 with the wildcard portal 0.0.0.0:3260.
    first = rtslib_fb.TPG(rtslib_fb.Target(fabric, TARGETS[0], mode="create"), 1, mode="create")
    rtslib_fb.NetworkPortal(first, "0.0.0.0", 3260, mode="create")
    discoverable(first)
    # t2 without any TPG.
    rtslib_fb.Target(fabric, TARGETS[1], mode="create")


def split(portal):
    host, port = portal.rsplit(":", 1)
    return ipaddress.ip_address(host.strip("[]")), int(port)


def normal(portal):
    """``ip:port`` / ``[ip]:port`` as the collection writes it."""
    ip, port = split(portal)
    return ("[%s]:%d" if ip.version == 6 else "%s:%d") % (ip, port)


def configfs(iqn):
    """tag -> {"enabled": bool, "portals": sorted portals}, read straight from configfs."""
    found = {}
    base = os.path.join(ISCSI, iqn)
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if entry.startswith("tpgt_"):
            with open(os.path.join(base, entry, "enable")) as enable:
                enabled = enable.read().strip() == "1"
            portals = sorted(normal(np) for np in os.listdir(os.path.join(base, entry, "np")))
            found[entry[5:]] = {"enabled": enabled, "portals": portals}
    return found


def discovery():
    """iqn -> sorted 'portal,tag' entries that open-iscsi's SendTargets discovery returns."""
    run = subprocess.run(
        ["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", "%s:%d" % DISCOVERY, "-o", "nonpersistent"],
        capture_output=True, text=True, timeout=60, check=False)
    if run.returncode != 0:
        raise SystemExit("SendTargets discovery at %s:%d failed (iscsiadm exit status %d): %s"
                         % (DISCOVERY + (run.returncode, run.stderr.strip())))
    found = {}
    for line in run.stdout.splitlines():
        address, iqn = line.split()
        portal, tag = address.rsplit(",", 1)
        found.setdefault(iqn, []).append("%s,%s" % (normal(portal), tag))
    return {iqn: sorted(entries) for iqn, entries in found.items() if iqn in TARGETS}


def accepts(portal):
    """Whether something accepts TCP connections there (a refused connect fails at once, locally)."""
    ip, port = split(portal)
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect((str(ip), port))
        except ConnectionRefusedError:
            return False
    return True


def expected_discovery(groups):
    """Each TPG's portals. For a wildcard portal the kernel announces the address and port of the
    discovery connection itself (the anchor's portal here), not the wildcard."""
    result = {}
    for iqn, tpgs in groups.items():
        entries = []
        for tag, portals in tpgs.items():
            for portal in portals:
                if split(portal)[0].is_unspecified:
                    portal = "%s:%d" % DISCOVERY
                entries.append("%s,%s" % (portal, tag))
        if entries:
            result[iqn] = sorted(entries)
    return result


def compare(expected):
    """EXPECTED: {"groups": {iqn: {tag: [portal, ...]}}, "closed": [portal, ...]}. A test target not
    listed must have no TPG. Every listed TPG is enabled and holds exactly its portals; discovery lists
    exactly them; each specific portal accepts connections and each closed one refuses them.
    Returns (observed, problems)."""
    groups = {iqn: {} for iqn in TARGETS}
    for iqn, tpgs in expected["groups"].items():
        groups[iqn] = {str(tag): sorted(normal(p) for p in portals) for tag, portals in tpgs.items()}
    problems = []
    observed = {"configfs": {}, "discovery": discovery(), "closed": {}}
    for iqn, tpgs in groups.items():
        actual = observed["configfs"][iqn] = configfs(iqn)
        wanted = {tag: {"enabled": True, "portals": portals} for tag, portals in tpgs.items()}
        if actual != wanted:
            problems.append("configfs of %s: expected %s, found %s" % (iqn, wanted, actual))
    if observed["discovery"] != expected_discovery(groups):
        problems.append("discovery: expected %s, found %s" % (expected_discovery(groups), observed["discovery"]))
    # A portal on an address the host does not have yet is in configfs and discovery, but nothing answers there.
    floating = {normal(portal) for portal in expected.get("floating", [])}
    for portal in sorted({p for tpgs in groups.values() for portals in tpgs.values() for p in portals} - floating):
        if not split(portal)[0].is_unspecified and not accepts(portal):
            problems.append("%s is declared but refuses connections" % portal)
    for portal in expected.get("closed", []):
        observed["closed"][portal] = not accepts(portal)
        if not observed["closed"][portal]:
            problems.append("%s was removed but still accepts connections" % portal)
    return observed, problems


def report(observed, problems):
    print(json.dumps(observed, sort_keys=True))
    if problems:
        sys.exit("\n".join(problems))


def check(expected_json):
    report(*compare(json.loads(expected_json)))


def targetctl(*args):
    run = subprocess.run(("targetctl",) + args, capture_output=True, text=True, timeout=120, check=False)
    # targetctl restore reports a missing file and each failed object on its output with exit status 0.
    if run.returncode != 0 or run.stdout.strip() or run.stderr.strip():
        sys.exit("targetctl %s: exit status %d, output: %s %s"
                 % (" ".join(args), run.returncode, run.stdout.strip(), run.stderr.strip()))


def restore(expected_json):
    """The file the collection saved, restored into a cleared kernel, gives the same state and discovery."""
    if not os.path.isfile(SAVE_FILE):
        sys.exit("no saved configuration at %s" % SAVE_FILE)
    before = discovery()
    targetctl("clear")
    left = [name for name in os.listdir(ISCSI) if name.startswith(("iqn.", "eui.", "naa."))]
    if left:
        sys.exit("targetctl clear left targets behind: %s" % sorted(left))
    targetctl("restore", SAVE_FILE)
    observed, problems = compare(json.loads(expected_json))
    observed["discovery_before_clear"] = before
    if observed["discovery"] != before:
        problems.append("discovery differs from what it was before the clear")
    report(observed, problems)


def mode_and_owner(path):
    info = os.stat(path)
    return "%o" % (info.st_mode & 0o7777), info.st_uid, info.st_gid


def dbroot(expected):
    """The dbroot folder: absent on a fresh host; after a saved change, as the distribution lays it out."""
    with open("/sys/kernel/config/target/dbroot") as current:
        kernel_dbroot = current.read().strip()
    observed = {"kernel_dbroot": kernel_dbroot, "folder": None, "file": None}
    problems = []
    if os.path.lexists(DBROOT):
        observed["folder"] = mode_and_owner(DBROOT)
    if os.path.lexists(SAVE_FILE):
        observed["file"] = mode_and_owner(SAVE_FILE)
    if expected == "absent":
        if observed["folder"] is not None:
            problems.append("%s exists: %s" % (DBROOT, observed["folder"]))
        if kernel_dbroot == DBROOT:
            problems.append("the kernel's dbroot was set to %s" % DBROOT)
    else:
        if observed["folder"] != ("755", 0, 0) or not os.path.isdir(DBROOT):
            problems.append("%s should be a folder of root's, mode 755: %s" % (DBROOT, observed["folder"]))
        if observed["file"] != ("600", 0, 0):
            problems.append("%s should be root's, mode 600: %s" % (SAVE_FILE, observed["file"]))
        if kernel_dbroot != DBROOT:
            problems.append("the kernel's dbroot is %s, not %s" % (kernel_dbroot, DBROOT))
    report(observed, problems)


def saved_other():
    """The other target's entry and its storage objects, from the saved file."""
    with open(SAVE_FILE) as saved:
        config = json.load(saved)
    target = [entry for entry in config["targets"] if entry["wwn"] == OTHER]
    names = {lun["storage_object"] for entry in target for tpg in entry["tpgs"] for lun in tpg["luns"]}
    objects = [so for so in config["storage_objects"] if "/backstores/%s/%s" % (so["plugin"], so["name"]) in names]
    return {"target": target, "storage_objects": objects}


def targetcli_host():
    """What targetcli leaves on a host: its folder (as its package ships it), and a target with a ramdisk LUN
    and an ACL mapping it, running and saved with 'saveconfig' (which targetctl save does the same way)."""
    import rtslib_fb

    os.makedirs(DBROOT, mode=0o755, exist_ok=True)
    disk = rtslib_fb.RDMCPStorageObject("other_disk", size=1024 * 1024)
    tpg = rtslib_fb.TPG(rtslib_fb.Target(rtslib_fb.FabricModule("iscsi"), OTHER, mode="create"), 1, mode="create")
    lun = rtslib_fb.LUN(tpg, 0, disk)
    acl = rtslib_fb.NodeACL(tpg, OTHER_INITIATOR, mode="create")
    rtslib_fb.MappedLUN(acl, 0, lun)
    rtslib_fb.NetworkPortal(tpg, "127.0.0.1", 3270, mode="create")
    tpg.enable = True
    targetctl("save", SAVE_FILE)
    other = saved_other()
    if not (other["target"] and other["storage_objects"] and other["target"][0]["tpgs"][0]["node_acls"]):
        sys.exit("the saved file does not hold the other target with its LUN and ACL: %s" % other)
    print(json.dumps(other, sort_keys=True))


def kept(expected_json):
    """The other target and its storage object are in the saved file exactly as targetcli saved them."""
    observed = saved_other()
    problems = [] if observed == json.loads(expected_json) else ["the other target's saved entry changed"]
    report(observed, problems)


if __name__ == "__main__":
    commands = {"setup": setup, "check": check, "restore": restore, "dbroot": dbroot,
                "targetcli-host": targetcli_host, "kept": kept}
    commands[sys.argv[1].replace("_", "-")](*sys.argv[2:])
