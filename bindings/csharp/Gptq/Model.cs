// Model.cs — a loaded model, its metadata and its tokenizer.
using System;
using System.Text;

namespace Gptq
{
    public sealed class ModelInfo
    {
        public string Architecture { get; internal set; }
        public int VocabSize { get; internal set; }
        public int HiddenSize { get; internal set; }
        public int IntermediateSize { get; internal set; }
        public int Layers { get; internal set; }
        public int Heads { get; internal set; }
        public int KvHeads { get; internal set; }
        public int HeadDim { get; internal set; }
        public int MaxPositionEmbeddings { get; internal set; }
        /// <summary>-1 if none.</summary>
        public int BosToken { get; internal set; }
        /// <summary>-1 if none.</summary>
        public int EosToken { get; internal set; }
        public bool AddBos { get; internal set; }
        public bool TiedEmbeddings { get; internal set; }
        public float RopeTheta { get; internal set; }
        public float RmsNormEps { get; internal set; }
        public long Parameters { get; internal set; }
        public long WeightBytes { get; internal set; }
        /// <summary>0 for a float model.</summary>
        public int QuantBits { get; internal set; }
        public int QuantGroupSize { get; internal set; }
        public bool QuantSym { get; internal set; }
        public bool QuantDescAct { get; internal set; }
        /// <summary>The backend chosen at load.</summary>
        public Backend Backend { get; internal set; }
    }

    /// <summary>A loaded model. Immutable, so it may be used from many threads at once. Contexts keep
    /// it alive on the native side: disposing it before them is fine.</summary>
    public sealed class Model : IDisposable
    {
        internal readonly ModelHandle Handle;
        private int maxPieceBytes;

        private Model(ModelHandle handle) { Handle = handle; }

        /// <summary>Loads a model directory (config.json, *.safetensors, tokenizer.model or
        /// tokenizer.json). progress may return false to cancel (a GptqException with
        /// Status.Aborted).</summary>
        public static Model Load(string dir, LoadParams options = null, Func<Progress, bool> progress = null)
        {
            if (dir == null) throw new ArgumentNullException("dir");
            var o = options ?? new LoadParams();
            var p = Native.gptq_load_params_default();
            p.backend = (int)o.Backend;
            p.device = o.Device;
            p.n_threads = o.Threads;
            var bridge = new CallbackBridge(progress, null);
            if (progress != null)
                p.progress = System.Runtime.InteropServices.Marshal.GetFunctionPointerForDelegate(bridge.ProgressDelegate);
            ModelHandle h;
            int st = Native.gptq_load(Interop.ToUtf8Z(dir), ref p, out h);
            GC.KeepAlive(bridge);
            bridge.Finish(st, false);
            return new Model(h);
        }

        public ModelInfo Info
        {
            get
            {
                var i = new Native.gptq_model_info();
                i.struct_size = (UIntPtr)System.Runtime.InteropServices.Marshal.SizeOf(typeof(Native.gptq_model_info));
                i.architecture = new byte[64];
                Interop.Check(Native.gptq_model_get_info(Handle, ref i));
                int len = Array.IndexOf(i.architecture, (byte)0);
                return new ModelInfo
                {
                    Architecture = Encoding.UTF8.GetString(i.architecture, 0, len < 0 ? 64 : len),
                    VocabSize = i.vocab_size,
                    HiddenSize = i.hidden_size,
                    IntermediateSize = i.intermediate_size,
                    Layers = i.n_layers,
                    Heads = i.n_heads,
                    KvHeads = i.n_kv_heads,
                    HeadDim = i.head_dim,
                    MaxPositionEmbeddings = i.max_position_embeddings,
                    BosToken = i.bos_token,
                    EosToken = i.eos_token,
                    AddBos = i.add_bos != 0,
                    TiedEmbeddings = i.tied_embeddings != 0,
                    RopeTheta = i.rope_theta,
                    RmsNormEps = i.rms_norm_eps,
                    Parameters = i.n_params,
                    WeightBytes = i.weight_bytes,
                    QuantBits = i.quant_bits,
                    QuantGroupSize = i.quant_group_size,
                    QuantSym = i.quant_sym != 0,
                    QuantDescAct = i.quant_desc_act != 0,
                    Backend = (Backend)i.backend,
                };
            }
        }

        /// <summary>Encodes text. addBos: true/false, or null for what the model's configs say.</summary>
        public int[] Tokenize(string text, bool? addBos = null)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(text);
            int flag = addBos.HasValue ? Interop.Flag(addBos.Value) : -1;
            var tokens = new int[utf8.Length + 4]; // byte fallback: one token per byte at most, + BOS
            while (true)
            {
                UIntPtr n;
                int st = Native.gptq_tokenize(Handle, utf8, (UIntPtr)utf8.Length, flag, tokens, (UIntPtr)tokens.Length, out n);
                if (st == (int)Status.BufferSmall && (int)n.ToUInt64() > tokens.Length)
                {
                    tokens = new int[(int)n.ToUInt64()];
                    continue;
                }
                Interop.Check(st);
                Array.Resize(ref tokens, (int)n.ToUInt64());
                return tokens;
            }
        }

        /// <summary>Decodes ids to text as SentencePiece does.</summary>
        public string Detokenize(int[] tokens)
        {
            return Interop.ReadString(tokens.Length * 8 + 16, (byte[] buf, UIntPtr size, out UIntPtr n) =>
                Native.gptq_detokenize(Handle, tokens, (UIntPtr)tokens.Length, buf, size, out n));
        }

        /// <summary>The raw piece of one id, e.g. "▁the" or "&lt;0x0A&gt;".</summary>
        public string TokenPiece(int token)
        {
            return Interop.ReadString(32, (byte[] buf, UIntPtr size, out UIntPtr n) =>
                Native.gptq_token_piece(Handle, token, buf, size, out n));
        }

        /// <summary>Bytes of the longest piece: no token decodes to more, which sizes generation buffers.</summary>
        internal int MaxPieceBytes
        {
            get
            {
                if (maxPieceBytes > 0) return maxPieceBytes;
                int longest = 8, vocab = Info.VocabSize;
                var buf = new byte[256];
                for (int t = 0; t < vocab; t++)
                {
                    UIntPtr n;
                    int st = Native.gptq_token_piece(Handle, t, buf, (UIntPtr)buf.Length, out n);
                    if (st != (int)Status.BufferSmall) Interop.Check(st);
                    longest = Math.Max(longest, (int)n.ToUInt64() + 1);
                }
                maxPieceBytes = longest;
                return longest;
            }
        }

        public void Dispose() { Handle.Dispose(); }
    }
}
