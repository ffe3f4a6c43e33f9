# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The C# interop class against the VDS reference: every IID, every vtable slot in order.

A COM interface declared in C# is called by slot number: one missing or misplaced method makes
every later call land on the wrong function. The table below is the specification (from the SDK
IDL files vds.idl, vdscmmn.idl, vdshp.idl), copied here so that the test stands alone.
"""

from __future__ import annotations

import re

import pytest

from ansible_collections.storage.vds.plugins.module_utils._backends import vds
from ansible_collections.storage.vds.plugins.module_utils._backends._vds_interop import CSHARP_SOURCE, FACADE_TYPE

CLSID_VDS_LOADER = "9C38ED61-D565-4728-AEEE-C80952F0ECDE"

#: interface -> (IID, methods after IUnknown's three slots, in vtable order)
SPEC: dict[str, tuple[str, list[str]]] = {
    "IVdsServiceLoader": ("E0393303-90D4-4A97-AB71-E9B671EE2729", ["LoadService"]),
    "IVdsService": ("0818A8EF-9BA9-40D8-A6F9-E22833CC771E", [
        "IsServiceReady", "WaitForServiceReady", "GetProperties", "QueryProviders", "QueryMaskedDisks",
        "QueryUnallocatedDisks", "GetObject", "QueryDriveLetters", "QueryFileSystemTypes", "Reenumerate",
        "Refresh", "CleanupObsoleteMountPoints", "Advise", "Unadvise", "Reboot", "SetFlags", "ClearFlags"]),
    "IEnumVdsObject": ("118610B7-8D94-4030-B5B8-500889788E4E", ["Next", "Skip", "Reset", "Clone"]),
    "IVdsAsync": ("D5D23B6D-5A55-4492-9889-397A3C2D2DBC", ["Cancel", "Wait", "QueryStatus"]),
    "IVdsProvider": ("10C5E575-7984-4E81-A56B-431F5F92AE42", ["GetProperties"]),
    "IVdsHwProvider": ("D99BDAAE-B13A-4178-9FDB-E27F16B4603E", ["QuerySubSystems", "Reenumerate", "Refresh"]),
    "IVdsHwProviderType": ("3E0F5166-542D-4FC6-947A-012174240B7E", ["GetProviderType"]),
    "IVdsSubSystem": ("6FCEE2D3-6D90-4F91-80E2-A5C7CAACA9D8", [
        "GetProperties", "GetProvider", "QueryControllers", "QueryLuns", "QueryDrives", "GetDrive", "Reenumerate",
        "SetControllerStatus", "CreateLun", "ReplaceDrive", "SetStatus", "QueryMaxLunCreateSize"]),
    "IVdsSubSystemIscsi": ("0027346F-40D0-4B45-8CEC-5906DC0380C8", [
        "QueryTargets", "QueryPortals", "CreateTarget", "SetIpsecGroupPresharedKey"]),
    "IVdsIscsiTarget": ("AA8F5055-83E5-4BCC-AA73-19851A36A849", [
        "GetProperties", "GetSubSystem", "QueryPortalGroups", "QueryAssociatedLuns", "CreatePortalGroup", "Delete",
        "SetFriendlyName", "SetSharedSecret", "RememberInitiatorSharedSecret", "GetConnectedInitiators"]),
    "IVdsIscsiPortalGroup": ("FEF5F89D-A3DD-4B36-BF28-E7DDE045C593", [
        "GetProperties", "GetTarget", "QueryAssociatedPortals", "AddPortal", "RemovePortal", "Delete"]),
    "IVdsIscsiPortal": ("7FA1499D-EC85-4A8A-A47B-FF69201FCD34", [
        "GetProperties", "GetSubSystem", "QueryAssociatedPortalGroups", "SetStatus", "SetIpsecTunnelAddress",
        "GetIpsecSecurity", "SetIpsecSecurity"]),
}

#: Interfaces of the table the class has no use for (it never asks a provider for its properties).
UNUSED = {"IVdsProvider"}

_INTERFACE = re.compile(r"\[ComImport, InterfaceType\(ComInterfaceType\.InterfaceIsIUnknown\), "
                        r"Guid\(\"([0-9A-F-]{36})\"\)\]\s*public interface (\w+)\s*\{(.*?)\n    \}", re.S)
_DECLARATION = re.compile(r"^\s*(.*?)\b(\w+)\((.*)\);\s*$", re.M)


def declared() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """interface -> (IID, [(attributes and return type, method name)]) as the C# declares them."""
    found = {}
    for iid, name, body in _INTERFACE.findall(CSHARP_SOURCE):
        assert name not in found, "%s is declared twice" % name
        found[name] = (iid, [(prefix.strip(), method) for prefix, method, _args in _DECLARATION.findall(body)])
    return found


def test_every_interface_of_the_table_is_declared_once():
    assert sorted(declared()) == sorted(set(SPEC) - UNUSED)
    # Nothing declared as an interface escaped the pattern above.
    assert CSHARP_SOURCE.count("public interface ") == len(SPEC) - len(UNUSED) + 1  # + IComSeam


@pytest.mark.parametrize("interface", sorted(set(SPEC) - UNUSED))
def test_iid_and_vtable_order(interface):
    iid, methods = declared()[interface]
    assert iid == SPEC[interface][0]
    assert [name for _prefix, name in methods] == SPEC[interface][1]


@pytest.mark.parametrize("interface", sorted(set(SPEC) - UNUSED))
def test_every_slot_keeps_its_hresult(interface):
    # Without PreserveSig the runtime would throw on failures and drop VDS_S_* success codes.
    for prefix, name in declared()[interface][1]:
        assert prefix == "[PreserveSig] int", "%s::%s is declared as %r" % (interface, name, prefix)


def test_loader_clsid():
    assert 'CLSID_VdsLoader = "%s"' % CLSID_VDS_LOADER in CSHARP_SOURCE


def test_every_script_calls_a_facade_method_with_its_parameters():
    facade = CSHARP_SOURCE[CSHARP_SOURCE.index("public static class Vds"):]
    methods = dict((name, [arg.split()[-1] for arg in args.split(",") if arg.strip()])
                   for name, args in re.findall(r"public static Hashtable (\w+)\(([^)]*)\)", facade))
    called = set()
    for name, script in vds.SCRIPTS.items():
        call = re.search(r"\[%s\]::(\w+)\(([^()]*)\)" % re.escape(FACADE_TYPE), script)
        assert call and call.group(1) == name
        arguments = [arg.strip() for arg in call.group(2).split(",") if arg.strip()]
        assert len(arguments) == len(methods[name]), name
        declared_parameters = re.findall(r"\$(\w+)", script.split("\n", 1)[0])
        if "::Finish(" in script:
            # A start waited on by the class in the same invocation: Finish(<the start>, $Timeout).
            assert "[%s]::Finish(%s, $Timeout)" % (FACADE_TYPE, call.group(0)) in script
            assert declared_parameters.pop() == "Timeout"
            assert "[double]$Timeout" in script.split("\n", 1)[0]
            called.add("Finish")
        assert ["$" + parameter for parameter in declared_parameters] == arguments
        called.add(name)
    # Connect is the harness's way in; QueryStatus, Wait and Cancel are what Finish does on the host, and the
    # harness's way to each of them alone.
    assert called == set(methods) - {"Connect", "QueryStatus", "Wait", "Cancel"}
    assert {"AddPortal", "RemovePortal", "CreatePortalGroup", "DeletePortalGroup", "SetPortalStatus"} == {
        name for name, script in vds.SCRIPTS.items() if "::Finish(" in script}


def test_scripts_are_constant_text():
    # Values reach the host only as parameters: no script may be built from anything else.
    for script in list(vds.SCRIPTS.values()) + list(vds.FIRST_SCRIPTS.values()):
        assert script.startswith("param(")
        assert "$ErrorActionPreference = 'Stop'" in script
    for name, script in vds.FIRST_SCRIPTS.items():
        # The same call, after the bootstrap; the source is one more parameter.
        assert script.replace(vds.BOOTSTRAP, "").replace(", [string]$Source)", ")").replace(
            "([string]$Source)", "()") == vds.SCRIPTS[name]
    assert "$Source" in vds.BOOTSTRAP and "CSHARP" not in vds.BOOTSTRAP
    assert vds.BOOTSTRAP.startswith("if (-not ('%s' -as [type])) {" % FACADE_TYPE)  # once per runspace
