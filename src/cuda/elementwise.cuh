// elementwise.cuh — launchers for the per-token kernels of elementwise.cu. Plain C++ header.
//
// Activations between layers: the residual stream is fp32 [n, hidden]; what feeds a matrix
// product is fp16. All arithmetic is fp32.
#pragma once

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace gptq {
namespace cuda {

// out[i, :] = table[tokens[i], :] as fp32. table fp16 [V, H]; tokens already checked < V.
void embed_lookup(const int32_t *tokens, int n, const __half *table, int H, float *out, cudaStream_t stream);

// RMSNorm of row r = rows ? rows[i] : i of x [*, ldx] (fp32), times w [H] (fp32), as fp16 into
// out [n, ldo]. With perm, out[i, c] = normed[r, perm[c]] (act-order activation gather).
void rmsnorm(const float *x, int ldx, const int32_t *rows, int n, int H, const float *w, float eps,
             const int32_t *perm, __half *out, int ldo, cudaStream_t stream);

// out[i, j] = silu(gu[i, j]) * gu[i, I + j] for j < I; gu [n, 2I] (gate | up), out [n, I].
void silu_mul(const __half *gu, int n, int I, __half *out, cudaStream_t stream);

// One layer's KV cache: k and v each [n_seq][n_kv][n_ctx][D] fp16.
struct KVLayer {
    __half *k = nullptr;
    __half *v = nullptr;
    int n_seq = 0, n_kv = 0, n_ctx = 0, D = 0;
};

// qkv [n, ldq] holds per token Hq query heads, then Hkv key heads, then Hkv value heads (D each).
// Rotates queries in place and keys (Hugging Face rotate-half: pairs (i, i + D/2), angle
// pos * inv_freq[i]), and writes keys and values to the cache at (seq[t], head, pos[t]).
void rope_store_kv(__half *qkv, int n, int ldq, const int32_t *pos, const int32_t *seq, const float *inv_freq,
                   int Hq, int Hkv, int D, const KVLayer &kv, cudaStream_t stream);

} // namespace cuda
} // namespace gptq
