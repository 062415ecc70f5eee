// attention.cuh — causal attention over the GPU KV cache (attention.cu). Plain C++ header.
//
// Queries: q [n, ldq], head hq at columns hq*D. Keys/values: the cache of elementwise.cuh's
// KVLayer. Token t attends to positions 0..pos[t] of sequence seq[t]; query head hq reads KV head
// hq / (Hq / Hkv) (GQA). Output: out [n, ldo], head hq at columns hq*D, fp16.
#pragma once

#include "elementwise.cuh"

#include <cublas_v2.h>

namespace gptq {
namespace cuda {

constexpr int kAttnChunk = 32;  // cache positions per block in the split kernel (one per lane)

// Scratch of attention_split for n tokens and n_chunks chunks: the chunks' D outputs, then their
// (m, l) pairs from attn_split_ml_offset on.
inline size_t attn_split_scratch_floats(int n, int Hq, int D, int n_chunks) {
    return size_t(n) * Hq * n_chunks * (size_t(D) + 2);
}
inline size_t attn_split_ml_offset(int n, int Hq, int D, int n_chunks) { return size_t(n) * Hq * n_chunks * D; }
// Merge counters attention_split may use for n tokens of Hq query heads (AttnSplitFusion::counters).
inline size_t attn_split_counters(int n, int Hq) { return size_t(n) * Hq; }

// Decode-style attention ("flash decoding"): blocks take ranges of a token's positions, a
// second pass merges the ranges' softmax partials. Any n; suited to few tokens per sequence.
// n_chunks >= ceil((max pos + 1) / kAttnChunk) bounds the scratch; the grid does not depend on
// the positions' values, so a CUDA graph may replay a launch at later positions.
// head_dim 64 or 128: ranges sized from each token's position (attention_decode.cu); other head
// sizes: one block per chunk of kAttnChunk positions, blocks past the position exit at once.
//
// Fusions (decode: fewer launches per layer):
//   counters: attn_split_counters(n, Hq) zeroed unsigned (left zeroed): the last block of each
//             (token, KV head, group of query heads) to finish merges the ranges, no second kernel.
//   inv_freq: n must be 1; q holds the token's qkv row un-rotated (query heads, then KV heads of
//             keys, then of values, as rope_store_kv takes it): the kernel rotates the queries for
//             itself and stores the rotated key and the value of position pos[0] in the cache,
//             which rope_store_kv would have done (the qkv row is left as it was).
//   qkv_part: with inv_freq, the qkv row comes as the deferred shares of the 4-bit product
//             (q4_gemm.cuh Q4Out::defer, one token): value of column j = fp16(sum over
//             s < qkv_splits of qkv_part[s * qkv_ld + j]); q is then not read.
//   merge_used: the range kernel only (attention_decode_available): the ranges' partials stay
//             unmerged in scratch — part_o = scratch, part_ml = scratch + attn_split_ml_offset(...),
//             range r of (token t, head hq) at part = (t * Hq + hq) * n_chunks + r, its (m, l) at
//             part_ml[2 part], its unnormalized output at part_o[part * D] — and merge_used[t]
//             receives the token's range count; out is not written. Their consumer merges them
//             (the 4-bit product's prologue kind 4, q4_gemm.cuh). counters is then not used.
struct AttnSplitFusion {
    unsigned *counters = nullptr;
    const float *inv_freq = nullptr;
    const float *qkv_part = nullptr;
    int qkv_splits = 0, qkv_ld = 0;
    int *merge_used = nullptr;
};
void attention_split(const __half *q, int ldq, const int32_t *pos, const int32_t *seq, int n, int Hq,
                     const KVLayer &kv, float scale, int n_chunks, float *scratch, __half *out, int ldo,
                     cudaStream_t stream, const AttnSplitFusion &fuse = AttnSplitFusion());

// Prefill of one run of n tokens of sequence `seq` through cuBLAS: S = scale · Q Kᵀ (fp32),
// causal softmax by pos (device array of the run's n positions) into fp16 P in place, O = P V.
// L = max pos + 1 over the run (the caller knows the positions). scratch holds
// attention_gemm_scratch_floats(n, Hq, L) floats: S fp32 then P fp16, [Hq][n][L rounded to 8].
inline size_t attention_gemm_scratch_floats(int n, int Hq, int L) {
    const size_t Ls = (size_t(L) + 7) / 8 * 8;
    return size_t(Hq) * n * Ls * 3 / 2 + 8;
}
void attention_gemm(cublasHandle_t h, const __half *q, int ldq, const int32_t *pos, int n, int L, int seq, int Hq,
                    const KVLayer &kv, float scale, float *scratch, __half *out, int ldo, cudaStream_t stream);

} // namespace cuda
} // namespace gptq
