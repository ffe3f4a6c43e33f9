# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""Compile each of this collection's module_utils once when a module runs from Ansible's zip.

Ansible sends a module and its module_utils as source in a zip. Python's zipimport compiles such a module twice:
once to name its file while the import machinery builds the module's spec (zipimporter.get_filename), and again
to run it (CPython issue gh-141276, open). Compiling is most of what a run with nothing to change costs beyond
ansible.builtin.ping, so this finder, installed at import in front of Python's path-based finder, builds the
spec of a module_utils module found in the zip without compiling, and its loader compiles the source once. It
writes nothing. Anything not of this collection, not from a zip, or a package is left to the usual finders.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import typing as t
import zipimport

_PACKAGE = __name__.rpartition(".")[0] + "."


class _ZipSourceLoader:
    """Runs one module from the zip, with the source read while its spec was built."""

    def __init__(self, origin: str, source: bytes) -> None:
        self._origin = origin
        self._source = source

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: t.Any) -> None:
        code = compile(self._source, self._origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # pylint: disable=exec-used

    def get_source(self, fullname: str) -> str:
        """For tracebacks: Python's line cache asks the module's loader for its source."""
        return importlib.util.decode_source(self._source)


class CompileOnceFinder:
    """Finds this collection's module_utils modules in the zip the module runs from."""

    def find_spec(self, fullname: str, path: t.Sequence[str] | None,
                  target: t.Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PACKAGE) or not path:
            return None
        parent, _dot, name = fullname.rpartition(".")
        archive = getattr(getattr(sys.modules.get(parent), "__spec__", None), "loader", None)
        if not isinstance(archive, zipimport.zipimporter):
            return None
        origin = os.path.join(path[0], name + ".py")
        try:
            source = archive.get_data(origin)
        except OSError:
            return None  # a package, or not in the zip
        spec = importlib.machinery.ModuleSpec(fullname, _ZipSourceLoader(origin, source), origin=origin)
        spec.has_location = True  # sets __file__, as zipimport does
        return spec


def install() -> None:
    """Put the finder just before Python's path-based finder, which finds the zip's modules; once per process."""
    if any(isinstance(finder, CompileOnceFinder) for finder in sys.meta_path):
        return
    finders = sys.meta_path
    position = finders.index(importlib.machinery.PathFinder) if importlib.machinery.PathFinder in finders else len(finders)
    finders.insert(position, CompileOnceFinder())


install()
