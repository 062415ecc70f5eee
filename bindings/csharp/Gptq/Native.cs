// Native.cs — the raw P/Invoke declarations of gptq.h, one to one.
//
// Struct layouts mirror the C ones (sequential, natural alignment; size_t is UIntPtr, pointers
// and callbacks are IntPtr). Each *_params_default() stores the C sizeof in struct_size, which
// the tests compare with Marshal.SizeOf. Strings cross as NUL-terminated UTF-8 byte arrays.
using System;
using System.Runtime.InteropServices;

namespace Gptq
{
    /// <summary>The C API as declared in gptq.h. Prefer <see cref="Model"/> and <see cref="Context"/>.</summary>
    public static class Native
    {
        public const string Library = "gptq"; // libgptq.so, found through LD_LIBRARY_PATH

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate void LogCallback(int level, IntPtr message, IntPtr userData);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate int ProgressCallback(IntPtr stage, long done, long total, IntPtr detail, IntPtr userData);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate int TokenCallback(int seq, int token, IntPtr text, UIntPtr textLen, IntPtr userData);

        [StructLayout(LayoutKind.Sequential)]
        public struct gptq_load_params
        {
            public UIntPtr struct_size;
            public int backend;
            public int device;
            public int n_threads;
            public IntPtr progress;
            public IntPtr progress_user_data;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct gptq_model_info
        {
            public UIntPtr struct_size;
            [MarshalAs(UnmanagedType.ByValArray, SizeConst = 64)] public byte[] architecture;
            public int vocab_size;
            public int hidden_size;
            public int intermediate_size;
            public int n_layers;
            public int n_heads;
            public int n_kv_heads;
            public int head_dim;
            public int max_position_embeddings;
            public int bos_token;
            public int eos_token;
            public int add_bos;
            public int tied_embeddings;
            public float rope_theta;
            public float rms_norm_eps;
            public long n_params;
            public long weight_bytes;
            public int quant_bits;
            public int quant_group_size;
            public int quant_sym;
            public int quant_desc_act;
            public int backend;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct gptq_context_params
        {
            public UIntPtr struct_size;
            public int n_ctx;
            public int n_seq_max;
            public int n_batch;
            public int n_threads;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct gptq_batch
        {
            public int n_tokens;
            public IntPtr tokens;
            public IntPtr pos;
            public IntPtr seq_id;
            public IntPtr logits;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct gptq_generate_params
        {
            public UIntPtr struct_size;
            public int max_tokens;
            public float temperature;
            public int top_k;
            public float top_p;
            public float min_p;
            public float repeat_penalty;
            public int repeat_last_n;
            public ulong seed;
            public int add_bos;
            public int stop_at_eos;
            public IntPtr stop_strings;
            public int n_stop_strings;
            public IntPtr on_token;
            public IntPtr user_data;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct gptq_quantize_params
        {
            public UIntPtr struct_size;
            public int bits;
            public int group_size;
            public int sym;
            public int desc_act;
            public int static_groups;
            public int true_sequential;
            public float damp_percent;
            public float damp_auto_increment;
            public int block_size;
            public int fp16_scales_in_solve;
            public int checkpoint_format;
            public IntPtr calib_tokens_path;
            public IntPtr calib_text_path;
            public int calib_n_samples;
            public int calib_seq_len;
            public ulong seed;
            public int backend;
            public int n_threads;
            public long max_shard_bytes;
            public IntPtr progress;
            public IntPtr progress_user_data;
            public int clip_search;
        }

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr gptq_status_str(int status);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr gptq_errmsg();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr gptq_version();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr gptq_build_info();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void gptq_set_log_callback(LogCallback callback, IntPtr userData);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_cuda_available();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern gptq_load_params gptq_load_params_default();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_load(byte[] modelDir, ref gptq_load_params p, out ModelHandle model);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void gptq_model_free(IntPtr model);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_model_get_info(ModelHandle model, ref gptq_model_info info);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_tokenize(ModelHandle model, byte[] text, UIntPtr textLen, int addBos,
                                               int[] tokens, UIntPtr nMax, out UIntPtr nOut);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_detokenize(ModelHandle model, int[] tokens, UIntPtr nTokens,
                                                 byte[] text, UIntPtr textSize, out UIntPtr nOut);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_token_piece(ModelHandle model, int token, byte[] text, UIntPtr textSize,
                                                  out UIntPtr nOut);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern gptq_context_params gptq_context_params_default();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_context_init(ModelHandle model, ref gptq_context_params p, out ContextHandle ctx);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void gptq_context_free(IntPtr ctx);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_context_reset(ContextHandle ctx, int seqId);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_eval(ContextHandle ctx, ref gptq_batch batch);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr gptq_get_logits(ContextHandle ctx, int i);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_context_seq_len(ContextHandle ctx, int seqId);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern gptq_generate_params gptq_generate_params_default();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_generate(ContextHandle ctx, byte[] prompt, ref gptq_generate_params p,
                                               byte[] output, UIntPtr outSize, out UIntPtr outLen);
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_generate_batch(ContextHandle ctx, IntPtr[] prompts, int nPrompts,
                                                     ref gptq_generate_params p, IntPtr[] outs, UIntPtr[] outSizes,
                                                     UIntPtr[] outLens);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_perplexity(ContextHandle ctx, byte[] text, UIntPtr textLen, int seqLen,
                                                 int maxChunks, ProgressCallback progress, IntPtr progressUserData,
                                                 out double ppl, out long nTokens);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern gptq_quantize_params gptq_quantize_params_default();
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int gptq_quantize(byte[] modelDir, byte[] outDir, ref gptq_quantize_params p);
    }

    /// <summary>Owns one gptq_model reference; frees it exactly once, even from the finalizer.</summary>
    public sealed class ModelHandle : SafeHandle
    {
        public ModelHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.gptq_model_free(handle); return true; }
    }

    /// <summary>Owns one gptq_context. It keeps its model alive, so release order does not matter.</summary>
    public sealed class ContextHandle : SafeHandle
    {
        public ContextHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.gptq_context_free(handle); return true; }
    }
}
