// backend.h — the interface between the model-level API and a compute backend (CPU, CUDA).
//
// A Backend owns the model's weights in its own layout. A BackendContext owns a KV cache for
// n_seq sequences of n_ctx positions and the scratch for batches of up to n_batch tokens.
#pragma once

#include "model.h"

#include <cstdint>
#include <memory>
#include <string>

namespace gptq {

struct EvalToken {
    int32_t token;
    int32_t pos;
    int32_t seq;
};

// What the sampler needs of each kept row when the backend ranks candidates itself
// (Sampler::sample_top): the top k after the repetition penalty of the row's recent ids.
struct CandidateQuery {
    int k = 0;                           // candidates per kept row, 1 .. max_candidates()
    float penalty = 1.0f;                // the repetition penalty (> 0)
    const int32_t *penalised = nullptr;  // kept row r: penalised[offsets[r] .. offsets[r + 1]),
    const int32_t *offsets = nullptr;    // distinct ids inside the vocabulary; kept rows + 1 offsets
};

class BackendContext {
public:
    virtual ~BackendContext() = default;
    // Evaluates n <= n_batch tokens. Each attends to positions 0..pos of its sequence's cache
    // (filled by earlier evals or earlier in this batch). For each i with want_logits[i] != 0,
    // in order, writes vocab_size floats to logits_out (logits_out has room for all of them).
    virtual void eval(const EvalToken *tokens, int n, const int8_t *want_logits, float *logits_out) = 0;
    // Host memory for `floats` logits that eval writes straight into (a GPU backend's pinned
    // memory, which its copy engine fills with no copy after it), valid until the next call; null
    // where the caller's own memory serves as well (the CPU backend).
    virtual float *logits_storage(size_t floats) { (void)floats; return nullptr; }
    // The most candidates per row eval_candidates ranks; 0 when the backend does not offer it.
    virtual int max_candidates() const { return 0; }
    // As eval, but for each kept row, in order, writes its top q.k candidates as top_candidates
    // (sampler.h) lists them: q.k values and q.k ids per row, and its usable count.
    virtual void eval_candidates(const EvalToken *tokens, int n, const int8_t *want, const CandidateQuery &q,
                                 float *values, int32_t *ids, int32_t *usable);
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
// "" when CUDA device `device` runs this build's kernels, else why not (no CUDA in the build, no
// such device, too old a GPU: compute_capability_unsupported).
std::string cuda_device_unsupported(int device);
std::string compute_capability_unsupported(int major, int minor);  // "" from 8.0 (Ampere) on
// Whether GPTQ_BACKEND_AUTO takes CUDA device `device` (present and supported).
inline bool cuda_device_usable(int device) { return cuda_device_unsupported(device).empty(); }

} // namespace gptq
