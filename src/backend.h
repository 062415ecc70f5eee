// backend.h — the interface between the model-level API and a compute backend (CPU, CUDA).
//
// A Backend owns the model's weights in its own layout. A BackendContext owns a KV cache for
// n_seq sequences of n_ctx positions and the scratch for batches of up to n_batch tokens.
#pragma once

#include "model.h"

#include <cstdint>
#include <memory>

namespace gptq {

struct EvalToken {
    int32_t token;
    int32_t pos;
    int32_t seq;
};

class BackendContext {
public:
    virtual ~BackendContext() = default;
    // Evaluates n <= n_batch tokens. Each attends to positions 0..pos of its sequence's cache
    // (filled by earlier evals or earlier in this batch). For each i with want_logits[i] != 0,
    // in order, writes vocab_size floats to logits_out (logits_out has room for all of them).
    virtual void eval(const EvalToken *tokens, int n, const int8_t *want_logits, float *logits_out) = 0;
    // Marks sequence seq (all when seq < 0) empty. Cached positions are simply overwritten later.
    virtual void reset(int seq) = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::unique_ptr<BackendContext> create_context(int n_ctx, int n_seq, int n_batch) = 0;
    virtual int64_t weight_bytes() const = 0;
    virtual const char *name() const = 0;
};

std::unique_ptr<Backend> make_cpu_backend(const Model &model, int n_threads);
std::unique_ptr<Backend> make_cuda_backend(const Model &model, int device);  // gptq-cuda.cu
int cuda_device_count();                                                      // 0 without CUDA

} // namespace gptq
