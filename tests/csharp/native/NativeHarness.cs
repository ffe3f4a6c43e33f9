// SPDX-License-Identifier: GPL-3.0-or-later
// Copyright (c) storage.vds contributors
//
// Runs the VDS interop class against native COM objects (libfakevds, tests/csharp/native/fakevds.c),
// through the class's own production seam (ComSeam: ReleaseComObject, GetObjectForIUnknown,
// FreeCoTaskMem). Calls go through the real vtable slots and structures cross the native boundary,
// so a misdeclared interface, structure or marshalling attribute fails here. After every facade
// call the fake is audited: the exact COM calls made, every reference count back at its baseline,
// no call on a deleted object, every string it handed out freed exactly once.
// Each shared scenario runs in its own process: a call through a wrong slot may write through a
// wrong pointer and crash the runtime, which is then reported as that scenario's failure.
// Exit code: 0 when every scenario passed, 1 when one failed.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using StorageVds.Interop;
using StorageVds.Shared;

namespace StorageVds.NativeHarness
{
    static class Native
    {
        const string Lib = "fakevds";

        [DllImport(Lib)] public static extern void fv_world(int secondProvider);
        [DllImport(Lib)] [return: MarshalAs(UnmanagedType.Interface)] public static extern IVdsServiceLoader fv_loader();
        [DllImport(Lib)] public static extern int fv_id(string label, out Guid id);
        [DllImport(Lib)] public static extern void fv_fault(string key, int hr, int times);
        [DllImport(Lib)] public static extern int fv_progress(int hr, uint percent);
        [DllImport(Lib)] public static extern int fv_cap(string label, int cap);
        [DllImport(Lib)] public static extern IntPtr fv_calls();
        [DllImport(Lib)] public static extern void fv_clear_calls();
        [DllImport(Lib)] public static extern IntPtr fv_list(string label);
        [DllImport(Lib)] public static extern int fv_status(string label);
        [DllImport(Lib)] public static extern IntPtr fv_probe_string();
        [DllImport(Lib)] public static extern int fv_frees(IntPtr text);
        [DllImport(Lib)] public static extern IntPtr fv_audit(string held);
        [DllImport(Lib)] public static extern int fv_layout(string what);
        [DllImport(Lib)] public static extern IntPtr fv_object(string label);
        [DllImport(Lib)] public static extern int fv_slots(string iface);
        [DllImport(Lib)] public static extern IntPtr fv_slot(string iface, int slot);
        [DllImport(Lib)] public static extern void fv_delete(string label);

        public static string Text(IntPtr text)
        {
            return Marshal.PtrToStringAnsi(text);
        }
    }

    class NativeWorld : IFakeWorld
    {
        public void New(bool secondProvider)
        {
            Native.fv_world(secondProvider ? 1 : 0);
        }

        public IVdsServiceLoader Loader()
        {
            return Native.fv_loader();
        }

        // The production seam: ReleaseComObject, GetObjectForIUnknown, FreeCoTaskMem.
        public IComSeam Seam()
        {
            return null;
        }

        public Guid Id(string label)
        {
            Guid id;
            if (Native.fv_id(label, out id) != 1)
            {
                throw new Failed("the fake has no object " + label);
            }
            return id;
        }

        public void Fault(string key, int hr, int times)
        {
            Native.fv_fault(key, hr, times);
        }

        public void Progress(int hr, uint percent)
        {
            Native.fv_progress(hr, percent);
        }

        public void Cap(string target, int cap)
        {
            Native.fv_cap(target, cap);
        }

        public string[] TakeCalls()
        {
            string[] made = Native.Text(Native.fv_calls()).Split(new char[] { '\n' }, StringSplitOptions.RemoveEmptyEntries);
            Native.fv_clear_calls();
            return made;
        }

        public string List(string label)
        {
            return Native.Text(Native.fv_list(label));
        }

        public int Status(string portal)
        {
            return Native.fv_status(portal);
        }

        public string Audit(string held)
        {
            return Native.Text(Native.fv_audit(held));
        }
    }

    static class Program
    {
        static readonly string[] LayoutNames = {
            "VDS_IPADDRESS", "VDS_ISCSI_PORTAL_PROP", "VDS_ISCSI_PORTALGROUP_PROP", "VDS_ISCSI_TARGET_PROP",
            "VDS_SUB_SYSTEM_PROP", "VDS_ASYNC_OUTPUT",
        };

        // Sizes and offsets of every structure the class declares, against the native ones; and free()
        // of a string the fake handed out is observed. A mismatch here would make later scenarios
        // write past managed buffers, so the run stops.
        static void Layouts()
        {
            List<string> wrong = new List<string>();
            foreach (string name in LayoutNames)
            {
                Type type = typeof(Vds).Assembly.GetType("StorageVds.Interop." + name, true);
                int managed = Marshal.SizeOf(type);
                if (managed != Native.fv_layout(name))
                {
                    wrong.Add(string.Format("{0}: {1} bytes, native {2}", name, managed, Native.fv_layout(name)));
                }
                foreach (System.Reflection.FieldInfo field in type.GetFields())
                {
                    int native = Native.fv_layout(name + "." + field.Name);
                    int offset = Marshal.OffsetOf(type, field.Name).ToInt32();
                    if (native != offset)
                    {
                        wrong.Add(string.Format("{0}.{1}: offset {2}, native {3}", name, field.Name, offset, native));
                    }
                }
            }
            Check(wrong.Count == 0, "structure layouts differ from Windows': " + string.Join("; ", wrong.ToArray()));
            IntPtr probe = Native.fv_probe_string();
            Marshal.FreeCoTaskMem(probe);
            Check(Native.fv_frees(probe) == 1, "free() of a provider string is not observed (LD_PRELOAD of libfakevds)");
        }

        // The slot the runtime calls for every method of every interface, against the fake's vtables
        // (also the slots the class never calls).
        static void Slots()
        {
            List<string> wrong = new List<string>();
            // Each method of each interface is called at the slot the runtime computes for it: that
            // slot must hold the native method of the same name, and no method may be missing.
            foreach (Type type in typeof(Vds).Assembly.GetTypes())
            {
                if (!type.IsInterface || !type.IsImport)
                {
                    continue;
                }
                int slots = Native.fv_slots(type.Name);
                Check(slots > 0, "the fake has no interface " + type.Name);
                MethodInfo[] methods = type.GetMethods();
                if (methods.Length != slots - 3)
                {
                    wrong.Add(string.Format("{0}: {1} methods declared, the vtable has {2}", type.Name, methods.Length, slots - 3));
                }
                foreach (MethodInfo method in methods)
                {
                    int slot = Marshal.GetComSlotForMethodInfo(method);
                    string native = Native.Text(Native.fv_slot(type.Name, slot));
                    if (native != method.Name)
                    {
                        wrong.Add(string.Format("{0}::{1} is called at slot {2}, which holds {3}", type.Name, method.Name, slot, native ?? "nothing"));
                    }
                }
            }
            Check(wrong.Count == 0, "interfaces differ from the vtables of the IDL: " + string.Join("; ", wrong.ToArray()));
        }

        static void Check(bool condition, string what)
        {
            if (!condition)
            {
                throw new Failed(what);
            }
        }

        static void AuditFinds(string wrong, string expected)
        {
            string found = Native.Text(Native.fv_audit(""));
            Check(found.Contains(expected), "the audit misses " + wrong + ": expected <" + expected + "> in <" + found + ">");
        }

        // The audit itself: each wrong act below, done on purpose, must show in it.
        static void AuditCatchesMistakes()
        {
            Native.fv_world(0);
            IntPtr leaked = Native.fv_object("p1");
            AuditFinds("a reference kept", "p1: 2 references, expected 1");
            Marshal.Release(leaked);
            Marshal.Release(leaked);
            AuditFinds("a reference released twice", "p1: released below the reference the provider keeps");

            Native.fv_world(0);
            IntPtr probe = Native.fv_probe_string();
            AuditFinds("a string never freed", "probe string: freed 0 times, expected once");
            Marshal.FreeCoTaskMem(probe);
            Marshal.FreeCoTaskMem(probe);
            AuditFinds("a string freed twice", "probe string: freed 2 times, expected once");

            Native.fv_world(0);
            IntPtr raw = Native.fv_object("g2");
            Native.fv_delete("g2");
            object group = Marshal.GetObjectForIUnknown(raw);
            Marshal.Release(raw);
            VDS_ISCSI_PORTALGROUP_PROP properties;
            int hr = ((IVdsIscsiPortalGroup)group).GetProperties(out properties);
            Marshal.ReleaseComObject(group);
            Check(hr == C.VDS_E_OBJECT_DELETED, "a deleted group answers VDS_E_OBJECT_DELETED");
            AuditFinds("a call on a deleted object", "g2: call on a deleted object: IVdsIscsiPortalGroup::GetProperties");
        }

        // One scenario in its own process, so that a crash of the runtime (a call through a wrong slot
        // may write through a wrong pointer) is reported against the scenario, and the others still run.
        static bool RunAlone(int index, ref int facades, ref int calls)
        {
            ProcessStartInfo start = new ProcessStartInfo(Process.GetCurrentProcess().MainModule.FileName,
                                                          "\"" + Assembly.GetEntryAssembly().Location + "\" --scenario " + index);
            start.UseShellExecute = false;
            start.RedirectStandardOutput = true;
            start.RedirectStandardError = true;
            using (Process child = Process.Start(start))
            {
                System.Threading.Tasks.Task<string> errors = child.StandardError.ReadToEndAsync();
                string output = child.StandardOutput.ReadToEnd();
                child.WaitForExit();
                Console.Write(output);
                Match counts = Regex.Match(output, @"^PASS native: .*\((\d+) facade calls audited, (\d+) COM calls asserted\)", RegexOptions.Multiline);
                if (child.ExitCode == 0 && counts.Success)
                {
                    facades += int.Parse(counts.Groups[1].Value);
                    calls += int.Parse(counts.Groups[2].Value);
                    return true;
                }
                if (child.ExitCode != 1 || !output.Contains("FAIL native: "))
                {
                    string[] lines = (output + errors.Result).Split('\n');
                    string cause = Array.Find(lines, line => line.StartsWith("Got a SIG") || line.Contains("Exception")) ?? "";
                    Console.WriteLine("FAIL native: {0}: the runtime crashed (exit code {1}) {2}", Scenarios.Name(index), child.ExitCode, cause.Trim());
                }
                return false;
            }
        }

        static int Main(string[] args)
        {
            if (args.Length == 2 && args[0] == "--scenario")
            {
                return Scenarios.RunOne(new NativeWorld(), "native", int.Parse(args[1])) ? 0 : 1;
            }
            try
            {
                Layouts();
                Console.WriteLine("PASS native: structure layouts, free() of provider strings");
            }
            catch (Exception e)
            {
                Console.WriteLine("FAIL native: structure layouts, free() of provider strings: " + e.Message);
                Console.WriteLine("native: stopped: with a wrong layout the provider would write past managed buffers");
                return 1;
            }
            // A wrong slot fails here, and the scenarios still run: each in its own process, where a call
            // through the wrong slot shows as a failed scenario or a crash.
            int failed = 0;
            try
            {
                Slots();
                Console.WriteLine("PASS native: every method of every interface at its vtable slot");
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine("FAIL native: vtable slots: " + e.Message);
            }
            try
            {
                AuditCatchesMistakes();
                Console.WriteLine("PASS native: the audit finds a reference kept or released twice, a string not freed or freed twice, a call on a deleted object");
            }
            catch (Exception e)
            {
                Console.WriteLine("FAIL native: the audit of the fake: " + e.Message);
                return 1;
            }
            int facades = 0;
            int calls = 0;
            int scenariosFailed = 0;
            for (int i = 0; i < Scenarios.Count; i++)
            {
                scenariosFailed += RunAlone(i, ref facades, ref calls) ? 0 : 1;
            }
            failed += scenariosFailed;
            Console.WriteLine("native: {0} shared scenarios passed, {1} failed, each in its own process; {2} facade calls audited, {3} COM calls asserted in order",
                              Scenarios.Count - scenariosFailed, scenariosFailed, facades, calls);
            return failed == 0 ? 0 : 1;
        }
    }
}
