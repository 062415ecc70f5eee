// tokenizer.json in the SentencePiece style (BPE with byte fallback, "▁" for a space: Llama 2,
// Mistral, TinyLlama as transformers converts them) against Hugging Face `tokenizers` itself.
// tests/data/bpe/llama2/tokenizer.json is the bundled model's tokenizer.model converted as
// transformers' LlamaConverter does; golden_spm.json holds variants of it (each the parts it
// replaces) with what `tokenizers` 0.23 encodes texts to and decodes random ids to
// (tests/data/bpe/make_fixtures.py makes both). Also: the converted file against the
// tokenizer.model it came from, streaming, a model loaded with it, and the refusals.
#include <doctest/doctest.h>

#include "config.h"
#include "gptq.h"
#include "spm_variants.h"
#include "testutil.h"
#include "tokenizer_checks.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using gptq::ModelConfig;
using gptq::Tokenizer;
using tokchecks::status_of;
using json = nlohmann::json;
using spm_variants::base_text;
using spm_variants::golden;
using spm_variants::variant_text;

namespace {

const Tokenizer &llama2() {
    static std::unique_ptr<Tokenizer> t = Tokenizer::from_json(base_text(), 1, 2);
    return *t;
}

const Tokenizer &from_model_file() {
    static std::unique_ptr<Tokenizer> t = Tokenizer::load(testutil::bundled_model_dir(), ModelConfig{});
    return *t;
}

std::string random_text(std::mt19937 &rng, size_t parts) {
    static const char *const kParts[] = {"the", " ", "  ", "\n", "\t", "42", "'s", ",", "é", "ß", "中", "🙂", "Ω",
                                         "\xe2\x96\x81", "x", "Z", "-", "ǅ", "\x01", "quantize"};
    std::string s;
    for (size_t i = 0; i < parts; ++i) s += kParts[rng() % (sizeof kParts / sizeof kParts[0])];
    return s;
}

} // namespace

TEST_CASE("SentencePiece-style tokenizer.json: encode and decode as tokenizers does, in six variants") {
    const json &g = golden();
    REQUIRE(g.size() == 6);
    for (auto it = g.begin(); it != g.end(); ++it) {
        const std::string name = it.key();
        CAPTURE(name);
        auto tok = Tokenizer::from_json(variant_text(it.value()["edit"]), -1, -1, name);
        CHECK(tok->is_bpe());
        for (const json &c : it.value()["cases"]) {
            const std::string text = c["text"].get<std::string>();
            CAPTURE(text);
            const std::vector<int> want = c["ids"].get<std::vector<int>>();
            CHECK(tok->encode(text, false) == want);
            CHECK(tok->decode(want) == c["decoded"].get<std::string>());
        }
        // Runs of byte tokens, valid UTF-8 or not (then one U+FFFD per byte), among pieces and
        // special tokens.
        for (const json &d : it.value()["decodes"]) {
            const std::vector<int> ids = d["ids"].get<std::vector<int>>();
            CAPTURE(d["ids"].dump());
            CHECK(tok->decode(ids) == d["text"].get<std::string>());
        }
    }
}

TEST_CASE("SentencePiece-style tokenizer.json: the converted file encodes as the tokenizer.model it came from") {
    // Text SentencePiece and tokenizers agree on: no control-token strings ("<s>" is text to
    // SentencePiece, an id to tokenizers). The repository's own prose and random text.
    const Tokenizer &json_tok = llama2(), &sp = from_model_file();
    std::vector<std::string> texts;
    for (const char *f : {"/README.md", "/BENCHMARKS.md", "/src/cuda/NOTES.md"})
        texts.push_back(testutil::read_text(testutil::source_dir() + f));
    std::mt19937 rng(5);
    for (int k = 0; k < 200; ++k) texts.push_back(random_text(rng, 1 + rng() % 30));
    size_t total = 0;
    for (const std::string &t : texts) {
        CAPTURE(t.substr(0, 80));
        const std::vector<int> ids = json_tok.encode(t, true);
        CHECK(ids == sp.encode(t, true));
        CHECK(json_tok.decode(ids) == sp.decode(ids));
        total += ids.size();
    }
    CHECK(total > 100000);  // the prose is most of it
    CHECK(json_tok.byte_value(3 + 0xE6) == 0xE6);
    CHECK(json_tok.byte_value(500) == -1);
}

TEST_CASE("SentencePiece-style tokenizer.json: a stream of ids gives decode() of the whole") {
    // A run of byte tokens that is not valid UTF-8 decodes to one U+FFFD per byte, so the stream
    // holds a run until a token that is no byte ends it. The SentencePiece suite's property (byte tokens forming whole, partial and broken
    // characters, "▁", special and random ids) holds for the converted file as for the original.
    tokchecks::random_stream_property(llama2(), 400, 13);
}

TEST_CASE("a model with only the converted tokenizer.json generates what it does with tokenizer.model") {
    const std::string dir = testutil::temp_dir("spm-json-model");
    const std::string src = std::filesystem::absolute(testutil::bundled_model_dir()).string();
    for (const char *f : {"config.json", "model.safetensors"})
        REQUIRE(symlink((src + "/" + f).c_str(), (dir + "/" + f).c_str()) == 0);
    {
        std::ofstream f(dir + "/tokenizer.json", std::ios::binary);
        f << base_text();
    }
    std::string texts[2];
    const std::string dirs[2] = {src, dir};
    for (int k = 0; k < 2; ++k) {
        gptq_model *model = nullptr;
        REQUIRE(gptq_load(dirs[k].c_str(), nullptr, &model) == GPTQ_OK);
        gptq_context *ctx = nullptr;
        REQUIRE(gptq_context_init(model, nullptr, &ctx) == GPTQ_OK);
        gptq_generate_params p = gptq_generate_params_default();
        p.max_tokens = 32;
        p.temperature = 0.0f;
        char out[4096];
        size_t len = 0;
        CHECK(gptq_generate(ctx, "The library quantizes", &p, out, sizeof out, &len) == GPTQ_OK);
        texts[k].assign(out, len);
        gptq_context_free(ctx);
        gptq_model_free(model);
    }
    CHECK(texts[0].size() > 20);
    CHECK(texts[1] == texts[0]);
    for (const char *f : {"config.json", "model.safetensors", "tokenizer.json"}) std::remove((dir + "/" + f).c_str());
    rmdir(dir.c_str());
}

TEST_CASE("SentencePiece-style tokenizer.json refusals: what it cannot follow is UNSUPPORTED, malformed is FORMAT") {
    std::string msg;
    auto status = [&](const json &edit) {
        return status_of([&] { Tokenizer::from_json(variant_text(edit), -1, -1, "t/tokenizer.json"); }, &msg);
    };
    const json strip_end = {{"type", "Strip"}, {"content", " "}, {"start", 0}, {"stop", 1}};
    CHECK(status({{"decoder", strip_end}}) == GPTQ_ERR_UNSUPPORTED);  // streaming could not know the end
    CHECK(msg.find("stop") != std::string::npos);
    CHECK(status({{"decoder", nullptr}}) == GPTQ_ERR_UNSUPPORTED);
    CHECK(status({{"decoder", {{"type", "ByteLevel"}}}}) == GPTQ_ERR_UNSUPPORTED);
    CHECK(status({{"decoder", {{"type", "WordPiece"}}}}) == GPTQ_ERR_UNSUPPORTED);
    CHECK(msg.find("WordPiece") != std::string::npos);
    const json regex_replace = {{"type", "Replace"}, {"pattern", {{"Regex", "x"}}}, {"content", "y"}};
    CHECK(status({{"decoder", regex_replace}}) == GPTQ_ERR_UNSUPPORTED);
    CHECK(status({{"normalizer", {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}}}}) ==
          GPTQ_ERR_UNSUPPORTED);
    CHECK(msg.find("Precompiled") != std::string::npos);
    const json metaspace = {{"type", "Metaspace"}, {"replacement", "\xe2\x96\x81"}, {"prepend_scheme", "sometimes"}};
    CHECK(status({{"pre_tokenizer", metaspace}}) == GPTQ_ERR_FORMAT);
    CHECK(status({{"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "ab"}}}}) == GPTQ_ERR_FORMAT);
    CHECK(status({{"pre_tokenizer", {{"type", "Metaspace"}}}}) == GPTQ_ERR_FORMAT);
    const json good_metaspace = {{"type", "Metaspace"}, {"replacement", "\xe2\x96\x81"}, {"prepend_scheme", "first"}};
    const json both = {{"type", "Sequence"},
                       {"pretokenizers", json::array({good_metaspace, {{"type", "ByteLevel"}}})}};
    CHECK(status({{"pre_tokenizer", both}}) == GPTQ_ERR_UNSUPPORTED);
    CHECK(status({{"normalizer", {{"type", "Replace"}, {"pattern", {{"String", ""}}}, {"content", "y"}}}}) ==
          GPTQ_ERR_FORMAT);
    CHECK(status({{"decoder", {{"type", "Strip"}, {"content", "ab"}, {"start", 1}, {"stop", 0}}}}) ==
          GPTQ_ERR_FORMAT);
    // An added token matched after a Prepend / Replace normalizer has rewritten the text.
    json j = json::parse(base_text());
    j["added_tokens"][1]["normalized"] = true;
    CHECK(status_of([&] { Tokenizer::from_json(j.dump(), -1, -1); }, &msg) == GPTQ_ERR_UNSUPPORTED);
    CHECK(msg.find("<s>") != std::string::npos);
    // A regex normalizer that matches an empty string: refused when it does, not guessed at.
    const json empty_match = {{"type", "Replace"}, {"pattern", {{"Regex", "x*"}}}, {"content", "y"}};
    auto tok = Tokenizer::from_json(variant_text({{"normalizer", empty_match}}), -1, -1);
    CHECK(status_of([&] { tok->encode("xx", false); }) == GPTQ_ERR_UNSUPPORTED);
    CHECK(status_of([&] { tok->encode("ab", false); }) == GPTQ_ERR_UNSUPPORTED);
}
