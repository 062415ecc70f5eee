// Context.cs — a KV cache for evaluation and generation.
using System;
using System.Collections.Generic;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace Gptq
{
    /// <summary>One evaluation's tokens. Pos, SeqIds and Logits, when not null, need one entry per
    /// token. Null Pos: each sequence continues where it stopped; null SeqIds: all sequence 0; null
    /// Logits: only the last token of each sequence keeps logits.</summary>
    public sealed class Batch
    {
        public int[] Tokens { get; set; }
        public int[] Pos { get; set; }
        public int[] SeqIds { get; set; }
        public bool[] Logits { get; set; }
    }

    public struct PerplexityResult
    {
        public double Perplexity;
        /// <summary>Tokens scored.</summary>
        public long Tokens;
    }

    /// <summary>A context of a model, used by one thread at a time. It keeps its model alive, so it
    /// may outlive the <see cref="Model"/> object it was made from.</summary>
    public sealed class Context : IDisposable
    {
        internal readonly ContextHandle Handle;
        private readonly int contextLength;
        private readonly int maxSequences;
        private readonly int vocabSize;
        private readonly int maxPieceBytes;

        public Context(Model model, ContextParams options = null)
        {
            var o = options ?? new ContextParams();
            var info = model.Info;
            maxPieceBytes = model.MaxPieceBytes;
            var p = o.ToNative();
            Interop.Check(Native.gptq_context_init(model.Handle, ref p, out Handle));
            contextLength = o.ContextLength > 0 ? o.ContextLength : Math.Max(1, Math.Min(info.MaxPositionEmbeddings, 4096));
            maxSequences = Math.Max(1, o.MaxSequences);
            vocabSize = info.VocabSize;
        }

        public void Dispose() { Handle.Dispose(); }

        /// <summary>Forgets one sequence's KV cache.</summary>
        public void Reset(int seqId)
        {
            if (seqId < 0) throw new ArgumentOutOfRangeException("seqId", "use ResetAll");
            Interop.Check(Native.gptq_context_reset(Handle, seqId));
        }

        /// <summary>Forgets every sequence.</summary>
        public void ResetAll() { Interop.Check(Native.gptq_context_reset(Handle, -1)); }

        /// <summary>Positions sequence seqId holds (where it continues).</summary>
        public int SeqLen(int seqId = 0) { return Native.gptq_context_seq_len(Handle, seqId); }

        /// <summary>Evaluates tokens continuing sequence 0; the last one (index n-1) keeps its logits.</summary>
        public void Eval(params int[] tokens) { EvalBatch(new Batch { Tokens = tokens }); }

        public void EvalBatch(Batch batch)
        {
            int n = batch.Tokens.Length;
            CheckLength("Pos", batch.Pos, n);
            CheckLength("SeqIds", batch.SeqIds, n);
            CheckLength("Logits", batch.Logits, n);
            sbyte[] flags = null;
            if (batch.Logits != null)
            {
                flags = new sbyte[n];
                for (int i = 0; i < n; i++) flags[i] = (sbyte)(batch.Logits[i] ? 1 : 0);
            }
            var pins = new List<GCHandle>();
            try
            {
                var raw = new Native.gptq_batch
                {
                    n_tokens = n,
                    tokens = Pin(batch.Tokens, pins),
                    pos = Pin(batch.Pos, pins),
                    seq_id = Pin(batch.SeqIds, pins),
                    logits = Pin(flags, pins),
                };
                Interop.Check(Native.gptq_eval(Handle, ref raw));
            }
            finally
            {
                foreach (var h in pins) h.Free();
            }
        }

        private static void CheckLength(string name, Array a, int n)
        {
            if (a != null && a.Length != n)
                throw new GptqException(Status.InvalidArg, string.Format("Batch.{0} has {1} entries for {2} tokens", name, a.Length, n));
        }

        private static IntPtr Pin(Array a, List<GCHandle> pins)
        {
            if (a == null || a.Length == 0) return IntPtr.Zero;
            var h = GCHandle.Alloc(a, GCHandleType.Pinned);
            pins.Add(h);
            return h.AddrOfPinnedObject();
        }

        /// <summary>A copy of the logits (VocabSize floats) of the i-th token of the last batch.</summary>
        public float[] GetLogits(int i)
        {
            IntPtr p = Native.gptq_get_logits(Handle, i);
            if (p == IntPtr.Zero) throw Interop.LastError((int)Status.InvalidArg);
            var logits = new float[vocabSize];
            Marshal.Copy(p, logits, 0, vocabSize);
            return logits;
        }

        /// <summary>Generates a continuation of prompt (sequence 0, reset first). onToken, if given, gets
        /// each new token as it is made; returning false stops generation (the text so far is returned).</summary>
        public string Generate(string prompt, GenerateParams options = null, Func<Token, bool> onToken = null)
        {
            return GenerateBatch(new[] { prompt }, options, onToken)[0];
        }

        /// <summary>Generates for several prompts at once (needs MaxSequences >= prompts.Length);
        /// sequence i samples with Seed + i. Token.Seq says which prompt a streamed token continues.</summary>
        public string[] GenerateBatch(string[] prompts, GenerateParams options = null, Func<Token, bool> onToken = null)
        {
            var o = options ?? new GenerateParams();
            if (prompts.Length > maxSequences)
                throw new GptqException(Status.InvalidArg, string.Format(
                    "{0} prompts but the context holds {1} sequences (ContextParams.MaxSequences)", prompts.Length, maxSequences));
            int n = prompts.Length;
            // Each output buffer holds the whole text: no token decodes to more bytes than the longest
            // piece, and no sequence outgrows the context.
            int tokens = o.MaxTokens > 0 ? Math.Min(o.MaxTokens, contextLength) : contextLength;
            int capacity = tokens * maxPieceBytes + 64;
            var native = new List<IntPtr>();
            try
            {
                var promptPtrs = new IntPtr[n];
                var outs = new IntPtr[n];
                var sizes = new UIntPtr[n];
                var lens = new UIntPtr[n];
                for (int i = 0; i < n; i++)
                {
                    promptPtrs[i] = Alloc(Interop.ToUtf8Z(prompts[i]), native);
                    outs[i] = Marshal.AllocHGlobal(capacity);
                    native.Add(outs[i]);
                    sizes[i] = (UIntPtr)capacity;
                }
                var stops = o.StopStrings ?? new string[0];
                var stopPtrs = new IntPtr[stops.Length];
                for (int i = 0; i < stops.Length; i++) stopPtrs[i] = Alloc(Interop.ToUtf8Z(stops[i]), native);

                var p = o.ToNative();
                if (stops.Length > 0)
                {
                    p.stop_strings = Marshal.AllocHGlobal(IntPtr.Size * stops.Length);
                    native.Add(p.stop_strings);
                    Marshal.Copy(stopPtrs, 0, p.stop_strings, stops.Length);
                    p.n_stop_strings = stops.Length;
                }
                var bridge = new CallbackBridge(null, onToken);
                if (onToken != null) p.on_token = Marshal.GetFunctionPointerForDelegate(bridge.TokenDelegate);
                int st = Native.gptq_generate_batch(Handle, promptPtrs, n, ref p, outs, sizes, lens);
                GC.KeepAlive(bridge);
                bridge.Finish(st, true);

                var texts = new string[n];
                for (int i = 0; i < n; i++)
                    texts[i] = Interop.FromUtf8(outs[i], (int)Math.Min(lens[i].ToUInt64(), (ulong)(capacity - 1)));
                return texts;
            }
            finally
            {
                foreach (var ptr in native) Marshal.FreeHGlobal(ptr);
            }
        }

        private static IntPtr Alloc(byte[] bytes, List<IntPtr> owned)
        {
            IntPtr p = Marshal.AllocHGlobal(bytes.Length);
            owned.Add(p);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            return p;
        }

        /// <summary>Streams the tokens of a generation as an enumerable. Generation runs on a worker
        /// thread in lockstep with the enumeration (one token ahead at most); leaving the loop early
        /// stops it. Do not use the context otherwise until the enumeration ends.</summary>
        public IEnumerable<Token> GenerateTokens(string prompt, GenerateParams options = null)
        {
            var produced = new SemaphoreSlim(0);
            var consumed = new SemaphoreSlim(0);
            Token current = default(Token);
            bool finished = false;
            bool cancel = false;
            Exception failure = null;
            var worker = new Thread(() =>
            {
                try
                {
                    Generate(prompt, options, t =>
                    {
                        current = t;
                        produced.Release();
                        consumed.Wait();
                        return !Volatile.Read(ref cancel);
                    });
                }
                catch (Exception e) { failure = e; }
                finally
                {
                    Volatile.Write(ref finished, true);
                    produced.Release();
                }
            });
            worker.IsBackground = true;
            worker.Start();
            try
            {
                while (true)
                {
                    produced.Wait();
                    if (Volatile.Read(ref finished)) break;
                    yield return current;
                    consumed.Release();
                }
            }
            finally
            {
                if (!Volatile.Read(ref finished))
                {
                    // Left early: tell the callback to stop and let the worker run to its end.
                    Volatile.Write(ref cancel, true);
                    consumed.Release();
                }
                worker.Join();
            }
            if (failure != null) ExceptionDispatchInfo.Capture(failure).Throw();
        }

        /// <summary>Perplexity of text by the protocol of gptq.h (chunks of seqLen-1 targets);
        /// maxChunks &lt;= 0 scores every chunk.</summary>
        public PerplexityResult Perplexity(string text, int seqLen, int maxChunks = 0, Func<Progress, bool> progress = null)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(text);
            var bridge = new CallbackBridge(progress, null);
            double ppl;
            long n;
            int st = Native.gptq_perplexity(Handle, utf8, (UIntPtr)utf8.Length, seqLen, maxChunks,
                                            progress != null ? bridge.ProgressDelegate : null, IntPtr.Zero, out ppl, out n);
            GC.KeepAlive(bridge);
            bridge.Finish(st, false);
            return new PerplexityResult { Perplexity = ppl, Tokens = n };
        }
    }
}
