// The safetensors reader on the real files in ../shared: a sharded bf16 model through its index,
// a single-file bf16 model, a GPTQ checkpoint written by another tool, and a doctored index.
#include <doctest/doctest.h>

#include "safetensors.h"
#include "testutil.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <unistd.h>

GPTQ_TEST_REQUIRES("shared")

using namespace gptq;

TEST_CASE("docs-llama-30m: three bf16 shards through model.safetensors.index.json") {
    const std::string dir = testutil::shared_path("models/docs-llama-30m");
    auto s = TensorStore::open_dir(dir);
    const auto index = nlohmann::json::parse(testutil::read_text(dir + "/model.safetensors.index.json"));
    const auto &wm = index["weight_map"];

    // exactly the tensors the index lists, holding exactly the bytes it announces
    std::vector<std::string> names = s->names();
    CHECK(names.size() == wm.size());
    size_t total = 0;
    for (const auto &n : names) {
        REQUIRE(wm.contains(n));
        const TensorView &t = s->require(n);
        CHECK(t.file == dir + "/" + wm[n].get<std::string>());
        CHECK(t.dtype == DType::BF16);
        total += t.nbytes;
    }
    CHECK(total == index["metadata"]["total_size"].get<size_t>());

    // Llama shapes: dim 512, 8 layers, 8 heads / 4 KV heads of 64, SwiGLU 1536, vocab 8192
    CHECK(s->require("model.embed_tokens.weight", {8192, 512}).dtype == DType::BF16);
    s->require("model.layers.0.self_attn.q_proj.weight", {512, 512});
    s->require("model.layers.0.self_attn.k_proj.weight", {256, 512});
    s->require("model.layers.7.self_attn.v_proj.weight", {256, 512});
    s->require("model.layers.7.mlp.up_proj.weight", {1536, 512});
    s->require("model.layers.3.mlp.down_proj.weight", {512, 1536});
    s->require("model.norm.weight", {512});
    CHECK(s->find("model.layers.8.mlp.up_proj.weight") == nullptr);
    CHECK(s->has_prefix("model.layers.7."));

    // the tensors come from more than one shard
    std::set<std::string> files;
    for (const auto &n : names) files.insert(s->require(n).file);
    CHECK(files.size() == 3);

    // bf16 -> f32 on real data: finite, and the norm weights are not all zero
    const TensorView &norm = s->require("model.norm.weight");
    std::vector<float> v(size_t(norm.numel()));
    tensor_to_f32(norm, v.data());
    double sum = 0;
    for (float x : v) {
        REQUIRE(std::isfinite(x));
        sum += std::fabs(x);
    }
    CHECK(sum > 0);
}

TEST_CASE("docs-llama-8m: one bf16 model.safetensors") {
    const std::string dir = testutil::shared_path("models/docs-llama-8m");
    auto s = TensorStore::open_dir(dir);
    CHECK(s->require("model.embed_tokens.weight", {8192, 256}).dtype == DType::BF16);
    s->require("model.layers.5.self_attn.o_proj.weight", {256, 256});
    s->require("model.layers.5.self_attn.k_proj.weight", {128, 256});
    s->require("model.layers.0.mlp.gate_proj.weight", {768, 256});
    s->require("model.layers.0.input_layernorm.weight", {256});
    CHECK_FALSE(s->has_prefix("model.layers.6."));
    // 6 layers x 9 tensors + embeddings + final norm (tied: no lm_head.weight)
    CHECK(s->names().size() == 6 * 9 + 2);
}

TEST_CASE("docs-llama-8m-gptq-w4g128: an independently written GPTQ v1 checkpoint") {
    const std::string dir = testutil::shared_path("models/docs-llama-8m-gptq-w4g128");
    auto s = TensorStore::open_dir(dir);
    const std::string p = "model.layers.0.mlp.up_proj.";  // K = 256, N = 768, 4 bits, group 128
    CHECK(s->require(p + "qweight", {256 / 8, 768}).dtype == DType::I32);
    CHECK(s->require(p + "qzeros", {2, 768 / 8}).dtype == DType::I32);
    CHECK(s->require(p + "scales", {2, 768}).dtype == DType::F16);
    CHECK(s->require(p + "g_idx", {256}).dtype == DType::I32);
    CHECK(s->find(p + "weight") == nullptr);
    // symmetric 4-bit v1: every stored zero is 8 - 1 = 7
    const TensorView &z = s->require(p + "qzeros");
    for (int64_t i = 0; i < z.numel(); i++) {
        uint32_t w;
        std::memcpy(&w, z.data + 4 * i, 4);
        REQUIRE(w == 0x77777777u);
    }
}

TEST_CASE("a shard index that maps a tensor to a shard without it is refused, naming it") {
    const std::string src = testutil::shared_path("models/docs-llama-30m");
    const std::string dir = testutil::temp_dir("st-badindex");
    auto index = nlohmann::json::parse(testutil::read_text(src + "/model.safetensors.index.json"));
    for (const char *shard : {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                              "model-00003-of-00003.safetensors"}) {
        std::string from = src + "/" + shard;
        if (from[0] != '/') {  // a relative GPTQ_SHARED_DIR: make the link absolute
            char cwd[4096];
            REQUIRE(getcwd(cwd, sizeof cwd));
            from = std::string(cwd) + "/" + from;
        }
        REQUIRE(symlink(from.c_str(), (dir + "/" + shard).c_str()) == 0);
    }
    // the original index loads through the links
    std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
    CHECK(TensorStore::open_dir(dir)->names().size() == index["weight_map"].size());

    // move one tensor to a shard that does not hold it
    const std::string victim = "model.norm.weight";
    std::string wrong = index["weight_map"][victim] == "model-00001-of-00003.safetensors"
                            ? "model-00002-of-00003.safetensors" : "model-00001-of-00003.safetensors";
    index["weight_map"][victim] = wrong;
    std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
    std::string msg;
    gptq_status st = GPTQ_OK;
    try {
        TensorStore::open_dir(dir);
    } catch (const Error &e) {
        st = e.status();
        msg = e.what();
    }
    INFO(msg);
    CHECK(st == GPTQ_ERR_FORMAT);
    CHECK(msg.find("tensor " + victim + " is mapped to " + wrong + ", which does not contain it") != std::string::npos);
}
