// Params.cs — options of loading, contexts, generation and quantization, with the C defaults.
using System;

namespace Gptq
{
    public enum Backend { Auto = 0, Cpu = 1, Cuda = 2 }

    public enum CheckpointFormat { Auto = 0, V1 = 1, V2 = 2 }

    public sealed class LoadParams
    {
        public Backend Backend { get; set; }
        /// <summary>CUDA device ordinal.</summary>
        public int Device { get; set; }
        /// <summary>CPU threads; 0 = all cores.</summary>
        public int Threads { get; set; }

        public LoadParams()
        {
            var d = Native.gptq_load_params_default();
            Backend = (Backend)d.backend;
            Device = d.device;
            Threads = d.n_threads;
        }
    }

    public sealed class ContextParams
    {
        /// <summary>Positions per sequence; 0 = min(max_position_embeddings, 4096).</summary>
        public int ContextLength { get; set; }
        /// <summary>Sequences held at once (batched generation).</summary>
        public int MaxSequences { get; set; }
        /// <summary>Most tokens one eval computes at a time.</summary>
        public int BatchSize { get; set; }
        /// <summary>0 = the model's.</summary>
        public int Threads { get; set; }

        public ContextParams()
        {
            var d = Native.gptq_context_params_default();
            ContextLength = d.n_ctx;
            MaxSequences = d.n_seq_max;
            BatchSize = d.n_batch;
            Threads = d.n_threads;
        }

        internal Native.gptq_context_params ToNative()
        {
            var r = Native.gptq_context_params_default();
            r.n_ctx = ContextLength;
            r.n_seq_max = MaxSequences;
            r.n_batch = BatchSize;
            r.n_threads = Threads;
            return r;
        }
    }

    public sealed class GenerateParams
    {
        /// <summary>New tokens at most.</summary>
        public int MaxTokens { get; set; }
        /// <summary>0 = greedy.</summary>
        public float Temperature { get; set; }
        public int TopK { get; set; }
        public float TopP { get; set; }
        public float MinP { get; set; }
        public float RepeatPenalty { get; set; }
        public int RepeatLastN { get; set; }
        public ulong Seed { get; set; }
        /// <summary>null: as the model's configs say.</summary>
        public bool? AddBos { get; set; }
        public bool StopAtEos { get; set; }
        /// <summary>Generation stops once the output ends with one of these; the text ends before it.</summary>
        public string[] StopStrings { get; set; }

        public GenerateParams()
        {
            var d = Native.gptq_generate_params_default();
            MaxTokens = d.max_tokens;
            Temperature = d.temperature;
            TopK = d.top_k;
            TopP = d.top_p;
            MinP = d.min_p;
            RepeatPenalty = d.repeat_penalty;
            RepeatLastN = d.repeat_last_n;
            Seed = d.seed;
            AddBos = d.add_bos < 0 ? (bool?)null : d.add_bos != 0;
            StopAtEos = d.stop_at_eos != 0;
            StopStrings = new string[0];
        }

        /// <summary>Greedy decoding (temperature 0, no repetition penalty) of maxTokens tokens.</summary>
        public static GenerateParams Greedy(int maxTokens)
        {
            return new GenerateParams { MaxTokens = maxTokens, Temperature = 0, RepeatPenalty = 1 };
        }

        internal Native.gptq_generate_params ToNative()
        {
            var r = Native.gptq_generate_params_default();
            r.max_tokens = MaxTokens;
            r.temperature = Temperature;
            r.top_k = TopK;
            r.top_p = TopP;
            r.min_p = MinP;
            r.repeat_penalty = RepeatPenalty;
            r.repeat_last_n = RepeatLastN;
            r.seed = Seed;
            r.add_bos = AddBos.HasValue ? Interop.Flag(AddBos.Value) : -1;
            r.stop_at_eos = Interop.Flag(StopAtEos);
            return r;
        }
    }

    /// <summary>Defaults are the C ones: 4 bits, group 128, sym, act-order, static groups,
    /// true-sequential, damp 0.01, 128 windows of 512 tokens.</summary>
    public sealed class QuantizeParams
    {
        public int Bits { get; set; }
        /// <summary>-1 = per output column, or a divisor of every K.</summary>
        public int GroupSize { get; set; }
        public bool Sym { get; set; }
        public bool DescAct { get; set; }
        public bool StaticGroups { get; set; }
        public bool TrueSequential { get; set; }
        public float DampPercent { get; set; }
        public float DampAutoIncrement { get; set; }
        public int BlockSize { get; set; }
        public bool Fp16ScalesInSolve { get; set; }
        public CheckpointFormat CheckpointFormat { get; set; }
        /// <summary>int32 little-endian rows of CalibSeqLen tokens; wins over CalibTextPath.</summary>
        public string CalibTokensPath { get; set; }
        /// <summary>UTF-8 text windows are sampled from. Neither path = self-generated text.</summary>
        public string CalibTextPath { get; set; }
        public int CalibSamples { get; set; }
        public int CalibSeqLen { get; set; }
        public ulong Seed { get; set; }
        public Backend Backend { get; set; }
        public int Threads { get; set; }
        /// <summary>0 = one file.</summary>
        public long MaxShardBytes { get; set; }
        /// <summary>Per-group clipping search: 0 none, 1 MSE (default), 2 Hessian-weighted.</summary>
        public int ClipSearch { get; set; }

        public QuantizeParams()
        {
            var d = Native.gptq_quantize_params_default();
            Bits = d.bits;
            GroupSize = d.group_size;
            Sym = d.sym != 0;
            DescAct = d.desc_act != 0;
            StaticGroups = d.static_groups != 0;
            TrueSequential = d.true_sequential != 0;
            DampPercent = d.damp_percent;
            DampAutoIncrement = d.damp_auto_increment;
            BlockSize = d.block_size;
            Fp16ScalesInSolve = d.fp16_scales_in_solve != 0;
            CheckpointFormat = (CheckpointFormat)d.checkpoint_format;
            CalibSamples = d.calib_n_samples;
            CalibSeqLen = d.calib_seq_len;
            Seed = d.seed;
            Backend = (Backend)d.backend;
            Threads = d.n_threads;
            MaxShardBytes = d.max_shard_bytes;
            ClipSearch = d.clip_search;
        }
    }
}
