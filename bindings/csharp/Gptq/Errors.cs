// Errors.cs — statuses become GptqException carrying gptq_errmsg(); UTF-8 string helpers.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace Gptq
{
    /// <summary>A gptq_status code.</summary>
    public enum Status
    {
        Ok = 0,
        InvalidArg = 1,
        Io = 2,
        Format = 3,
        Unsupported = 4,
        OutOfMemory = 5,
        Backend = 6,
        BufferSmall = 7,
        ContextFull = 8,
        Aborted = 9,
        Numeric = 10,
        Internal = 11,
    }

    /// <summary>A failed libgptq call: its status and the library's message naming the problem.</summary>
    public class GptqException : Exception
    {
        public Status Status { get; private set; }
        /// <summary>The library's message alone (Message adds the status text).</summary>
        public string Detail { get; private set; }

        public GptqException(Status status, string detail)
            : base(detail + " (" + Interop.StatusText(status) + ")")
        {
            Status = status;
            Detail = detail;
        }
    }

    internal static class Interop
    {
        /// <summary>Throws for a failed status. Call right after the failing call, on the same thread
        /// (gptq_errmsg is thread-local and overwritten by the next call).</summary>
        internal static void Check(int status)
        {
            if (status != 0) throw LastError(status);
        }

        internal static GptqException LastError(int status)
        {
            string msg = FromUtf8(Native.gptq_errmsg());
            if (msg.Length == 0) msg = StatusText((Status)status);
            return new GptqException((Status)status, msg);
        }

        internal static string StatusText(Status status)
        {
            return FromUtf8(Native.gptq_status_str((int)status));
        }

        /// <summary>NUL-terminated UTF-8 bytes of s.</summary>
        internal static byte[] ToUtf8Z(string s)
        {
            int n = Encoding.UTF8.GetByteCount(s);
            var bytes = new byte[n + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, bytes, 0);
            if (Array.IndexOf(bytes, (byte)0, 0, n) >= 0)
                throw new GptqException(Status.InvalidArg, "string contains a NUL character: " + s);
            return bytes;
        }

        internal static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return "";
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            return FromUtf8(p, n);
        }

        internal static string FromUtf8(IntPtr p, int n)
        {
            if (p == IntPtr.Zero || n == 0) return "";
            var bytes = new byte[n];
            Marshal.Copy(p, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }

        internal static int Flag(bool b) { return b ? 1 : 0; }

        /// <summary>Calls a C function writing a NUL-terminated string into a sized buffer, growing
        /// the buffer when it answers BUFFER_SMALL with the size needed.</summary>
        internal delegate int StringWriter(byte[] buf, UIntPtr size, out UIntPtr n);

        internal static string ReadString(int initial, StringWriter f)
        {
            var buf = new byte[Math.Max(initial, 1)];
            while (true)
            {
                UIntPtr n;
                int st = f(buf, (UIntPtr)buf.Length, out n);
                if (st == (int)Status.BufferSmall && (long)n.ToUInt64() > buf.Length)
                {
                    buf = new byte[(int)n.ToUInt64()];
                    continue;
                }
                Check(st);
                return Encoding.UTF8.GetString(buf, 0, (int)Math.Min(n.ToUInt64(), (ulong)buf.Length));
            }
        }
    }
}
