// gptq_quantize end to end on docs-llama-8m with a little calibration data: every bit width and
// option writes a checkpoint the runtime loads, whose perplexity stays close to the float model's.
// (The quality bar with full calibration is a benchmark: benchmarks/quality.sh.)
#include "golden.h"
#include "testutil.h"

#include "src/safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

GPTQ_TEST_REQUIRES("shared")

namespace fs = std::filesystem;

static std::string model8m() { return testutil::bundled_model_dir(); }

static gptq_quantize_params small_params() { return golden::wiki_calibration_params(16, 256, 7); }

TEST_CASE("quantize docs-llama-8m at 2/3/4/8 bits, sym and asym, act-order: checkpoints load and stay close") {
    const double base = golden::heldout_perplexity(model8m(), 6);
    struct Case { int bits, group, sym, act, stat; double max_ratio; const char *format; };
    const Case cases[] = {
        {4, 128, 1, 1, 1, 1.08, "gptq"},   {4, 128, 0, 0, 0, 1.08, "gptq_v2"}, {4, 128, 1, 1, 0, 1.08, "gptq"},
        {3, 128, 1, 0, 0, 1.35, "gptq"},   {8, 128, 1, 0, 0, 1.01, "gptq"},    {2, 64, 0, 0, 0, 4.0, "gptq_v2"},
        {4, -1, 1, 0, 0, 1.15, "gptq"},
    };
    const std::string out = testutil::temp_dir("quant");
    for (const Case &c : cases) {
        gptq_quantize_params p = small_params();
        p.bits = c.bits;
        p.group_size = c.group;
        p.sym = c.sym;
        p.desc_act = c.act;
        p.static_groups = c.stat;
        const std::string dir = out + "/m";
        REQUIRE_OK(gptq_quantize(model8m().c_str(), dir.c_str(), &p));
        const auto cfg = nlohmann::json::parse(testutil::read_text(dir + "/quantize_config.json"));
        CHECK(cfg["bits"] == c.bits);
        CHECK(cfg["group_size"] == c.group);
        CHECK(cfg["sym"] == bool(c.sym));
        CHECK(cfg["desc_act"] == bool(c.act));
        CHECK(cfg["checkpoint_format"] == c.format);
        const auto full = nlohmann::json::parse(testutil::read_text(dir + "/config.json"));
        CHECK(full["quantization_config"] == cfg);
        CHECK(fs::exists(dir + "/tokenizer.model"));
        const double ppl = golden::heldout_perplexity(dir, 6);
        INFO("bits " << c.bits << " group " << c.group << " sym " << c.sym << " act " << c.act << ": ppl " << ppl
                     << " vs float " << base);
        CHECK(ppl > base * 0.98);
        CHECK(ppl < base * c.max_ratio);
    }
    fs::remove_all(out);
}

TEST_CASE("a written 4-bit layer holds the packed tensors FORMAT.md names, and no .weight") {
    const std::string out = testutil::temp_dir("quant-layout");
    gptq_quantize_params p = small_params();
    p.calib_n_samples = 4;
    p.max_shard_bytes = 2 << 20;  // force several shards + an index
    REQUIRE_OK(gptq_quantize(model8m().c_str(), (out + "/m").c_str(), &p));
    CHECK(fs::exists(out + "/m/model.safetensors.index.json"));
    auto store = gptq::TensorStore::open_dir(out + "/m");
    const std::string n = "model.layers.2.mlp.down_proj";
    CHECK(store->require(n + ".qweight").shape == std::vector<int64_t>{768 / 8, 256});
    CHECK(store->require(n + ".qzeros").shape == std::vector<int64_t>{6, 256 / 8});
    CHECK(store->require(n + ".scales").shape == std::vector<int64_t>{6, 256});
    CHECK(store->require(n + ".g_idx").shape == std::vector<int64_t>{768});
    CHECK(store->find(n + ".weight") == nullptr);
    CHECK(store->require("model.embed_tokens.weight").dtype == gptq::DType::F16);
    // Symmetric v1: every stored zero is 8 - 1 = 7.
    const gptq::TensorView &z = store->require(n + ".qzeros");
    const uint32_t *w = reinterpret_cast<const uint32_t *>(z.data);
    for (int64_t i = 0; i < z.numel(); i++) REQUIRE(w[i] == 0x77777777u);
    fs::remove_all(out);
}

static int32_t cancel_at_third(const char *stage, int64_t done, int64_t, const char *, void *user) {
    ++*static_cast<int *>(user);
    return done >= 3 ? 1 : 0;
}

TEST_CASE("cancelling through the progress callback leaves no checkpoint behind") {
    const std::string out = testutil::temp_dir("quant-cancel");
    gptq_quantize_params p = small_params();
    p.calib_n_samples = 4;
    int calls = 0;
    p.progress = cancel_at_third;
    p.progress_user_data = &calls;
    CHECK(gptq_quantize(model8m().c_str(), (out + "/m").c_str(), &p) == GPTQ_ERR_ABORTED);
    CHECK(calls == 3);
    CHECK(std::string(gptq_errmsg()).find("cancelled") != std::string::npos);
    CHECK(fs::is_empty(out));
    fs::remove_all(out);
}

TEST_CASE("self-generated calibration (no data) quantizes and the result generates text") {
    const std::string out = testutil::temp_dir("quant-self");
    gptq_quantize_params p = gptq_quantize_params_default();
    p.calib_n_samples = 4;
    p.calib_seq_len = 64;
    REQUIRE_OK(gptq_quantize(model8m().c_str(), (out + "/m").c_str(), &p));
    golden::Session s(out + "/m");
    const std::string text = s.greedy("The kernel scheduler", 20, 1);
    CHECK(text.size() > 20);
    fs::remove_all(out);
}

TEST_CASE("bad quantization requests are refused with a message") {
    gptq_quantize_params p = small_params();
    p.bits = 5;
    CHECK(gptq_quantize(model8m().c_str(), "/tmp/gptq-never", &p) == GPTQ_ERR_INVALID_ARG);
    CHECK(std::string(gptq_errmsg()).find("bits 5") != std::string::npos);
    p = small_params();
    p.group_size = 0;
    CHECK(gptq_quantize(model8m().c_str(), "/tmp/gptq-never", &p) == GPTQ_ERR_INVALID_ARG);
    p = small_params();
    CHECK(gptq_quantize("/nonexistent/model", "/tmp/gptq-never", &p) == GPTQ_ERR_IO);
    CHECK(std::string(gptq_errmsg()).find("/nonexistent/model") != std::string::npos);
    CHECK(!fs::exists("/tmp/gptq-never"));
}
