# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The C# class the ``vds`` backend compiles on the Windows host (``Add-Type``).

AnsiballZ packages only Python, so the C# travels as this string. It must compile under Windows
PowerShell 5.1 (C# 5, .NET Framework 4.5, where ``Add-Type`` fails on compiler warnings) and
PowerShell 7; CI compiles it with ``mcs -langversion:5 -warnaserror`` and runs it against managed
fakes (tests/csharp).

Every static method of ``StorageVds.Interop.Vds`` returns a Hashtable that the calling script turns
into JSON: ``ok`` true with the method's fields, or ``ok`` false with ``hresult``, ``call`` (the COM
method that failed) and ``message``. HRESULTs are signed 32-bit integers, object ids GUID strings.
"""

from __future__ import annotations

#: The type whose presence tells that the class is already compiled in the runspace.
FACADE_TYPE = "StorageVds.Interop.Vds"

CSHARP_SOURCE = r"""
// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright (c) storage.vds contributors
// VDS iSCSI hardware-provider interop for storage.vds (see the Windows page of the collection docs).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Threading;

namespace StorageVds.Interop
{
    public static class Codes
    {
        public const int S_OK = 0;
        public const int E_NOINTERFACE = unchecked((int)0x80004002);
        public const int E_POINTER = unchecked((int)0x80004003);
        public const int E_INVALIDARG = unchecked((int)0x80070057);
        public const int VDS_E_OBJECT_NOT_FOUND = unchecked((int)0x80042405);
        public const int VDS_E_OBJECT_DELETED = unchecked((int)0x8004240B);
        public const int VDS_E_OPERATION_PENDING = unchecked((int)0x80042409);

        public const uint VDS_QUERY_HARDWARE_PROVIDERS = 0x2;
        public const int VDS_HWT_ISCSI = 3;
        public const int VDS_OT_PORTAL = 36;
        public const int VDS_OT_TARGET = 37;
        public const int VDS_OT_PORTAL_GROUP = 38;
        public const int VDS_ASYNCOUT_CREATEPORTALGROUP = 63;
        public const int VDS_IPT_TEXT = 0;
        public const int VDS_IPT_IPV4 = 1;
        public const int VDS_IPT_IPV6 = 2;
    }

    // ---- structures (vds.h); layouts checked by the harness with Marshal.SizeOf/OffsetOf ----

    [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
    public struct VDS_IPADDRESS
    {
        public int type;
        public uint ipv4Address;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = 16)] public byte[] ipv6Address;
        public uint ulIpv6FlowInfo;
        public uint ulIpv6ScopeId;
        [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 257)] public string wszTextAddress;
        public uint ulPort;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct VDS_ISCSI_PORTAL_PROP
    {
        public Guid id;
        public VDS_IPADDRESS address;
        public int status;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct VDS_ISCSI_PORTALGROUP_PROP
    {
        public Guid id;
        public ushort tag;
    }

    // The strings are allocated by VDS: freed with CoTaskMemFree (IComSeam.TakeString).
    [StructLayout(LayoutKind.Sequential)]
    public struct VDS_ISCSI_TARGET_PROP
    {
        public Guid id;
        public IntPtr pwszIscsiName;
        public IntPtr pwszFriendlyName;
        public int bChapEnabled;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct VDS_SUB_SYSTEM_PROP
    {
        public Guid id;
        public IntPtr pwszFriendlyName;
        public IntPtr pwszIdentification;
        public uint ulFlags;
        public uint ulStripeSizeFlags;
        public int status;
        public int health;
        public short sNumberOfInternalBuses;
        public short sMaxNumberOfSlotsEachBus;
        public short sMaxNumberOfControllers;
        public short sRebuildPriority;
    }

    // type, then a union whose largest member (ULONGLONG + GUID) is 8-byte aligned: 32 bytes in all.
    // Only the IUnknown pointer of the CREATEPORTALGROUP member is read.
    [StructLayout(LayoutKind.Explicit, Size = 32)]
    public struct VDS_ASYNC_OUTPUT
    {
        [FieldOffset(0)] public int type;
        [FieldOffset(8)] public IntPtr pUnknown;
    }

    // ---- interfaces: exact IIDs and the full vtable order after IUnknown. Every method keeps its
    // HRESULT ([PreserveSig]) so that VDS_S_* successes are seen. Slots this class never calls are
    // declared without parameters: they only hold their place in the vtable. ----

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("E0393303-90D4-4A97-AB71-E9B671EE2729")]
    public interface IVdsServiceLoader
    {
        [PreserveSig] int LoadService([MarshalAs(UnmanagedType.LPWStr)] string machineName, out IVdsService service);
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("0818A8EF-9BA9-40D8-A6F9-E22833CC771E")]
    public interface IVdsService
    {
        [PreserveSig] int IsServiceReady();
        [PreserveSig] int WaitForServiceReady();
        [PreserveSig] int GetProperties();
        [PreserveSig] int QueryProviders(uint masks, out IEnumVdsObject providers);
        [PreserveSig] int QueryMaskedDisks();
        [PreserveSig] int QueryUnallocatedDisks();
        [PreserveSig] int GetObject(Guid objectId, int type, [MarshalAs(UnmanagedType.IUnknown)] out object unknown);
        [PreserveSig] int QueryDriveLetters();
        [PreserveSig] int QueryFileSystemTypes();
        [PreserveSig] int Reenumerate();
        [PreserveSig] int Refresh();
        [PreserveSig] int CleanupObsoleteMountPoints();
        [PreserveSig] int Advise();
        [PreserveSig] int Unadvise();
        [PreserveSig] int Reboot();
        [PreserveSig] int SetFlags();
        [PreserveSig] int ClearFlags();
    }

    // Next is always called with celt = 1, so the IUnknown array is a single out pointer. It stays a
    // raw pointer until the object is known to implement what the walk needs (IComSeam.TakeUnknown):
    // a runtime wrapper that no cast ever succeeds on is never released by mono.
    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("118610B7-8D94-4030-B5B8-500889788E4E")]
    public interface IEnumVdsObject
    {
        [PreserveSig] int Next(uint celt, out IntPtr item, out uint fetched);
        [PreserveSig] int Skip();
        [PreserveSig] int Reset();
        [PreserveSig] int Clone();
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("D5D23B6D-5A55-4492-9889-397A3C2D2DBC")]
    public interface IVdsAsync
    {
        [PreserveSig] int Cancel();
        [PreserveSig] int Wait(out int hrResult, out VDS_ASYNC_OUTPUT output);
        [PreserveSig] int QueryStatus(out int hrResult, out uint percentCompleted);
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("D99BDAAE-B13A-4178-9FDB-E27F16B4603E")]
    public interface IVdsHwProvider
    {
        [PreserveSig] int QuerySubSystems(out IEnumVdsObject subsystems);
        [PreserveSig] int Reenumerate();
        [PreserveSig] int Refresh();
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("3E0F5166-542D-4FC6-947A-012174240B7E")]
    public interface IVdsHwProviderType
    {
        [PreserveSig] int GetProviderType(out int type);
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("6FCEE2D3-6D90-4F91-80E2-A5C7CAACA9D8")]
    public interface IVdsSubSystem
    {
        [PreserveSig] int GetProperties(out VDS_SUB_SYSTEM_PROP properties);
        [PreserveSig] int GetProvider();
        [PreserveSig] int QueryControllers();
        [PreserveSig] int QueryLuns();
        [PreserveSig] int QueryDrives();
        [PreserveSig] int GetDrive();
        [PreserveSig] int Reenumerate();
        [PreserveSig] int SetControllerStatus();
        [PreserveSig] int CreateLun();
        [PreserveSig] int ReplaceDrive();
        [PreserveSig] int SetStatus();
        [PreserveSig] int QueryMaxLunCreateSize();
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("0027346F-40D0-4B45-8CEC-5906DC0380C8")]
    public interface IVdsSubSystemIscsi
    {
        [PreserveSig] int QueryTargets(out IEnumVdsObject targets);
        [PreserveSig] int QueryPortals(out IEnumVdsObject portals);
        [PreserveSig] int CreateTarget();
        [PreserveSig] int SetIpsecGroupPresharedKey();
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("AA8F5055-83E5-4BCC-AA73-19851A36A849")]
    public interface IVdsIscsiTarget
    {
        [PreserveSig] int GetProperties(out VDS_ISCSI_TARGET_PROP properties);
        [PreserveSig] int GetSubSystem();
        [PreserveSig] int QueryPortalGroups(out IEnumVdsObject groups);
        [PreserveSig] int QueryAssociatedLuns();
        [PreserveSig] int CreatePortalGroup(out IVdsAsync pending);
        [PreserveSig] int Delete();
        [PreserveSig] int SetFriendlyName();
        [PreserveSig] int SetSharedSecret();
        [PreserveSig] int RememberInitiatorSharedSecret();
        [PreserveSig] int GetConnectedInitiators();
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("FEF5F89D-A3DD-4B36-BF28-E7DDE045C593")]
    public interface IVdsIscsiPortalGroup
    {
        [PreserveSig] int GetProperties(out VDS_ISCSI_PORTALGROUP_PROP properties);
        [PreserveSig] int GetTarget();
        [PreserveSig] int QueryAssociatedPortals(out IEnumVdsObject portals);
        [PreserveSig] int AddPortal(Guid portalId, out IVdsAsync pending);
        [PreserveSig] int RemovePortal(Guid portalId, out IVdsAsync pending);
        [PreserveSig] int Delete(out IVdsAsync pending);
    }

    [ComImport, InterfaceType(ComInterfaceType.InterfaceIsIUnknown), Guid("7FA1499D-EC85-4A8A-A47B-FF69201FCD34")]
    public interface IVdsIscsiPortal
    {
        [PreserveSig] int GetProperties(out VDS_ISCSI_PORTAL_PROP properties);
        [PreserveSig] int GetSubSystem();
        [PreserveSig] int QueryAssociatedPortalGroups();
        [PreserveSig] int SetStatus(int status, out IVdsAsync pending);
        [PreserveSig] int SetIpsecTunnelAddress();
        [PreserveSig] int GetIpsecSecurity();
        [PreserveSig] int SetIpsecSecurity();
    }

    // ---- the release seam ----

    // The one place where COM references and memory allocated by VDS are given back. Managed fakes
    // are not COM objects (ReleaseComObject cannot see them), so the harness substitutes a seam that
    // counts what comes back.
    public interface IComSeam
    {
        void Release(object comObject);
        object TakeUnknown(IntPtr unknown, Guid[] required);
        string TakeString(IntPtr text);
    }

    public class ComSeam : IComSeam
    {
        // One ReleaseComObject per reference obtained: the runtime counts every time an interface
        // pointer is marshalled into the same wrapper, so releases must balance, not be final.
        public virtual void Release(object comObject)
        {
            if (comObject != null && Marshal.IsComObject(comObject))
            {
                Marshal.ReleaseComObject(comObject);
            }
        }

        // A raw IUnknown handed over (an enumeration's item, a structure's field): wrap it when it
        // implements every required interface, else return null; the raw reference is dropped either
        // way (the wrapper holds its own).
        public virtual object TakeUnknown(IntPtr unknown, Guid[] required)
        {
            if (unknown == IntPtr.Zero)
            {
                return null;
            }
            try
            {
                foreach (Guid iid in required)
                {
                    Guid wanted = iid;
                    IntPtr typed;
                    if (Marshal.QueryInterface(unknown, ref wanted, out typed) < 0 || typed == IntPtr.Zero)
                    {
                        return null;
                    }
                    Marshal.Release(typed);
                }
                return Marshal.GetObjectForIUnknown(unknown);
            }
            finally
            {
                Marshal.Release(unknown);
            }
        }

        public virtual string TakeString(IntPtr text)
        {
            if (text == IntPtr.Zero)
            {
                return "";
            }
            try
            {
                return Marshal.PtrToStringUni(text);
            }
            finally
            {
                Marshal.FreeCoTaskMem(text);
            }
        }
    }

    // ---- results ----

    // A failed call, carried to the facade boundary, where it becomes an ok=false result.
    public class VdsFailure : Exception
    {
        public readonly int Code;
        public readonly string Call;

        public VdsFailure(int code, string call, string message) : base(message)
        {
            Code = code;
            Call = call;
        }

        public VdsFailure(int code, string call) : this(code, call, call + " failed")
        {
        }
    }

    public delegate Hashtable Operation();

    public static class Results
    {
        public static void Check(int hr, string call)
        {
            if (hr < 0)
            {
                throw new VdsFailure(hr, call);
            }
        }

        public static Hashtable Guard(Operation operation)
        {
            try
            {
                Hashtable result = operation();
                result["ok"] = true;
                return result;
            }
            catch (VdsFailure e)
            {
                return Failure(e.Code, e.Call, e.Message);
            }
            catch (COMException e)
            {
                return Failure(e.ErrorCode, "", e.Message);
            }
            catch (InvalidCastException e)
            {
                return Failure(Codes.E_NOINTERFACE, "QueryInterface", e.Message);
            }
        }

        static Hashtable Failure(int code, string call, string message)
        {
            Hashtable result = new Hashtable();
            result["ok"] = false;
            result["hresult"] = code;
            result["call"] = call;
            result["message"] = message;
            return result;
        }
    }

    // ---- the walk and the operations of one VDS service connection ----

    public delegate void Visit(object item);
    public delegate void ProviderVisit(IVdsHwProvider provider);
    public delegate void SubsystemVisit(object subsystem, string name, Guid id);
    public delegate Hashtable ObjectAction(object unknown);

    public sealed class VdsSession
    {
        readonly IVdsService service;
        readonly IComSeam seam;
        // Operation handles live here between invocations (one session per runspace).
        readonly Dictionary<string, IVdsAsync> operations = new Dictionary<string, IVdsAsync>();

        VdsSession(IVdsService service, IComSeam seam)
        {
            this.service = service;
            this.seam = seam;
        }

        // LoadService(NULL): since Windows 8 / Server 2012 VDS is reachable only on the host itself.
        public static VdsSession Open(IVdsServiceLoader loader, IComSeam seam)
        {
            IVdsService service = null;
            try
            {
                Results.Check(loader.LoadService(null, out service), "IVdsServiceLoader::LoadService");
                Results.Check(service.WaitForServiceReady(), "IVdsService::WaitForServiceReady");
                VdsSession session = new VdsSession(service, seam);
                service = null;
                return session;
            }
            finally
            {
                seam.Release(service);
                seam.Release(loader);
            }
        }

        public int Close()
        {
            int released = 0;
            try
            {
                foreach (IVdsAsync pending in operations.Values)
                {
                    seam.Release(pending);
                    released++;
                }
                operations.Clear();
            }
            finally
            {
                seam.Release(service);
            }
            return released;
        }

        // -- enumeration --

        // Visits every object of an enumeration that implements the required interfaces; each object
        // is released after its visit and the enumeration at the end, whatever happens. An object
        // lacking one is skipped, or fails the walk when it must have them (mustHave names it).
        void Each(int hr, IEnumVdsObject items, string call, Type[] required, string mustHave, Visit visit)
        {
            Guid[] iids = new Guid[required.Length];
            for (int i = 0; i < required.Length; i++)
            {
                iids[i] = required[i].GUID;
            }
            try
            {
                Results.Check(hr, call);
                if (items == null)
                {
                    throw new VdsFailure(Codes.E_POINTER, call, call + " returned no enumeration");
                }
                while (true)
                {
                    IntPtr raw;
                    uint fetched;
                    int next = items.Next(1, out raw, out fetched);
                    object item = null;
                    try
                    {
                        Results.Check(next, "IEnumVdsObject::Next after " + call);
                        if (fetched == 0 || raw == IntPtr.Zero)
                        {
                            return;
                        }
                        item = seam.TakeUnknown(raw, iids);
                        if (item == null)
                        {
                            if (mustHave == null)
                            {
                                continue;
                            }
                            throw new VdsFailure(Codes.E_NOINTERFACE, "QueryInterface(" + mustHave + ")",
                                                 "the object does not implement " + mustHave);
                        }
                        visit(item);
                    }
                    finally
                    {
                        seam.Release(item);
                    }
                }
            }
            finally
            {
                seam.Release(items);
            }
        }

        static T As<T>(object unknown, string name) where T : class
        {
            T typed = unknown as T;
            if (typed == null)
            {
                throw new VdsFailure(Codes.E_NOINTERFACE, "QueryInterface(" + name + ")",
                                     "the object does not implement " + name);
            }
            return typed;
        }

        static string Id(Guid id)
        {
            return id.ToString("D");
        }

        static Guid ParseId(string text)
        {
            Guid id;
            if (text == null || !Guid.TryParse(text, out id))
            {
                throw new VdsFailure(Codes.E_INVALIDARG, "object id", "an object id must be a GUID");
            }
            return id;
        }

        void ForEachIscsiProvider(ProviderVisit visit)
        {
            IEnumVdsObject providers;
            int hr = service.QueryProviders(Codes.VDS_QUERY_HARDWARE_PROVIDERS, out providers);
            Type[] required = { typeof(IVdsHwProvider), typeof(IVdsHwProviderType) };
            Each(hr, providers, "IVdsService::QueryProviders", required, null, delegate(object unknown)
            {
                IVdsHwProvider provider = As<IVdsHwProvider>(unknown, "IVdsHwProvider");
                IVdsHwProviderType typed = As<IVdsHwProviderType>(unknown, "IVdsHwProviderType");
                int type;
                Results.Check(typed.GetProviderType(out type), "IVdsHwProviderType::GetProviderType");
                if (type == Codes.VDS_HWT_ISCSI)
                {
                    visit(provider);
                }
            });
        }

        void ForEachIscsiSubsystem(IVdsHwProvider provider, SubsystemVisit visit)
        {
            IEnumVdsObject subsystems;
            int hr = provider.QuerySubSystems(out subsystems);
            Type[] required = { typeof(IVdsSubSystem), typeof(IVdsSubSystemIscsi) };
            Each(hr, subsystems, "IVdsHwProvider::QuerySubSystems", required, null, delegate(object unknown)
            {
                IVdsSubSystem subsystem = As<IVdsSubSystem>(unknown, "IVdsSubSystem");
                VDS_SUB_SYSTEM_PROP properties;
                int propertiesHr = subsystem.GetProperties(out properties);
                string friendly = seam.TakeString(properties.pwszFriendlyName);
                string identification = seam.TakeString(properties.pwszIdentification);
                Results.Check(propertiesHr, "IVdsSubSystem::GetProperties");
                string name = friendly.Length > 0 ? friendly : identification.Length > 0 ? identification : Id(properties.id);
                visit(unknown, name, properties.id);
            });
        }

        // -- snapshot --

        // PowerShell passes $null to a string parameter as "": both mean every subsystem.
        public Hashtable Snapshot(string only)
        {
            ArrayList subsystems = new ArrayList();
            ArrayList names = new ArrayList();
            ForEachIscsiProvider(delegate(IVdsHwProvider provider)
            {
                ForEachIscsiSubsystem(provider, delegate(object unknown, string name, Guid id)
                {
                    names.Add(name);
                    if (string.IsNullOrEmpty(only) || only == name)
                    {
                        subsystems.Add(ReadSubsystem((IVdsSubSystemIscsi)unknown, name, id));
                    }
                });
            });
            Hashtable result = new Hashtable();
            result["subsystems"] = subsystems;
            result["names"] = names;
            return result;
        }

        Hashtable ReadSubsystem(IVdsSubSystemIscsi subsystem, string name, Guid id)
        {
            ArrayList portals = new ArrayList();
            IEnumVdsObject items;
            int hr = subsystem.QueryPortals(out items);
            Each(hr, items, "IVdsSubSystemIscsi::QueryPortals", new Type[] { typeof(IVdsIscsiPortal) }, "IVdsIscsiPortal",
                 delegate(object unknown)
            {
                portals.Add(ReadPortal(As<IVdsIscsiPortal>(unknown, "IVdsIscsiPortal")));
            });
            ArrayList targets = new ArrayList();
            hr = subsystem.QueryTargets(out items);
            Each(hr, items, "IVdsSubSystemIscsi::QueryTargets", new Type[] { typeof(IVdsIscsiTarget) }, "IVdsIscsiTarget",
                 delegate(object unknown)
            {
                targets.Add(ReadTarget(As<IVdsIscsiTarget>(unknown, "IVdsIscsiTarget")));
            });
            Hashtable result = new Hashtable();
            result["id"] = Id(id);
            result["name"] = name;
            result["portals"] = portals;
            result["targets"] = targets;
            return result;
        }

        static Hashtable ReadPortal(IVdsIscsiPortal portal)
        {
            VDS_ISCSI_PORTAL_PROP properties;
            Results.Check(portal.GetProperties(out properties), "IVdsIscsiPortal::GetProperties");
            VDS_IPADDRESS address = properties.address;
            Hashtable result = new Hashtable();
            result["id"] = Id(properties.id);
            result["address_type"] = address.type;
            result["ip"] = AddressText(address);
            result["port"] = (long)address.ulPort;
            // Statuses may grow: the number travels as is.
            result["status"] = properties.status;
            return result;
        }

        static string AddressText(VDS_IPADDRESS address)
        {
            switch (address.type)
            {
                case Codes.VDS_IPT_IPV4:
                    uint v = address.ipv4Address;
                    return string.Format("{0}.{1}.{2}.{3}", (v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF);
                case Codes.VDS_IPT_IPV6:
                    return address.ipv6Address == null || address.ipv6Address.Length != 16
                        ? "" : new IPAddress(address.ipv6Address).ToString();
                case Codes.VDS_IPT_TEXT:
                    return address.wszTextAddress == null ? "" : address.wszTextAddress.Trim();
                default:
                    return "";
            }
        }

        Hashtable ReadTarget(IVdsIscsiTarget target)
        {
            VDS_ISCSI_TARGET_PROP properties;
            int hr = target.GetProperties(out properties);
            string iqn = seam.TakeString(properties.pwszIscsiName);
            string alias = seam.TakeString(properties.pwszFriendlyName);
            Results.Check(hr, "IVdsIscsiTarget::GetProperties");
            ArrayList groups = new ArrayList();
            IEnumVdsObject items;
            hr = target.QueryPortalGroups(out items);
            Each(hr, items, "IVdsIscsiTarget::QueryPortalGroups", new Type[] { typeof(IVdsIscsiPortalGroup) }, "IVdsIscsiPortalGroup",
                 delegate(object unknown)
            {
                groups.Add(ReadGroup(As<IVdsIscsiPortalGroup>(unknown, "IVdsIscsiPortalGroup")));
            });
            Hashtable result = new Hashtable();
            result["id"] = Id(properties.id);
            result["iqn"] = iqn;
            result["alias"] = alias;
            result["groups"] = groups;
            return result;
        }

        Hashtable ReadGroup(IVdsIscsiPortalGroup group)
        {
            VDS_ISCSI_PORTALGROUP_PROP properties;
            Results.Check(group.GetProperties(out properties), "IVdsIscsiPortalGroup::GetProperties");
            ArrayList members = new ArrayList();
            IEnumVdsObject items;
            int hr = group.QueryAssociatedPortals(out items);
            Each(hr, items, "IVdsIscsiPortalGroup::QueryAssociatedPortals", new Type[] { typeof(IVdsIscsiPortal) }, "IVdsIscsiPortal",
                 delegate(object unknown)
            {
                VDS_ISCSI_PORTAL_PROP portal;
                Results.Check(As<IVdsIscsiPortal>(unknown, "IVdsIscsiPortal").GetProperties(out portal),
                              "IVdsIscsiPortal::GetProperties");
                members.Add(Id(portal.id));
            });
            Hashtable result = new Hashtable();
            result["id"] = Id(properties.id);
            result["tag"] = (int)properties.tag;
            result["portals"] = members;
            return result;
        }

        // -- operations --

        Hashtable OnObject(string id, int type, ObjectAction action)
        {
            Guid guid = ParseId(id);
            object unknown = null;
            try
            {
                int hr = service.GetObject(guid, type, out unknown);
                // Ids come from a snapshot of this session: one VDS no longer knows is an object deleted since.
                Results.Check(hr == Codes.VDS_E_OBJECT_NOT_FOUND ? Codes.VDS_E_OBJECT_DELETED : hr, "IVdsService::GetObject");
                return action(unknown);
            }
            finally
            {
                seam.Release(unknown);
            }
        }

        Hashtable Started(int hr, IVdsAsync pending, string call)
        {
            if (hr < 0)
            {
                seam.Release(pending);
                throw new VdsFailure(hr, call);
            }
            if (pending == null)
            {
                throw new VdsFailure(Codes.E_POINTER, call, call + " returned no IVdsAsync");
            }
            string handle = Guid.NewGuid().ToString("D");
            operations.Add(handle, pending);
            Hashtable result = new Hashtable();
            result["operation"] = handle;
            result["hresult"] = hr;
            return result;
        }

        public Hashtable AddPortal(string groupId, string portalId)
        {
            Guid portal = ParseId(portalId);
            return OnObject(groupId, Codes.VDS_OT_PORTAL_GROUP, delegate(object unknown)
            {
                IVdsAsync pending;
                int hr = As<IVdsIscsiPortalGroup>(unknown, "IVdsIscsiPortalGroup").AddPortal(portal, out pending);
                return Started(hr, pending, "IVdsIscsiPortalGroup::AddPortal");
            });
        }

        public Hashtable RemovePortal(string groupId, string portalId)
        {
            Guid portal = ParseId(portalId);
            return OnObject(groupId, Codes.VDS_OT_PORTAL_GROUP, delegate(object unknown)
            {
                IVdsAsync pending;
                int hr = As<IVdsIscsiPortalGroup>(unknown, "IVdsIscsiPortalGroup").RemovePortal(portal, out pending);
                return Started(hr, pending, "IVdsIscsiPortalGroup::RemovePortal");
            });
        }

        public Hashtable CreatePortalGroup(string targetId)
        {
            return OnObject(targetId, Codes.VDS_OT_TARGET, delegate(object unknown)
            {
                IVdsAsync pending;
                int hr = As<IVdsIscsiTarget>(unknown, "IVdsIscsiTarget").CreatePortalGroup(out pending);
                return Started(hr, pending, "IVdsIscsiTarget::CreatePortalGroup");
            });
        }

        public Hashtable DeletePortalGroup(string groupId)
        {
            return OnObject(groupId, Codes.VDS_OT_PORTAL_GROUP, delegate(object unknown)
            {
                IVdsAsync pending;
                int hr = As<IVdsIscsiPortalGroup>(unknown, "IVdsIscsiPortalGroup").Delete(out pending);
                return Started(hr, pending, "IVdsIscsiPortalGroup::Delete");
            });
        }

        public Hashtable SetPortalStatus(string portalId, int status)
        {
            return OnObject(portalId, Codes.VDS_OT_PORTAL, delegate(object unknown)
            {
                IVdsAsync pending;
                int hr = As<IVdsIscsiPortal>(unknown, "IVdsIscsiPortal").SetStatus(status, out pending);
                return Started(hr, pending, "IVdsIscsiPortal::SetStatus");
            });
        }

        IVdsAsync Pending(string handle)
        {
            IVdsAsync pending;
            if (handle == null || !operations.TryGetValue(handle, out pending))
            {
                throw new VdsFailure(Codes.E_INVALIDARG, "operation handle",
                                     "no pending operation has this handle in this session");
            }
            return pending;
        }

        public Hashtable QueryStatus(string handle)
        {
            int result;
            uint percent;
            Results.Check(Pending(handle).QueryStatus(out result, out percent), "IVdsAsync::QueryStatus");
            Hashtable status = new Hashtable();
            status["hresult"] = result;
            status["percent"] = (long)percent;
            return status;
        }

        // Both HRESULTs go back: Wait's own and the operation's. The handle ends here.
        public Hashtable Wait(string handle)
        {
            IVdsAsync pending = Pending(handle);
            operations.Remove(handle);
            try
            {
                int result;
                VDS_ASYNC_OUTPUT output;
                int hr = pending.Wait(out result, out output);
                Hashtable outcome = new Hashtable();
                outcome["call_hresult"] = hr;
                outcome["operation_hresult"] = result;
                // The output is defined only when Wait succeeded. CreatePortalGroup hands over a group
                // even when the provider substituted an existing one (VDS_S_ALREADY_EXISTS).
                if (hr >= 0 && output.type == Codes.VDS_ASYNCOUT_CREATEPORTALGROUP && output.pUnknown != IntPtr.Zero)
                {
                    object unknown = seam.TakeUnknown(output.pUnknown, new Guid[] { typeof(IVdsIscsiPortalGroup).GUID });
                    try
                    {
                        if (result >= 0)
                        {
                            VDS_ISCSI_PORTALGROUP_PROP group;
                            Results.Check(As<IVdsIscsiPortalGroup>(unknown, "IVdsIscsiPortalGroup").GetProperties(out group),
                                          "IVdsIscsiPortalGroup::GetProperties");
                            outcome["group_id"] = Id(group.id);
                            outcome["group_tag"] = (int)group.tag;
                        }
                    }
                    finally
                    {
                        seam.Release(unknown);
                    }
                }
                return outcome;
            }
            finally
            {
                seam.Release(pending);
            }
        }

        // Waits on the host as the engine's waiter does, so that one invocation starts an operation and
        // brings back its outcome: QueryStatus until the operation is done, sleeping a growing share of
        // the time waited (5 ms at first, 8 % of the time waited, at most 60 s), then Wait with both
        // HRESULTs; at the deadline Cancel, and the answer says how far it got and what Cancel answered.
        // The handle ends here either way.
        public Hashtable Finish(string handle, double timeoutSeconds)
        {
            IVdsAsync pending = Pending(handle);
            Stopwatch clock = Stopwatch.StartNew();
            while (true)
            {
                int result;
                uint percent;
                Results.Check(pending.QueryStatus(out result, out percent), "IVdsAsync::QueryStatus");
                if (result != Codes.VDS_E_OPERATION_PENDING)
                {
                    Hashtable outcome = Wait(handle);
                    outcome["finished"] = true;
                    outcome["percent"] = (long)percent;
                    return outcome;
                }
                double waited = clock.Elapsed.TotalSeconds;
                if (waited >= timeoutSeconds)
                {
                    operations.Remove(handle);
                    try
                    {
                        Hashtable expired = new Hashtable();
                        expired["finished"] = false;
                        expired["percent"] = (long)percent;
                        expired["cancel_hresult"] = pending.Cancel();
                        return expired;
                    }
                    finally
                    {
                        seam.Release(pending);
                    }
                }
                double pause = Math.Min(Math.Min(60.0, Math.Max(0.005, waited * 0.08)), timeoutSeconds - waited);
                Thread.Sleep(TimeSpan.FromSeconds(pause));
            }
        }

        // The handle stays: a cancel may come too late, and the operation may still be waited on.
        public Hashtable Cancel(string handle)
        {
            Hashtable result = new Hashtable();
            result["hresult"] = Pending(handle).Cancel();
            return result;
        }

        // Reenumerate then Refresh each iSCSI provider owning the subsystem (every one when none is named).
        public Hashtable RecoverCache(string only)
        {
            int recovered = 0;
            ArrayList names = new ArrayList();
            ForEachIscsiProvider(delegate(IVdsHwProvider provider)
            {
                bool owns = string.IsNullOrEmpty(only);
                ForEachIscsiSubsystem(provider, delegate(object unknown, string name, Guid id)
                {
                    names.Add(name);
                    owns = owns || only == name;
                });
                if (owns)
                {
                    Results.Check(provider.Reenumerate(), "IVdsHwProvider::Reenumerate");
                    Results.Check(provider.Refresh(), "IVdsHwProvider::Refresh");
                    recovered++;
                }
            });
            Hashtable result = new Hashtable();
            result["providers"] = recovered;
            result["names"] = names;
            return result;
        }
    }

    // ---- the facade PowerShell calls: one session per runspace, opened on first use ----

    // Where a session's service loader comes from: on Windows the VDS loader class (CoCreateInstance),
    // in tests a factory of fake providers. The loader returned holds one reference, the session's.
    public delegate IVdsServiceLoader LoaderFactory();

    public static class Vds
    {
        public const string CLSID_VdsLoader = "9C38ED61-D565-4728-AEEE-C80952F0ECDE";

        static VdsSession session;
        static LoaderFactory loaderFactory = CreateLoader;
        static IComSeam loaderSeam = new ComSeam();

        // The walk may start from any loader: Windows uses the real one, the harness a fake.
        public static Hashtable Connect(IVdsServiceLoader loader, IComSeam seam)
        {
            return Results.Guard(delegate
            {
                CloseSession();
                session = VdsSession.Open(loader, seam);
                return new Hashtable();
            });
        }

        // Sessions opened from now on take their loader from this factory (null: the VDS loader class)
        // and give references back through this seam (null: the COM runtime's).
        public static void UseLoader(LoaderFactory factory, IComSeam seam)
        {
            CloseSession();
            loaderFactory = factory != null ? factory : new LoaderFactory(CreateLoader);
            loaderSeam = seam != null ? seam : new ComSeam();
        }

        static VdsSession Current()
        {
            if (session == null)
            {
                session = VdsSession.Open(loaderFactory(), loaderSeam);
            }
            return session;
        }

        static IVdsServiceLoader CreateLoader()
        {
            try
            {
                Type type = Type.GetTypeFromCLSID(new Guid(CLSID_VdsLoader), true);
                return (IVdsServiceLoader)Activator.CreateInstance(type);
            }
            catch (Exception e)
            {
                // E_ACCESSDENIED arrives as UnauthorizedAccessException: keep its HRESULT whatever the type.
                throw new VdsFailure(e.HResult, "CoCreateInstance(CLSID_VdsLoader)", e.Message);
            }
        }

        static int CloseSession()
        {
            VdsSession closing = session;
            session = null;
            return closing == null ? 0 : closing.Close();
        }

        public static Hashtable Close()
        {
            return Results.Guard(delegate
            {
                Hashtable result = new Hashtable();
                result["released"] = CloseSession();
                return result;
            });
        }

        public static Hashtable Snapshot(string subsystem)
        {
            return Results.Guard(delegate { return Current().Snapshot(subsystem); });
        }

        public static Hashtable AddPortal(string groupId, string portalId)
        {
            return Results.Guard(delegate { return Current().AddPortal(groupId, portalId); });
        }

        public static Hashtable RemovePortal(string groupId, string portalId)
        {
            return Results.Guard(delegate { return Current().RemovePortal(groupId, portalId); });
        }

        public static Hashtable CreatePortalGroup(string targetId)
        {
            return Results.Guard(delegate { return Current().CreatePortalGroup(targetId); });
        }

        public static Hashtable DeletePortalGroup(string groupId)
        {
            return Results.Guard(delegate { return Current().DeletePortalGroup(groupId); });
        }

        public static Hashtable SetPortalStatus(string portalId, int status)
        {
            return Results.Guard(delegate { return Current().SetPortalStatus(portalId, status); });
        }

        public static Hashtable QueryStatus(string operation)
        {
            return Results.Guard(delegate { return Current().QueryStatus(operation); });
        }

        public static Hashtable Wait(string operation)
        {
            return Results.Guard(delegate { return Current().Wait(operation); });
        }

        // A start and its wait in one invocation: the answer of a start that failed is returned as it is,
        // else the operation is waited on (VdsSession.Finish).
        public static Hashtable Finish(Hashtable started, double timeoutSeconds)
        {
            if (started == null || !true.Equals(started["ok"]))
            {
                return started;
            }
            string handle = started["operation"] as string;
            return Results.Guard(delegate { return Current().Finish(handle, timeoutSeconds); });
        }

        public static Hashtable Cancel(string operation)
        {
            return Results.Guard(delegate { return Current().Cancel(operation); });
        }

        public static Hashtable RecoverCache(string subsystem)
        {
            return Results.Guard(delegate { return Current().RecoverCache(subsystem); });
        }
    }
}
"""
