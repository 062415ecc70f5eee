// model.h — a loaded model: configuration, tokenizer, and validated references to its weights.
//
// Weights stay in the memory-mapped safetensors files (TensorStore); the model holds checked
// views of them. Each backend converts them once into the layout it computes with (the CPU
// backend: fp32, or GPTQ codes it dequantizes on the fly; the CUDA backend: fp16 / repacked 4-bit).
#pragma once

#include "config.h"
#include "safetensors.h"
#include "tokenizer.h"

#include <memory>
#include <string>
#include <vector>

namespace gptq {

class Backend;

// A GPTQ-quantized linear layer's tensors (FORMAT.md), shapes already checked.
struct QuantTensors {
    const TensorView *qweight = nullptr;  // int32 [K*bits/32, N]
    const TensorView *qzeros = nullptr;   // int32 [G, N*bits/32]
    const TensorView *scales = nullptr;   // f16 [G, N]
    const TensorView *g_idx = nullptr;    // int32 [K], values in [0, G); may be null (then k / group_size)
    int bits = 4, group_size = 128, G = 1, format = 1;
};

// y[M, out] = x[M, in] · Wᵀ (+ bias), W in Hugging Face layout [out, in].
struct LinearWeights {
    std::string name;           // "model.layers.3.mlp.up_proj"
    int in = 0, out = 0;
    const TensorView *weight = nullptr;  // float [out, in]; null when quantized
    const TensorView *bias = nullptr;    // float [out] or null
    bool quantized = false;
    QuantTensors q;
};

struct LayerWeights {
    const TensorView *attn_norm = nullptr;  // [hidden]
    const TensorView *mlp_norm = nullptr;   // [hidden]
    LinearWeights q, k, v, o, gate, up, down;
};

struct Model {
    ModelConfig cfg;
    std::string dir;
    std::unique_ptr<TensorStore> store;
    std::unique_ptr<Tokenizer> tok;
    const TensorView *embed = nullptr;       // [vocab, hidden]
    const TensorView *final_norm = nullptr;  // [hidden]
    LinearWeights lm_head;                   // weight == embed when tied
    std::vector<LayerWeights> layers;
    std::unique_ptr<Backend> backend;
    int backend_kind = GPTQ_BACKEND_CPU;
    int n_threads = 1;

    ~Model();
    int64_t n_params() const;
};

// Opens dir, parses its configs, opens its tokenizer and validates every weight's presence, dtype
// and shape (Error FORMAT naming the tensor otherwise). Does not create a backend.
std::unique_ptr<Model> load_model(const std::string &dir);

// Validates and describes one linear layer (float or GPTQ) named prefix ("model.layers.0.self_attn.q_proj").
LinearWeights load_linear(const TensorStore &store, const std::string &prefix, int in, int out,
                          bool has_bias, const QuantConfig &qc);

} // namespace gptq
