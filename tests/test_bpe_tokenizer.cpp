// tokenizer.json byte-level BPE against Hugging Face `tokenizers` itself (the SentencePiece-style
// family is test_spm_json_tokenizer.cpp's): the fixtures in
// tests/data/bpe (three small tokenizers in the shapes of Llama 3, GPT-2 / SmolLM and Qwen2, and what
// `tokenizers` 0.23 encodes and decodes a list of texts to; make_fixtures.py there makes them),
// plus lossless round trips, streaming, and the refusals.
#include <doctest/doctest.h>

#include "bpe_tokenizer.h"
#include "config.h"
#include "gptq.h"
#include "testutil.h"
#include "tokenizer_checks.h"

#include <nlohmann/json.hpp>

#include <chrono>
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

namespace {

std::string fixture_dir(const std::string &kind) { return testutil::source_dir() + "/tests/data/bpe/" + kind; }

const Tokenizer &fixture(const std::string &kind) {
    static std::unique_ptr<Tokenizer> llama3 = Tokenizer::load(fixture_dir("llama3"), ModelConfig{});
    static std::unique_ptr<Tokenizer> gpt2 = Tokenizer::load(fixture_dir("gpt2"), ModelConfig{});
    static std::unique_ptr<Tokenizer> qwen2 = Tokenizer::load(fixture_dir("qwen2"), ModelConfig{});
    return kind == "llama3" ? *llama3 : kind == "gpt2" ? *gpt2 : *qwen2;
}

json golden() { return json::parse(testutil::read_text(testutil::source_dir() + "/tests/data/bpe/golden.json")); }

std::string fixture_text(const std::string &kind) {
    return testutil::read_text(fixture_dir(kind) + "/tokenizer.json");
}

// Random valid UTF-8: ASCII words, spaces and newlines, digits, and 2-, 3- and 4-byte characters.
std::string random_text(std::mt19937 &rng, size_t chars) {
    static const char *const kParts[] = {"the", " ", "  ", "\n", "\t", "42", "7", "'s", "'LL", ",", "!?", "é",
                                         "ß", "中", "文", "🙂", "∑", "Ω", "ü", "\r\n", "x", "Z", "-", "__"};
    std::string s;
    for (size_t i = 0; i < chars; ++i) s += kParts[rng() % (sizeof kParts / sizeof kParts[0])];
    return s;
}

} // namespace

TEST_CASE("tokenizer.json: encode and decode as Hugging Face tokenizers does, on the three fixtures") {
    const json g = golden();
    for (const std::string kind : {"llama3", "gpt2", "qwen2"}) {
        const Tokenizer &tok = fixture(kind);
        CHECK(tok.is_bpe());
        REQUIRE(g.contains(kind));
        for (const json &c : g[kind]) {
            const std::string text = c["text"].get<std::string>();
            CAPTURE(kind);
            CAPTURE(text);
            const std::vector<int> want = c["ids"].get<std::vector<int>>();
            CHECK(tok.encode(text, false) == want);
            CHECK(tok.decode(want) == c["decoded"].get<std::string>());
        }
    }
}

TEST_CASE("tokenizer.json: merges written as \"a b\" strings read as the [a, b] pairs do") {
    json j = json::parse(fixture_text("llama3"));
    REQUIRE(j["model"]["merges"].is_array());
    REQUIRE(j["model"]["merges"][0].is_array());
    for (json &m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
    auto old_style = Tokenizer::from_json(j.dump(), -1, -1);
    const json g = golden();  // held: a range over a member of a temporary would outlive it
    for (const json &c : g["llama3"])
        CHECK(old_style->encode(c["text"].get<std::string>(), false) == c["ids"].get<std::vector<int>>());
}

TEST_CASE("tokenizer.json: special tokens are ids in the text and nothing in decoded text") {
    const Tokenizer &tok = fixture("llama3");
    const std::vector<int> ids = tok.encode("<|begin_of_text|>hi<|eot_id|>", false);
    REQUIRE(ids.size() >= 3);
    CHECK(ids.front() == 0);  // the fixture's first added token
    CHECK(tok.is_control(ids.front()));
    CHECK(tok.is_control(ids.back()));
    CHECK(tok.piece(ids.back()) == "<|eot_id|>");
    CHECK(tok.decode(ids) == "hi");
    CHECK_FALSE(tok.is_control(ids[1]));
    // BOS comes from the configuration, not from the file.
    auto with_bos = Tokenizer::from_json(fixture_text("llama3"), 0, 2);
    CHECK(with_bos->encode("hi", true).front() == 0);
    CHECK(with_bos->bos() == 0);
    CHECK(with_bos->eos() == 2);
    CHECK(tok.bos() == -1);
}

TEST_CASE("tokenizer.json: any valid UTF-8 text decodes back to itself; invalid bytes as U+FFFD") {
    // Llama 3's form is lossless. (GPT-2's form with add_prefix_space is not: tokenizers puts a
    // space before every piece the Digits step cuts, " 4 2" for "42"; the golden case has it.)
    const Tokenizer &tok = fixture("llama3");
    std::mt19937 rng(7);
    for (int trial = 0; trial < 300; ++trial) {
        const std::string text = random_text(rng, 1 + rng() % 40);
        CAPTURE(text);
        CHECK(tok.decode(tok.encode(text, false)) == text);
    }
    CHECK(tok.decode(tok.encode("a\xff" "b", false)) == "a\xEF\xBF\xBD" "b");
    CHECK(fixture("gpt2").decode(fixture("gpt2").encode("a\xff" "b", false)) == " a\xEF\xBF\xBD" "b");
}

TEST_CASE("tokenizer.json: the NFC normalizer makes decomposed and composed text one encoding") {
    const Tokenizer &tok = fixture("qwen2");
    const std::string composed = "\xc3\xa9t\xc3\xa9 \xc3\x85 \xea\xb0\x81";                // "été Å 각"
    const std::string decomposed = "e\xcc\x81te\xcc\x81 A\xcc\x8a \xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8";
    CHECK(tok.encode(decomposed, false) == tok.encode(composed, false));
    CHECK(tok.decode(tok.encode(decomposed, false)) == composed);
    // Without the normalizer (the Llama 3 fixture) the two stay apart.
    CHECK(fixture("llama3").encode(decomposed, false) != fixture("llama3").encode(composed, false));
    // NFKC, read from a Sequence, folds the ligature that NFC keeps.
    json j = json::parse(fixture_text("qwen2"));
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFKC"}}})}};
    auto nfkc = Tokenizer::from_json(j.dump(), -1, -1);
    CHECK(nfkc->decode(nfkc->encode("\xef\xac\x81ne", false)) == "fine");
    CHECK(tok.decode(tok.encode("\xef\xac\x81ne", false)) == "\xef\xac\x81ne");
}

TEST_CASE("utf8_lossy replaces each maximal invalid part with one U+FFFD, as Rust's from_utf8_lossy") {
    const std::string R = "\xEF\xBF\xBD";
    CHECK(gptq::utf8_lossy("plain é 中 🙂") == "plain é 中 🙂");
    CHECK(gptq::utf8_lossy("\xF0\x9F\x99") == R);               // a truncated 4-byte character
    CHECK(gptq::utf8_lossy("\xC0\x80") == R + R);                // overlong: both bytes invalid
    CHECK(gptq::utf8_lossy("\xED\xA0\x80") == R + R + R);        // a surrogate
    CHECK(gptq::utf8_lossy("a\x80" "b") == "a" + R + "b");       // a stray continuation byte
    CHECK(gptq::utf8_lossy("\xE4\xB8" "x") == R + "x");          // a lead and one continuation
    CHECK(gptq::utf8_lossy("\xF4\x90\x80\x80") == R + R + R + R);  // above U+10FFFF
}

TEST_CASE("tokenizer.json: a stream of ids gives decode() of the whole, even split inside characters") {
    std::mt19937 rng(11);
    for (const std::string kind : {"llama3", "gpt2", "qwen2"}) {
        const Tokenizer &tok = fixture(kind);
        for (int trial = 0; trial < 100; ++trial) {
            // Ids of real text (multi-byte characters across tokens) mixed with random ids.
            std::vector<int> ids = tok.encode(random_text(rng, 20), false);
            for (int k = 0; k < 5; ++k) {
                const auto at = ids.begin() + std::ptrdiff_t(rng() % (ids.size() + 1));
                ids.insert(at, int(rng() % unsigned(tok.vocab_size())));
            }
            const size_t cut = rng() % (ids.size() + 1);
            CAPTURE(kind);
            CAPTURE(trial);
            tokchecks::stream_and_check(tok, std::vector<int>(ids.begin(), ids.begin() + std::ptrdiff_t(cut)),
                                        std::vector<int>(ids.begin() + std::ptrdiff_t(cut), ids.end()));
        }
    }
}

TEST_CASE("tokenizer.json: a long word of hostile text encodes in time and decodes back") {
    const Tokenizer &tok = fixture("llama3");
    const std::string word(200000, 'q');
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int> ids = tok.encode(word, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(tok.decode(ids) == word);
    CHECK(s < 5.0);  // the heap keeps merging O(L log L); a quadratic loop would take minutes
}

TEST_CASE("tokenizer.json refusals: malformed files are FORMAT, unfollowable ones UNSUPPORTED") {
    const std::string good = fixture_text("llama3");
    std::string msg;
    auto status = [&](const std::string &text) {
        return status_of([&] { Tokenizer::from_json(text, -1, -1, "t/tokenizer.json"); }, &msg);
    };
    auto edited = [&](auto &&edit) {
        json j = json::parse(good);
        edit(j);
        return j.dump();
    };
    SUBCASE("truncated, empty, not an object") {
        for (const std::string bad : {good.substr(0, good.size() / 2), std::string(), std::string("[1, 2]")}) {
            CHECK(status(bad) == GPTQ_ERR_FORMAT);
            CHECK(msg.find("t/tokenizer.json") != std::string::npos);
        }
    }
    SUBCASE("a model other than BPE, a normalizer, byte fallback here, dropout, an unknown pre-tokenizer") {
        CHECK(status(edited([](json &j) { j["model"]["type"] = "WordPiece"; })) == GPTQ_ERR_UNSUPPORTED);
        CHECK(msg.find("WordPiece") != std::string::npos);
        CHECK(status(edited([](json &j) { j["normalizer"] = {{"type", "Lowercase"}}; })) == GPTQ_ERR_UNSUPPORTED);
        CHECK(msg.find("Lowercase") != std::string::npos);
        CHECK(status(edited([](json &j) { j["model"]["byte_fallback"] = true; })) == GPTQ_ERR_UNSUPPORTED);
        CHECK(status(edited([](json &j) { j["model"]["dropout"] = 0.1; })) == GPTQ_ERR_UNSUPPORTED);
        CHECK(status(edited([](json &j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; })) == GPTQ_ERR_UNSUPPORTED);
        CHECK(msg.find("Whitespace") != std::string::npos);
        // Not byte-level without a ByteLevel step: then the ByteLevel decoder is not its family's.
        auto metaspace = [](json &j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}}; };
        CHECK(status(edited(metaspace)) == GPTQ_ERR_UNSUPPORTED);
        CHECK(msg.find("ByteLevel") != std::string::npos);
        auto bad_regex = [](json &j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; };
        CHECK(status(edited(bad_regex)) == GPTQ_ERR_UNSUPPORTED);
        CHECK(status(edited([](json &j) { j["decoder"] = {{"type", "Metaspace"}}; })) == GPTQ_ERR_UNSUPPORTED);
        CHECK(status(edited([](json &j) { j["added_tokens"][0]["single_word"] = true; })) == GPTQ_ERR_UNSUPPORTED);
    }
    SUBCASE("wrong types, unknown merge strings, hostile ids, duplicates") {
        CHECK(status(edited([](json &j) { j["model"].erase("vocab"); })) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["model"]["vocab"] = json::array(); })) == GPTQ_ERR_FORMAT);
        auto unknown_merge = [](json &j) { j["model"]["merges"][0] = json::array({"nowhere", "t"}); };
        CHECK(status(edited(unknown_merge)) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["model"]["merges"][0] = "one-string"; })) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["model"]["merges"][0] = 17; })) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["model"]["vocab"]["zzz"] = 2000000000; })) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["model"]["vocab"]["zzz"] = -1; })) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["model"]["vocab"]["zzz"] = "3"; })) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["model"]["vocab"]["zzz"] = 5; })) == GPTQ_ERR_FORMAT);  // id 5 twice
        CHECK(status(edited([](json &j) { j["added_tokens"][0]["content"] = ""; })) == GPTQ_ERR_FORMAT);
        CHECK(status(edited([](json &j) { j["added_tokens"] = 3; })) == GPTQ_ERR_FORMAT);
    }
    SUBCASE("BOS/EOS outside the ids") {
        CHECK(status_of([&] { Tokenizer::from_json(good, 1 << 20, -1); }) == GPTQ_ERR_FORMAT);
        CHECK(status_of([&] { Tokenizer::from_json(good, -1, 1 << 20); }) == GPTQ_ERR_FORMAT);
    }
    SUBCASE("ids outside the vocabulary are INVALID_ARG") {
        const Tokenizer &tok = fixture("llama3");
        CHECK(status_of([&] { tok.decode(std::vector<int>{tok.vocab_size()}); }) == GPTQ_ERR_INVALID_ARG);
        CHECK(status_of([&] { tok.piece(-1); }) == GPTQ_ERR_INVALID_ARG);
    }
}

TEST_CASE("load: tokenizer.model wins over tokenizer.json; tokenizer.json alone is read") {
    const std::string dir = testutil::temp_dir("bpe");
    {
        std::ofstream f(dir + "/tokenizer.json", std::ios::binary);
        f << fixture_text("gpt2");
    }
    ModelConfig cfg;
    cfg.bos_token = 1;
    cfg.eos_tokens = {2};
    auto tok = Tokenizer::load(dir, cfg);
    CHECK(tok->is_bpe());
    CHECK(tok->bos() == 1);
    CHECK(tok->eos() == 2);
    CHECK(tok->decode(tok->encode("Hello world", false)) == " Hello world");
    {
        std::ofstream f(dir + "/tokenizer.model", std::ios::binary);
        f << testutil::read_text(testutil::bundled_model_dir() + "/tokenizer.model");
    }
    CHECK_FALSE(Tokenizer::load(dir, cfg)->is_bpe());
    std::remove((dir + "/tokenizer.json").c_str());
    std::remove((dir + "/tokenizer.model").c_str());
    rmdir(dir.c_str());
}

namespace {
int32_t record_token(int32_t, int32_t token, const char *, size_t, void *user) {
    static_cast<std::vector<int> *>(user)->push_back(token);
    return 0;
}
} // namespace

TEST_CASE("a model whose tokenizer.json has fewer ids than its embedding generates only the tokenizer's ids") {
    // The bundled model's weights (8192 rows) with the Llama 3-shaped fixture (700 ids): the ids
    // past 700 have no text, as a padded embedding's rows (Qwen2) have none.
    const std::string dir = testutil::temp_dir("bpe-model");
    // Absolute, or the links would point from the temporary directory into nowhere when the
    // source directory is given relative (the suite run by hand from the checkout).
    const std::string src = std::filesystem::absolute(testutil::bundled_model_dir()).string();
    for (const char *f : {"config.json", "model.safetensors"})
        REQUIRE(symlink((src + "/" + f).c_str(), (dir + "/" + f).c_str()) == 0);
    {
        std::ofstream f(dir + "/tokenizer.json", std::ios::binary);
        f << fixture_text("llama3");
    }
    gptq_model *model = nullptr;
    REQUIRE(gptq_load(dir.c_str(), nullptr, &model) == GPTQ_OK);
    gptq_context *ctx = nullptr;
    REQUIRE(gptq_context_init(model, nullptr, &ctx) == GPTQ_OK);
    int32_t ids[64];
    size_t n = 0;
    REQUIRE(gptq_tokenize(model, "Hello world", 11, 0, ids, 64, &n) == GPTQ_OK);
    CHECK(std::vector<int>(ids, ids + n) == golden()["llama3"][0]["ids"].get<std::vector<int>>());
    for (float temperature : {0.0f, 1.5f}) {
        gptq_generate_params p = gptq_generate_params_default();
        p.max_tokens = 24;
        p.temperature = temperature;
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
        p.stop_at_eos = 0;
        std::vector<int> drawn;
        p.on_token = record_token;
        p.user_data = &drawn;
        char out[4096];
        size_t len = 0;
        CAPTURE(temperature);
        CHECK(gptq_generate(ctx, "Hello world", &p, out, sizeof out, &len) == GPTQ_OK);
        CHECK(drawn.size() == 24);
        for (int id : drawn) CHECK(id < 700);
    }
    gptq_context_free(ctx);
    gptq_model_free(model);
    for (const char *f : {"config.json", "model.safetensors", "tokenizer.json"}) std::remove((dir + "/" + f).c_str());
    rmdir(dir.c_str());
}
