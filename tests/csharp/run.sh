#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Compiles the VDS interop class the way Windows PowerShell's Add-Type would (C# 5, warnings are
# errors, no assembly beyond System) and runs the harness of managed fakes under mono.
#   tests/csharp/run.sh [python]    python reads the C# out of its module file (default: python3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
python=${1:-python3}

for tool in mcs mono; do
    if ! command -v "$tool" >/dev/null; then
        echo "ERROR: $tool is missing: install the Debian packages mono-mcs and mono-runtime" >&2
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
mcs -langversion:5 -warnaserror -r:"$work/StorageVds.Interop.dll" -out:"$work/Harness.exe" "$here/Harness.cs"
MONO_PATH=$work mono "$work/Harness.exe"
