#!/usr/bin/env python3
"""Makes the tokenizer.json fixtures of test_bpe_tokenizer.cpp with Hugging Face `tokenizers`.

Three small tokenizers trained here on the repository's own prose (README.md, BENCHMARKS.md at
CORPUS_REV), each in the shape of a family the library reads:
  llama3/tokenizer.json  Split(Llama 3's pattern) + ByteLevel(use_regex=false), ignore_merges
  gpt2/tokenizer.json    Digits(individual) + ByteLevel(use_regex=true, add_prefix_space)
  qwen2/tokenizer.json   the NFC normalizer, Split(Qwen2's pattern: single digits) + ByteLevel
and golden.json: for each, what `tokenizers` encodes a list of texts to and decodes the ids back to;
with ../shared beside the checkout, golden_shared.json: the count and FNV-1a 64 hash (over the ids
as little-endian int32) of each fixture's encoding of WikiText-2's test text and the docs held-out text.

And the SentencePiece-style family (BPE with byte fallback, pieces spelled with "▁"):
  llama2/tokenizer.json  the bundled model's tokenizer.model (models/docs-llama-8m) as transformers'
                         LlamaConverter writes Llama 2's: Prepend + Replace normalizer, no
                         pre-tokenizer, decoder Replace, ByteFallback, Fuse, Strip
and golden_spm.json: variants of that file (each the top-level parts and model fields it replaces:
Mistral's Metaspace pre-tokenizer, the forms transformers 5 writes, a splitting Metaspace with
its decoder, no byte fallback), each with its encodings of the texts and the decodings of random
id sequences.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install tokenizers sentencepiece protobuf transformers \
        && /tmp/v/bin/python make_fixtures.py
"""
import json
import os
import random
import subprocess

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

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


# The training text is these files as they were at one commit, so the fixtures come out the same
# whenever this runs.
CORPUS_REV = "aaeffac"


def corpus():
    for name in ("README.md", "BENCHMARKS.md"):
        text = subprocess.run(["git", "-C", ROOT, "show", f"{CORPUS_REV}:{name}"], check=True,
                              capture_output=True, text=True).stdout
        yield from text.splitlines(keepends=True)
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
    spm_fixtures()
    shared_goldens()


def spm_base():
    """The bundled tokenizer.model as transformers' LlamaConverter writes Llama 2's tokenizer.json."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    from transformers.tokenization_utils_base import generate_merges
    m = pb.ModelProto()
    with open(os.path.join(ROOT, "models", "docs-llama-8m", "tokenizer.model"), "rb") as f:
        m.ParseFromString(f.read())
    vocab = {p.piece: i for i, p in enumerate(m.pieces)}
    merges = generate_merges(vocab, {p.piece: p.score for p in m.pieces})  # ranked by the merged piece's score
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=m.trainer_spec.unk_piece, fuse_unk=True,
                               byte_fallback=True, dropout=None))
    tok.add_special_tokens([AddedToken(p.piece, normalized=False, special=True)
                            for p in m.pieces if p.type in (2, 3)])  # unknown, control
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    return m, vocab, tok


def parts(tok):
    j = json.loads(tok.to_str())
    return {k: j[k] for k in ("normalizer", "pre_tokenizer", "decoder")}


SPM_TEXTS = TEXTS + [
    "<s>Begin, then</s> end <unk> and <s> again",
    "  two leading spaces, and ▁ the marker itself ▁▁",
    "bytes: \x00\x01\x7f ÿ ĀĂ ǅ \U0001F600\U0001F680 \u4e2d\u6587 \ufffd",
    "ends with a space ",
]


def variant(edit):
    """llama2/tokenizer.json with a variant's parts replaced (top level) and model fields merged."""
    with open(os.path.join(HERE, "llama2", "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    for k, v in edit.items():
        if k == "model":
            j["model"].update(v)
        else:
            j[k] = v
    return json.dumps(j)


def spm_fixtures():
    from transformers.convert_slow_tokenizer import SpmConverter
    m, vocab, base = spm_base()
    os.makedirs(os.path.join(HERE, "llama2"), exist_ok=True)
    path = os.path.join(HERE, "llama2", "tokenizer.json")
    base.save(path, pretty=False)
    meta = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    variants = {
        "llama2": {},
        "mistral": {"normalizer": None, "pre_tokenizer": meta},
        "transformers5-legacy": parts(SpmConverter.build_tokenizer_from_spm_proto(m, vocab, legacy=True)),
        "transformers5": parts(SpmConverter.build_tokenizer_from_spm_proto(m, vocab, legacy=False)),
        "metaspace-split": {"normalizer": None,
                            "pre_tokenizer": dict(meta, prepend_scheme="always", split=True),
                            "decoder": {"type": "Sequence", "decoders": [
                                {"type": "ByteFallback"},
                                {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                                 "split": True}]}},
        "no-byte-fallback": {"model": {"byte_fallback": False}},
    }
    rng = random.Random(20261208)
    n = len(vocab)
    pools = [list(range(3)), list(range(3, 259)), list(range(259, n))]  # specials, bytes, pieces
    golden = {}
    for name, edit in variants.items():
        tok = Tokenizer.from_str(variant(edit))
        cases = []
        for t in SPM_TEXTS:
            ids = tok.encode(t, add_special_tokens=False).ids
            cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True)})
        decodes = []
        for _ in range(60):  # runs of byte tokens (valid or not), pieces, specials
            ids = []
            for _ in range(rng.randint(1, 10)):
                pool = pools[rng.choices([0, 1, 2], weights=[1, 6, 4])[0]]
                if pool is pools[1] and rng.random() < 0.5:  # a whole character's bytes
                    ids += [3 + b for b in rng.choice("éß中🙂Ω").encode()]
                else:
                    ids.append(rng.choice(pool))
            decodes.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)})
        golden[name] = {"edit": edit, "cases": cases, "decodes": decodes}
    with open(os.path.join(HERE, "golden_spm.json"), "w", encoding="utf-8") as f:  # a case a line
        f.write("{\n" + ",\n".join(
            json.dumps(name) + ": {\"edit\": " + json.dumps(g["edit"], ensure_ascii=False) + ",\n\"cases\": [\n" +
            ",\n".join(json.dumps(c, ensure_ascii=False) for c in g["cases"]) + "\n],\n\"decodes\": [\n" +
            ",\n".join(json.dumps(c, ensure_ascii=False) for c in g["decodes"]) + "\n]}"
            for name, g in golden.items()) + "\n}\n")


def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for byte in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def shared_goldens():
    shared = os.path.join(ROOT, "..", "shared", "data")
    files = {"wikitext2": "wikitext2/wiki.test.raw", "docs-heldout": "docs-heldout.txt"}
    if not all(os.path.exists(os.path.join(shared, f)) for f in files.values()):
        return
    out = {}
    toks = {kind: Tokenizer.from_file(os.path.join(HERE, kind, "tokenizer.json"))
            for kind in ("llama3", "gpt2", "qwen2")}
    with open(os.path.join(HERE, "golden_spm.json"), encoding="utf-8") as f:
        for name, g in json.load(f).items():  # the SentencePiece-style variants
            toks["spm/" + name] = Tokenizer.from_str(variant(g["edit"]))
    for kind, tok in toks.items():
        for name, rel in files.items():
            with open(os.path.join(shared, rel), encoding="utf-8") as f:
                ids = tok.encode(f.read(), add_special_tokens=False).ids
            out.setdefault(kind, {})[name] = {"count": len(ids), "fnv1a64": format(fnv1a64(ids), "016x")}
    with open(os.path.join(HERE, "golden_shared.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
