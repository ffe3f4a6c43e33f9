// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright (c) storage.vds contributors
//
// The scenarios of the VDS interop class that both harnesses run: Harness.cs against managed fakes,
// native/NativeHarness.cs against native COM objects. Each world has the same objects under the same
// labels (a software, a Fibre Channel and an iSCSI provider; subsystems plain, a "array-a" and b;
// portals p1..p6; targets t1 and t2; groups g1 and g2 of t1). After every facade call the world is
// audited; the COM calls are asserted in order.
using System;
using System.Collections;
using System.Collections.Generic;
using StorageVds.Interop;

namespace StorageVds.Shared
{
    public static class C
    {
        public const int S_OK = 0;
        public const int S_FALSE = 1;
        public const int E_NOTIMPL = unchecked((int)0x80004001);
        public const int RPC_E_DISCONNECTED = unchecked((int)0x80010108);
        public const int E_INVALIDARG = unchecked((int)0x80070057);
        public const int VDS_S_ALREADY_EXISTS = 0x00042714;
        public const int VDS_E_NOT_SUPPORTED = unchecked((int)0x80042400);
        public const int VDS_E_ANOTHER_CALL_IN_PROGRESS = unchecked((int)0x80042404);
        public const int VDS_E_OBJECT_NOT_FOUND = unchecked((int)0x80042405);
        public const int VDS_E_OPERATION_PENDING = unchecked((int)0x80042409);
        public const int VDS_E_OBJECT_DELETED = unchecked((int)0x8004240B);
        public const int VDS_E_OBJECT_EXISTS = unchecked((int)0x8004241D);
        public const int VDS_E_PROVIDER_CACHE_CORRUPT = unchecked((int)0x8004241F);
        public const int VDS_E_ACCESS_DENIED = unchecked((int)0x80042427);
        public const int VDS_E_ASYNC_OBJECT_FAILURE = unchecked((int)0x8004244E);

        // The return codes of the reference table, each of which must travel unchanged.
        public static readonly int[] TableCodes = {
            0x00000000, 0x00042714, 0x00042715,
            unchecked((int)0x80042400), unchecked((int)0x80042402), unchecked((int)0x80042404),
            unchecked((int)0x80042405), unchecked((int)0x80042409), unchecked((int)0x8004240B),
            unchecked((int)0x8004240C), unchecked((int)0x8004240D), unchecked((int)0x8004241D),
            unchecked((int)0x8004241F), unchecked((int)0x80042427), unchecked((int)0x80042431),
            unchecked((int)0x80042442), unchecked((int)0x8004244E), unchecked((int)0x8004245F),
            unchecked((int)0x80042463), unchecked((int)0x8004270C), unchecked((int)0x80042901),
            unchecked((int)0x8004290B), unchecked((int)0x80042A05), unchecked((int)0x80070057),
            unchecked((int)0x8007000E), unchecked((int)0x80070005),
        };
    }

    public class Failed : Exception
    {
        public Failed(string message) : base(message)
        {
        }
    }

    public delegate Hashtable FacadeCall();

    // What a scenario needs of a world of fake VDS objects, managed or native.
    public interface IFakeWorld
    {
        // A new world (the second provider "other" with subsystem "c" "array-c" when asked).
        void New(bool secondProvider);
        // A loader for a new session: one reference, the caller's.
        IVdsServiceLoader Loader();
        // The seam sessions give references back through (null: the COM runtime's).
        IComSeam Seam();
        Guid Id(string label);
        // A scripted answer: "label.Method" (or "label.Method.async.Result" for an operation's result)
        void Fault(string key, int hr, int times);
        // A QueryStatus answer of the operation started last, before its final one.
        void Progress(int hr, uint percent);
        void Cap(string target, int cap);
        // The COM calls since the last time, one "label Interface::Method" each.
        string[] TakeCalls();
        // A group's members or a target's groups, comma-separated labels.
        string List(string label);
        int Status(string portal);
        // Problems of the bookkeeping ("" when none); the objects in `held` are kept by the caller.
        string Audit(string held);
    }

    // The scenarios both harnesses run, each against its own world.
    public static class Scenarios
    {
        static IFakeWorld W;
        static int facadeCalls;
        static int comCalls;
        static int loaderCreations;

        // ---- assertions ----

        static void True(bool condition, string what)
        {
            if (!condition)
            {
                throw new Failed(what);
            }
        }

        static void Equal(object expected, object actual, string what)
        {
            if (!object.Equals(expected, actual))
            {
                throw new Failed(string.Format("{0}: expected <{1}>, got <{2}>", what, expected, actual));
            }
        }

        static Guid Id(string label)
        {
            return W.Id(label);
        }

        static string S(string label)
        {
            return Id(label).ToString("D");
        }

        // One facade call, then the audit: the references the caller may keep are named in `held`.
        static Hashtable Call(string what, string held, FacadeCall call)
        {
            Hashtable result = call();
            facadeCalls++;
            string problems = W.Audit(held);
            if (problems.Length > 0)
            {
                throw new Failed(what + ": the native audit found:\n    " + problems.TrimEnd().Replace("\n", "\n    "));
            }
            return result;
        }

        static Hashtable Ok(Hashtable result, string what)
        {
            if (!(bool)result["ok"])
            {
                throw new Failed(string.Format("{0}: failed with 0x{1:X8} at {2}: {3}", what, result["hresult"], result["call"], result["message"]));
            }
            return result;
        }

        static void Fails(Hashtable result, int code, string call, string what)
        {
            Equal(false, result["ok"], what + ": ok");
            Equal(string.Format("0x{0:X8}", code), string.Format("0x{0:X8}", result["hresult"]), what + ": hresult");
            Equal(call, result["call"], what + ": call");
        }

        // The exact COM calls since the last check, one "label Interface::Method" each.
        static void Calls(string what, params string[] expected)
        {
            string[] made = W.TakeCalls();
            comCalls += made.Length;
            int n = Math.Max(made.Length, expected.Length);
            for (int i = 0; i < n; i++)
            {
                string want = i < expected.Length ? expected[i] : "(nothing)";
                string got = i < made.Length ? made[i] : "(nothing)";
                if (want != got)
                {
                    throw new Failed(string.Format("{0}: COM call {1}: expected <{2}>, got <{3}>; all calls made:\n    {4}",
                                                   what, i + 1, want, got, string.Join("\n    ", made)));
                }
            }
        }

        static string[] Join(params object[] parts)
        {
            List<string> all = new List<string>();
            foreach (object part in parts)
            {
                if (part is string)
                {
                    all.Add((string)part);
                }
                else
                {
                    all.AddRange((string[])part);
                }
            }
            return all.ToArray();
        }

        const string NextCall = " IEnumVdsObject::Next";

        // A member read by ReadGroup: the enumeration's Next, then the portal's GetProperties.
        static string[] Members(string group, params string[] portals)
        {
            List<string> calls = new List<string>();
            calls.Add(group + " IVdsIscsiPortalGroup::GetProperties");
            calls.Add(group + " IVdsIscsiPortalGroup::QueryAssociatedPortals");
            foreach (string portal in portals)
            {
                calls.Add(group + ".members" + NextCall);
                calls.Add(portal + " IVdsIscsiPortal::GetProperties");
            }
            calls.Add(group + ".members" + NextCall);
            return calls.ToArray();
        }

        // Providers and subsystems as every walk visits them, up to the first iSCSI subsystem's reading.
        static readonly string[] ToIscsi = {
            "service IVdsService::QueryProviders",
            "service.providers" + NextCall,
            "service.providers" + NextCall,
            "fibre IVdsHwProviderType::GetProviderType",
            "service.providers" + NextCall,
            "iscsi IVdsHwProviderType::GetProviderType",
            "iscsi IVdsHwProvider::QuerySubSystems",
            "iscsi.subsystems" + NextCall,
            "iscsi.subsystems" + NextCall,
            "a IVdsSubSystem::GetProperties",
        };

        static string[] ReadArrayA()
        {
            List<string> calls = new List<string>();
            calls.Add("a IVdsSubSystemIscsi::QueryPortals");
            foreach (string portal in new string[] { "p1", "p2", "p3", "p4", "p5", "p6" })
            {
                calls.Add("a.portals" + NextCall);
                calls.Add(portal + " IVdsIscsiPortal::GetProperties");
            }
            calls.Add("a.portals" + NextCall);
            calls.Add("a IVdsSubSystemIscsi::QueryTargets");
            calls.Add("a.targets" + NextCall);
            calls.Add("t1 IVdsIscsiTarget::GetProperties");
            calls.Add("t1 IVdsIscsiTarget::QueryPortalGroups");
            calls.Add("t1.groups" + NextCall);
            calls.AddRange(Members("g1", "p1", "p2"));
            calls.Add("t1.groups" + NextCall);
            calls.AddRange(Members("g2", "p3"));
            calls.Add("t1.groups" + NextCall);
            calls.Add("a.targets" + NextCall);
            calls.Add("t2 IVdsIscsiTarget::GetProperties");
            calls.Add("t2 IVdsIscsiTarget::QueryPortalGroups");
            calls.Add("t2.groups" + NextCall);
            calls.Add("a.targets" + NextCall);
            return calls.ToArray();
        }

        static readonly string[] Open = {
            "loader IVdsServiceLoader::LoadService",
            "service IVdsService::WaitForServiceReady",
        };

        // A new world of native objects, and a facade whose sessions take their loader from it.
        static void World(bool secondProvider)
        {
            Vds.UseLoader(null, null);
            W.New(secondProvider);
            Vds.UseLoader(delegate
            {
                loaderCreations++;
                return W.Loader();
            }, W.Seam());
        }

        static string Handle(Hashtable started)
        {
            return (string)started["operation"];
        }

        // ---- scenarios ----

        static void Walk()
        {
            World(false);
            int created = loaderCreations;
            Hashtable snapshot = Ok(Call("Snapshot", "service", delegate { return Vds.Snapshot(null); }), "Snapshot");
            Equal(created + 1, loaderCreations, "the first facade call takes a loader from the factory");
            Calls("the walk", Join(Open, ToIscsi, ReadArrayA(),
                                   "iscsi.subsystems" + NextCall, "b IVdsSubSystem::GetProperties",
                                   "b IVdsSubSystemIscsi::QueryPortals", "b.portals" + NextCall,
                                   "b IVdsSubSystemIscsi::QueryTargets", "b.targets" + NextCall,
                                   "iscsi.subsystems" + NextCall, "service.providers" + NextCall));

            ArrayList names = (ArrayList)snapshot["names"];
            Equal("array-a,ident-b", string.Join(",", (string[])names.ToArray(typeof(string))), "iSCSI subsystems of iSCSI providers");
            ArrayList subsystems = (ArrayList)snapshot["subsystems"];
            Equal(2, subsystems.Count, "subsystems read");
            Hashtable a = (Hashtable)subsystems[0];
            Equal(S("a"), a["id"], "subsystem id (a GUID from the native structure)");
            ArrayList portals = (ArrayList)a["portals"];
            Equal(6, portals.Count, "portals");
            string[] expected = {
                "1 10.0.0.1 3260 1", "1 10.0.0.2 3261 4", "2 fd00::1 3260 2", "0 10.0.0.9 860 5", "3  0 9", "1 192.168.0.1 3260 1",
            };
            for (int i = 0; i < expected.Length; i++)
            {
                Hashtable portal = (Hashtable)portals[i];
                Equal(S("p" + (i + 1)), portal["id"], "portal id");
                Equal(expected[i], string.Format("{0} {1} {2} {3}", portal["address_type"], portal["ip"], portal["port"], portal["status"]),
                      "portal p" + (i + 1) + " (type, address, port, status)");
            }
            ArrayList targets = (ArrayList)a["targets"];
            Hashtable t1 = (Hashtable)targets[0];
            Equal("iqn.1991-05.com.microsoft:array-a-t1", t1["iqn"], "iqn");
            Equal("t1", t1["alias"], "alias");
            Equal("", ((Hashtable)targets[1])["alias"], "no alias");
            ArrayList groups = (ArrayList)t1["groups"];
            Hashtable g1 = (Hashtable)groups[0];
            Equal(S("g1"), g1["id"], "group id");
            Equal(1, g1["tag"], "tag");
            Equal(S("p1") + "," + S("p2"), string.Join(",", (string[])((ArrayList)g1["portals"]).ToArray(typeof(string))), "members");
            Equal(2, ((Hashtable)groups[1])["tag"], "second tag");

            Equal(0, Ok(Call("Close", "", delegate { return Vds.Close(); }), "Close")["released"], "nothing pending");
            Calls("Close");
            Ok(Call("Snapshot of one subsystem", "service", delegate { return Vds.Snapshot("ident-b"); }), "Snapshot");
            Equal(created + 2, loaderCreations, "a session after Close takes a new loader");
            Calls("a snapshot of one subsystem reads only that one", Join(Open, ToIscsi,
                  "iscsi.subsystems" + NextCall, "b IVdsSubSystem::GetProperties",
                  "b IVdsSubSystemIscsi::QueryPortals", "b.portals" + NextCall,
                  "b IVdsSubSystemIscsi::QueryTargets", "b.targets" + NextCall,
                  "iscsi.subsystems" + NextCall, "service.providers" + NextCall));
        }

        static void AddPortalWithProgress()
        {
            World(false);
            Hashtable started = Ok(Call("AddPortal", "service,g2.AddPortal.async",
                                        delegate { return Vds.AddPortal(S("g2"), S("p6")); }), "AddPortal");
            Calls("AddPortal", Join(Open, "service IVdsService::GetObject", "g2 IVdsIscsiPortalGroup::AddPortal"));
            Equal(0, started["hresult"], "call hresult");
            string handle = Handle(started);
            W.Progress(C.VDS_E_OPERATION_PENDING, 10);
            W.Progress(C.VDS_E_OPERATION_PENDING, 0xFFFFFFFF);
            string held = "service,g2.AddPortal.async";
            Hashtable status = Ok(Call("QueryStatus", held, delegate { return Vds.QueryStatus(handle); }), "QueryStatus");
            Equal(C.VDS_E_OPERATION_PENDING, status["hresult"], "pending");
            Equal(10L, status["percent"], "percent");
            Equal(4294967295L, Ok(Call("QueryStatus", held, delegate { return Vds.QueryStatus(handle); }), "QueryStatus")["percent"],
                  "0xFFFFFFFF tolerated");
            status = Ok(Call("QueryStatus", held, delegate { return Vds.QueryStatus(handle); }), "QueryStatus");
            Equal(0, status["hresult"], "done");
            Equal(100L, status["percent"], "100 when done");
            Hashtable outcome = Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Calls("QueryStatus thrice, then Wait", "g2.AddPortal.async IVdsAsync::QueryStatus",
                  "g2.AddPortal.async IVdsAsync::QueryStatus", "g2.AddPortal.async IVdsAsync::QueryStatus",
                  "g2.AddPortal.async IVdsAsync::Wait");
            Equal(0, outcome["call_hresult"], "Wait's own HRESULT");
            Equal(0, outcome["operation_hresult"], "the operation's HRESULT");
            True(!outcome.ContainsKey("group_id"), "no group for AddPortal");
            Equal("p3,p6", W.List("g2"), "the portal was added");
            Fails(Call("QueryStatus after Wait", "service", delegate { return Vds.QueryStatus(handle); }),
                  C.E_INVALIDARG, "operation handle", "a waited handle is gone");
            Calls("a handle that is gone reaches no object");
        }

        static void WaitKeepsTwoHresults()
        {
            World(false);
            W.Fault("g1.RemovePortal.async.Wait", C.VDS_E_ASYNC_OBJECT_FAILURE, -1);
            string handle = Handle(Ok(Call("RemovePortal", "service,g1.RemovePortal.async",
                                           delegate { return Vds.RemovePortal(S("g1"), S("p1")); }), "RemovePortal"));
            Hashtable outcome = Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal(C.VDS_E_ASYNC_OBJECT_FAILURE, outcome["call_hresult"], "Wait failed itself");
            Equal(0, outcome["operation_hresult"], "the operation's own result apart");
            Equal("p1,p2", W.List("g1"), "nothing changed");

            W.Fault("g2.AddPortal.async.Result", C.VDS_E_OBJECT_EXISTS, -1);
            handle = Handle(Ok(Call("AddPortal", "service,g2.AddPortal.async",
                                    delegate { return Vds.AddPortal(S("g2"), S("p1")); }), "AddPortal"));
            outcome = Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal(0, outcome["call_hresult"], "Wait succeeded");
            Equal(C.VDS_E_OBJECT_EXISTS, outcome["operation_hresult"], "the operation failed (wait phase)");
            Calls("RemovePortal and AddPortal, each waited on", Join(Open,
                  "service IVdsService::GetObject", "g1 IVdsIscsiPortalGroup::RemovePortal", "g1.RemovePortal.async IVdsAsync::Wait",
                  "service IVdsService::GetObject", "g2 IVdsIscsiPortalGroup::AddPortal", "g2.AddPortal.async IVdsAsync::Wait"));
        }

        static void CreatePortalGroupAndTheCap()
        {
            World(false);
            string handle = Handle(Ok(Call("CreatePortalGroup", "service,t2.CreatePortalGroup.async",
                                           delegate { return Vds.CreatePortalGroup(S("t2")); }), "CreatePortalGroup"));
            Hashtable created = Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal(0, created["operation_hresult"], "created");
            Equal(1, created["group_tag"], "tag assigned by the provider");
            Equal(S("t2.g1"), created["group_id"], "the new group's id");
            Calls("CreatePortalGroup, Wait, the group's properties", Join(Open,
                  "service IVdsService::GetObject", "t2 IVdsIscsiTarget::CreatePortalGroup",
                  "t2.CreatePortalGroup.async IVdsAsync::Wait", "t2.g1 IVdsIscsiPortalGroup::GetProperties"));

            W.Cap("t1", 2);
            handle = Handle(Ok(Call("CreatePortalGroup at the cap", "service,t1.CreatePortalGroup.async",
                                    delegate { return Vds.CreatePortalGroup(S("t1")); }), "CreatePortalGroup"));
            Hashtable substituted = Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal(C.VDS_S_ALREADY_EXISTS, substituted["operation_hresult"], "VDS_S_ALREADY_EXISTS is a success");
            Equal(1, substituted["group_tag"], "the existing group handed back");
            Equal(S("g1"), substituted["group_id"], "its id");
            Calls("at the cap", "service IVdsService::GetObject", "t1 IVdsIscsiTarget::CreatePortalGroup",
                  "t1.CreatePortalGroup.async IVdsAsync::Wait", "g1 IVdsIscsiPortalGroup::GetProperties");
            Equal("g1,g2", W.List("t1"), "no group was added");
        }

        static void DeleteThenTheDeletedGroup()
        {
            World(false);
            string g2 = S("g2");
            string handle = Handle(Ok(Call("Delete", "service,g2.Delete.async", delegate { return Vds.DeletePortalGroup(g2); }), "Delete"));
            Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal("g1", W.List("t1"), "the group was deleted");
            Fails(Call("AddPortal to the deleted group", "service", delegate { return Vds.AddPortal(g2, S("p6")); }),
                  C.VDS_E_OBJECT_DELETED, "IVdsService::GetObject", "a deleted group");
            Calls("Delete, then a lookup that finds nothing", Join(Open,
                  "service IVdsService::GetObject", "g2 IVdsIscsiPortalGroup::Delete", "g2.Delete.async IVdsAsync::Wait",
                  "service IVdsService::GetObject"));

            W.Fault("g1.AddPortal", C.VDS_E_OBJECT_DELETED, 1);
            Fails(Call("AddPortal answering VDS_E_OBJECT_DELETED", "service", delegate { return Vds.AddPortal(S("g1"), S("p6")); }),
                  C.VDS_E_OBJECT_DELETED, "IVdsIscsiPortalGroup::AddPortal", "deleted at the call");
            Calls("deleted at the call", "service IVdsService::GetObject", "g1 IVdsIscsiPortalGroup::AddPortal");
        }

        static void NotFound()
        {
            World(false);
            string nowhere = Guid.NewGuid().ToString("D");
            Fails(Call("AddPortal of an unknown portal", "service", delegate { return Vds.AddPortal(S("g1"), nowhere); }),
                  C.VDS_E_OBJECT_NOT_FOUND, "IVdsIscsiPortalGroup::AddPortal", "unknown portal passes through");
            Fails(Call("RemovePortal from an unknown group", "service", delegate { return Vds.RemovePortal(nowhere, S("p1")); }),
                  C.VDS_E_OBJECT_DELETED, "IVdsService::GetObject", "an unknown group is one deleted since the snapshot");
            Fails(Call("Delete of a portal's id", "service", delegate { return Vds.DeletePortalGroup(S("p1")); }),
                  C.VDS_E_OBJECT_DELETED, "IVdsService::GetObject", "an id of the wrong type");
            Calls("lookups", Join(Open, "service IVdsService::GetObject", "g1 IVdsIscsiPortalGroup::AddPortal",
                                  "service IVdsService::GetObject", "service IVdsService::GetObject"));
        }

        static void Busy()
        {
            World(false);
            W.Fault("g1.Delete", C.VDS_E_ANOTHER_CALL_IN_PROGRESS, 1);
            Fails(Call("Delete while busy", "service", delegate { return Vds.DeletePortalGroup(S("g1")); }),
                  C.VDS_E_ANOTHER_CALL_IN_PROGRESS, "IVdsIscsiPortalGroup::Delete", "busy at the call");
            W.Fault("g1.Delete.async.Result", C.VDS_E_ANOTHER_CALL_IN_PROGRESS, 1);
            string handle = Handle(Ok(Call("Delete", "service,g1.Delete.async", delegate { return Vds.DeletePortalGroup(S("g1")); }), "Delete"));
            Hashtable outcome = Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal(C.VDS_E_ANOTHER_CALL_IN_PROGRESS, outcome["operation_hresult"], "busy at the wait");
            Equal("g1,g2", W.List("t1"), "nothing deleted");
            Calls("busy twice", Join(Open, "service IVdsService::GetObject", "g1 IVdsIscsiPortalGroup::Delete",
                                     "service IVdsService::GetObject", "g1 IVdsIscsiPortalGroup::Delete", "g1.Delete.async IVdsAsync::Wait"));
            handle = Handle(Ok(Call("SetPortalStatus", "service,p2.SetStatus.async", delegate { return Vds.SetPortalStatus(S("p2"), 1); }), "SetStatus"));
            Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal(1, W.Status("p2"), "the status was set");
            Calls("SetStatus", "service IVdsService::GetObject", "p2 IVdsIscsiPortal::SetStatus", "p2.SetStatus.async IVdsAsync::Wait");
        }

        static void CacheCorrupt()
        {
            World(true);
            W.Fault("g1.AddPortal", C.VDS_E_PROVIDER_CACHE_CORRUPT, 1);
            Fails(Call("AddPortal with a corrupt cache", "service", delegate { return Vds.AddPortal(S("g1"), S("p6")); }),
                  C.VDS_E_PROVIDER_CACHE_CORRUPT, "IVdsIscsiPortalGroup::AddPortal", "cache corrupt");
            Calls("the failed call", Join(Open, "service IVdsService::GetObject", "g1 IVdsIscsiPortalGroup::AddPortal"));
            Hashtable recovered = Ok(Call("RecoverCache", "service", delegate { return Vds.RecoverCache("array-a"); }), "RecoverCache");
            Equal(1, recovered["providers"], "the owner only");
            Calls("Reenumerate then Refresh of the owning provider", Join(ToIscsi,
                  "iscsi.subsystems" + NextCall, "b IVdsSubSystem::GetProperties", "iscsi.subsystems" + NextCall,
                  "iscsi IVdsHwProvider::Reenumerate", "iscsi IVdsHwProvider::Refresh",
                  "service.providers" + NextCall, "other IVdsHwProviderType::GetProviderType", "other IVdsHwProvider::QuerySubSystems",
                  "other.subsystems" + NextCall, "c IVdsSubSystem::GetProperties", "other.subsystems" + NextCall,
                  "service.providers" + NextCall));
            string handle = Handle(Ok(Call("AddPortal again", "service,g1.AddPortal.async", delegate { return Vds.AddPortal(S("g1"), S("p6")); }), "retry"));
            Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
            Equal("p1,p2,p6", W.List("g1"), "the retry added the portal");
            Calls("the retry", "service IVdsService::GetObject", "g1 IVdsIscsiPortalGroup::AddPortal", "g1.AddPortal.async IVdsAsync::Wait");

            W.Fault("other.Reenumerate", C.VDS_E_PROVIDER_CACHE_CORRUPT, 1);
            Fails(Call("RecoverCache failing", "service", delegate { return Vds.RecoverCache("array-c"); }),
                  C.VDS_E_PROVIDER_CACHE_CORRUPT, "IVdsHwProvider::Reenumerate", "Reenumerate fails");
            string[] made = W.TakeCalls();
            True(Array.IndexOf(made, "other IVdsHwProvider::Reenumerate") >= 0, "Reenumerate was called");
            True(Array.IndexOf(made, "other IVdsHwProvider::Refresh") < 0, "no Refresh after a failed Reenumerate");
        }

        static void EveryCode()
        {
            foreach (int code in C.TableCodes)
            {
                string hex = string.Format("0x{0:X8}", code);
                World(false);
                W.Fault("g1.AddPortal", code, 1);
                Hashtable started = Call("AddPortal answering " + hex, code >= 0 ? "service,g1.AddPortal.async" : "service",
                                         delegate { return Vds.AddPortal(S("g1"), S("p6")); });
                if (code >= 0)
                {
                    Ok(started, "AddPortal answering " + hex);
                    Equal(code, started["hresult"], "call hresult " + hex + " kept");
                    string first = Handle(started);
                    Ok(Call("Wait", "service", delegate { return Vds.Wait(first); }), "Wait");
                }
                else
                {
                    Fails(started, code, "IVdsIscsiPortalGroup::AddPortal", "AddPortal answering " + hex);
                }

                W.Fault("g2.RemovePortal.async.Result", code, 1);
                W.Fault("g2.RemovePortal.async.Cancel", code, 1);
                string held = "service,g2.RemovePortal.async";
                string handle = Handle(Ok(Call("RemovePortal", held, delegate { return Vds.RemovePortal(S("g2"), S("p3")); }), "RemovePortal"));
                Equal(code, Ok(Call("Cancel", held, delegate { return Vds.Cancel(handle); }), "Cancel")["hresult"], "Cancel answering " + hex);
                Equal(code, Ok(Call("QueryStatus", held, delegate { return Vds.QueryStatus(handle); }), "QueryStatus")["hresult"],
                      "QueryStatus reporting " + hex);
                Hashtable outcome = Ok(Call("Wait", "service", delegate { return Vds.Wait(handle); }), "Wait");
                Equal(code, outcome["operation_hresult"], "operation result " + hex);
                Equal(0, outcome["call_hresult"], "Wait's own result with operation " + hex);

                W.Fault("service.GetObject", code, 1);
                Hashtable lookup = Call("GetObject answering " + hex, code >= 0 ? "service,t2.CreatePortalGroup.async" : "service",
                                        delegate { return Vds.CreatePortalGroup(S("t2")); });
                if (code < 0)
                {
                    int expected = code == C.VDS_E_OBJECT_NOT_FOUND ? C.VDS_E_OBJECT_DELETED : code;
                    Fails(lookup, expected, "IVdsService::GetObject", "GetObject answering " + hex);
                }
                else
                {
                    string created = Handle(Ok(lookup, "CreatePortalGroup"));
                    Ok(Call("Wait", "service", delegate { return Vds.Wait(created); }), "Wait");
                }
                List<string> steps = new List<string>(Open);
                steps.Add("service IVdsService::GetObject");
                steps.Add("g1 IVdsIscsiPortalGroup::AddPortal");
                if (code >= 0)
                {
                    steps.Add("g1.AddPortal.async IVdsAsync::Wait");
                }
                steps.AddRange(new string[] {
                    "service IVdsService::GetObject", "g2 IVdsIscsiPortalGroup::RemovePortal", "g2.RemovePortal.async IVdsAsync::Cancel",
                    "g2.RemovePortal.async IVdsAsync::QueryStatus", "g2.RemovePortal.async IVdsAsync::Wait", "service IVdsService::GetObject",
                });
                if (code >= 0)
                {
                    steps.AddRange(new string[] {
                        "t2 IVdsIscsiTarget::CreatePortalGroup", "t2.CreatePortalGroup.async IVdsAsync::Wait",
                        "t2.g1 IVdsIscsiPortalGroup::GetProperties",
                    });
                }
                Calls("every step with " + hex, steps.ToArray());
                Ok(Call("Close", "", delegate { return Vds.Close(); }), "Close");
                Calls("Close makes no COM call but releases");
            }
        }

        static void CancelKeepsTheOperation()
        {
            World(false);
            string held = "service,g2.AddPortal.async";
            string handle = Handle(Ok(Call("AddPortal", held, delegate { return Vds.AddPortal(S("g2"), S("p6")); }), "AddPortal"));
            Equal(C.VDS_E_NOT_SUPPORTED, Ok(Call("Cancel", held, delegate { return Vds.Cancel(handle); }), "Cancel")["hresult"],
                  "hardware providers may refuse");
            Ok(Call("Wait after Cancel", "service", delegate { return Vds.Wait(handle); }), "Wait after Cancel");
            Calls("Cancel, then Wait", Join(Open, "service IVdsService::GetObject", "g2 IVdsIscsiPortalGroup::AddPortal",
                                            "g2.AddPortal.async IVdsAsync::Cancel", "g2.AddPortal.async IVdsAsync::Wait"));
        }

        static void CloseReleasesPending()
        {
            World(false);
            Ok(Call("AddPortal", "service,g2.AddPortal.async", delegate { return Vds.AddPortal(S("g2"), S("p6")); }), "AddPortal");
            Ok(Call("SetStatus", "service,g2.AddPortal.async,p1.SetStatus.async", delegate { return Vds.SetPortalStatus(S("p1"), 4); }), "SetStatus");
            Equal(2, Ok(Call("Close", "", delegate { return Vds.Close(); }), "Close")["released"], "pending operations released");
            Equal(0, Ok(Call("Close again", "", delegate { return Vds.Close(); }), "Close again")["released"], "nothing left");
            Calls("no operation was waited on", Join(Open, "service IVdsService::GetObject", "g2 IVdsIscsiPortalGroup::AddPortal",
                                                     "service IVdsService::GetObject", "p1 IVdsIscsiPortal::SetStatus"));
        }

        static void SnapshotFailure(string key, int code, string call, string held, string last)
        {
            World(false);
            W.Fault(key, code, 1);
            Fails(Call("Snapshot with " + key + " failing", held, delegate { return Vds.Snapshot(null); }), code, call, key);
            // The walk stops at the call that failed: it is the last one made.
            string[] made = W.TakeCalls();
            comCalls++;
            Equal(last, made.Length == 0 ? "(no call)" : made[made.Length - 1], key + ": the last COM call");
        }

        static void SnapshotFailures()
        {
            SnapshotFailure("g2.members.Next", C.VDS_E_ANOTHER_CALL_IN_PROGRESS,
                            "IEnumVdsObject::Next after IVdsIscsiPortalGroup::QueryAssociatedPortals", "service",
                            "g2.members IEnumVdsObject::Next");
            SnapshotFailure("t1.GetProperties", C.VDS_E_OBJECT_DELETED, "IVdsIscsiTarget::GetProperties", "service",
                            "t1 IVdsIscsiTarget::GetProperties");
            SnapshotFailure("a.GetProperties", C.VDS_E_PROVIDER_CACHE_CORRUPT, "IVdsSubSystem::GetProperties", "service",
                            "a IVdsSubSystem::GetProperties");
            SnapshotFailure("service.QueryProviders", C.VDS_E_ACCESS_DENIED, "IVdsService::QueryProviders", "service",
                            "service IVdsService::QueryProviders");
            SnapshotFailure("g1.QueryAssociatedPortals", C.VDS_E_OBJECT_DELETED, "IVdsIscsiPortalGroup::QueryAssociatedPortals", "service",
                            "g1 IVdsIscsiPortalGroup::QueryAssociatedPortals");
            SnapshotFailure("service.WaitForServiceReady", C.VDS_E_NOT_SUPPORTED, "IVdsService::WaitForServiceReady", "",
                            "service IVdsService::WaitForServiceReady");
            SnapshotFailure("loader.LoadService", C.VDS_E_ACCESS_DENIED, "IVdsServiceLoader::LoadService", "",
                            "loader IVdsServiceLoader::LoadService");
        }

        static readonly string[] Names = {
            "the walk through the factory's loader, then one subsystem",
            "AddPortal, QueryStatus percent, Wait",
            "Wait keeps its own HRESULT apart from the operation's",
            "CreatePortalGroup, and the cap with VDS_S_ALREADY_EXISTS",
            "Delete, then the deleted group",
            "objects not found",
            "busy at the call and at the wait; SetStatus",
            "cache corrupt: Reenumerate, Refresh, retry",
            "every documented code at call and wait phase, Cancel, QueryStatus",
            "Cancel keeps the operation",
            "Close releases operations never waited on",
            "snapshot failures name the call and give everything back",
        };

        public static int Count
        {
            get { return Names.Length; }
        }

        public static string Name(int index)
        {
            return Names[index];
        }

        // Runs one scenario against the world and prints one line: whether it passed.
        public static bool RunOne(IFakeWorld world, string kind, int index)
        {
            Action[] bodies = {
                Walk, AddPortalWithProgress, WaitKeepsTwoHresults, CreatePortalGroupAndTheCap, DeleteThenTheDeletedGroup,
                NotFound, Busy, CacheCorrupt, EveryCode, CancelKeepsTheOperation, CloseReleasesPending, SnapshotFailures,
            };
            W = world;
            int calls = comCalls;
            int facades = facadeCalls;
            try
            {
                bodies[index]();
                Console.WriteLine("PASS {0}: {1} ({2} facade calls audited, {3} COM calls asserted)",
                                  kind, Names[index], facadeCalls - facades, comCalls - calls);
                return true;
            }
            catch (Exception e)
            {
                Console.WriteLine("FAIL {0}: {1}: {2}", kind, Names[index], e is Failed ? e.Message : e.ToString());
                return false;
            }
            finally
            {
                Vds.Close();
                Vds.UseLoader(null, null);
            }
        }

        // Runs every scenario against the world, prints one line each and a summary; the number failed.
        public static int Run(IFakeWorld world, string kind)
        {
            facadeCalls = 0;
            comCalls = 0;
            int failed = 0;
            for (int i = 0; i < Names.Length; i++)
            {
                failed += RunOne(world, kind, i) ? 0 : 1;
            }
            Console.WriteLine("{0}: {1} shared scenarios passed, {2} failed; {3} facade calls audited, {4} COM calls asserted in order",
                              kind, Names.Length - failed, failed, facadeCalls, comCalls);
            return failed;
        }
    }
}
