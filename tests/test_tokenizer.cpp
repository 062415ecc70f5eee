// Tokenizer and StreamDecoder on the bundled docs-llama-8m tokenizer (models/docs-llama-8m, in the
// repository), plus the refusals: an unreadable tokenizer.json, missing files, corrupt models.
#include <doctest/doctest.h>

#include "config.h"
#include "testutil.h"
#include "tokenizer_checks.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <unistd.h>
#include <string>
#include <vector>

using gptq::ModelConfig;
using gptq::StreamDecoder;
using gptq::Tokenizer;
using tokchecks::status_of;

namespace {

const Tokenizer &docs_tok() {
    static std::unique_ptr<Tokenizer> tok = Tokenizer::load(testutil::bundled_model_dir(), ModelConfig{});
    return *tok;
}

void write_file(const std::string &path, const std::string &data) {
    std::ofstream f(path, std::ios::binary);
    f << data;
}

} // namespace

TEST_CASE("load: the model's own BOS/EOS unless the configuration names others") {
    const Tokenizer &tok = docs_tok();
    CHECK(tok.vocab_size() == 8192);
    CHECK(tok.bos() == 1);
    CHECK(tok.eos() == 2);
    ModelConfig cfg;
    cfg.bos_token = 5;
    cfg.eos_tokens = {7, 2};
    auto t2 = Tokenizer::load(testutil::bundled_model_dir(), cfg);
    CHECK(t2->bos() == 5);
    CHECK(t2->eos() == 7);
    cfg.bos_token = 8192;
    std::string msg;
    CHECK(status_of([&] { Tokenizer::load(testutil::bundled_model_dir(), cfg); }, &msg) == GPTQ_ERR_FORMAT);
    CHECK(msg.find("8192") != std::string::npos);
}

TEST_CASE("encode matches the transformers golden prompt ids") {
    const auto golden = nlohmann::json::parse(testutil::read_text(testutil::bundled_model_dir() + "/golden/golden.json"));
    const std::string prompt = golden["prompt"];
    const std::vector<int> want = golden["prompt_ids"];
    CHECK(docs_tok().encode(prompt, true) == want);
    std::vector<int> no_bos(want.begin() + 1, want.end());
    CHECK(docs_tok().encode(prompt, false) == no_bos);
    CHECK(docs_tok().decode(want) == prompt);
}

TEST_CASE("streaming the golden greedy continuation gives the golden text") {
    const auto golden = nlohmann::json::parse(testutil::read_text(testutil::bundled_model_dir() + "/golden/golden.json"));
    const std::vector<int> prompt = golden["prompt_ids"], gen = golden["greedy_ids"];
    const std::string want = golden["greedy_text"];
    StreamDecoder dec(docs_tok(), prompt);
    std::string got;
    for (int id : gen) got += dec.push(id);
    got += dec.flush();
    CHECK(got == want);
    tokchecks::stream_and_check(docs_tok(), prompt, gen);
}

TEST_CASE("pieces, special ids and byte pieces") {
    const Tokenizer &tok = docs_tok();
    CHECK(tok.piece(0) == "<unk>");
    CHECK(tok.piece(1) == "<s>");
    CHECK(tok.piece(2) == "</s>");
    const auto once = tok.encode("Once", false);
    REQUIRE(once.size() == 1);
    CHECK(tok.piece(once[0]) == "\xe2\x96\x81Once");
    CHECK(tok.is_control(1));
    CHECK(tok.is_control(2));
    CHECK_FALSE(tok.is_control(once[0]));
    int n_bytes = 0;
    for (int id = 0; id < tok.vocab_size(); ++id) {
        const int b = tok.byte_value(id);
        if (b < 0) continue;
        ++n_bytes;
        char want[16];
        std::snprintf(want, sizeof want, "<0x%02X>", b);
        CHECK(tok.piece(id) == want);
    }
    CHECK(n_bytes == 256);
    CHECK(tok.byte_value(-1) == -1);
    CHECK(tok.byte_value(once[0]) == -1);
}

TEST_CASE("decode: controls vanish, the first word-start marker is dropped, bytes join") {
    const Tokenizer &tok = docs_tok();
    const auto ids = tok.encode("Once upon a time", true);
    CHECK(ids.front() == 1);
    CHECK(tok.decode(ids) == "Once upon a time");
    std::vector<int> with_eos = ids;
    with_eos.push_back(tok.eos());
    CHECK(tok.decode(with_eos) == "Once upon a time");
    // The byte pieces of "日" spelled out (the vocabulary has "日" too; bytes must decode the same).
    const int e6 = 3 + 0xE6, x97 = 3 + 0x97, xa5 = 3 + 0xA5;
    REQUIRE(tok.byte_value(e6) == 0xE6);
    CHECK(tok.decode(std::vector<int>{e6, x97, xa5}) == "日");
    CHECK(tok.decode(std::vector<int>{e6, x97}) == "\xef\xbf\xbd\xef\xbf\xbd");  // two U+FFFD
    CHECK(tok.decode(std::vector<int>{}).empty());
}

TEST_CASE("encode/decode round trip on multilingual text with byte fallback") {
    const Tokenizer &tok = docs_tok();
    const std::string text = "naïve café — 日本 🙂 Ω Ж 한국어 ℕ";
    const auto ids = tok.encode(text, false);
    int bytes = 0;
    for (int id : ids) bytes += tok.byte_value(id) >= 0;
    CHECK(bytes >= 12);  // ï, 🙂, Ω, Ж, 국, ℕ are not in this vocabulary
    CHECK(tok.decode(ids) == text);
}

TEST_CASE("out-of-range ids are INVALID_ARG naming the id, never a crash") {
    const Tokenizer &tok = docs_tok();
    std::string msg;
    CHECK(status_of([&] { tok.decode(std::vector<int>{5, 8192}); }, &msg) == GPTQ_ERR_INVALID_ARG);
    CHECK(msg.find("8192") != std::string::npos);
    CHECK(status_of([&] { tok.decode(std::vector<int>{-3}); }, &msg) == GPTQ_ERR_INVALID_ARG);
    CHECK(msg.find("-3") != std::string::npos);
    CHECK(status_of([&] { tok.piece(100000); }, &msg) == GPTQ_ERR_INVALID_ARG);
    CHECK(msg.find("100000") != std::string::npos);
    StreamDecoder dec(tok, {1});
    CHECK(status_of([&] { dec.push(9000); }) == GPTQ_ERR_INVALID_ARG);
    CHECK(dec.push(tok.encode("Once", false)[0]) == "Once");  // still usable afterwards
    CHECK(status_of([&] { StreamDecoder bad(tok, {1, 77777}); }) == GPTQ_ERR_INVALID_ARG);
}

TEST_CASE("stream: the first generated word keeps its leading space") {
    const Tokenizer &tok = docs_tok();
    const auto prompt = tok.encode("Once upon a", true);
    const auto full = tok.encode("Once upon a time", true);
    REQUIRE(full.size() == prompt.size() + 1);
    REQUIRE(std::equal(prompt.begin(), prompt.end(), full.begin()));
    StreamDecoder dec(tok, prompt);
    CHECK(dec.push(full.back()) == " time");
    CHECK(dec.flush().empty());
    CHECK(dec.text() == " time");

    // With only BOS as prompt the first word has no space, as in decode().
    StreamDecoder dec2(tok, {tok.bos()});
    std::string got;
    for (size_t i = 1; i < full.size(); ++i) got += dec2.push(full[i]);
    CHECK(got == "Once upon a time");
}

TEST_CASE("stream: multibyte characters arrive whole") {
    const Tokenizer &tok = docs_tok();
    const std::string text = "naïve café — 日本 🙂 Ω Ж 한국어 ℕ";
    const auto ids = tok.encode(text, false);
    const auto chunks = tokchecks::stream_and_check(tok, {tok.bos()}, ids);
    std::string all;
    for (const auto &c : chunks) all += c;
    CHECK(all == text);
    // The 4-byte emoji comes out in one piece: some chunk holds all of it, none holds a part.
    bool whole = false;
    for (const auto &c : chunks) whole = whole || c.find("🙂") != std::string::npos;
    CHECK(whole);
}

TEST_CASE("stream: an incomplete character is held back, then flushed as U+FFFD") {
    const Tokenizer &tok = docs_tok();
    const int e6 = 3 + 0xE6, x97 = 3 + 0x97, xa5 = 3 + 0xA5;
    StreamDecoder dec(tok, tok.encode("It", true));
    CHECK(dec.push(e6).empty());
    CHECK(dec.push(x97).empty());
    CHECK(dec.push(xa5) == "日");
    CHECK(dec.push(e6).empty());
    CHECK(dec.flush() == "\xef\xbf\xbd");
    CHECK(dec.text() == "日\xef\xbf\xbd");
}

TEST_CASE("stream: a prompt ending inside a character that the generation completes") {
    const Tokenizer &tok = docs_tok();
    const int e6 = 3 + 0xE6, x97 = 3 + 0x97, xa5 = 3 + 0xA5;
    const auto word = tok.encode("Hello", true);
    std::vector<int> prompt = word;
    prompt.push_back(e6);
    prompt.push_back(x97);
    // decode(prompt) ends in two U+FFFD that decode(prompt + gen) replaces by "日": the stream
    // then falls back to decoding the generation alone.
    const std::vector<int> gen = {xa5, tok.encode("ok", false)[0]};
    const auto chunks = tokchecks::stream_and_check(tok, prompt, gen);
    // And when the generation does not complete it, the replacement characters stay in the prompt.
    tokchecks::stream_and_check(tok, prompt, {tok.encode(" ok", false)[0]});
}

TEST_CASE("stream: random id sequences match decode of the whole sequence") {
    tokchecks::random_stream_property(docs_tok(), 3000, 0x70c);
}

TEST_CASE("stream: a long generation costs little per token") {
    // 20000 ids: a quadratic decoder would decode ~2e8 ids here; the window keeps it instant.
    const Tokenizer &tok = docs_tok();
    const auto sentence = tok.encode(" The scheduler picks the next task.", false);
    StreamDecoder dec(tok, {tok.bos()});
    std::vector<int> gen;
    std::string got;
    while (gen.size() < 20000) {
        for (int id : sentence) {
            gen.push_back(id);
            got += dec.push(id);
        }
    }
    got += dec.flush();
    std::vector<int> all = {tok.bos()};
    all.insert(all.end(), gen.begin(), gen.end());
    CHECK(got == tok.decode(all));
}

TEST_CASE("from_serialized equals load") {
    const std::string proto = testutil::read_text(testutil::bundled_model_dir() + "/tokenizer.model");
    auto t = Tokenizer::from_serialized(proto, -1, -1);
    CHECK(t->bos() == 1);
    CHECK(t->eos() == 2);
    const std::string text = "The kernel scheduler decides which task runs next.";
    CHECK(t->encode(text, true) == docs_tok().encode(text, true));
    auto t2 = Tokenizer::from_serialized(proto, 3, 4);
    CHECK(t2->bos() == 3);
    CHECK(t2->eos() == 4);
    CHECK(t2->encode("a", true).front() == 3);
}

TEST_CASE("refusals: tokenizer.json unfollowable or broken, missing, corrupt") {
    const std::string dir = testutil::temp_dir("tok");
    std::string msg;

    SUBCASE("a tokenizer.json this version cannot follow is UNSUPPORTED, a broken one FORMAT, each naming it") {
        write_file(dir + "/tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
        CHECK(status_of([&] { Tokenizer::load(dir, ModelConfig{}); }, &msg) == GPTQ_ERR_UNSUPPORTED);
        CHECK(msg.find(dir + "/tokenizer.json") != std::string::npos);
        CHECK(msg.find("WordPiece") != std::string::npos);
        write_file(dir + "/tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}");
        CHECK(status_of([&] { Tokenizer::load(dir, ModelConfig{}); }, &msg) == GPTQ_ERR_FORMAT);
        CHECK(msg.find(dir + "/tokenizer.json") != std::string::npos);
    }
    SUBCASE("neither file is IO naming the directory and both names") {
        CHECK(status_of([&] { Tokenizer::load(dir, ModelConfig{}); }, &msg) == GPTQ_ERR_IO);
        CHECK(msg.find(dir) != std::string::npos);
        CHECK(msg.find("tokenizer.model") != std::string::npos);
        CHECK(msg.find("tokenizer.json") != std::string::npos);
        CHECK(status_of([&] { Tokenizer::load(dir + "/no-such-dir", ModelConfig{}); }, &msg) == GPTQ_ERR_IO);
        CHECK(msg.find("no-such-dir") != std::string::npos);
    }
    SUBCASE("garbage, empty or truncated tokenizer.model is FORMAT") {
        const std::string good = testutil::read_text(testutil::bundled_model_dir() + "/tokenizer.model");
        for (const std::string &bad : {std::string("this is not a SentencePiece model\n"), std::string(),
                                       good.substr(0, good.size() / 2), std::string(4096, '\xff')}) {
            write_file(dir + "/tokenizer.model", bad);
            CHECK(status_of([&] { Tokenizer::load(dir, ModelConfig{}); }, &msg) == GPTQ_ERR_FORMAT);
            CHECK(msg.find(dir + "/tokenizer.model") != std::string::npos);
        }
        CHECK(status_of([&] { Tokenizer::from_serialized("junk", -1, -1); }) == GPTQ_ERR_FORMAT);
    }
    std::remove((dir + "/tokenizer.json").c_str());
    std::remove((dir + "/tokenizer.model").c_str());
    rmdir(dir.c_str());
}
