#!/usr/bin/env python3
"""Makes the byte-level BPE fixtures of test_bpe_tokenizer.cpp with Hugging Face `tokenizers`.

Three small tokenizers trained here on the repository's own prose (README.md, BENCHMARKS.md), each
in the shape of a family the library reads:
  llama3/tokenizer.json  Split(Llama 3's pattern) + ByteLevel(use_regex=false), ignore_merges
  gpt2/tokenizer.json    Digits(individual) + ByteLevel(use_regex=true, add_prefix_space)
  qwen2/tokenizer.json   the NFC normalizer, Split(Qwen2's pattern: single digits) + ByteLevel
and golden.json: for each, what `tokenizers` encodes a list of texts to and decodes the ids back to.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install tokenizers && /tmp/v/bin/python make_fixtures.py
"""
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]

TEXTS = [
    "Hello world",
    " leading space, and  two  spaces",
    "It's what we'd say: they'RE here, you'll see, I'm sure.",
    "Numbers: 1234567 and 3.14159, 2026-12-07; x=42",
    "tabs\tand\nnew lines\r\n\n  indented\n",
    "trailing spaces   ",
    "Unicode: café, naïve, Ünïcödé, 中文字符, 日本語, 🙂🚀 and ∑ x² ≥ 0",
    "<|begin_of_text|>Say hi.<|eot_id|>and then<|end_of_text|>",
    "special-looking <|not_special|> text",
    "quantize the bundled default model with GPTQ, then generate with it",
    "",
    " ",
    "\n\n\n",
    "a" * 40,
    "Ça va? ¿Qué tal? Грамматика и орфография.",
    "decomposed: e\u0301te\u0301, A\u030a, \u1100\u1161\u11a8 -- composed: été, Å, 각; ligature ﬁne",
]


def corpus():
    for name in ("README.md", "BENCHMARKS.md"):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            for line in f:
                yield line
    yield from TEXTS


def train(pre, ignore_merges, vocab_size, normalizer=None):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    return tok


def main():
    kinds = {
        "llama3": train(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), True, 700),
        "gpt2": train(pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]), False, 600),
        "qwen2": train(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), False, 650, normalizers.NFC()),
    }
    golden = {}
    for kind, tok in kinds.items():
        os.makedirs(os.path.join(HERE, kind), exist_ok=True)
        tok.save(os.path.join(HERE, kind, "tokenizer.json"), pretty=False)
        cases = []
        for t in TEXTS:
            ids = tok.encode(t, add_special_tokens=False).ids
            cases.append({"text": t, "ids": ids,
                          "decoded": tok.decode(ids, skip_special_tokens=True)})
        golden[kind] = cases
    with open(os.path.join(HERE, "golden.json"), "w", encoding="utf-8") as f:  # a case a line
        f.write("{\n" + ",\n".join(
            json.dumps(kind) + ": [\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]"
            for kind, cases in golden.items()) + "\n}\n")


if __name__ == "__main__":
    main()
