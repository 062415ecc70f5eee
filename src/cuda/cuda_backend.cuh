// cuda_backend.cuh — what gptq-cuda.cu offers beyond backend.h: a backend built from random
// weights generated on the GPU (for the end-to-end benchmark: no files, no host conversion) and
// the device-memory accounting the benchmark reports.
#pragma once

#include "backend.h"
#include "config.h"

#include <cstdint>
#include <memory>

namespace gptq {
namespace cuda {

struct SyntheticModelSpec {
    ModelConfig cfg;        // shapes, rope_theta, rms_norm_eps; tie_word_embeddings honoured
    bool q4 = true;         // 4-bit group-wise weights (kernels' layout) or fp16 weights
    int group_size = 128;
    uint64_t seed = 1;
};

// Llama-2-7B's shapes (vocabulary 32000, hidden 4096, intermediate 11008, 32 heads of 128, no GQA,
// untied head) with n_layers layers, 4-bit g128 or fp16 weights.
SyntheticModelSpec llama2_7b_spec(bool q4, int n_layers = 32);

// Random weights scaled so activations stay O(1) through the layers.
std::unique_ptr<Backend> make_synthetic_backend(const SyntheticModelSpec &spec, int device);

// Returns when CUDA device `device` runs this build's kernels; else throws, naming `who` and the
// reason: GPTQ_ERR_BACKEND when there is no such device, GPTQ_ERR_UNSUPPORTED for too old a GPU.
void require_cuda_device(int device, const char *who);

// Decode fusions, all on by default; GPTQ_CUDA_FUSE=<bit mask> switches them for measurements
// (bench-e2e --variants builds its masks from these names).
constexpr int kFuseNorm = 1;     // RMSNorm inside the 4-bit kernel's activation staging (few rows)
constexpr int kFuseSilu = 2;     // SwiGLU inside the down product's activation staging
constexpr int kFuseCombine = 4;  // the attention split kernel merges its chunks itself
constexpr int kFuseRope = 8;     // RoPE + KV store inside the attention kernel (one-token batches)
constexpr int kFuseDefer = 16;   // q|k|v and gate|up split shares summed by their consumers (no tail)
constexpr int kFuseAttnMerge = 32;  // one-token attention's ranges merged in o_proj's activation staging
constexpr int kFuseAll = kFuseNorm | kFuseSilu | kFuseCombine | kFuseRope | kFuseDefer | kFuseAttnMerge;
// GPTQ_CUDA_SKIP=<bit mask> leaves stages out of the forward (wrong results; timing breakdowns
// only): attention (RoPE, KV store, attention), the layers' matrix products, the head.
constexpr int kSkipAttention = 1, kSkipLinear = 2, kSkipHead = 4;

// Programmatic dependent launch on Hopper (default on; GPTQ_CUDA_PDL=0 starts it off).
void set_pdl_enabled(bool on);

// Bytes of device memory the backend allocated itself: now, and the most at any moment.
size_t device_bytes_live();
size_t device_bytes_peak();

} // namespace cuda
} // namespace gptq
