// config.json parsing: the real configs of the shared models (copied here verbatim), the
// transformers defaults, RoPE variants, biases, refusals of what would change the math, missing and
// inconsistent fields, the quantization config and its writer, and load_model_config's side files.
#include <doctest/doctest.h>

#include "config.h"
#include "check_fails.h"
#include "testutil.h"

#include <nlohmann/json.hpp>

#include <fstream>

using namespace gptq;
using json = nlohmann::json;


namespace {

// ../shared/models/docs-llama-8m/config.json (docs-llama-30m differs in sizes only)
const char *kDocs8m = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 1, "dtype": "bfloat16", "eos_token_id": 2, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 256, "initializer_range": 0.02, "intermediate_size": 768, "max_position_embeddings": 2048,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 6,
  "num_key_value_heads": 2, "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true,
  "transformers_version": "5.17.0", "use_cache": true, "vocab_size": 8192
})";

// ../shared/models/stories260k/config.json
const char *kStories = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 1, "dtype": "float32", "eos_token_id": 2, "head_dim": 8, "hidden_act": "silu",
  "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 172, "max_position_embeddings": 512,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 8, "num_hidden_layers": 5,
  "num_key_value_heads": 4, "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true,
  "transformers_version": "5.17.0", "use_cache": true, "vocab_size": 512
})";

// ../shared/models/docs-llama-30m/config.json
const char *kDocs30m = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 1, "dtype": "bfloat16", "eos_token_id": 2, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 512, "initializer_range": 0.02, "intermediate_size": 1536, "max_position_embeddings": 2048,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 8, "num_hidden_layers": 8,
  "num_key_value_heads": 4, "pad_token_id": null, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": true,
  "transformers_version": "5.17.0", "use_cache": true, "vocab_size": 8192
})";

// A typical transformers 4.x Qwen2 config (sizes like Qwen2.5-0.5B's).
const char *kQwen2 = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2",
  "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
})";

// A minimal llama config; edit() changes or removes fields for each case.
json base() {
    return json{{"model_type", "llama"}, {"hidden_size", 128}, {"num_hidden_layers", 2},
                {"num_attention_heads", 4}, {"vocab_size", 100}, {"intermediate_size", 256}};
}
ModelConfig parse_j(const json &j, const std::string &quant = "") {
    return parse_model_config(j.dump(), "dir/config.json", quant);
}

void write_text(const std::string &path, const std::string &text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
    REQUIRE(f.good());
}

} // namespace

TEST_CASE("the shared models' configs") {
    ModelConfig c = parse_model_config(kDocs8m, "config.json");
    CHECK(c.architecture == "llama");
    CHECK(c.vocab_size == 8192);
    CHECK(c.hidden_size == 256);
    CHECK(c.intermediate_size == 768);
    CHECK(c.n_layers == 6);
    CHECK(c.n_heads == 4);
    CHECK(c.n_kv_heads == 2);
    CHECK(c.head_dim == 64);
    CHECK(c.max_position_embeddings == 2048);
    CHECK(c.rms_norm_eps == doctest::Approx(1e-5));
    CHECK(c.rope_theta == 10000.0);
    CHECK(c.tie_word_embeddings);
    CHECK_FALSE(c.qkv_bias);
    CHECK_FALSE(c.o_bias);
    CHECK(c.bos_token == 1);
    CHECK(c.eos_tokens == std::vector<int>{2});
    CHECK(c.add_bos);
    CHECK(c.torch_dtype == "bfloat16");
    CHECK_FALSE(c.quant.present);
    CHECK(c.raw_config_json == kDocs8m);

    ModelConfig s = parse_model_config(kStories, "config.json");
    CHECK(s.hidden_size == 64);
    CHECK(s.intermediate_size == 172);
    CHECK(s.n_heads == 8);
    CHECK(s.n_kv_heads == 4);
    CHECK(s.head_dim == 8);
    CHECK(s.vocab_size == 512);
    CHECK(s.max_position_embeddings == 512);
    CHECK(s.torch_dtype == "float32");

    ModelConfig m = parse_model_config(kDocs30m, "config.json");
    CHECK(m.hidden_size == 512);
    CHECK(m.n_layers == 8);
    CHECK(m.n_heads == 8);
    CHECK(m.n_kv_heads == 4);
    CHECK(m.intermediate_size == 1536);
}

TEST_CASE("transformers' LlamaConfig defaults fill what a config leaves out") {
    ModelConfig c = parse_j(base());
    CHECK(c.n_kv_heads == 4);        // = num_attention_heads
    CHECK(c.head_dim == 32);         // hidden / heads
    CHECK(c.max_position_embeddings == 2048);
    CHECK(c.rms_norm_eps == doctest::Approx(1e-6));
    CHECK(c.rope_theta == 10000.0);
    CHECK_FALSE(c.tie_word_embeddings);  // LlamaConfig(tie_word_embeddings=False)
    CHECK(c.bos_token == -1);
    CHECK(c.eos_tokens.empty());
    CHECK(c.add_bos);

    json j = base();
    j["head_dim"] = 64;  // head_dim may differ from hidden / heads (q_proj is then 256 x 128)
    j["hidden_size"] = 100;  // no longer needs to divide by heads
    CHECK(parse_j(j).head_dim == 64);

    j = base();
    j.erase("model_type");
    j["architectures"] = {"MistralForCausalLM"};  // model_type inferred from the class
    // MistralConfig's defaults: window 4096 over 131072 positions, which this library refuses
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "sliding_window 4096 is shorter than max_position_embeddings 131072");
    j["max_position_embeddings"] = 4096;  // a window covering every position is plain attention
    CHECK(parse_j(j).architecture == "mistral");
    CHECK(parse_j(j).max_position_embeddings == 4096);
}

TEST_CASE("RoPE: rope_parameters, top-level rope_theta, rope_scaling; scaled variants refused") {
    json j = base();
    j["rope_theta"] = 500000.0;
    CHECK(parse_j(j).rope_theta == 500000.0);
    j = base();
    j["rope_parameters"] = {{"rope_theta", 1e6}, {"rope_type", "default"}};
    CHECK(parse_j(j).rope_theta == 1e6);
    j["rope_parameters"] = {{"rope_theta", 20000.0}};  // rope_type absent = default
    CHECK(parse_j(j).rope_theta == 20000.0);
    j = base();
    j["rope_scaling"] = nullptr;  // null is fine
    j["rope_theta"] = 30000;      // an integer theta is fine too
    CHECK(parse_j(j).rope_theta == 30000.0);
    // per layer type (transformers >= 5)
    j = base();
    j["rope_parameters"] = {{"full_attention", {{"rope_theta", 40000.0}, {"rope_type", "default"}}}};
    CHECK(parse_j(j).rope_theta == 40000.0);

    j = base();  // Llama 3.1's scaling
    j["rope_scaling"] = {{"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}, {"rope_type", "llama3"}};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "dir/config.json: rope_scaling.rope_type \"llama3\" changes the rotary");
    j = base();
    j["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "yarn"}, {"factor", 4.0}};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "rope_parameters.rope_type \"yarn\"");
    j = base();
    j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};  // the older spelling
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "rope_scaling.rope_type \"linear\"");
    j = base();
    j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "\"dynamic\"");
    j = base();
    j["partial_rotary_factor"] = 0.5;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "partial_rotary_factor");
    j = base();
    j["rope_scaling"] = "linear";
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "rope_scaling must be an object");
    j = base();
    j["rope_theta"] = -1;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "rope_theta -1 must be positive");
}

TEST_CASE("biases: qwen2 q/k/v, llama attention_bias q/k/v/o, mlp_bias refused") {
    ModelConfig q = parse_model_config(kQwen2, "config.json");
    CHECK(q.architecture == "qwen2");
    CHECK(q.qkv_bias);
    CHECK_FALSE(q.o_bias);
    CHECK(q.n_heads == 14);
    CHECK(q.n_kv_heads == 2);
    CHECK(q.head_dim == 64);
    CHECK(q.rope_theta == 1e6);
    CHECK(q.rms_norm_eps == doctest::Approx(1e-6));
    CHECK(q.tie_word_embeddings);
    CHECK(q.bos_token == 151643);
    CHECK(q.eos_tokens == std::vector<int>{151645});
    CHECK_FALSE(q.add_bos);  // Qwen2's tokenizer prepends nothing
    CHECK(q.torch_dtype == "bfloat16");

    json j = base();
    j["attention_bias"] = true;
    ModelConfig c = parse_j(j);
    CHECK(c.qkv_bias);
    CHECK(c.o_bias);
    j["attention_bias"] = false;
    CHECK_FALSE(parse_j(j).qkv_bias);
    j = base();
    j["mlp_bias"] = true;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "dir/config.json: mlp_bias true is not supported");
    j = base();
    j["hidden_act"] = "gelu";
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "hidden_act \"gelu\" is not supported");
}

TEST_CASE("sliding windows: mistral null or covering accepted, shorter refused; qwen2 only when enabled") {
    json j = base();
    j["model_type"] = "mistral";
    j["sliding_window"] = nullptr;
    j["max_position_embeddings"] = 32768;
    CHECK(parse_j(j).architecture == "mistral");
    j["sliding_window"] = 32768;
    CHECK(parse_j(j).max_position_embeddings == 32768);
    j["sliding_window"] = 4096;  // Mistral-7B-v0.1
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "sliding_window 4096 is shorter than max_position_embeddings 32768");
    j.erase("sliding_window");  // absent means MistralConfig's 4096
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "sliding_window 4096");

    json q = json::parse(kQwen2);
    q["sliding_window"] = 4096;  // ignored while use_sliding_window is false
    CHECK(parse_model_config(q.dump(), "config.json").architecture == "qwen2");
    q["use_sliding_window"] = true;
    CHECK_FAILS(parse_model_config(q.dump(), "config.json"), GPTQ_ERR_UNSUPPORTED, "sliding_window 4096");
}

TEST_CASE("unsupported architectures are named, with the supported list") {
    json j = base();
    j["model_type"] = "gpt2";
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "model_type \"gpt2\" is not supported (supported: llama, mistral, qwen2)");
    j = json{{"model_type", "qwen3"}};  // refused before any missing field is reported
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "model_type \"qwen3\"");
    j = base();
    j.erase("model_type");
    j["architectures"] = {"GPTNeoXForCausalLM"};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "architecture GPTNeoXForCausalLM is not supported");
    j = base();
    j["architectures"] = {"LlamaForSequenceClassification"};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "only *ForCausalLM");
    j = base();
    j.erase("model_type");
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "missing field model_type");
}

TEST_CASE("missing, mistyped, non-positive and inconsistent fields") {
    for (const char *field : {"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"}) {
        json j = base();
        j.erase(field);
        CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, std::string("dir/config.json: missing field ") + field);
        j[field] = nullptr;  // null is as good as absent
        CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, std::string("missing field ") + field);
        j[field] = 0;
        CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, std::string(field) + " 0 is out of range");
        j[field] = -8;
        CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, std::string(field) + " -8 is out of range");
        j[field] = "128";
        CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, std::string(field) + " must be an integer, found \"128\"");
        j[field] = 1.5;
        CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "must be an integer, found 1.5");
        j[field] = 1e12;
        CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "out of range");
    }
    json j = base();
    j["hidden_size"] = 128.0;  // an integer written as a float
    CHECK(parse_j(j).hidden_size == 128);
    j = base();
    j["num_attention_heads"] = 3;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "hidden_size 128 is not divisible by num_attention_heads 3");
    j = base();
    j["num_key_value_heads"] = 3;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
    j["num_key_value_heads"] = 0;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "num_key_value_heads 0 is out of range");
    j = base();
    j["head_dim"] = 33;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "head_dim 33 is odd");
    j = base();
    j["rms_norm_eps"] = "small";
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "rms_norm_eps must be a number");
    j = base();
    j["tie_word_embeddings"] = 1;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "tie_word_embeddings must be true or false, found 1");
    j = base();
    j["eos_token_id"] = 100;  // vocab_size is 100
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "eos_token_id 100 is outside the vocabulary (vocab_size 100)");
    j["eos_token_id"] = -1;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "eos_token_id -1 is out of range");
    CHECK_FAILS(parse_model_config("{\"hidden_size\": ", "c.json"), GPTQ_ERR_FORMAT, "c.json: not valid JSON");
    CHECK_FAILS(parse_model_config("[]", "c.json"), GPTQ_ERR_FORMAT, "c.json: is a list, not a JSON object");
    CHECK_FAILS(parse_model_config("", "c.json"), GPTQ_ERR_FORMAT, "not valid JSON");
}

TEST_CASE("eos: an int or a list") {
    json j = base();
    j["eos_token_id"] = {2, 7, 2};
    CHECK(parse_j(j).eos_tokens == std::vector<int>{2, 7});  // duplicates dropped, order kept
    j["eos_token_id"] = nullptr;
    CHECK(parse_j(j).eos_tokens.empty());
    j["eos_token_id"] = {2, "x"};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "eos_token_id must be an integer, found \"x\"");
}

TEST_CASE("quantization_config and quantize_config.json") {
    json j = base();
    j["quantization_config"] = {{"bits", 4}, {"group_size", 128}, {"desc_act", false}, {"static_groups", false},
                                {"sym", true}, {"true_sequential", true}, {"damp_percent", 0.01},
                                {"quant_method", "gptq"}, {"checkpoint_format", "gptq"}};
    QuantConfig q = parse_j(j).quant;
    CHECK(q.present);
    CHECK(q.bits == 4);
    CHECK(q.group_size == 128);
    CHECK(q.sym);
    CHECK_FALSE(q.desc_act);
    CHECK(q.format == 1);
    CHECK_FALSE(q.lm_head);

    // quantize_config.json wins
    q = parse_j(j, R"({"bits": 8, "group_size": -1, "desc_act": true, "sym": false, "checkpoint_format": "gptq_v2",
                       "lm_head": true, "damp_percent": 0.1})").quant;
    CHECK(q.bits == 8);
    CHECK(q.group_size == -1);
    CHECK(q.desc_act);
    CHECK_FALSE(q.sym);
    CHECK(q.format == 2);
    CHECK(q.lm_head);
    CHECK(q.damp_percent == doctest::Approx(0.1));
    // an old AutoGPTQ file: no quant_method, no checkpoint_format = v1
    q = parse_j(base(), R"({"bits": 3, "group_size": 64, "desc_act": false, "sym": true})").quant;
    CHECK(q.present);
    CHECK(q.bits == 3);
    CHECK(q.format == 1);
    // GPTQModel's "format" spelling
    CHECK(parse_j(base(), R"({"bits": 4, "format": "gptq_v2"})").quant.format == 2);
    CHECK_FALSE(parse_j(base()).quant.present);
    j = base();
    j["quantization_config"] = nullptr;
    CHECK_FALSE(parse_j(j).quant.present);

    CHECK_FAILS(parse_j(base(), R"({"bits": 5})"), GPTQ_ERR_UNSUPPORTED,
                "dir/quantize_config.json: bits 5 is not supported (2, 3, 4 or 8)");
    CHECK_FAILS(parse_j(base(), R"({"group_size": 128})"), GPTQ_ERR_FORMAT, "quantize_config.json: missing field bits");
    CHECK_FAILS(parse_j(base(), R"({"bits": 4, "group_size": 0})"), GPTQ_ERR_FORMAT, "group_size 0 must be -1");
    CHECK_FAILS(parse_j(base(), R"({"bits": 4, "group_size": -2})"), GPTQ_ERR_FORMAT, "group_size -2");
    CHECK_FAILS(parse_j(base(), R"({"bits": 4, "checkpoint_format": "marlin"})"), GPTQ_ERR_UNSUPPORTED,
                "checkpoint_format \"marlin\" is not supported");
    CHECK_FAILS(parse_j(base(), R"({"bits": 4, "sym": "yes"})"), GPTQ_ERR_FORMAT, "sym must be true or false");
    CHECK_FAILS(parse_j(base(), R"({"bits": 4, "damp_percent": 2})"), GPTQ_ERR_FORMAT, "damp_percent 2 is outside");
    CHECK_FAILS(parse_j(base(), "[4]"), GPTQ_ERR_FORMAT, "quantize_config.json: is a list");
    CHECK_FAILS(parse_j(base(), R"({"bits": 4, "dynamic": {"-:.*down": {}}})"), GPTQ_ERR_UNSUPPORTED, "dynamic");
    j = base();
    j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "dir/config.json: quantization_config.quant_method \"awq\" is not supported");
    j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 6}};
    CHECK_FAILS(parse_j(j), GPTQ_ERR_UNSUPPORTED, "quantization_config.bits 6");
    j["quantization_config"] = 4;
    CHECK_FAILS(parse_j(j), GPTQ_ERR_FORMAT, "quantization_config must be an object");
}

TEST_CASE("quant_config_json writes the keys FORMAT.md lists and reads back the same") {
    QuantConfig q;
    q.present = true;
    q.bits = 3;
    q.group_size = 64;
    q.desc_act = true;
    q.static_groups = true;
    q.sym = false;
    q.true_sequential = false;
    q.damp_percent = 0.01f;
    q.format = 2;
    json j = json::parse(quant_config_json(q));
    CHECK(j["bits"] == 3);
    CHECK(j["group_size"] == 64);
    CHECK(j["desc_act"] == true);
    CHECK(j["static_groups"] == true);
    CHECK(j["sym"] == false);
    CHECK(j["true_sequential"] == false);
    CHECK(j["damp_percent"].get<double>() == 0.01);  // not 0.009999999776
    CHECK(j["quant_method"] == "gptq");
    CHECK(j["checkpoint_format"] == "gptq_v2");
    CHECK_FALSE(j.contains("lm_head"));
    QuantConfig r = parse_j(base(), j.dump()).quant;
    CHECK(r.bits == 3);
    CHECK(r.group_size == 64);
    CHECK(r.desc_act);
    CHECK(r.static_groups);
    CHECK_FALSE(r.sym);
    CHECK_FALSE(r.true_sequential);
    CHECK(r.format == 2);

    QuantConfig d;  // defaults: 4-bit, group 128, sym, v1
    j = json::parse(quant_config_json(d));
    CHECK(j["checkpoint_format"] == "gptq");
    CHECK(j["bits"] == 4);
    CHECK(j["sym"] == true);
    d.lm_head = true;
    CHECK(parse_j(base(), quant_config_json(d)).quant.lm_head);
}

TEST_CASE("load_model_config: config.json plus its optional side files") {
    std::string dir = testutil::temp_dir("cfg-dir");
    CHECK_FAILS(load_model_config(dir), GPTQ_ERR_IO, dir + "/config.json");

    write_text(dir + "/config.json", kDocs8m);
    ModelConfig c = load_model_config(dir);
    CHECK(c.hidden_size == 256);
    CHECK(c.eos_tokens == std::vector<int>{2});
    CHECK(c.chat_template.empty());

    write_text(dir + "/generation_config.json", R"({"bos_token_id": 3, "eos_token_id": [2, 5]})");
    write_text(dir + "/tokenizer_config.json",
               R"({"add_bos_token": false, "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})");
    write_text(dir + "/quantize_config.json", R"({"bits": 4, "group_size": 128, "sym": true, "desc_act": false})");
    c = load_model_config(dir);
    CHECK(c.bos_token == 3);
    CHECK(c.eos_tokens == std::vector<int>{2, 5});
    CHECK_FALSE(c.add_bos);
    CHECK(c.chat_template == "{% for m in messages %}{{ m.content }}{% endfor %}");
    CHECK(c.quant.present);
    CHECK(c.quant.group_size == 128);

    // older named-template lists; a separate chat_template.jinja when the config has none
    write_text(dir + "/tokenizer_config.json",
               R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
    CHECK(load_model_config(dir).chat_template == "D");
    CHECK(load_model_config(dir).add_bos);
    write_text(dir + "/tokenizer_config.json", "{}");
    write_text(dir + "/chat_template.jinja", "J");
    CHECK(load_model_config(dir).chat_template == "J");

    write_text(dir + "/generation_config.json", R"({"eos_token_id": [2, 9000]})");
    CHECK_FAILS(load_model_config(dir), GPTQ_ERR_FORMAT,
                dir + "/generation_config.json: eos_token_id 9000 is outside the vocabulary");
    write_text(dir + "/generation_config.json", "{");
    CHECK_FAILS(load_model_config(dir), GPTQ_ERR_FORMAT, dir + "/generation_config.json: not valid JSON");
    write_text(dir + "/generation_config.json", "{}");
    write_text(dir + "/tokenizer_config.json", R"({"add_bos_token": "yes"})");
    CHECK_FAILS(load_model_config(dir), GPTQ_ERR_FORMAT, "tokenizer_config.json: add_bos_token must be true or false");
    write_text(dir + "/tokenizer_config.json", "{}");
    write_text(dir + "/quantize_config.json", R"({"bits": 4, "quant_method": "awq"})");
    CHECK_FAILS(load_model_config(dir), GPTQ_ERR_UNSUPPORTED, dir + "/quantize_config.json: quant_method \"awq\"");
}
