"""Quantization of the bundled docs-llama-8m, through gptq.quantize and the AutoGPTQ surface."""

import os
import shutil
import tempfile
import unittest

import gptq
from gptq import BaseQuantizeConfig, GPTQModel

from _paths import DOCS_8M, SHARED, STORIES, golden, read_text, require_library_and_models

HELDOUT = os.path.join(SHARED, "data", "docs-heldout.txt")


def setUpModule():
    require_library_and_models(None)


class TestQuantizeConfig(unittest.TestCase):
    def test_autogptq_defaults_and_validation(self):
        c = BaseQuantizeConfig()
        self.assertEqual((c.bits, c.group_size, c.desc_act, c.static_groups, c.sym, c.true_sequential),
                         (4, -1, True, False, True, True))
        for bad in (dict(bits=5), dict(group_size=0), dict(damp_percent=1.5)):
            with self.assertRaises(ValueError):
                BaseQuantizeConfig(**bad)

    def test_round_trip_through_quantize_config_json(self):
        d = tempfile.mkdtemp()
        try:
            BaseQuantizeConfig(bits=8, group_size=64, desc_act=False).save_pretrained(d)
            back = BaseQuantizeConfig.from_pretrained(d)
            self.assertEqual((back.bits, back.group_size, back.desc_act), (8, 64, False))
        finally:
            shutil.rmtree(d)


class TestQuantize(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gptq-py-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_autogptq_flow_with_texts(self):
        with open(HELDOUT, encoding="utf-8") as f:
            text = f.read(20000)
        examples = [text[i:i + 5000] for i in range(0, 20000, 5000)]
        reports = []
        model = GPTQModel.from_pretrained(DOCS_8M, BaseQuantizeConfig(bits=4, group_size=128))
        model.quantize(examples, n_samples=4, seq_len=64, progress=reports.append)
        self.assertTrue(reports, "the progress callback was never called")
        self.assertTrue(all(isinstance(p.stage, str) for p in reports))
        out = os.path.join(self.tmp, "docs-8m-w4g128")
        model.save_quantized(out)
        model.close()
        self.assertTrue(os.path.isfile(os.path.join(out, "config.json")))

        q = GPTQModel.from_quantized(out, device="cpu")
        try:
            info = q.model.info
            self.assertEqual((info.quant_bits, info.quant_group_size), (4, 128))
            self.assertEqual(q.quantize_config.bits, 4)
            self.assertTrue(q.generate("The", max_new_tokens=8))
            self.assertTrue("".join(t.text for t in q.stream("The", max_new_tokens=4)))
        finally:
            q.close()

    def test_token_examples_become_calibration_rows(self):
        with gptq.Model(DOCS_8M) as m:
            with open(HELDOUT, encoding="utf-8") as f:
                ids = m.tokenize(f.read(40000), add_bos=False)
        rows = [[1] + ids[i * 63:(i + 1) * 63] for i in range(4)]
        model = GPTQModel.from_pretrained(DOCS_8M, BaseQuantizeConfig(bits=4, group_size=128, desc_act=False))
        reports = []
        model.quantize([{"input_ids": r} for r in rows], progress=reports.append)
        self.assertTrue(reports)
        # Generating right after quantize() runs the quantized model, as AutoGPTQ does.
        self.assertEqual(model.model.info.quant_bits, 4)
        self.assertTrue(model.generate("The", max_new_tokens=4))
        model.close()

    def test_low_level_quantize_cancel_and_errors(self):
        out = os.path.join(self.tmp, "cancelled")
        with self.assertRaises(gptq.AbortedError):
            gptq.quantize(DOCS_8M, out, calib_text_path=HELDOUT, calib_n_samples=4, calib_seq_len=64,
                          progress=lambda p: True)
        self.assertFalse(os.path.exists(out))
        with self.assertRaises(gptq.GPTQError) as cm:
            gptq.quantize(os.path.join(self.tmp, "missing"), out, calib_n_samples=4, calib_seq_len=64)
        self.assertIn("missing", cm.exception.message)
        with self.assertRaises(TypeError):
            gptq.quantize(DOCS_8M, out, nsamples=4)

    def test_mixed_examples_are_refused(self):
        model = GPTQModel.from_pretrained(DOCS_8M, BaseQuantizeConfig())
        with self.assertRaises(gptq.InvalidArgumentError):
            model.quantize(["text", [1, 2, 3]])
        with self.assertRaises(gptq.GPTQFileError):
            GPTQModel.from_pretrained(os.path.join(self.tmp, "nothing-here"), BaseQuantizeConfig())


if __name__ == "__main__":
    unittest.main()
