"""Generation against stories260k's golden greedy text: whole, streamed, stopped, batched."""

import unittest

import gptq

from _paths import GOLDEN_OPTIONS, STORIES, golden, golden_ids, read_text, require_library_and_models


def setUpModule():
    require_library_and_models(None)


class TestGenerate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = gptq.Model(STORIES, backend="cpu")
        cls.ctx = cls.model.context()
        cls.want = read_text(golden("expected_greedy_n200.txt"))

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()
        cls.model.close()

    def test_greedy_200_equals_the_golden_text(self):
        self.assertEqual(self.ctx.generate("", **GOLDEN_OPTIONS), self.want)

    def test_callback_sees_every_token(self):
        seen = []
        text = self.ctx.generate("", on_token=seen.append, **GOLDEN_OPTIONS)
        self.assertEqual(text, self.want)
        self.assertEqual("".join(t.text for t in seen), self.want)
        self.assertEqual([t.id for t in seen], golden_ids())
        self.assertTrue(all(t.seq == 0 for t in seen))

    def test_callback_returning_true_stops_without_error(self):
        seen = []
        text = self.ctx.generate("", on_token=lambda t: seen.append(t) or len(seen) >= 5, **GOLDEN_OPTIONS)
        self.assertEqual(len(seen), 5)
        self.assertTrue(text and self.want.startswith(text) and len(text) < 40, text)

    def test_callback_exception_reaches_the_caller(self):
        def boom(tok):
            raise KeyError("boom")
        with self.assertRaises(KeyError):
            self.ctx.generate("", on_token=boom, **GOLDEN_OPTIONS)
        self.assertEqual(self.ctx.generate("", **GOLDEN_OPTIONS), self.want)

    def test_stream_yields_the_golden_tokens(self):
        tokens = list(self.ctx.stream("", **GOLDEN_OPTIONS))
        self.assertEqual("".join(t.text for t in tokens), self.want)
        self.assertEqual([t.id for t in tokens], golden_ids())

    def test_leaving_a_stream_early_stops_it(self):
        stream = self.ctx.stream("", **GOLDEN_OPTIONS)
        first = [next(stream).id for _ in range(3)]
        stream.close()
        self.assertEqual(first, golden_ids()[:3])
        self.assertEqual(self.ctx.generate("", **GOLDEN_OPTIONS), self.want)

    def test_stop_string_ends_the_text_before_it(self):
        text = self.ctx.generate("", stop=["Lily"], **GOLDEN_OPTIONS)
        self.assertEqual(text, self.want[:self.want.index("Lily")])

    def test_unknown_option_is_a_type_error(self):
        with self.assertRaises(TypeError):
            self.ctx.generate("", max_new_tokens=3)

    def test_batch(self):
        with self.model.context(n_ctx=256, n_seq_max=2) as ctx:
            self.assertEqual(ctx.generate_batch(["", ""], **GOLDEN_OPTIONS), [self.want, self.want])
            with self.assertRaises(gptq.InvalidArgumentError):
                ctx.generate_batch(["", "", ""], **GOLDEN_OPTIONS)


if __name__ == "__main__":
    unittest.main()
