#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Compiles the VDS interop class the way Windows PowerShell's Add-Type would (C# 5, warnings are
# errors, no assembly beyond System) and runs it under mono twice: against managed fakes (Harness.cs),
# then against native COM objects (native/: a fake VDS provider in C, and NativeHarness.cs); the
# scenarios of Scenarios.cs run in both, each against its own world of fakes. Then it
# proves the native harness can fail: variants of the class's source, each broken in one way a real
# host would punish (a slot, a layout, a marshalling attribute, a leak), must each fail it (exit code 1 with a FAIL line; not pass, not crash).
#   tests/csharp/run.sh [python]    python reads the C# out of its module file (default: python3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
python=${1:-python3}

for tool in mcs mono gcc; do
    if ! command -v "$tool" >/dev/null; then
        echo "ERROR: $tool is missing: install the Debian packages mono-mcs, mono-runtime and gcc" >&2
        exit 1
    fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The C# travels as a string constant in a Python module: read it without importing the module.
"$python" - "$root/plugins/module_utils/_backends/_vds_interop.py" "$work/Vds.cs" <<'PY'
import ast
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    tree = ast.parse(handle.read())
source = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
              and any(getattr(target, "id", "") == "CSHARP_SOURCE" for target in node.targets))
with open(sys.argv[2], "w", encoding="utf-8") as handle:
    handle.write(source)
PY

echo "mcs: $(mcs --version)"
mcs -langversion:5 -noconfig -r:System.dll -warn:4 -warnaserror -target:library -out:"$work/StorageVds.Interop.dll" "$work/Vds.cs"
mcs -langversion:5 -warnaserror -r:"$work/StorageVds.Interop.dll" -out:"$work/Harness.exe" "$here/Harness.cs" "$here/Scenarios.cs"
MONO_PATH=$work mono "$work/Harness.exe"

# ---- native COM objects ----

gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -fPIC -shared -fvisibility=hidden \
    -Wl,-soname,libfakevds.so -o "$work/libfakevds.so" "$here/native/fakevds.c" -lpthread
mcs -langversion:5 -warnaserror -r:"$work/StorageVds.Interop.dll" -out:"$work/NativeHarness.exe" \
    "$here/native/NativeHarness.cs" "$here/Scenarios.cs"

# The harness beside the interop assembly it tests; free() is observed through LD_PRELOAD.
native() { # folder holding StorageVds.Interop.dll
    [[ $1 == "$work" ]] || cp "$work/NativeHarness.exe" "$1/"
    (cd "$1" && LD_LIBRARY_PATH=$work LD_PRELOAD=$work/libfakevds.so mono "$1/NativeHarness.exe")
}

native "$work"

# ---- the native harness can fail: broken variants of the class ----

mkdir "$work/variants"
"$python" - "$work/Vds.cs" "$work/variants" <<'PY'
import os
import sys

with open(sys.argv[1], encoding="utf-8") as handle:
    source = handle.read()

add = "        [PreserveSig] int AddPortal(Guid portalId, out IVdsAsync pending);\n"
remove = "        [PreserveSig] int RemovePortal(Guid portalId, out IVdsAsync pending);\n"
asynchronous = 'InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("D5D23B6D-5A55-4492-9889-397A3C2D2DBC")'
variants = {
    # two methods of IVdsIscsiPortalGroup swapped: each lands in the other's vtable slot
    "portal-group-methods-swapped": (add + remove, remove + add),
    # VDS_IPADDRESS one field short: every later field and the portal structure shift
    "ipaddress-field-dropped": ("        public uint ulIpv6ScopeId;\n", ""),
    # without PreserveSig a failing Next throws, and the call that failed is lost
    "next-without-preservesig": ("[PreserveSig] int Next(", "int Next("),
    # an interface that is not IUnknown-based is dual: every slot shifts by four
    "async-not-iunknown": (asynchronous, 'Guid("D5D23B6D-5A55-4492-9889-397A3C2D2DBC")'),
    # two slots the class never calls swapped: only the comparison of the slots with the IDL sees it
    "unused-target-slots-swapped": ("        [PreserveSig] int SetFriendlyName();\n        [PreserveSig] int SetSharedSecret();\n",
                                    "        [PreserveSig] int SetSharedSecret();\n        [PreserveSig] int SetFriendlyName();\n"),
    # the bookkeeping itself: a string VDS allocated never freed, a reference never given back
    "strings-not-freed": ("                Marshal.FreeCoTaskMem(text);\n", ""),
    "references-not-released": ("                Marshal.ReleaseComObject(comObject);\n", ""),
}
for name, (old, new) in sorted(variants.items()):
    if source.count(old) != 1:
        sys.exit("variant %s: the text it changes is not in the source exactly once" % name)
    os.mkdir(os.path.join(sys.argv[2], name))
    with open(os.path.join(sys.argv[2], name, "Vds.cs"), "w", encoding="utf-8") as handle:
        handle.write(source.replace(old, new))
PY

broken=0
for variant in "$work"/variants/*/; do
    variant=${variant%/}
    name=${variant##*/}
    mcs -langversion:5 -noconfig -r:System.dll -warn:4 -warnaserror -target:library \
        -out:"$variant/StorageVds.Interop.dll" "$variant/Vds.cs" >/dev/null
    rc=0
    output=$(native "$variant" 2>&1) || rc=$?
    # the first failure, with the first line of its detail
    first=$(grep -m1 -A1 '^FAIL native' <<<"$output" | tr -s ' \n' ' ' || true)
    summary=$(grep -m1 '^native: ' <<<"$output" || true)
    if ((rc == 1)) && [[ -n $first ]]; then
        echo "variant $name: fails the native harness, as it must: ${first:0:240}"
        echo "    ${summary:-the run stopped before the scenarios}"
    elif ((rc == 0)); then
        echo "ERROR: variant $name passes the native harness" >&2
        broken=1
    else
        printf 'ERROR: variant %s crashed the native harness (exit code %s):\n%s\n' "$name" "$rc" "$output" >&2
        broken=1
    fi
done
exit "$broken"
