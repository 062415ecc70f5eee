// Library.cs — process-wide calls: version, build info, logging, quantization.
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    public enum LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 }

    public static class Library
    {
        /// <summary>The gptq.h version this binding was written for.</summary>
        public const string BindingVersion = "0.1.0";

        /// <summary>The library's version at run time, e.g. "0.1.0".</summary>
        public static string Version { get { return Interop.FromUtf8(Native.gptq_version()); } }

        /// <summary>Which optional parts the library has, e.g. "cpu cuda openblas mimalloc".</summary>
        public static string BuildInfo { get { return Interop.FromUtf8(Native.gptq_build_info()); } }

        public static bool CudaAvailable { get { return Native.gptq_cuda_available() != 0; } }

        // The delegate C holds must stay reachable for as long as it is installed.
#pragma warning disable 414
        private static Native.LogCallback logDelegate;
#pragma warning restore 414
        private static readonly object logLock = new object();

        /// <summary>Routes the library's log messages to callback (called from any thread); null
        /// silences the library again. Exceptions thrown by the callback are swallowed.</summary>
        public static void SetLogCallback(Action<LogLevel, string> callback)
        {
            lock (logLock)
            {
                if (callback == null)
                {
                    Native.gptq_set_log_callback(null, IntPtr.Zero);
                    logDelegate = null;
                    return;
                }
                Native.LogCallback d = (level, message, userData) =>
                {
                    try { callback((LogLevel)level, Interop.FromUtf8(message)); }
                    catch (Exception) { /* must not unwind into C */ }
                };
                Native.gptq_set_log_callback(d, IntPtr.Zero);
                logDelegate = d;
            }
        }

        /// <summary>Quantizes the model in modelDir layer by layer and writes a GPTQ checkpoint to outDir
        /// (written to a temporary directory and renamed into place only when complete). progress may
        /// return false to cancel (a GptqException with Status.Aborted).</summary>
        public static void Quantize(string modelDir, string outDir, QuantizeParams options = null,
                                    Func<Progress, bool> progress = null)
        {
            var o = options ?? new QuantizeParams();
            var p = Native.gptq_quantize_params_default();
            p.bits = o.Bits;
            p.group_size = o.GroupSize;
            p.sym = Interop.Flag(o.Sym);
            p.desc_act = Interop.Flag(o.DescAct);
            p.static_groups = Interop.Flag(o.StaticGroups);
            p.true_sequential = Interop.Flag(o.TrueSequential);
            p.damp_percent = o.DampPercent;
            p.damp_auto_increment = o.DampAutoIncrement;
            p.block_size = o.BlockSize;
            p.fp16_scales_in_solve = Interop.Flag(o.Fp16ScalesInSolve);
            p.checkpoint_format = (int)o.CheckpointFormat;
            p.calib_n_samples = o.CalibSamples;
            p.calib_seq_len = o.CalibSeqLen;
            p.seed = o.Seed;
            p.backend = (int)o.Backend;
            p.n_threads = o.Threads;
            p.max_shard_bytes = o.MaxShardBytes;
            p.clip_search = o.ClipSearch;
            var bridge = new CallbackBridge(progress, null);
            if (progress != null) p.progress = Marshal.GetFunctionPointerForDelegate(bridge.ProgressDelegate);
            var pinned = new System.Collections.Generic.List<GCHandle>();
            try
            {
                p.calib_tokens_path = PinPath(o.CalibTokensPath, pinned);
                p.calib_text_path = PinPath(o.CalibTextPath, pinned);
                int st = Native.gptq_quantize(Interop.ToUtf8Z(modelDir), Interop.ToUtf8Z(outDir), ref p);
                GC.KeepAlive(bridge);
                bridge.Finish(st, false);
            }
            finally
            {
                foreach (var h in pinned) h.Free();
            }
        }

        private static IntPtr PinPath(string path, System.Collections.Generic.List<GCHandle> pinned)
        {
            if (string.IsNullOrEmpty(path)) return IntPtr.Zero;
            var h = GCHandle.Alloc(Interop.ToUtf8Z(path), GCHandleType.Pinned);
            pinned.Add(h);
            return h.AddrOfPinnedObject();
        }
    }
}
