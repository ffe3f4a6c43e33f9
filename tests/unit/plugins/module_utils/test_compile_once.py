# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The collection's module_utils, imported from a zip laid out as Ansible sends a module, compile once each."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import zipfile

from ansible_collections.storage.vds.plugins.module_utils._compile_once import CompileOnceFinder

COLLECTION = pathlib.Path(__file__).resolve().parents[4]
PACKAGE = "ansible_collections.storage.vds.plugins.module_utils"

# Run in a new interpreter, with the zip first on sys.path as in a module's process. Counts every compile by file
# name: zipimport and the finder both call the builtin.
IMPORT_FROM_ZIP = """
import builtins, importlib, json, linecache, sys
sys.path.insert(0, sys.argv[1])
compiled = {}
real_compile = builtins.compile
def counting_compile(source, filename, *args, **kwargs):
    compiled[filename] = compiled.get(filename, 0) + 1
    return real_compile(source, filename, *args, **kwargs)
builtins.compile = counting_compile
package = "%s"
for name in ("_runner", "_vds.module_tasks", "_vds.execute", "_backends._simulator_changes"):
    importlib.import_module(package + "." + name)
try:
    importlib.import_module(package + "._vds.no_such_module")
    missing = "imported"
except ModuleNotFoundError as error:
    missing = str(error)
plan = sys.modules[package + "._vds.plan"]
print(json.dumps({"compiled": compiled, "plan_file": plan.__file__, "missing": missing,
                  "plan_line": linecache.getline(plan.__file__, 2, plan.__dict__).strip()}))
""" % PACKAGE


def module_zip(path: pathlib.Path) -> pathlib.Path:
    """The collection's module_utils in a zip as AnsiballZ builds one: sources, and an empty __init__.py for each
    package on the way."""
    archive = path / "payload.zip"
    with zipfile.ZipFile(archive, "w") as payload:
        for package in ("ansible_collections", "ansible_collections/storage", "ansible_collections/storage/vds",
                        "ansible_collections/storage/vds/plugins"):
            payload.writestr(package + "/__init__.py", b"")
        for source in sorted((COLLECTION / "plugins" / "module_utils").rglob("*.py")):
            relative = source.relative_to(COLLECTION).as_posix()
            payload.write(source, "ansible_collections/storage/vds/" + relative)
        for directory in sorted({p.parent for p in (COLLECTION / "plugins" / "module_utils").rglob("*.py")}):
            payload.writestr("ansible_collections/storage/vds/%s/__init__.py" % directory.relative_to(COLLECTION)
                             .as_posix(), b"")
    return archive


def test_each_module_utils_file_compiles_once_from_the_zip(tmp_path: pathlib.Path) -> None:
    archive = module_zip(tmp_path)
    run = subprocess.run([sys.executable, "-c", IMPORT_FROM_ZIP, str(archive)], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    ours = {name.rsplit("/plugins/module_utils/", 1)[1]: count for name, count in report["compiled"].items()
            if "/plugins/module_utils/" in name and not name.endswith("__init__.py")}
    # The runner, which modules import first, puts the finder in place: these two are imported before it is.
    for importer in ("_compile_once.py", "_runner.py"):
        ours.pop(importer)
    assert {"_vds/errors.py", "_vds/engine.py", "_vds/plan.py", "_vds/execute.py", "_backends/simulator.py",
            "_backends/_simulator_changes.py"} <= set(ours)
    assert ours == {name: 1 for name in ours}
    # Modules keep the zip's file names, and a traceback can show their lines.
    assert report["plan_file"] == str(archive / "ansible_collections/storage/vds/plugins/module_utils/_vds/plan.py")
    assert report["plan_line"] == "# SPDX-License-Identifier: GPL-3.0-or-later"
    assert report["missing"] == "No module named '%s._vds.no_such_module'" % PACKAGE


def test_the_finder_leaves_other_imports_to_the_usual_finders(tmp_path: pathlib.Path) -> None:
    finder = CompileOnceFinder()
    # Here the collection is imported from files, not from a zip.
    assert finder.find_spec(PACKAGE + "._vds.plan", [str(COLLECTION / "plugins/module_utils/_vds")]) is None
    assert finder.find_spec("json.decoder", [str(tmp_path)]) is None
    assert finder.find_spec(PACKAGE + "._vds", None) is None
