// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright (c) storage.vds contributors
//
// Runs the VDS interop class (compiled from plugins/module_utils/_backends/_vds_interop.py) against
// managed fakes of the VDS objects: the walk, the release discipline, the two HRESULTs of Wait and
// the mapping of every return code. Managed fakes are not COM objects, so what this proves is the
// class's own logic and bookkeeping (which calls, in which order, every reference and string given
// back exactly once); COM marshalling is checked by native/NativeHarness.cs, which runs the shared
// scenarios of Scenarios.cs (run here too, against these fakes) against native COM objects.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using StorageVds.Interop;
using StorageVds.Shared;

namespace StorageVds.Harness
{
    // ---- the world of fakes: every object handed out is counted, every release too ----

    class World
    {
        public readonly List<Fake> Objects = new List<Fake>();
        public readonly Dictionary<long, Fake> Handles = new Dictionary<long, Fake>();
        // Strings allocated for VDS output and not freed yet (freed memory may be handed out again).
        public readonly HashSet<long> LiveStrings = new HashSet<long>();
        public readonly List<string> Calls = new List<string>();
        public readonly Dictionary<string, int> Faults = new Dictionary<string, int>();
        // How many more calls a fault answers (absent: every call).
        public readonly Dictionary<string, int> FaultTimes = new Dictionary<string, int>();
        // The calls again, as "label Interface::Method" (the shared scenarios' form).
        public readonly List<string> ComCalls = new List<string>();
        public readonly List<string> Problems = new List<string>();
        public bool LastCallFaulted;
        public FakeAsync Last;
        public int DoubleFrees;

        public T Add<T>(T fake) where T : Fake
        {
            fake.World = this;
            Objects.Add(fake);
            return fake;
        }

        public T Out<T>(T fake) where T : Fake
        {
            if (fake != null)
            {
                fake.HandedOut++;
            }
            return fake;
        }

        // A raw interface pointer handed over: a handle the counting seam maps back to the fake.
        public IntPtr Raw(Fake fake)
        {
            long handle = Handles.Count + 1000;
            Handles[handle] = Out(fake);
            return new IntPtr(handle);
        }

        public IntPtr Str(string text)
        {
            if (text == null)
            {
                return IntPtr.Zero;
            }
            IntPtr p = Marshal.StringToCoTaskMemUni(text);
            LiveStrings.Add(p.ToInt64());
            return p;
        }

        // A call is recorded; a fault set for it (by "Class.Method" or "label.Method") answers instead.
        public int Call(Fake fake, string method)
        {
            string key = fake.Label + "." + method;
            Calls.Add(key);
            // "QueryProviders2" is QueryProviders with its mask.
            string name = method.TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9');
            string declaring = "?";
            foreach (Type type in fake.GetType().GetInterfaces())
            {
                if (declaring == "?" && type.GetMethod(name) != null)
                {
                    declaring = type.Name;
                }
            }
            ComCalls.Add(fake.Label + " " + declaring + "::" + name);
            if (fake.Deleted)
            {
                Problems.Add(fake.Label + ": call on a deleted object: " + declaring + "::" + name);
            }
            int code;
            LastCallFaulted = Fault(key, out code) || Fault(fake.Label + "." + name, out code) ||
                              Fault(fake.GetType().Name + "." + method, out code);
            return LastCallFaulted ? code : C.S_OK;
        }

        bool Fault(string key, out int code)
        {
            int times;
            if (!Faults.TryGetValue(key, out code) || (FaultTimes.TryGetValue(key, out times) && times == 0))
            {
                return false;
            }
            if (FaultTimes.TryGetValue(key, out times))
            {
                FaultTimes[key] = times - 1;
            }
            return true;
        }

        public string Unbalanced()
        {
            List<string> problems = new List<string>();
            foreach (Fake fake in Objects)
            {
                if (fake.HandedOut != fake.Released)
                {
                    problems.Add(string.Format("{0}: handed out {1}, released {2}", fake.Label, fake.HandedOut, fake.Released));
                }
            }
            if (LiveStrings.Count > 0)
            {
                problems.Add(LiveStrings.Count + " strings allocated by VDS not freed");
            }
            if (DoubleFrees > 0)
            {
                problems.Add(DoubleFrees + " frees of strings not allocated or already freed");
            }
            return problems.Count == 0 ? null : string.Join("; ", problems.ToArray());
        }
    }

    class CountingSeam : ComSeam
    {
        readonly World world;

        public CountingSeam(World world)
        {
            this.world = world;
        }

        public override void Release(object comObject)
        {
            Fake fake = comObject as Fake;
            if (fake != null)
            {
                fake.Released++;
            }
        }

        // The raw reference becomes the wrapper's; one lacking an interface is released at once.
        public override object TakeUnknown(IntPtr unknown, Guid[] required)
        {
            Fake fake;
            if (!world.Handles.TryGetValue(unknown.ToInt64(), out fake))
            {
                return null;
            }
            foreach (Guid iid in required)
            {
                bool found = false;
                foreach (Type type in fake.GetType().GetInterfaces())
                {
                    found = found || type.GUID == iid;
                }
                if (!found)
                {
                    fake.Released++;
                    return null;
                }
            }
            return fake;
        }

        public override string TakeString(IntPtr text)
        {
            if (text != IntPtr.Zero && !world.LiveStrings.Remove(text.ToInt64()))
            {
                world.DoubleFrees++;
            }
            return base.TakeString(text);
        }
    }

    abstract class Fake
    {
        public World World;
        public string Label;
        public Guid Id = Guid.NewGuid();
        public int HandedOut;
        public int Released;
        public bool Deleted;
        public int ObjectType;
    }

    class FakeEnum : Fake, IEnumVdsObject
    {
        readonly List<Fake> items;
        int next;

        public FakeEnum(List<Fake> items, string label)
        {
            this.items = items;
            Label = label;
        }

        public int Next(uint celt, out IntPtr item, out uint fetched)
        {
            int hr = World.Call(this, "Next");
            if (hr < 0)
            {
                item = IntPtr.Zero;
                fetched = 0;
                return hr;
            }
            if (next >= items.Count)
            {
                item = IntPtr.Zero;
                fetched = 0;
                return C.S_FALSE;
            }
            item = World.Raw(items[next++]);
            fetched = 1;
            return C.S_OK;
        }

        public int Skip() { return C.E_NOTIMPL; }
        public int Reset() { return C.E_NOTIMPL; }
        public int Clone() { return C.E_NOTIMPL; }
    }

    class FakeLoader : Fake, IVdsServiceLoader
    {
        public FakeService Service;
        public string Machine = "(not called)";

        public int LoadService(string machineName, out IVdsService service)
        {
            Machine = machineName;
            int hr = World.Call(this, "LoadService");
            service = hr < 0 ? null : World.Out(Service);
            return hr;
        }
    }

    class FakeService : Fake, IVdsService
    {
        public readonly List<Fake> Providers = new List<Fake>();

        public int IsServiceReady() { return C.E_NOTIMPL; }
        public int WaitForServiceReady() { return World.Call(this, "WaitForServiceReady"); }
        public int GetProperties() { return C.E_NOTIMPL; }

        public int QueryProviders(uint masks, out IEnumVdsObject providers)
        {
            int hr = World.Call(this, "QueryProviders" + masks);
            providers = hr < 0 ? null : World.Out(World.Add(new FakeEnum(Providers, "service.providers")));
            return hr;
        }

        public int QueryMaskedDisks() { return C.E_NOTIMPL; }
        public int QueryUnallocatedDisks() { return C.E_NOTIMPL; }

        public int GetObject(Guid objectId, int type, out object unknown)
        {
            int hr = World.Call(this, "GetObject");
            unknown = null;
            if (hr < 0)
            {
                return hr;
            }
            foreach (Fake fake in World.Objects)
            {
                if (fake.Id == objectId && fake.ObjectType == type && !fake.Deleted)
                {
                    unknown = World.Out(fake);
                    return hr;
                }
            }
            return C.VDS_E_OBJECT_NOT_FOUND;
        }

        public int QueryDriveLetters() { return C.E_NOTIMPL; }
        public int QueryFileSystemTypes() { return C.E_NOTIMPL; }
        public int Reenumerate() { return C.E_NOTIMPL; }
        public int Refresh() { return C.E_NOTIMPL; }
        public int CleanupObsoleteMountPoints() { return C.E_NOTIMPL; }
        public int Advise() { return C.E_NOTIMPL; }
        public int Unadvise() { return C.E_NOTIMPL; }
        public int Reboot() { return C.E_NOTIMPL; }
        public int SetFlags() { return C.E_NOTIMPL; }
        public int ClearFlags() { return C.E_NOTIMPL; }
    }

    // A software provider: in the list, but neither a hardware provider nor typed.
    class FakeOtherProvider : Fake
    {
    }

    class FakeProvider : Fake, IVdsHwProvider, IVdsHwProviderType
    {
        public int Type = 3;
        public readonly List<Fake> Subsystems = new List<Fake>();

        public int QuerySubSystems(out IEnumVdsObject subsystems)
        {
            int hr = World.Call(this, "QuerySubSystems");
            subsystems = hr < 0 ? null : World.Out(World.Add(new FakeEnum(Subsystems, Label + ".subsystems")));
            return hr;
        }

        public int Reenumerate() { return World.Call(this, "Reenumerate"); }
        public int Refresh() { return World.Call(this, "Refresh"); }

        public int GetProviderType(out int type)
        {
            type = Type;
            return World.Call(this, "GetProviderType");
        }
    }

    class FakePlainSubsystem : Fake, IVdsSubSystem
    {
        public string Name;

        public int GetProperties(out VDS_SUB_SYSTEM_PROP properties)
        {
            int hr = World.Call(this, "GetProperties");
            properties = new VDS_SUB_SYSTEM_PROP();
            properties.id = Id;
            properties.pwszFriendlyName = World.Str(Name);
            properties.pwszIdentification = World.Str("ident-" + Label);
            return hr;
        }

        public int GetProvider() { return C.E_NOTIMPL; }
        public int QueryControllers() { return C.E_NOTIMPL; }
        public int QueryLuns() { return C.E_NOTIMPL; }
        public int QueryDrives() { return C.E_NOTIMPL; }
        public int GetDrive() { return C.E_NOTIMPL; }
        public int Reenumerate() { return C.E_NOTIMPL; }
        public int SetControllerStatus() { return C.E_NOTIMPL; }
        public int CreateLun() { return C.E_NOTIMPL; }
        public int ReplaceDrive() { return C.E_NOTIMPL; }
        public int SetStatus() { return C.E_NOTIMPL; }
        public int QueryMaxLunCreateSize() { return C.E_NOTIMPL; }
    }

    class FakeSubsystem : FakePlainSubsystem, IVdsSubSystemIscsi
    {
        public readonly List<Fake> Targets = new List<Fake>();
        public readonly List<Fake> Portals = new List<Fake>();

        public int QueryTargets(out IEnumVdsObject targets)
        {
            int hr = World.Call(this, "QueryTargets");
            targets = hr < 0 ? null : World.Out(World.Add(new FakeEnum(Targets, Label + ".targets")));
            return hr;
        }

        public int QueryPortals(out IEnumVdsObject portals)
        {
            int hr = World.Call(this, "QueryPortals");
            portals = hr < 0 ? null : World.Out(World.Add(new FakeEnum(Portals, Label + ".portals")));
            return hr;
        }

        public int CreateTarget() { return C.E_NOTIMPL; }
        public int SetIpsecGroupPresharedKey() { return C.E_NOTIMPL; }
    }

    class FakePortal : Fake, IVdsIscsiPortal
    {
        public VDS_IPADDRESS Address;
        public int Status = 1;

        public FakePortal()
        {
            ObjectType = Codes.VDS_OT_PORTAL;
        }

        public int GetProperties(out VDS_ISCSI_PORTAL_PROP properties)
        {
            properties = new VDS_ISCSI_PORTAL_PROP();
            properties.id = Id;
            properties.address = Address;
            properties.status = Status;
            return World.Call(this, "GetProperties");
        }

        public int GetSubSystem() { return C.E_NOTIMPL; }
        public int QueryAssociatedPortalGroups() { return C.E_NOTIMPL; }

        public int SetStatus(int status, out IVdsAsync pending)
        {
            return World.Start(this, "SetStatus", out pending, delegate { Status = status; });
        }

        public int SetIpsecTunnelAddress() { return C.E_NOTIMPL; }
        public int GetIpsecSecurity() { return C.E_NOTIMPL; }
        public int SetIpsecSecurity() { return C.E_NOTIMPL; }
    }

    class FakeGroup : Fake, IVdsIscsiPortalGroup
    {
        public ushort Tag;
        public FakeTarget Target;
        public readonly List<Fake> Members = new List<Fake>();

        public FakeGroup()
        {
            ObjectType = Codes.VDS_OT_PORTAL_GROUP;
        }

        public int GetProperties(out VDS_ISCSI_PORTALGROUP_PROP properties)
        {
            properties = new VDS_ISCSI_PORTALGROUP_PROP();
            properties.id = Id;
            properties.tag = Tag;
            return World.Call(this, "GetProperties");
        }

        public int GetTarget() { return C.E_NOTIMPL; }

        public int QueryAssociatedPortals(out IEnumVdsObject portals)
        {
            int hr = World.Call(this, "QueryAssociatedPortals");
            portals = hr < 0 ? null : World.Out(World.Add(new FakeEnum(Members, Label + ".members")));
            return hr;
        }

        FakePortal Portal(Guid id)
        {
            foreach (Fake fake in World.Objects)
            {
                if (fake.Id == id && fake is FakePortal)
                {
                    return (FakePortal)fake;
                }
            }
            return null;
        }

        public int AddPortal(Guid portalId, out IVdsAsync pending)
        {
            FakePortal portal = Portal(portalId);
            if (portal == null)
            {
                World.Call(this, "AddPortal");
                pending = null;
                return C.VDS_E_OBJECT_NOT_FOUND;
            }
            return World.Start(this, "AddPortal", out pending, delegate { Members.Add(portal); });
        }

        public int RemovePortal(Guid portalId, out IVdsAsync pending)
        {
            FakePortal portal = Portal(portalId);
            return World.Start(this, "RemovePortal", out pending, delegate { Members.Remove(portal); });
        }

        public int Delete(out IVdsAsync pending)
        {
            return World.Start(this, "Delete", out pending, delegate
            {
                Target.Groups.Remove(this);
                Deleted = true;
            });
        }
    }

    class FakeTarget : Fake, IVdsIscsiTarget
    {
        public string Iqn;
        public string Alias;
        public int Cap = 100;
        public readonly List<Fake> Groups = new List<Fake>();

        public FakeTarget()
        {
            ObjectType = Codes.VDS_OT_TARGET;
        }

        public int GetProperties(out VDS_ISCSI_TARGET_PROP properties)
        {
            int hr = World.Call(this, "GetProperties");
            properties = new VDS_ISCSI_TARGET_PROP();
            properties.id = Id;
            properties.pwszIscsiName = World.Str(Iqn);
            properties.pwszFriendlyName = World.Str(Alias);
            return hr;
        }

        public int GetSubSystem() { return C.E_NOTIMPL; }

        public int QueryPortalGroups(out IEnumVdsObject groups)
        {
            int hr = World.Call(this, "QueryPortalGroups");
            groups = hr < 0 ? null : World.Out(World.Add(new FakeEnum(Groups, Label + ".groups")));
            return hr;
        }

        public int QueryAssociatedLuns() { return C.E_NOTIMPL; }

        // A provider with a cap answers VDS_S_ALREADY_EXISTS and hands back its first group.
        public int CreatePortalGroup(out IVdsAsync pending)
        {
            int hr = World.Start(this, "CreatePortalGroup", out pending, null);
            FakeAsync created = pending as FakeAsync;
            if (created == null)
            {
                return hr;
            }
            FakeGroup group;
            if (Groups.Count >= Cap)
            {
                group = (FakeGroup)Groups[0];
                created.Result = C.VDS_S_ALREADY_EXISTS;
            }
            else
            {
                group = World.Add(new FakeGroup());
                group.Label = Label + ".g" + (Groups.Count + 1);
                group.Tag = (ushort)(Groups.Count + 1);
                group.Target = this;
                Groups.Add(group);
            }
            created.OutputType = Codes.VDS_ASYNCOUT_CREATEPORTALGROUP;
            created.Output = group;
            return hr;
        }

        public int Delete() { return C.E_NOTIMPL; }
        public int SetFriendlyName() { return C.E_NOTIMPL; }
        public int SetSharedSecret() { return C.E_NOTIMPL; }
        public int RememberInitiatorSharedSecret() { return C.E_NOTIMPL; }
        public int GetConnectedInitiators() { return C.E_NOTIMPL; }
    }

    delegate void Effect();

    // An operation with scripted progress (QueryStatus answers) and the two HRESULTs of Wait.
    class FakeAsync : Fake, IVdsAsync
    {
        public readonly Queue<int[]> Progress = new Queue<int[]>();
        public int WaitCall = C.S_OK;
        public int Result = C.S_OK;
        public int CancelResult = C.VDS_E_NOT_SUPPORTED;
        public int OutputType;
        public Fake Output;
        public Effect Effect;
        public int Waits;

        public int Cancel()
        {
            int hr = World.Call(this, "Cancel");
            return World.LastCallFaulted ? hr : CancelResult;
        }

        public int Wait(out int hrResult, out VDS_ASYNC_OUTPUT output)
        {
            Waits++;
            int call = World.Call(this, "Wait");
            int waitCall = World.LastCallFaulted ? call : WaitCall;
            output = new VDS_ASYNC_OUTPUT();
            hrResult = Result;
            if (waitCall < 0)
            {
                return waitCall;
            }
            if (Effect != null && Result >= 0)
            {
                Effect();
            }
            output.type = OutputType;
            if (Output != null)
            {
                output.pUnknown = World.Raw(Output);
            }
            return waitCall;
        }

        public int QueryStatus(out int hrResult, out uint percentCompleted)
        {
            int hr = World.Call(this, "QueryStatus");
            if (Progress.Count > 0)
            {
                int[] step = Progress.Dequeue();
                hrResult = step[0];
                percentCompleted = unchecked((uint)step[1]);
            }
            else
            {
                hrResult = Result;
                percentCompleted = 100;
            }
            return hr;
        }
    }

    static class WorldStart
    {
        // Starting an operation: the call's own fault decides; a started operation is a new fake async.
        public static int Start(this World world, Fake on, string method, out IVdsAsync pending, Effect effect)
        {
            int hr = world.Call(on, method);
            if (hr < 0)
            {
                pending = null;
                return hr;
            }
            FakeAsync created = world.Add(new FakeAsync());
            created.Label = on.Label + "." + method + ".async";
            created.Effect = effect;
            int scripted;
            if (world.Faults.TryGetValue(created.Label + ".Result", out scripted))
            {
                created.Result = scripted;
            }
            world.Last = created;
            pending = world.Out(created);
            return hr;
        }
    }

    // ---- the scenario most tests start from ----

    class Lab
    {
        public readonly World World = new World();
        public FakeLoader Loader;
        public FakeService Service;
        public FakeProvider Iscsi;
        public FakeProvider Fibre;
        public FakeSubsystem ArrayA;
        public FakeSubsystem ArrayB;
        public FakeTarget T1;
        public FakeTarget T2;
        public FakeGroup G1;
        public FakeGroup G2;
        public FakePortal P1;
        public FakePortal P2;
        public FakePortal P3;
        public FakePortal P6;

        // A second iSCSI provider, "other", with one subsystem, array-c.
        public void AddSecondProvider()
        {
            FakeProvider other = World.Add(new FakeProvider());
            other.Label = "other";
            FakeSubsystem c = World.Add(new FakeSubsystem());
            c.Label = "c";
            c.Name = "array-c";
            other.Subsystems.Add(c);
            Service.Providers.Add(other);
        }

        public Lab()
        {
            World w = World;
            Service = w.Add(new FakeService());
            Service.Label = "service";
            Loader = w.Add(new FakeLoader());
            Loader.Label = "loader";
            Loader.Service = Service;
            Loader.HandedOut = 1;  // CoCreateInstance's reference, given to the session

            Fibre = w.Add(new FakeProvider());
            Fibre.Label = "fibre";
            Fibre.Type = 2;
            FakeSubsystem fc = w.Add(new FakeSubsystem());
            fc.Label = "fc";
            fc.Name = "fc-array";
            Fibre.Subsystems.Add(fc);

            FakeOtherProvider software = w.Add(new FakeOtherProvider());
            software.Label = "software";

            Iscsi = w.Add(new FakeProvider());
            Iscsi.Label = "iscsi";
            FakePlainSubsystem plain = w.Add(new FakePlainSubsystem());
            plain.Label = "plain";
            plain.Name = "raid-only";
            ArrayA = w.Add(new FakeSubsystem());
            ArrayA.Label = "a";
            ArrayA.Name = "array-a";
            ArrayB = w.Add(new FakeSubsystem());
            ArrayB.Label = "b";
            ArrayB.Name = "";  // no friendly name: the identification names it
            Iscsi.Subsystems.Add(plain);
            Iscsi.Subsystems.Add(ArrayA);
            Iscsi.Subsystems.Add(ArrayB);
            Service.Providers.Add(software);
            Service.Providers.Add(Fibre);
            Service.Providers.Add(Iscsi);

            P1 = Portal("p1", 1, 0x0A000001, null, null, 3260, 1);
            P2 = Portal("p2", 1, 0x0A000002, null, null, 3261, 4);
            P3 = Portal("p3", 2, 0, new byte[] { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, null, 3260, 2);
            FakePortal p4 = Portal("p4", 0, 0, null, " 10.0.0.9 ", 860, 5);
            FakePortal p5 = Portal("p5", 3, 0, null, null, 0, 9);
            P6 = Portal("p6", 1, 0xC0A80001, null, null, 3260, 1);
            ArrayA.Portals.AddRange(new Fake[] { P1, P2, P3, p4, p5, P6 });

            T1 = Target("t1", "iqn.1991-05.com.microsoft:array-a-t1", "t1");
            T2 = Target("t2", "iqn.1991-05.com.microsoft:array-a-t2", null);
            G1 = Group(T1, "g1", 1, P1, P2);
            G2 = Group(T1, "g2", 2, P3);
            ArrayA.Targets.Add(T1);
            ArrayA.Targets.Add(T2);
        }

        FakePortal Portal(string label, int type, uint ipv4, byte[] ipv6, string text, uint port, int status)
        {
            FakePortal portal = World.Add(new FakePortal());
            portal.Label = label;
            portal.Address.type = type;
            portal.Address.ipv4Address = ipv4;
            portal.Address.ipv6Address = ipv6;
            portal.Address.wszTextAddress = text;
            portal.Address.ulPort = port;
            portal.Status = status;
            return portal;
        }

        FakeTarget Target(string label, string iqn, string alias)
        {
            FakeTarget target = World.Add(new FakeTarget());
            target.Label = label;
            target.Iqn = iqn;
            target.Alias = alias;
            return target;
        }

        FakeGroup Group(FakeTarget target, string label, ushort tag, params FakePortal[] members)
        {
            FakeGroup group = World.Add(new FakeGroup());
            group.Label = label;
            group.Tag = tag;
            group.Target = target;
            group.Members.AddRange(members);
            target.Groups.Add(group);
            return group;
        }

        public Hashtable Connect()
        {
            return Vds.Connect(Loader, new CountingSeam(World));
        }
    }

    // ---- the tests ----

    class Failed : Exception
    {
        public Failed(string message) : base(message)
        {
        }
    }

    static class Program
    {
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
            Equal(false, result["ok"], what + " ok");
            Equal(code, result["hresult"], what + " hresult");
            Equal(call, result["call"], what + " call");
        }

        // After the session is closed, every reference and string must have come back exactly once.
        static void Balanced(Lab lab)
        {
            Ok(Vds.Close(), "Close");
            string problems = lab.World.Unbalanced();
            True(problems == null, "release discipline: " + problems);
        }

        static Hashtable Find(ArrayList items, string key, object value)
        {
            foreach (Hashtable item in items)
            {
                if (object.Equals(item[key], value))
                {
                    return item;
                }
            }
            throw new Failed(string.Format("no item with {0} = {1}", key, value));
        }

        static void Layouts()
        {
            bool wide = IntPtr.Size == 8;
            Equal(552, Marshal.SizeOf(typeof(VDS_IPADDRESS)), "sizeof(VDS_IPADDRESS)");
            Equal(new IntPtr(32), Marshal.OffsetOf(typeof(VDS_IPADDRESS), "wszTextAddress"), "offset of wszTextAddress");
            Equal(new IntPtr(548), Marshal.OffsetOf(typeof(VDS_IPADDRESS), "ulPort"), "offset of ulPort");
            Equal(572, Marshal.SizeOf(typeof(VDS_ISCSI_PORTAL_PROP)), "sizeof(VDS_ISCSI_PORTAL_PROP)");
            Equal(new IntPtr(568), Marshal.OffsetOf(typeof(VDS_ISCSI_PORTAL_PROP), "status"), "offset of portal status");
            Equal(20, Marshal.SizeOf(typeof(VDS_ISCSI_PORTALGROUP_PROP)), "sizeof(VDS_ISCSI_PORTALGROUP_PROP)");
            Equal(wide ? 40 : 28, Marshal.SizeOf(typeof(VDS_ISCSI_TARGET_PROP)), "sizeof(VDS_ISCSI_TARGET_PROP)");
            Equal(wide ? 56 : 48, Marshal.SizeOf(typeof(VDS_SUB_SYSTEM_PROP)), "sizeof(VDS_SUB_SYSTEM_PROP)");
            Equal(32, Marshal.SizeOf(typeof(VDS_ASYNC_OUTPUT)), "sizeof(VDS_ASYNC_OUTPUT)");
            Equal(new IntPtr(8), Marshal.OffsetOf(typeof(VDS_ASYNC_OUTPUT), "pUnknown"), "offset of the union");
        }

        static void OpenLoadsTheLocalServiceAndReleasesTheLoader()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            Equal(null, lab.Loader.Machine, "LoadService machine name");
            True(lab.World.Calls.Contains("service.WaitForServiceReady"), "WaitForServiceReady called");
            Equal(1, lab.Loader.Released, "loader released once");
            Equal(0, lab.Service.Released, "service held while the session is open");
            Balanced(lab);
            Equal(1, lab.Service.Released, "service released by Close");
        }

        static void OpenFailureReleasesEverything()
        {
            Lab lab = new Lab();
            lab.World.Faults["service.WaitForServiceReady"] = C.VDS_E_PROVIDER_CACHE_CORRUPT;
            Fails(lab.Connect(), C.VDS_E_PROVIDER_CACHE_CORRUPT, "IVdsService::WaitForServiceReady", "Connect");
            string problems = lab.World.Unbalanced();
            True(problems == null, "release discipline: " + problems);
        }

        static void SnapshotWalksIscsiProvidersOnly()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            Hashtable snapshot = Ok(Vds.Snapshot(null), "Snapshot");
            True(lab.World.Calls.Contains("service.QueryProviders2"), "QueryProviders(VDS_QUERY_HARDWARE_PROVIDERS)");
            True(lab.World.Calls.Contains("fibre.GetProviderType"), "provider type asked");
            True(!lab.World.Calls.Contains("fibre.QuerySubSystems"), "a Fibre Channel provider is not walked");
            ArrayList names = (ArrayList)snapshot["names"];
            Equal("array-a,ident-b", string.Join(",", (string[])names.ToArray(typeof(string))), "iSCSI subsystem names");
            ArrayList subsystems = (ArrayList)snapshot["subsystems"];
            Equal(2, subsystems.Count, "subsystems");
            Hashtable a = Find(subsystems, "name", "array-a");
            Equal(lab.ArrayA.Id.ToString(), a["id"], "subsystem id");

            ArrayList portals = (ArrayList)a["portals"];
            Equal(6, portals.Count, "portals");
            Hashtable p1 = Find(portals, "id", lab.P1.Id.ToString());
            Equal("10.0.0.1", p1["ip"], "IPv4 text");
            Equal(3260L, p1["port"], "port");
            Equal(1, p1["address_type"], "address type");
            Equal(1, p1["status"], "status");
            Equal("192.168.0.1", Find(portals, "id", lab.P6.Id.ToString())["ip"], "IPv4 byte order");
            Equal("fd00::1", Find(portals, "id", lab.P3.Id.ToString())["ip"], "IPv6 text");
            Equal("10.0.0.9", Find(portals, "address_type", 0)["ip"], "text address, trimmed");
            Hashtable empty = Find(portals, "address_type", 3);
            Equal("", empty["ip"], "empty address");
            Equal(9, empty["status"], "unknown status passed through");

            ArrayList targets = (ArrayList)a["targets"];
            Hashtable t1 = Find(targets, "iqn", "iqn.1991-05.com.microsoft:array-a-t1");
            Equal("t1", t1["alias"], "alias");
            Equal("", Find(targets, "id", lab.T2.Id.ToString())["alias"], "missing alias");
            ArrayList groups = (ArrayList)t1["groups"];
            Equal(2, groups.Count, "groups");
            Hashtable g1 = Find(groups, "tag", 1);
            Equal(lab.G1.Id.ToString(), g1["id"], "group id");
            ArrayList members = (ArrayList)g1["portals"];
            Equal(2, members.Count, "members");
            True(members.Contains(lab.P1.Id.ToString()) && members.Contains(lab.P2.Id.ToString()), "member ids");
            Balanced(lab);
        }

        static void SnapshotNamesOneSubsystem()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            Hashtable snapshot = Ok(Vds.Snapshot("ident-b"), "Snapshot");
            ArrayList subsystems = (ArrayList)snapshot["subsystems"];
            Equal(1, subsystems.Count, "subsystems");
            Equal("ident-b", ((Hashtable)subsystems[0])["name"], "the subsystem named");
            Equal(2, ((ArrayList)snapshot["names"]).Count, "every name listed");
            True(!lab.World.Calls.Contains("a.QueryTargets"), "other subsystems are not walked");
            Equal(0, ((ArrayList)Ok(Vds.Snapshot("nowhere"), "Snapshot")["subsystems"]).Count, "unknown name");
            Balanced(lab);
        }

        static void SnapshotFailureKeepsTheDiscipline(string fault, int code, string call)
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            lab.World.Faults[fault] = code;
            Fails(Vds.Snapshot(null), code, call, fault);
            Balanced(lab);
        }

        static void SnapshotFailures()
        {
            SnapshotFailureKeepsTheDiscipline("t1.QueryPortalGroups", C.VDS_E_PROVIDER_CACHE_CORRUPT,
                                              "IVdsIscsiTarget::QueryPortalGroups");
            SnapshotFailureKeepsTheDiscipline("t1.GetProperties", C.VDS_E_OBJECT_DELETED, "IVdsIscsiTarget::GetProperties");
            SnapshotFailureKeepsTheDiscipline("g2.members.Next", C.VDS_E_ANOTHER_CALL_IN_PROGRESS,
                                              "IEnumVdsObject::Next after IVdsIscsiPortalGroup::QueryAssociatedPortals");
            SnapshotFailureKeepsTheDiscipline("service.QueryProviders2", unchecked((int)0x80042427), "IVdsService::QueryProviders");
            SnapshotFailureKeepsTheDiscipline("FakeSubsystem.GetProperties", C.VDS_E_OBJECT_DELETED, "IVdsSubSystem::GetProperties");
        }

        static Hashtable Status(string handle)
        {
            return Ok(Vds.QueryStatus(handle), "QueryStatus");
        }

        static void AddPortalWaitsWithTwoHresults()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            Hashtable started = Ok(Vds.AddPortal(lab.G2.Id.ToString(), lab.P6.Id.ToString()), "AddPortal");
            string handle = (string)started["operation"];
            Equal(0, started["hresult"], "call hresult");
            FakeAsync pending = lab.World.Last;
            pending.Progress.Enqueue(new int[] { C.VDS_E_OPERATION_PENDING, 10 });
            pending.Progress.Enqueue(new int[] { C.VDS_E_OPERATION_PENDING, -1 });
            Hashtable status = Status(handle);
            Equal(C.VDS_E_OPERATION_PENDING, status["hresult"], "pending");
            Equal(10L, status["percent"], "percent");
            Equal(4294967295L, Status(handle)["percent"], "0xFFFFFFFF tolerated");
            Equal(0, Status(handle)["hresult"], "done");
            Equal(0, pending.Released, "the operation is held between calls");
            Hashtable outcome = Ok(Vds.Wait(handle), "Wait");
            Equal(0, outcome["call_hresult"], "Wait's own HRESULT");
            Equal(0, outcome["operation_hresult"], "the operation's HRESULT");
            True(!outcome.ContainsKey("group_id"), "no group for AddPortal");
            True(lab.G2.Members.Contains(lab.P6), "the portal was added");
            Equal(1, pending.Released, "the operation is released by Wait");
            Fails(Vds.QueryStatus(handle), unchecked((int)0x80070057), "operation handle", "a waited handle is gone");
            Balanced(lab);
        }

        // Finish waits on the host: QueryStatus until done, then Wait; the operation ends in the same call.
        static void FinishWaitsOnTheHost()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            Hashtable started = Ok(Vds.AddPortal(lab.G2.Id.ToString(), lab.P6.Id.ToString()), "AddPortal");
            FakeAsync pending = lab.World.Last;
            pending.Progress.Enqueue(new int[] { C.VDS_E_OPERATION_PENDING, 10 });
            pending.Progress.Enqueue(new int[] { C.VDS_E_OPERATION_PENDING, 60 });
            Hashtable outcome = Ok(Vds.Finish(started, 30.0), "Finish");
            Equal(true, outcome["finished"], "finished");
            Equal(0, outcome["call_hresult"], "Wait's own HRESULT");
            Equal(0, outcome["operation_hresult"], "the operation's HRESULT");
            Equal(100L, outcome["percent"], "percent when done");
            Equal(0, pending.Progress.Count, "every scripted status was asked for");
            Equal(1, pending.Waits, "one Wait once done");
            True(lab.G2.Members.Contains(lab.P6), "the portal was added");
            Equal(1, pending.Released, "the operation is released by Finish");
            Fails(Vds.QueryStatus((string)started["operation"]), unchecked((int)0x80070057), "operation handle",
                  "a finished handle is gone");

            // At the deadline: Cancel, with the last percent and Cancel's answer; no Wait.
            started = Ok(Vds.RemovePortal(lab.G1.Id.ToString(), lab.P1.Id.ToString()), "RemovePortal");
            pending = lab.World.Last;
            pending.Progress.Enqueue(new int[] { C.VDS_E_OPERATION_PENDING, 40 });
            outcome = Ok(Vds.Finish(started, 0.0), "Finish at the deadline");
            Equal(false, outcome["finished"], "not finished");
            Equal(40L, outcome["percent"], "the last percent");
            Equal(C.VDS_E_NOT_SUPPORTED, outcome["cancel_hresult"], "Cancel's answer");
            Equal(0, pending.Waits, "no Wait after the deadline");
            True(lab.G1.Members.Contains(lab.P1), "the operation did not take effect");
            Equal(1, pending.Released, "the operation is released at the deadline");

            // A start that failed is answered as it is.
            Hashtable refused = Vds.AddPortal("not a guid", lab.P6.Id.ToString());
            Equal(refused, Vds.Finish(refused, 30.0), "a failed start passes through");
            Balanced(lab);
        }

        static void WaitKeepsBothHresultsApart()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            string handle = (string)Ok(Vds.RemovePortal(lab.G1.Id.ToString(), lab.P1.Id.ToString()), "RemovePortal")["operation"];
            lab.World.Last.WaitCall = C.VDS_E_ASYNC_OBJECT_FAILURE;
            Hashtable outcome = Ok(Vds.Wait(handle), "Wait");
            Equal(C.VDS_E_ASYNC_OBJECT_FAILURE, outcome["call_hresult"], "Wait failed itself");
            Equal(0, outcome["operation_hresult"], "the operation's own result is reported apart");

            handle = (string)Ok(Vds.AddPortal(lab.G2.Id.ToString(), lab.P1.Id.ToString()), "AddPortal")["operation"];
            lab.World.Last.Result = C.VDS_E_OBJECT_EXISTS;
            outcome = Ok(Vds.Wait(handle), "Wait");
            Equal(0, outcome["call_hresult"], "Wait succeeded");
            Equal(C.VDS_E_OBJECT_EXISTS, outcome["operation_hresult"], "the operation failed");
            Balanced(lab);
        }

        static void CreatePortalGroupReadsTheGroupObtained()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            string handle = (string)Ok(Vds.CreatePortalGroup(lab.T2.Id.ToString()), "CreatePortalGroup")["operation"];
            Hashtable created = Ok(Vds.Wait(handle), "Wait");
            Equal(0, created["operation_hresult"], "created");
            Equal(1, created["group_tag"], "tag assigned by the provider");
            Equal(((Fake)lab.T2.Groups[0]).Id.ToString(), created["group_id"], "group id");

            lab.T1.Cap = 2;
            handle = (string)Ok(Vds.CreatePortalGroup(lab.T1.Id.ToString()), "CreatePortalGroup at the cap")["operation"];
            Hashtable substituted = Ok(Vds.Wait(handle), "Wait");
            Equal(C.VDS_S_ALREADY_EXISTS, substituted["operation_hresult"], "VDS_S_ALREADY_EXISTS is a success");
            Equal(1, substituted["group_tag"], "the existing group handed back");
            Equal(lab.G1.Id.ToString(), substituted["group_id"], "its id");
            Balanced(lab);
        }

        static void VanishedObjectsAndBadIds()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            string gone = Guid.NewGuid().ToString();
            Fails(Vds.AddPortal(gone, lab.P1.Id.ToString()), C.VDS_E_OBJECT_DELETED, "IVdsService::GetObject", "vanished group");
            Fails(Vds.SetPortalStatus(gone, 4), C.VDS_E_OBJECT_DELETED, "IVdsService::GetObject", "vanished portal");
            Fails(Vds.DeletePortalGroup(lab.P1.Id.ToString()), C.VDS_E_OBJECT_DELETED, "IVdsService::GetObject", "wrong type");
            Fails(Vds.AddPortal(lab.G1.Id.ToString(), gone), C.VDS_E_OBJECT_NOT_FOUND, "IVdsIscsiPortalGroup::AddPortal",
                  "unknown portal passes through");
            Fails(Vds.AddPortal("'; Remove-Item C:\\ -Recurse; $(x)", lab.P1.Id.ToString()), unchecked((int)0x80070057),
                  "object id", "a malformed id");
            Fails(Vds.Wait(null), unchecked((int)0x80070057), "operation handle", "no handle");
            Balanced(lab);
        }

        static void BusyObjectsAnswerAtTheCall()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            lab.World.Faults["g1.Delete"] = C.VDS_E_ANOTHER_CALL_IN_PROGRESS;
            Fails(Vds.DeletePortalGroup(lab.G1.Id.ToString()), C.VDS_E_ANOTHER_CALL_IN_PROGRESS, "IVdsIscsiPortalGroup::Delete", "busy");
            lab.World.Faults.Remove("g1.Delete");
            string handle = (string)Ok(Vds.DeletePortalGroup(lab.G1.Id.ToString()), "Delete")["operation"];
            Ok(Vds.Wait(handle), "Wait");
            True(!lab.T1.Groups.Contains(lab.G1), "the group was deleted");
            handle = (string)Ok(Vds.SetPortalStatus(lab.P2.Id.ToString(), 1), "SetStatus")["operation"];
            Ok(Vds.Wait(handle), "Wait");
            Equal(1, lab.P2.Status, "status set");
            Balanced(lab);
        }

        static void EveryCodeTravelsUnchanged()
        {
            foreach (int code in C.TableCodes)
            {
                string hex = string.Format("0x{0:X8}", code);
                Lab lab = new Lab();
                Ok(lab.Connect(), "Connect");
                lab.World.Faults["g1.AddPortal"] = code;
                Hashtable started = Vds.AddPortal(lab.G1.Id.ToString(), lab.P6.Id.ToString());
                if (code >= 0)
                {
                    // VDS_S_* are successes: the operation starts and the code is kept.
                    Ok(started, "AddPortal answering " + hex);
                    Equal(code, started["hresult"], "call hresult " + hex);
                    Ok(Vds.Wait((string)started["operation"]), "Wait");
                }
                else
                {
                    Fails(started, code, "IVdsIscsiPortalGroup::AddPortal", "AddPortal answering " + hex);
                }
                lab.World.Faults.Remove("g1.AddPortal");

                lab.World.Faults["g2.RemovePortal.async.Result"] = code;
                string handle = (string)Ok(Vds.RemovePortal(lab.G2.Id.ToString(), lab.P3.Id.ToString()), "RemovePortal")["operation"];
                lab.World.Last.CancelResult = code;
                Equal(code, Ok(Vds.Cancel(handle), "Cancel")["hresult"], "Cancel answering " + hex);
                Equal(code, Status(handle)["hresult"], "QueryStatus reporting " + hex);
                Hashtable outcome = Ok(Vds.Wait(handle), "Wait");
                Equal(code, outcome["operation_hresult"], "operation result " + hex);
                Equal(0, outcome["call_hresult"], "Wait's own result with operation " + hex);

                lab.World.Faults["service.GetObject"] = code;
                Hashtable lookup = Vds.CreatePortalGroup(lab.T2.Id.ToString());
                lab.World.Faults.Remove("service.GetObject");
                if (code < 0)
                {
                    int expected = code == C.VDS_E_OBJECT_NOT_FOUND ? C.VDS_E_OBJECT_DELETED : code;
                    Fails(lookup, expected, "IVdsService::GetObject", "GetObject answering " + hex);
                }
                else
                {
                    Ok(Vds.Wait((string)Ok(lookup, "CreatePortalGroup")["operation"]), "Wait");
                }
                Balanced(lab);
            }
        }

        static void CancelKeepsTheOperation()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            string handle = (string)Ok(Vds.AddPortal(lab.G2.Id.ToString(), lab.P6.Id.ToString()), "AddPortal")["operation"];
            Equal(C.VDS_E_NOT_SUPPORTED, Ok(Vds.Cancel(handle), "Cancel")["hresult"], "hardware providers may refuse");
            Equal(0, lab.World.Last.Released, "still held after Cancel");
            Ok(Vds.Wait(handle), "Wait after Cancel");
            Balanced(lab);
        }

        static void CloseReleasesOperationsNeverWaitedOn()
        {
            Lab lab = new Lab();
            Ok(lab.Connect(), "Connect");
            Ok(Vds.AddPortal(lab.G2.Id.ToString(), lab.P6.Id.ToString()), "AddPortal");
            Ok(Vds.SetPortalStatus(lab.P1.Id.ToString(), 4), "SetStatus");
            Equal(2, Ok(Vds.Close(), "Close")["released"], "pending operations released");
            Equal(0, Ok(Vds.Close(), "Close again")["released"], "nothing left");
            string problems = lab.World.Unbalanced();
            True(problems == null, "release discipline: " + problems);
        }

        static void RecoverCacheReenumeratesThenRefreshesTheOwner()
        {
            Lab lab = new Lab();
            lab.AddSecondProvider();
            Ok(lab.Connect(), "Connect");

            Equal(1, Ok(Vds.RecoverCache("array-c"), "RecoverCache")["providers"], "one owner");
            List<string> calls = lab.World.Calls;
            True(calls.IndexOf("other.Reenumerate") >= 0 && calls.IndexOf("other.Reenumerate") < calls.IndexOf("other.Refresh"),
                 "Reenumerate, then Refresh");
            True(!calls.Contains("iscsi.Reenumerate") && !calls.Contains("fibre.Reenumerate"), "only the owner");
            calls.Clear();
            Equal(2, Ok(Vds.RecoverCache(null), "RecoverCache")["providers"], "every iSCSI provider");
            Hashtable none = Ok(Vds.RecoverCache("nowhere"), "RecoverCache");
            Equal(0, none["providers"], "no owner");
            Equal(3, ((ArrayList)none["names"]).Count, "names listed");

            lab.World.Faults["other.Reenumerate"] = C.VDS_E_PROVIDER_CACHE_CORRUPT;
            calls.Clear();
            Fails(Vds.RecoverCache("array-c"), C.VDS_E_PROVIDER_CACHE_CORRUPT, "IVdsHwProvider::Reenumerate", "Reenumerate fails");
            True(!calls.Contains("other.Refresh"), "no Refresh after a failed Reenumerate");
            Balanced(lab);
        }

        static void ComExceptionsBecomeResults()
        {
            World w = new World();
            ThrowingService thrower = w.Add(new ThrowingService());
            thrower.Label = "thrower";
            FakeLoader loader = w.Add(new FakeLoader());
            loader.Label = "loader";
            loader.Service = thrower;
            loader.HandedOut = 1;
            Ok(Vds.Connect(loader, new CountingSeam(w)), "Connect to a service that disconnects");
            Fails(Vds.Snapshot(null), C.RPC_E_DISCONNECTED, "", "COMException");
            Ok(Vds.Close(), "Close");
            string problems = w.Unbalanced();
            True(problems == null, "release discipline: " + problems);
        }

        static int Main()
        {
            Dictionary<string, Action> tests = new Dictionary<string, Action>();
            tests["structure layouts"] = Layouts;
            tests["open loads the local service and releases the loader"] = OpenLoadsTheLocalServiceAndReleasesTheLoader;
            tests["a failed open releases everything"] = OpenFailureReleasesEverything;
            tests["snapshot walks iSCSI hardware providers only"] = SnapshotWalksIscsiProvidersOnly;
            tests["snapshot of one named subsystem"] = SnapshotNamesOneSubsystem;
            tests["snapshot failures name the call and release everything"] = SnapshotFailures;
            tests["AddPortal, QueryStatus, Wait with two HRESULTs"] = AddPortalWaitsWithTwoHresults;
            tests["Finish waits on the host: QueryStatus, then Wait or Cancel at the deadline"] = FinishWaitsOnTheHost;
            tests["Wait keeps its own HRESULT apart from the operation's"] = WaitKeepsBothHresultsApart;
            tests["CreatePortalGroup reads the group obtained, also at the cap"] = CreatePortalGroupReadsTheGroupObtained;
            tests["vanished objects and malformed ids"] = VanishedObjectsAndBadIds;
            tests["busy objects answer at the call"] = BusyObjectsAnswerAtTheCall;
            tests["every return code of the reference travels unchanged"] = EveryCodeTravelsUnchanged;
            tests["Cancel keeps the operation"] = CancelKeepsTheOperation;
            tests["Close releases operations never waited on"] = CloseReleasesOperationsNeverWaitedOn;
            tests["RecoverCache: Reenumerate then Refresh of the owner"] = RecoverCacheReenumeratesThenRefreshesTheOwner;
            tests["COM exceptions become results"] = ComExceptionsBecomeResults;

            int passed = 0;
            int failed = 0;
            foreach (KeyValuePair<string, Action> test in tests)
            {
                try
                {
                    test.Value();
                    passed++;
                    Console.WriteLine("PASS " + test.Key);
                }
                catch (Exception e)
                {
                    failed++;
                    Console.WriteLine("FAIL " + test.Key + ": " + (e is Failed ? e.Message : e.ToString()));
                }
                finally
                {
                    Vds.Close();
                }
            }
            Console.WriteLine("{0} passed, {1} failed", passed, failed);
            failed += Scenarios.Run(new ManagedWorld(), "managed");
            return failed == 0 ? 0 : 1;
        }
    }

    // The world of the shared scenarios (Scenarios.cs), made of managed fakes.
    class ManagedWorld : IFakeWorld
    {
        Lab lab;

        public void New(bool secondProvider)
        {
            lab = new Lab();
            lab.Loader.HandedOut = 0;  // each loader comes from the factory below
            if (secondProvider)
            {
                lab.AddSecondProvider();
            }
        }

        public IVdsServiceLoader Loader()
        {
            return lab.World.Out(lab.Loader);
        }

        public IComSeam Seam()
        {
            return new CountingSeam(lab.World);
        }

        Fake Find(string label)
        {
            foreach (Fake fake in lab.World.Objects)
            {
                if (fake.Label == label)
                {
                    return fake;
                }
            }
            throw new Failed("the fakes have no object " + label);
        }

        public Guid Id(string label)
        {
            return Find(label).Id;
        }

        public void Fault(string key, int hr, int times)
        {
            lab.World.Faults[key] = hr;
            if (times >= 0)
            {
                lab.World.FaultTimes[key] = times;
            }
            else
            {
                lab.World.FaultTimes.Remove(key);
            }
        }

        public void Progress(int hr, uint percent)
        {
            lab.World.Last.Progress.Enqueue(new int[] { hr, unchecked((int)percent) });
        }

        public void Cap(string target, int cap)
        {
            ((FakeTarget)Find(target)).Cap = cap;
        }

        public string[] TakeCalls()
        {
            string[] made = lab.World.ComCalls.ToArray();
            lab.World.ComCalls.Clear();
            return made;
        }

        public string List(string label)
        {
            Fake fake = Find(label);
            List<Fake> items = fake is FakeGroup ? ((FakeGroup)fake).Members : ((FakeTarget)fake).Groups;
            List<string> labels = new List<string>();
            foreach (Fake item in items)
            {
                labels.Add(item.Label);
            }
            return string.Join(",", labels.ToArray());
        }

        public int Status(string portal)
        {
            return ((FakePortal)Find(portal)).Status;
        }

        public string Audit(string held)
        {
            List<string> problems = new List<string>(lab.World.Problems);
            List<string> kept = new List<string>(held.Split(new char[] { ',' }, StringSplitOptions.RemoveEmptyEntries));
            foreach (Fake fake in lab.World.Objects)
            {
                if (kept.Contains(fake.Label) ? fake.HandedOut <= fake.Released : fake.HandedOut != fake.Released)
                {
                    problems.Add(string.Format("{0}: handed out {1}, released {2}{3}", fake.Label, fake.HandedOut, fake.Released,
                                               kept.Contains(fake.Label) ? ", the caller should still hold it" : ""));
                }
            }
            if (lab.World.LiveStrings.Count > 0)
            {
                problems.Add(lab.World.LiveStrings.Count + " strings allocated by VDS not freed");
            }
            if (lab.World.DoubleFrees > 0)
            {
                problems.Add(lab.World.DoubleFrees + " frees of strings not allocated or already freed");
            }
            if (lab.Loader.Machine != null && lab.Loader.Machine != "(not called)")
            {
                problems.Add("LoadService was given a machine name instead of NULL");
            }
            return string.Join("\n", problems.ToArray());
        }
    }

    // A service whose proxy lost its server: the runtime turns the HRESULT into a COMException.
    class ThrowingService : FakeService, IVdsService
    {
        public new int QueryProviders(uint masks, out IEnumVdsObject providers)
        {
            throw new COMException("The object invoked has disconnected from its clients.", C.RPC_E_DISCONNECTED);
        }
    }
}
