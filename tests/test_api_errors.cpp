// Bad input through the C API: every failure is a status plus a message naming the problem, and
// nothing crashes (this suite also runs under ASan/UBSan).
#include "golden.h"
#include "testutil.h"

#include "src/safetensors.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

GPTQ_TEST_REQUIRES("shared")

namespace fs = std::filesystem;

static std::string stories() { return testutil::shared_path("models/stories260k"); }

// A copy of stories260k whose tensors pass through edit() before being written back.
static std::string broken_copy(const std::string &tag,
                               const std::function<void(const gptq::TensorView &, gptq::SafetensorsWriter &)> &edit) {
    const std::string dir = testutil::temp_dir(tag);
    for (const char *f : {"config.json", "tokenizer.model"}) fs::copy_file(stories() + "/" + f, dir + "/" + f);
    auto src = gptq::SafetensorsFile::open(stories() + "/model.safetensors");
    gptq::SafetensorsWriter w;
    for (const gptq::TensorView &t : src->tensors()) edit(t, w);
    w.write(dir + "/model.safetensors");
    return dir;
}

static void keep(const gptq::TensorView &t, gptq::SafetensorsWriter &w) { w.add(t.name, t.dtype, t.shape, t.data, t.nbytes); }

static void expect_load_error(const std::string &dir, gptq_status want, const std::string &needle) {
    gptq_model *m = reinterpret_cast<gptq_model *>(0x1);
    gptq_load_params lp = gptq_load_params_default();
    lp.backend = GPTQ_BACKEND_CPU;
    const gptq_status st = gptq_load(dir.c_str(), &lp, &m);
    INFO("status " << gptq_status_str(st) << ": " << gptq_errmsg());
    CHECK(st == want);
    CHECK(m == nullptr);
    CHECK(std::string(gptq_errmsg()).find(needle) != std::string::npos);
}

TEST_CASE("loading: missing directory, missing tokenizer, unknown architecture") {
    expect_load_error("/nonexistent/model", GPTQ_ERR_IO, "/nonexistent/model");
    const std::string no_tok = broken_copy("notok", keep);
    fs::remove(no_tok + "/tokenizer.model");
    expect_load_error(no_tok, GPTQ_ERR_IO, "tokenizer.model");
    const std::string arch = broken_copy("arch", keep);
    std::string cfg = testutil::read_text(arch + "/config.json");
    cfg.replace(cfg.find("\"llama\""), 7, "\"gpt_neox\"");
    std::ofstream(arch + "/config.json") << cfg;
    expect_load_error(arch, GPTQ_ERR_UNSUPPORTED, "gpt_neox");
    for (auto &d : {no_tok, arch}) fs::remove_all(d);
}

TEST_CASE("loading: a missing tensor and a shape mismatch are named") {
    const std::string missing = broken_copy("missing", [](const gptq::TensorView &t, gptq::SafetensorsWriter &w) {
        if (t.name != "model.layers.3.mlp.up_proj.weight") keep(t, w);
    });
    expect_load_error(missing, GPTQ_ERR_FORMAT, "model.layers.3.mlp.up_proj.weight");
    const std::string shape = broken_copy("shape", [](const gptq::TensorView &t, gptq::SafetensorsWriter &w) {
        if (t.name == "model.layers.1.self_attn.k_proj.weight")
            w.add(t.name, t.dtype, {t.shape[1], t.shape[0]}, t.data, t.nbytes);
        else
            keep(t, w);
    });
    expect_load_error(shape, GPTQ_ERR_FORMAT, "model.layers.1.self_attn.k_proj.weight");
    for (auto &d : {missing, shape}) fs::remove_all(d);
}

TEST_CASE("loading: a truncated safetensors file") {
    const std::string dir = broken_copy("trunc", keep);
    fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") / 2);
    expect_load_error(dir, GPTQ_ERR_FORMAT, "model.safetensors");
    fs::remove_all(dir);
}

TEST_CASE("NULL arguments, small buffers and bad batches") {
    CHECK(gptq_load(nullptr, nullptr, nullptr) == GPTQ_ERR_INVALID_ARG);
    golden::Session s(stories(), 64, 2);
    size_t n = 0;
    int32_t one[1];
    CHECK(gptq_tokenize(s.model, "Once upon a time", 16, 1, one, 1, &n) == GPTQ_ERR_BUFFER_SMALL);
    CHECK(n > 1);
    char tiny[2];
    const int32_t ids[3] = {1, 403, 407};
    CHECK(gptq_detokenize(s.model, ids, 3, tiny, sizeof tiny, &n) == GPTQ_ERR_BUFFER_SMALL);
    CHECK(n > sizeof tiny);

    const int32_t bad_tok[1] = {100000};
    gptq_batch b{1, bad_tok, nullptr, nullptr, nullptr};
    CHECK(gptq_eval(s.ctx, &b) == GPTQ_ERR_INVALID_ARG);
    CHECK(std::string(gptq_errmsg()).find("100000") != std::string::npos);
    const int32_t tok[1] = {1}, far[1] = {64}, gap[1] = {5}, seq9[1] = {9};
    b = {1, tok, far, nullptr, nullptr};
    CHECK(gptq_eval(s.ctx, &b) == GPTQ_ERR_CONTEXT_FULL);
    b = {1, tok, gap, nullptr, nullptr};
    CHECK(gptq_eval(s.ctx, &b) == GPTQ_ERR_INVALID_ARG);
    b = {1, tok, nullptr, seq9, nullptr};
    CHECK(gptq_eval(s.ctx, &b) == GPTQ_ERR_INVALID_ARG);
    b = {1, tok, nullptr, nullptr, nullptr};
    REQUIRE_OK(gptq_eval(s.ctx, &b));
    CHECK(gptq_get_logits(s.ctx, 0) != nullptr);
    CHECK(gptq_get_logits(s.ctx, 1) == nullptr);
    CHECK(gptq_context_seq_len(s.ctx, 0) == 1);

    gptq_generate_params gp = gptq_generate_params_default();
    gp.top_p = 0;
    CHECK(gptq_generate(s.ctx, "Once", &gp, nullptr, 0, nullptr) == GPTQ_ERR_INVALID_ARG);
}

TEST_CASE("a context outlives its model handle") {
    gptq_model *m = nullptr;
    gptq_context *c = nullptr;
    REQUIRE_OK(gptq_load(stories().c_str(), nullptr, &m));
    REQUIRE_OK(gptq_context_init(m, nullptr, &c));
    gptq_model_free(m);
    const int32_t tok[1] = {1};
    gptq_batch b{1, tok, nullptr, nullptr, nullptr};
    REQUIRE_OK(gptq_eval(c, &b));
    gptq_context_free(c);
}

static int32_t stop_after_5(int32_t, int32_t, const char *, size_t, void *user) { return ++*static_cast<int *>(user) >= 5; }

TEST_CASE("generation: stop strings end the text before them; the callback can cancel") {
    golden::Session s(stories());
    const std::string full = s.greedy("Once upon a time", 60, 1);
    REQUIRE(full.size() > 20);
    const std::string stop = full.substr(10, 3);
    gptq_generate_params gp = gptq_generate_params_default();
    gp.temperature = 0;
    gp.repeat_penalty = 1;
    gp.max_tokens = 60;
    const char *stops[1] = {stop.c_str()};
    gp.stop_strings = stops;
    gp.n_stop_strings = 1;
    char out[4096];
    size_t len = 0;
    REQUIRE_OK(gptq_generate(s.ctx, "Once upon a time", &gp, out, sizeof out, &len));
    CHECK(std::string(out, len) == full.substr(0, full.find(stop)));

    int count = 0;
    gp.n_stop_strings = 0;
    gp.on_token = stop_after_5;
    gp.user_data = &count;
    CHECK(gptq_generate(s.ctx, "Once upon a time", &gp, out, sizeof out, &len) == GPTQ_ERR_ABORTED);
    CHECK(count == 5);
}

TEST_CASE("sampling with a seed is reproducible") {
    golden::Session s(stories());
    gptq_generate_params gp = gptq_generate_params_default();
    gp.max_tokens = 40;
    gp.seed = 42;
    char a[4096], b[4096];
    size_t la = 0, lb = 0;
    REQUIRE_OK(gptq_generate(s.ctx, "Once upon a time", &gp, a, sizeof a, &la));
    REQUIRE_OK(gptq_generate(s.ctx, "Once upon a time", &gp, b, sizeof b, &lb));
    CHECK(std::string(a, la) == std::string(b, lb));
}

TEST_CASE("quantizing a model with NaN weights reports the layer and module") {
    const std::string dir = broken_copy("nan", [](const gptq::TensorView &t, gptq::SafetensorsWriter &w) {
        if (t.name == "model.layers.2.self_attn.q_proj.weight") {
            std::vector<float> v(size_t(t.numel()));
            gptq::tensor_to_f32(t, v.data());
            v[17] = NAN;
            w.add(t.name, gptq::DType::F32, t.shape, v.data(), v.size() * 4);
        } else {
            keep(t, w);
        }
    });
    gptq_quantize_params p = gptq_quantize_params_default();
    const std::string calib = testutil::shared_path("data/wikitext2/wiki.test.raw");
    p.calib_text_path = calib.c_str();
    p.calib_n_samples = 2;
    p.calib_seq_len = 32;
    const std::string out = dir + "-out";
    const gptq_status st = gptq_quantize(dir.c_str(), out.c_str(), &p);
    INFO(std::string(gptq_errmsg()));
    CHECK(st == GPTQ_ERR_NUMERIC);
    CHECK(std::string(gptq_errmsg()).find("layers.2") != std::string::npos);
    CHECK(!fs::exists(out));
    fs::remove_all(dir);
}
