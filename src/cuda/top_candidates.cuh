// top_candidates.cuh — the sampler's candidates ranked on the device: for each row of logits, the
// top k (value descending, id ascending) after the sampler's ranking (NaN as -inf, +inf as the
// largest float, -0 as +0) and repetition penalty, and how many values are usable (not -inf).
// gptq::top_candidates (sampler.h) is the host's definition of the same list; Sampler::sample_top
// draws from it, so a decode step returns k pairs to the host instead of the vocabulary.
// Plain C++ header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "float_rank.h"

namespace gptq {
namespace cuda {

constexpr int kTopCandidatesMax = 256;  // k per row (a round must cut its input at least 16-fold)

// uint32 words of scratch top_candidates needs for `rows` rows of V logits at k candidates.
size_t top_candidates_scratch_words(int rows, int V, int k);

// Per row r < rows of logits [rows, ld] (fp32, device): ranks the V values, applies the
// penalty to the ids penalised[offsets[r] - offsets[0] .. offsets[r + 1] - offsets[0]) (device
// arrays; distinct ids inside [0, V); offsets has rows + 1 entries), and writes the top k as
// sort keys and ids to keys[r * k ..], ids[r * k ..] (past the vocabulary: id -1) and the usable
// count to usable[r]. 1 <= k <= kTopCandidatesMax. Asynchronous on stream; throws Error
// (INVALID_ARG) for bad arguments or short scratch before launching anything.
void top_candidates(const float *logits, int rows, int V, size_t ld, const int32_t *penalised, const int32_t *offsets,
                    float penalty, int k, uint32_t *keys, int32_t *ids, int32_t *usable, uint32_t *scratch,
                    size_t scratch_words, cudaStream_t stream);

// A sort key back to the ranked, penalised value it was made from (float_rank.h's descending key:
// the radix sort runs ascending).
inline float candidate_value(uint32_t key) {
    const uint32_t bits = bits_of_descending_key(key);
    float v;
    __builtin_memcpy(&v, &bits, 4);
    return v;
}

} // namespace cuda
} // namespace gptq
