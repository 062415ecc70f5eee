// Tests.cs — the C# binding against stories260k's goldens and a small quantization run.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;

namespace Gptq.Tests
{
    public static class Paths
    {
        // The test binary lives in bindings/csharp/bin (or a build dir): the repo is found from
        // GPTQ_SOURCE_DIR, else from the current directory (bindings/csharp when run by hand).
        public static string Repo
        {
            get
            {
                var env = Environment.GetEnvironmentVariable("GPTQ_SOURCE_DIR");
                return !string.IsNullOrEmpty(env) ? env : Path.GetFullPath(Path.Combine(Directory.GetCurrentDirectory(), "..", ".."));
            }
        }

        public static string Shared
        {
            get
            {
                var env = Environment.GetEnvironmentVariable("GPTQ_SHARED_DIR");
                return !string.IsNullOrEmpty(env) ? env : Path.Combine(Repo, "..", "shared");
            }
        }

        public static string Stories { get { return Path.Combine(Shared, "models", "stories260k"); } }
        public static string Golden(string name) { return Path.Combine(Stories, "golden", name); }
        public static string DocsLlama8m { get { return Path.Combine(Repo, "models", "docs-llama-8m"); } }

        public static string TempPath(string tag)
        {
            return Path.Combine(Path.GetTempPath(), "gptq-cs-" + tag + "-" + Guid.NewGuid().ToString("N"));
        }
    }

    public static class Tests
    {
        static string GoldenText { get { return File.ReadAllText(Paths.Golden("expected_greedy_n200.txt"), new UTF8Encoding(false)); } }

        static int[] GoldenIds
        {
            get
            {
                return File.ReadAllLines(Paths.Golden("greedy_n200_token_ids.txt"))
                    .Where(l => l.Trim().Length > 0)
                    .Select(l => int.Parse(l.Split(' ')[2])).ToArray();
            }
        }

        // The goldens are CPU results, and Backend.Auto would pick CUDA when present.
        static LoadParams Cpu { get { return new LoadParams { Backend = Backend.Cpu }; } }

        // BOS, then 200 greedy tokens from an empty prompt: the run the golden text was made with
        // (llama2.c -n 200; the golden id file lists those 200 tokens).
        static GenerateParams GoldenParams()
        {
            var p = GenerateParams.Greedy(200);
            p.AddBos = true;
            return p;
        }

        public static void TestStructLayoutsMatchTheLibrary()
        {
            Assert.Equal((ulong)Marshal.SizeOf(typeof(Native.gptq_load_params)), Native.gptq_load_params_default().struct_size.ToUInt64(), "load params");
            Assert.Equal((ulong)Marshal.SizeOf(typeof(Native.gptq_context_params)), Native.gptq_context_params_default().struct_size.ToUInt64(), "context params");
            Assert.Equal((ulong)Marshal.SizeOf(typeof(Native.gptq_generate_params)), Native.gptq_generate_params_default().struct_size.ToUInt64(), "generate params");
            Assert.Equal((ulong)Marshal.SizeOf(typeof(Native.gptq_quantize_params)), Native.gptq_quantize_params_default().struct_size.ToUInt64(), "quantize params");
            Assert.Equal(Library.BindingVersion, Library.Version, "version");
        }

        public static void TestModelInfo()
        {
            using (var m = Model.Load(Paths.Stories, Cpu))
            {
                var i = m.Info;
                Assert.Equal("llama", i.Architecture, "architecture");
                Assert.Equal(512, i.VocabSize, "vocab");
                Assert.Equal(64, i.HiddenSize, "hidden");
                Assert.Equal(5, i.Layers, "layers");
                Assert.Equal(8, i.Heads, "heads");
                Assert.Equal(4, i.KvHeads, "kv heads");
                Assert.Equal(1, i.BosToken, "bos");
                Assert.True(i.TiedEmbeddings, "tied embeddings");
                Assert.Equal(0, i.QuantBits, "quant bits");
            }
        }

        public static void TestTokenizerRoundTripsTheGoldenText()
        {
            using (var m = Model.Load(Paths.Stories, Cpu))
            {
                var ids = m.Tokenize(GoldenText, false);
                Assert.True(ids.SequenceEqual(GoldenIds), "tokenize gives the golden ids (" + ids.Length + " ids)");
                var withBos = m.Tokenize(GoldenText, true);
                Assert.Equal(1, withBos[0], "BOS first");
                Assert.True(withBos.Skip(1).SequenceEqual(GoldenIds), "then the golden ids");
                Assert.Equal(GoldenText, m.Detokenize(GoldenIds), "detokenize");
                Assert.Equal("<0x0A>", m.TokenPiece(3 + 0x0A), "piece of the newline byte");
            }
        }

        public static void TestLogitsMatchTheGolden()
        {
            using (var m = Model.Load(Paths.Stories, Cpu))
            using (var c = new Context(m, new ContextParams { ContextLength = 64 }))
            {
                var rows = File.ReadAllLines(Paths.Golden("logits_pos0-2.txt")).Where(l => l.Trim().Length > 0)
                    .Select(l => l.Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries).Skip(1)
                        .Select(v => double.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToArray();
                Assert.Equal(3, rows.Length, "golden rows");
                c.EvalBatch(new Batch { Tokens = new[] { 1, 403, 407 }, Logits = new[] { true, true, true } });
                for (int p = 0; p < 3; p++)
                {
                    var got = c.GetLogits(p);
                    Assert.Equal(512, got.Length, "logits length");
                    double worst = Enumerable.Range(0, 512).Max(v => Math.Abs(got[v] - rows[p][v]));
                    Assert.True(worst < 1e-4, "position " + p + " max |diff| " + worst);
                }
                Assert.Equal(3, c.SeqLen(0), "seq len");

                var e = Assert.Throws<GptqException>(() => c.EvalBatch(new Batch { Tokens = new[] { 1, 2 }, Pos = new[] { 0 } }), "mismatched batch");
                Assert.Equal(Status.InvalidArg, e.Status, "mismatched batch status");
                c.ResetAll();
                c.Eval(1, 403);
                var notKept = Assert.Throws<GptqException>(() => c.GetLogits(0), "logits not kept");
                Assert.True(notKept.Detail.Length > 0, "message of logits not kept");
            }
        }

        public static void TestGreedy200EqualsTheGoldenText()
        {
            using (var m = Model.Load(Paths.Stories, Cpu))
            using (var c = new Context(m))
            {
                Assert.Equal(GoldenText, c.Generate("", GoldenParams()), "greedy text");

                var pieces = new StringBuilder();
                var ids = new List<int>();
                var streamed = c.Generate("", GoldenParams(), t => { pieces.Append(t.Text); ids.Add(t.Id); return true; });
                Assert.Equal(GoldenText, streamed, "streamed text");
                Assert.Equal(GoldenText, pieces.ToString(), "pieces");
                Assert.True(ids.SequenceEqual(GoldenIds), "streamed ids are the golden ids");

                int n = 0;
                var early = c.Generate("", GoldenParams(), t => ++n < 5);
                Assert.Equal(5, n, "callbacks before the stop");
                Assert.True(early.Length > 0 && early.Length < 40 && GoldenText.StartsWith(early, StringComparison.Ordinal), "early text: " + early);
            }
        }

        public static void TestGenerateTokensEnumerates()
        {
            using (var m = Model.Load(Paths.Stories, Cpu))
            using (var c = new Context(m))
            {
                var all = string.Concat(c.GenerateTokens("", GoldenParams()).Select(t => t.Text));
                Assert.Equal(GoldenText, all, "enumerated text");
                var first3 = c.GenerateTokens("", GoldenParams()).Take(3).Select(t => t.Id).ToArray();
                Assert.True(first3.SequenceEqual(GoldenIds.Take(3)), "leaving the enumeration early");
                // The context is free again afterwards.
                Assert.Equal(GoldenText, c.Generate("", GoldenParams()), "after an early exit");
            }
        }

        public static void TestCallbackExceptionReachesTheCaller()
        {
            using (var m = Model.Load(Paths.Stories, Cpu))
            using (var c = new Context(m))
            {
                var e = Assert.Throws<InvalidOperationException>(
                    () => c.Generate("", GoldenParams(), t => { throw new InvalidOperationException("boom"); }), "callback exception");
                Assert.Equal("boom", e.Message, "the callback's own exception");
                Assert.Equal(GoldenText, c.Generate("", GoldenParams()), "usable after");
            }
        }

        public static void TestBatchAndStopStrings()
        {
            using (var m = Model.Load(Paths.Stories, Cpu))
            using (var c = new Context(m, new ContextParams { ContextLength = 256, MaxSequences = 2 }))
            {
                var outs = c.GenerateBatch(new[] { "", "" }, GoldenParams());
                Assert.Equal(GoldenText, outs[0], "batch 0");
                Assert.Equal(GoldenText, outs[1], "batch 1");
                var e = Assert.Throws<GptqException>(() => c.GenerateBatch(new[] { "", "", "" }, GoldenParams()), "too many prompts");
                Assert.True(e.Message.Contains("MaxSequences"), e.Message);
                var p = GoldenParams();
                p.StopStrings = new[] { "Lily" };
                Assert.Equal(GoldenText.Substring(0, GoldenText.IndexOf("Lily", StringComparison.Ordinal)), c.Generate("", p), "stop string");
            }
        }

        public static void TestDisposeOrderAndThreads()
        {
            var m = Model.Load(Paths.Stories, Cpu);
            var contexts = Enumerable.Range(0, 2).Select(_ => new Context(m, new ContextParams { ContextLength = 256 })).ToList();
            m.Dispose(); // the contexts keep the model alive
            Assert.Throws<ObjectDisposedException>(() => { var unused = m.Info; }, "use after dispose");
            var results = new string[contexts.Count];
            var threads = contexts.Select((c, i) => new Thread(() => { results[i] = c.Generate("", GoldenParams()); c.Dispose(); })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.True(results.All(r => r == GoldenText), "every thread's text");
        }

        public static void TestLoadingAMissingDirFails()
        {
            var dir = Paths.TempPath("no-such-model");
            var e = Assert.Throws<GptqException>(() => Model.Load(dir), "missing dir");
            Assert.Equal(Status.Io, e.Status, "status (" + e.Message + ")");
            Assert.True(e.Detail.Contains(Path.GetFileName(dir)), "message names the dir: " + e.Detail);
        }

        public static void TestQuantizeDocsLlama8m()
        {
            var outDir = Paths.TempPath("quantized");
            var cancelled = Paths.TempPath("cancelled");
            try
            {
                var q = new QuantizeParams
                {
                    CalibSamples = 4,
                    CalibSeqLen = 64,
                    CalibTextPath = Path.Combine(Paths.Shared, "data", "docs-heldout.txt"),
                };
                int reports = 0;
                Library.Quantize(Paths.DocsLlama8m, outDir, q, p => { reports++; return true; });
                Assert.True(reports > 0, "the progress callback was called");
                using (var m = Model.Load(outDir))
                using (var c = new Context(m, new ContextParams { ContextLength = 64 }))
                {
                    Assert.Equal(4, m.Info.QuantBits, "bits");
                    Assert.Equal(128, m.Info.QuantGroupSize, "group size");
                    Assert.True(c.Generate("The", GenerateParams.Greedy(8)).Length > 0, "generates");
                }
                var e = Assert.Throws<GptqException>(() => Library.Quantize(Paths.DocsLlama8m, cancelled, q, p => false), "cancel");
                Assert.Equal(Status.Aborted, e.Status, "cancel status");
                Assert.True(!Directory.Exists(cancelled), "a cancelled run leaves nothing behind");
            }
            finally
            {
                if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
                if (Directory.Exists(cancelled)) Directory.Delete(cancelled, true);
            }
        }
    }
}
