// load_model_config on the real model directories in ../shared (config.json, generation_config.json,
// and the GPTQ checkpoint's quantization_config + quantize_config.json).
#include <doctest/doctest.h>

#include "config.h"
#include "testutil.h"

GPTQ_TEST_REQUIRES("shared")

using namespace gptq;

TEST_CASE("docs-llama-30m, docs-llama-8m and stories260k load with the sizes shared/README.md gives") {
    ModelConfig m = load_model_config(testutil::shared_path("models/docs-llama-30m"));
    CHECK(m.architecture == "llama");
    CHECK(m.hidden_size == 512);
    CHECK(m.n_layers == 8);
    CHECK(m.n_heads == 8);
    CHECK(m.n_kv_heads == 4);
    CHECK(m.head_dim == 64);
    CHECK(m.intermediate_size == 1536);
    CHECK(m.vocab_size == 8192);
    CHECK(m.tie_word_embeddings);
    CHECK(m.bos_token == 1);
    CHECK(m.eos_tokens == std::vector<int>{2});
    CHECK_FALSE(m.quant.present);
    CHECK(m.raw_config_json == testutil::read_text(testutil::shared_path("models/docs-llama-30m/config.json")));

    ModelConfig s = load_model_config(testutil::shared_path("models/docs-llama-8m"));
    CHECK(s.hidden_size == 256);
    CHECK(s.n_layers == 6);
    CHECK(s.n_heads == 4);
    CHECK(s.n_kv_heads == 2);
    CHECK(s.intermediate_size == 768);
    CHECK(s.torch_dtype == "bfloat16");

    ModelConfig t = load_model_config(testutil::shared_path("models/stories260k"));
    CHECK(t.hidden_size == 64);
    CHECK(t.n_layers == 5);
    CHECK(t.n_heads == 8);
    CHECK(t.n_kv_heads == 4);
    CHECK(t.intermediate_size == 172);
    CHECK(t.vocab_size == 512);
    CHECK(t.tie_word_embeddings);
    CHECK(t.max_position_embeddings == 512);
}

TEST_CASE("docs-llama-8m-gptq-w4g128: a GPTQ v1 checkpoint, 4-bit, group 128, symmetric") {
    ModelConfig q = load_model_config(testutil::shared_path("models/docs-llama-8m-gptq-w4g128"));
    CHECK(q.hidden_size == 256);
    CHECK(q.torch_dtype == "float16");
    CHECK(q.quant.present);
    CHECK(q.quant.bits == 4);
    CHECK(q.quant.group_size == 128);
    CHECK(q.quant.sym);
    CHECK_FALSE(q.quant.desc_act);
    CHECK_FALSE(q.quant.static_groups);
    CHECK(q.quant.format == 1);
    CHECK_FALSE(q.quant.lm_head);
    CHECK(q.quant.damp_percent == doctest::Approx(0.01));
}
