// config.h — the model's Hugging Face configuration (config.json and friends).
//
// Accepted: model_type llama / mistral / qwen2 (architectures *ForCausalLM), hidden_act silu,
// rope_theta top-level or in rope_parameters / rope_scaling with rope_type "default" (any other
// RoPE scaling changes the math and is refused), optional head_dim, GQA, tied or untied
// embeddings, attention_bias (qwen2 always has q/k/v bias). Mistral's sliding_window is accepted
// only when it is null or >= max_position_embeddings (otherwise the math changes: refused).
// Anything else that changes the math is Error(GPTQ_ERR_UNSUPPORTED) naming the field.
#pragma once

#include "common.h"

#include <string>
#include <vector>

namespace gptq {

struct QuantConfig {
    bool present = false;      // a GPTQ checkpoint
    int bits = 4;
    int group_size = 128;      // -1 = one group per column
    bool sym = true;
    bool desc_act = false;
    bool static_groups = false;
    bool true_sequential = true;
    float damp_percent = 0.01f;
    int format = 1;            // 1 = "gptq" (zeros stored minus 1), 2 = "gptq_v2"
    bool lm_head = false;      // lm_head quantized too
};

struct ModelConfig {
    std::string architecture;  // "llama", "mistral", "qwen2"
    int vocab_size = 0;
    int hidden_size = 0;
    int intermediate_size = 0;
    int n_layers = 0;
    int n_heads = 0;
    int n_kv_heads = 0;
    int head_dim = 0;
    int max_position_embeddings = 2048;
    float rms_norm_eps = 1e-6f;
    double rope_theta = 10000.0;
    bool tie_word_embeddings = false;
    bool qkv_bias = false;     // qwen2, or attention_bias = true (then o_proj has a bias too)
    bool o_bias = false;
    int bos_token = -1;
    std::vector<int> eos_tokens;  // generation_config.json may list several
    bool add_bos = true;          // tokenizer_config.json add_bos_token, default true
    std::string torch_dtype;      // "bfloat16", ...
    std::string chat_template;    // tokenizer_config.json chat_template, if any
    QuantConfig quant;
    std::string raw_config_json;  // config.json as read, for the writer to extend
};

// Parses config.json text (and, when given, quantize_config.json text that overrides
// config["quantization_config"]). origin names the file in messages. Throws FORMAT / UNSUPPORTED.
ModelConfig parse_model_config(const std::string &config_json, const std::string &origin,
                               const std::string &quantize_config_json = "");

// Reads dir/config.json, dir/quantize_config.json, dir/generation_config.json and
// dir/tokenizer_config.json (the last three optional).
ModelConfig load_model_config(const std::string &dir);

// The quantization_config / quantize_config.json object for q, as JSON text.
std::string quant_config_json(const QuantConfig &q);

} // namespace gptq
