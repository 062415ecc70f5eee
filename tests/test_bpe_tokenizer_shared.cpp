// tokenizer.json on real text (../shared): WikiText-2's test text (1.29 MB) and the docs held-out
// text through each fixture of tests/data/bpe (byte-level, and the SentencePiece-style variants),
// against the id count and hash that Hugging Face tokenizers gives for the same file
// (golden_shared.json, from make_fixtures.py).
#include <doctest/doctest.h>

#include "config.h"
#include "spm_variants.h"
#include "testutil.h"
#include "tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

GPTQ_TEST_REQUIRES("shared")

namespace {

// FNV-1a 64 over the ids as little-endian int32, as make_fixtures.py computes it.
std::string fnv1a64(const std::vector<int> &ids) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int id : ids)
        for (int b = 0; b < 4; ++b) h = (h ^ ((uint32_t(id) >> (8 * b)) & 0xFFu)) * 0x100000001b3ull;
    char s[17];
    std::snprintf(s, sizeof s, "%016llx", (unsigned long long)h);
    return s;
}

} // namespace

TEST_CASE("tokenizer.json fixtures encode WikiText-2 and the docs held-out text id for id as tokenizers does") {
    const std::string bpe = testutil::source_dir() + "/tests/data/bpe";
    const auto want = nlohmann::json::parse(testutil::read_text(bpe + "/golden_shared.json"));
    const std::pair<const char *, const char *> texts[] = {{"wikitext2", "data/wikitext2/wiki.test.raw"},
                                                          {"docs-heldout", "data/docs-heldout.txt"}};
    for (const char *kind : {"llama3", "gpt2", "qwen2"}) {
        auto tok = gptq::Tokenizer::load(bpe + "/" + kind, gptq::ModelConfig{});
        for (const auto &[name, rel] : texts) {
            CAPTURE(kind);
            CAPTURE(name);
            const std::string text = testutil::read_text(testutil::shared_path(rel));
            const std::vector<int> ids = tok->encode(text, false);
            const auto &w = want[kind][name];
            CHECK(ids.size() == w["count"].get<size_t>());
            CHECK(fnv1a64(ids) == w["fnv1a64"].get<std::string>());
            // Lossless where no prefix space or normalizer changes the text.
            if (std::string(kind) == "llama3") CHECK(tok->decode(ids) == text);
        }
    }
}

TEST_CASE("SentencePiece-style tokenizer.json variants encode the same texts as tokenizers does") {
    const auto want = nlohmann::json::parse(testutil::read_text(spm_variants::data_dir() + "/golden_shared.json"));
    const std::pair<const char *, const char *> texts[] = {{"wikitext2", "data/wikitext2/wiki.test.raw"},
                                                          {"docs-heldout", "data/docs-heldout.txt"}};
    const auto &variants = spm_variants::golden();
    auto from_model_file = gptq::Tokenizer::load(testutil::bundled_model_dir(), gptq::ModelConfig{});
    for (auto it = variants.begin(); it != variants.end(); ++it) {
        auto tok = gptq::Tokenizer::from_json(spm_variants::variant_text(it.value()["edit"]), -1, -1, it.key());
        for (const auto &[name, rel] : texts) {
            CAPTURE(it.key());
            CAPTURE(name);
            const std::string text = testutil::read_text(testutil::shared_path(rel));
            const std::vector<int> ids = tok->encode(text, false);
            const auto &w = want["spm/" + it.key()][name];
            CHECK(ids.size() == w["count"].get<size_t>());
            CHECK(fnv1a64(ids) == w["fnv1a64"].get<std::string>());
            // Llama 2's form (as converted) encodes these texts as the tokenizer.model it came from.
            if (it.key() == "llama2") CHECK(ids == from_model_file->encode(text, false));
        }
    }
}
