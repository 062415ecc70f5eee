"""Loading, the tokenizer, evaluation and errors, against stories260k's goldens."""

import ctypes
import gc
import os
import tempfile
import threading
import unittest

import gptq
from gptq import _lib

from _paths import GOLDEN_OPTIONS, STORIES, golden, golden_ids, read_text, require_library_and_models


def setUpModule():
    require_library_and_models(None)


class TestLibrary(unittest.TestCase):
    def test_struct_layouts_match_the_library(self):
        lib = _lib.lib()
        for fn, struct in ((lib.gptq_load_params_default, _lib.LoadParams),
                           (lib.gptq_context_params_default, _lib.ContextParams),
                           (lib.gptq_generate_params_default, _lib.GenerateParams),
                           (lib.gptq_quantize_params_default, _lib.QuantizeParams)):
            self.assertEqual(fn().struct_size, ctypes.sizeof(struct), struct.__name__)

    def test_version(self):
        self.assertEqual(gptq.version(), gptq.BINDING_VERSION)
        self.assertIn("cpu", gptq.build_info())


class TestModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = gptq.Model(STORIES, backend="cpu")

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def test_info(self):
        i = self.model.info
        self.assertEqual((i.architecture, i.vocab_size, i.hidden_size, i.n_layers, i.n_heads, i.n_kv_heads),
                         ("llama", 512, 64, 5, 8, 4))
        self.assertEqual(i.bos_token, 1)
        self.assertTrue(i.tied_embeddings)
        self.assertEqual(i.quant_bits, 0)
        self.assertEqual(i.backend, "cpu")

    def test_tokenizer_round_trips_the_golden_text(self):
        text = read_text(golden("expected_greedy_n200.txt"))
        ids = golden_ids()
        self.assertEqual(self.model.tokenize(text, add_bos=False), ids)
        self.assertEqual(self.model.tokenize(text, add_bos=True), [1] + ids)
        self.assertEqual(self.model.detokenize(ids), text)
        self.assertEqual(self.model.token_piece(3 + 0x0A), "<0x0A>")

    def test_logits_match_the_golden_first_positions(self):
        with self.model.context(n_ctx=64) as ctx:
            with open(golden("logits_pos0-2.txt")) as f:
                rows = [[float(v) for v in line.split()[1:]] for line in f if line.strip()]
            ctx.eval([1, 403, 407], logits=[True, True, True])
            for p, row in enumerate(rows):
                got = ctx.get_logits(p)
                self.assertEqual(len(got), 512)
                worst = max(abs(a - b) for a, b in zip(got, row))
                self.assertLess(worst, 1e-4, "position %d" % p)
            self.assertEqual(ctx.seq_len(0), 3)
            # One token at a time continues the cache the same way.
            ctx.reset()
            self.assertEqual(ctx.seq_len(0), 0)
            ctx.eval([1])
            ctx.eval([403])
            worst = max(abs(a - b) for a, b in zip(ctx.get_logits(0), rows[1]))
            self.assertLess(worst, 1e-4)

    def test_bad_batches_and_missing_logits_raise(self):
        with self.model.context(n_ctx=16) as ctx:
            with self.assertRaises(gptq.InvalidArgumentError) as cm:
                ctx.eval([1, 2, 3], pos=[0, 1])
            self.assertIn("pos", str(cm.exception))
            ctx.eval([1, 403])
            with self.assertRaises(gptq.GPTQError) as cm:
                ctx.get_logits(0)  # only the last token kept its logits
            self.assertTrue(cm.exception.message)

    def test_loading_a_missing_dir_fails_with_its_message(self):
        missing = os.path.join(tempfile.gettempdir(), "gptq-py-no-such-model-%d" % os.getpid())
        with self.assertRaises(gptq.GPTQFileError) as cm:
            gptq.Model(missing)
        e = cm.exception
        self.assertEqual(e.status, gptq.Status.IO)
        self.assertIn("gptq-py-no-such-model", e.message)
        self.assertIsInstance(e, OSError)

    def test_context_outlives_its_model_in_any_order(self):
        model = gptq.Model(STORIES, backend="cpu")
        ctx = model.context(n_ctx=256)
        model.close()
        with self.assertRaises(gptq.InvalidArgumentError):
            model.tokenize("x")
        self.assertEqual(ctx.generate("", **GOLDEN_OPTIONS), read_text(golden("expected_greedy_n200.txt")))
        # Dropping both without close() leaves it to the garbage collector, in whatever order.
        del ctx, model
        gc.collect()

    def test_a_busy_context_refuses_a_second_user(self):
        with self.model.context(n_ctx=256) as ctx:
            stream = ctx.stream("", **GOLDEN_OPTIONS)
            next(stream)
            with self.assertRaises(gptq.InvalidArgumentError) as cm:
                ctx.generate("")
            self.assertIn("in use", cm.exception.message)
            stream.close()
            self.assertTrue(ctx.generate("", max_tokens=3, temperature=0))

    def test_threads_share_one_model(self):
        want = read_text(golden("expected_greedy_n200.txt"))
        results = []

        def run():
            with self.model.context(n_ctx=256) as ctx:
                results.append(ctx.generate("", **GOLDEN_OPTIONS))

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [want] * 3)


if __name__ == "__main__":
    unittest.main()
