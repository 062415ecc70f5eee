// Runner.cs — a tiny test runner: every public static void method of Tests whose name starts
// with "Test" runs once; prints PASS/FAIL per test and exits 1 if any failed, 77 (skip) when
// the shared models or the library are missing.
using System;
using System.Linq;
using System.Reflection;

namespace Gptq.Tests
{
    public class AssertionFailed : Exception
    {
        public AssertionFailed(string message) : base(message) { }
    }

    public static class Assert
    {
        public static void True(bool condition, string what)
        {
            if (!condition) throw new AssertionFailed(what);
        }

        public static void Equal<T>(T expected, T actual, string what)
        {
            if (!Equals(expected, actual))
                throw new AssertionFailed(string.Format("{0}: expected <{1}>, got <{2}>", what, expected, actual));
        }

        public static TException Throws<TException>(Action action, string what) where TException : Exception
        {
            try { action(); }
            catch (TException e) { return e; }
            catch (Exception e) { throw new AssertionFailed(what + ": threw " + e.GetType().Name + ": " + e.Message); }
            throw new AssertionFailed(what + ": did not throw");
        }
    }

    public static class Runner
    {
        public static int Main(string[] args)
        {
            if (!System.IO.Directory.Exists(Paths.Stories))
            {
                Console.WriteLine("SKIP: shared models not found at " + Paths.Stories + " (set GPTQ_SHARED_DIR)");
                return 77;
            }
            try { Console.WriteLine("libgptq " + Library.Version + " (" + Library.BuildInfo + ")"); }
            catch (DllNotFoundException e)
            {
                Console.WriteLine("SKIP: libgptq not found (" + e.Message + "); put its directory in LD_LIBRARY_PATH");
                return 77;
            }
            var tests = typeof(Tests).GetMethods(BindingFlags.Public | BindingFlags.Static)
                .Where(m => m.Name.StartsWith("Test") && m.GetParameters().Length == 0)
                .OrderBy(m => m.MetadataToken).ToList();
            if (args.Length > 0) tests = tests.Where(m => args.Contains(m.Name)).ToList();
            int failed = 0;
            foreach (var t in tests)
            {
                var watch = System.Diagnostics.Stopwatch.StartNew();
                try
                {
                    t.Invoke(null, null);
                    Console.WriteLine("PASS {0} ({1} ms)", t.Name, watch.ElapsedMilliseconds);
                }
                catch (TargetInvocationException e)
                {
                    failed++;
                    Console.WriteLine("FAIL {0}: {1}", t.Name, e.InnerException);
                }
            }
            Console.WriteLine("{0} passed, {1} failed", tests.Count - failed, failed);
            return failed == 0 ? 0 : 1;
        }
    }
}
