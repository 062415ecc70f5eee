// ops.h — fp32 CPU primitives of the Llama block, shared by the CPU backend and the quantizer.
// All matrices are row-major; "rows" are tokens.
#pragma once

#include <cstdint>

namespace gptq {

// y[r] = x[r] / rms(x[r]) * w, for rows of length dim. x and y may alias.
void rmsnorm(const float *x, const float *w, float *y, int64_t rows, int dim, float eps, int n_threads);

// Rotate-half RoPE (Hugging Face layout: pairs (i, i + head_dim/2)) applied in place to n_heads
// heads of one token at position pos. inv_freq has head_dim/2 entries.
void rope_apply(float *x, int n_heads, int head_dim, int pos, const float *inv_freq);
// inv_freq[i] = 1 / theta^(2i / head_dim), computed as transformers does (in fp32).
void rope_inv_freq(float *inv_freq, int head_dim, double theta);

// gate[i] = silu(gate[i]) * up[i]
void silu_mul(float *gate, const float *up, int64_t n, int n_threads);

// y[M, N] = x[M, K] · W[N, K]ᵀ  (+ bias[N] when not null)   — cblas_sgemm
void matmul_wt(const float *x, int64_t M, int K, const float *W, int N, const float *bias, float *y);
// y[M, N] = x[M, K] · Wt[K, N]  (+ bias)
void matmul_w(const float *x, int64_t M, int K, const float *Wt, int N, const float *bias, float *y);

// y += x
void add_inplace(float *y, const float *x, int64_t n);

// Attention of m query rows of one head against keys/values 0..L-1 of one sequence, row i seeing
// keys 0..pos[i] (pos[i] < L). Q rows are ldq apart, K/V rows ldkv apart, O rows ldo apart.
// Two sgemm calls; S is scratch of m*L floats.
void attend_head(const float *Q, int ldq, int m, const int *pos, const float *K, const float *V, int ldkv, int L,
                 int head_dim, float *O, int ldo, float *S);

// Causal self-attention for n_seq independent sequences of seq_len tokens each (no cache):
// q [n_seq*seq_len, n_heads*hd], k/v [n_seq*seq_len, n_kv*hd] -> out [n_seq*seq_len, n_heads*hd].
void causal_attention(const float *q, const float *k, const float *v, float *out, int n_seq, int seq_len,
                      int n_heads, int n_kv_heads, int head_dim, int n_threads);

} // namespace gptq
