// gptq_quantize end to end on the GPU (docs-llama-8m, a little calibration data): the GPU
// pipeline writes the same kind of checkpoint as the CPU one with the same options, its perplexity
// agrees with the CPU quantizer's, cancelling in the middle of a layer leaves nothing behind, and
// what the GPU quantizer cannot do is refused when the GPU is asked for explicitly.
// (The solver alone against the CPU solver: test_cuda_quantize.cpp.)
#include "golden.h"
#include "testutil.h"

#include "quant/pack.h"
#include "src/safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <string>

GPTQ_TEST_REQUIRES("shared cuda")

namespace fs = std::filesystem;

static std::string model8m() { return testutil::bundled_model_dir(); }

static gptq_quantize_params small_params(int backend) {
    gptq_quantize_params p = golden::wiki_calibration_params(32, 256, 11);
    p.backend = backend;
    return p;
}

// The fractions of codes of one quantized module of two checkpoints that are equal and that differ
// by at most one step.
struct CodeAgreement { double equal = 0, within_one = 0; };
static CodeAgreement compare_codes(const std::string &a, const std::string &b, const std::string &module, int bits) {
    auto sa = gptq::TensorStore::open_dir(a), sb = gptq::TensorStore::open_dir(b);
    const gptq::TensorView &qa = sa->require(module + ".qweight"), &qb = sb->require(module + ".qweight");
    REQUIRE(qa.shape == qb.shape);
    const int K = int(qa.shape[0] * 32 / bits), N = int(qa.shape[1]);
    std::vector<uint8_t> ca(size_t(K) * N), cb(ca.size());
    gptq::unpack_qweight(reinterpret_cast<const int32_t *>(qa.data), K, N, bits, ca.data());
    gptq::unpack_qweight(reinterpret_cast<const int32_t *>(qb.data), K, N, bits, cb.data());
    size_t same = 0, near = 0;
    for (size_t i = 0; i < ca.size(); ++i) {
        same += ca[i] == cb[i];
        near += std::abs(int(ca[i]) - int(cb[i])) <= 1;
    }
    return {double(same) / double(ca.size()), double(near) / double(ca.size())};
}

TEST_CASE("the GPU and CPU quantizers write the same checkpoint up to floating-point noise") {
    struct Case { int bits, group, sym, act, stat; };
    // The library default (act-order + static groups), asymmetric 3 bits and 8 bits.
    const Case cases[] = {{4, 128, 1, 1, 1}, {3, 128, 0, 0, 0}, {8, 128, 1, 0, 0}};
    const std::string out = testutil::temp_dir("quant-gpu");
    for (const Case &c : cases) {
        double ppl[2] = {0, 0};
        nlohmann::json cfg[2];
        const int backends[2] = {GPTQ_BACKEND_CPU, GPTQ_BACKEND_CUDA};
        for (int b = 0; b < 2; ++b) {
            gptq_quantize_params p = small_params(backends[b]);
            p.bits = c.bits;
            p.group_size = c.group;
            p.sym = c.sym;
            p.desc_act = c.act;
            p.static_groups = c.stat;
            const std::string dir = out + (b ? "/gpu" : "/cpu");
            REQUIRE_OK(gptq_quantize(model8m().c_str(), dir.c_str(), &p));
            cfg[b] = nlohmann::json::parse(testutil::read_text(dir + "/quantize_config.json"));
            ppl[b] = golden::heldout_perplexity(dir, 6);
        }
        INFO("bits " << c.bits << " sym " << c.sym << " act " << c.act << ": CPU " << ppl[0] << " GPU " << ppl[1]);
        CHECK(cfg[0] == cfg[1]);
        // The first layer's k_proj sees the same inputs on both (the embeddings through RMSNorm; the
        // GPU's calibration forward rounds them to fp16): its codes must agree but for near-ties.
        // Later modules drift apart as the two forwards' roundings compound, which is what the
        // perplexity bound below covers.
        const CodeAgreement a = compare_codes(out + "/cpu", out + "/gpu", "model.layers.0.self_attn.k_proj", c.bits);
        MESSAGE("bits " << c.bits << ": layer 0 k_proj codes equal " << a.equal << ", within one step "
                        << a.within_one << "; held-out CPU " << ppl[0] << " GPU " << ppl[1]);
        // Measured on the H100: 99.91% (w4 act-order static), 99.97% (w3 asym), 99.99% (w8) equal,
        // all within one step.
        CHECK(a.within_one > 0.999);
        CHECK(a.equal > 0.99);
        // Measured on the H100 with these 32 x 256 windows: 0.95% (w4 act-order static) and 1.4%
        // (w3 asym, the GPU lower) apart; with the full 128 x 1024 calibration 0.04-0.16%
        // (BENCHMARKS.md), the CPU quantizer's own spread when only the order of its Hessian sums
        // changes. A wrong group, zero point or permutation costs far more than 2.5%.
        CHECK(std::fabs(ppl[1] / ppl[0] - 1) < 0.025);
        fs::remove_all(out + "/cpu");
        fs::remove_all(out + "/gpu");
    }
    fs::remove_all(out);
}

struct CancelAt {
    std::string when;  // cancel at the first progress detail containing this
    std::string seen;  // the detail of the call that cancelled
    int calls = 0;
};

static int32_t cancel_when(const char *stage, int64_t, int64_t, const char *detail, void *user) {
    auto *c = static_cast<CancelAt *>(user);
    ++c->calls;
    if (std::string(stage) == "quantize" && detail && std::string(detail).find(c->when) != std::string::npos) {
        c->seen = detail;
        return 1;
    }
    return 0;
}

TEST_CASE("cancelling the GPU quantizer in the middle of a layer leaves no checkpoint behind") {
    const std::string out = testutil::temp_dir("quant-gpu-cancel");
    gptq_quantize_params p = small_params(GPTQ_BACKEND_CUDA);
    p.calib_n_samples = 8;
    CancelAt c;
    c.when = "layer 2/";  // the first module of the second layer (k_proj; six modules to go)
    p.progress = cancel_when;
    p.progress_user_data = &c;
    CHECK(gptq_quantize(model8m().c_str(), (out + "/m").c_str(), &p) == GPTQ_ERR_ABORTED);
    INFO("cancelled at: " << c.seen);
    CHECK(c.seen.find("self_attn.") != std::string::npos);
    const std::string msg = gptq_errmsg();
    CHECK(msg.find("cancelled at layer 1") != std::string::npos);
    CHECK(fs::is_empty(out));
    // The device is usable again afterwards: the same request without the cancel succeeds.
    p.progress = nullptr;
    REQUIRE_OK(gptq_quantize(model8m().c_str(), (out + "/m").c_str(), &p));
    CHECK(fs::exists(out + "/m/quantize_config.json"));
    fs::remove_all(out);
}

TEST_CASE("the GPU quantizer, asked for explicitly, refuses what it cannot do with a message") {
    gptq_quantize_params p = small_params(GPTQ_BACKEND_CUDA);
    p.calib_n_samples = 4;
    p.block_size = 256;  // lazy-update blocks wider than the fused sweep's 128
    const gptq_status st = gptq_quantize(model8m().c_str(), "/tmp/gptq-gpu-never", &p);
    CHECK(st != GPTQ_OK);
    INFO(gptq_errmsg());
    CHECK(std::string(gptq_errmsg()).find("block") != std::string::npos);
    CHECK(!fs::exists("/tmp/gptq-gpu-never"));
    // The same options with AUTO fall back to the CPU quantizer.
    p.backend = GPTQ_BACKEND_AUTO;
    p.calib_n_samples = 2;
    p.calib_seq_len = 64;
    const std::string out = testutil::temp_dir("quant-gpu-fallback");
    REQUIRE_OK(gptq_quantize(model8m().c_str(), (out + "/m").c_str(), &p));
    fs::remove_all(out);
}
