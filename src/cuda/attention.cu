// attention.cu — causal attention over the KV cache, two ways (see attention.cuh).
//
// Split kernel, one block per (token t, KV head h, chunk c of 64 positions):
//
//   q heads h*G .. h*G+G-1 (scaled, fp32 in shared memory)
//   scores[g][j] = q_g · k_j        warps take keys, lanes split D, shuffle reduction
//   m_g = max_j, p = exp(s - m_g), l_g = Σ p          one warp per head
//   o_g[d] = Σ_j p[g][j] v_j[d]     threads over (g, d)
//   -> (o, m, l) partials; the combine kernel rescales chunk c by exp(m_c - M) and divides by Σ l.
//
// GEMM path for long runs of one sequence: S = Q Kᵀ per head through strided-batched cuBLAS
// (one call per query head of each KV group), a masked softmax kernel, O = P V through cuBLAS.
#include "attention.cuh"

#include "cuda_check.cuh"

#include <algorithm>
#include <cmath>

namespace gptq {
namespace cuda {

namespace {

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void __launch_bounds__(128) attn_split_kernel(const __half *__restrict__ q, int ldq,
                                                         const int32_t *__restrict__ pos,
                                                         const int32_t *__restrict__ seq, int Hq, KVLayer kv,
                                                         float scale, float *__restrict__ part_o,
                                                         float *__restrict__ part_ml) {
    extern __shared__ float sm[];
    const int Hkv = kv.n_kv, D = kv.D, G = Hq / Hkv;
    const int t = blockIdx.x / Hkv, h = blockIdx.x % Hkv, ch = blockIdx.y, n_chunks = gridDim.y;
    const int p = pos[t], s = seq[t];
    const int start = ch * kAttnChunk;
    if (start > p) return;  // the combine kernel never reads this chunk
    const int L = min(kAttnChunk, p + 1 - start);
    float *qs = sm;                       // [G][D]
    float *sc = qs + G * D;               // [G][kAttnChunk]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

    for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x)
        qs[idx] = __half2float(q[size_t(t) * ldq + size_t(h) * G * D + idx]) * scale;
    __syncthreads();

    const size_t head_base = (size_t(s) * Hkv + h) * kv.n_ctx;
    const __half *kbase = kv.k + (head_base + start) * D;
    const __half *vbase = kv.v + (head_base + start) * D;
    for (int j = warp; j < L; j += 4) {
        const __half *kr = kbase + size_t(j) * D;
        float kreg[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const int d = lane + 32 * i;
            kreg[i] = d < D ? __half2float(kr[d]) : 0.0f;
        }
        for (int g = 0; g < G; ++g) {
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const int d = lane + 32 * i;
                if (d < D) acc += kreg[i] * qs[g * D + d];
            }
            for (int d = 256 + lane; d < D; d += 32) acc += __half2float(kr[d]) * qs[g * D + d];
            acc = warp_sum(acc);
            if (lane == 0) sc[g * kAttnChunk + j] = acc;
        }
    }
    __syncthreads();

    float *ml = part_ml + (size_t(t) * Hq + size_t(h) * G) * n_chunks * 2;
    for (int g = warp; g < G; g += 4) {
        float m = -INFINITY;
        for (int j = lane; j < L; j += 32) m = fmaxf(m, sc[g * kAttnChunk + j]);
        m = warp_max(m);
        float l = 0.0f;
        for (int j = lane; j < L; j += 32) {
            const float e = __expf(sc[g * kAttnChunk + j] - m);
            sc[g * kAttnChunk + j] = e;
            l += e;
        }
        l = warp_sum(l);
        if (lane == 0) {
            ml[(size_t(g) * n_chunks + ch) * 2] = m;
            ml[(size_t(g) * n_chunks + ch) * 2 + 1] = l;
        }
    }
    __syncthreads();

    float *po = part_o + (size_t(t) * Hq + size_t(h) * G) * n_chunks * D;
    for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) {
        const int g = idx / D, d = idx % D;
        float acc = 0.0f;
        for (int j = 0; j < L; ++j) acc += sc[g * kAttnChunk + j] * __half2float(vbase[size_t(j) * D + d]);
        po[(size_t(g) * n_chunks + ch) * D + d] = acc;
    }
}

__global__ void attn_combine_kernel(const int32_t *__restrict__ pos, int Hq, int D, int n_chunks,
                                    const float *__restrict__ part_o, const float *__restrict__ part_ml,
                                    __half *__restrict__ out, int ldo) {
    const int t = blockIdx.x / Hq, hq = blockIdx.x % Hq;
    const int used = pos[t] / kAttnChunk + 1;
    const float *ml = part_ml + (size_t(t) * Hq + hq) * n_chunks * 2;
    const float *po = part_o + (size_t(t) * Hq + hq) * n_chunks * D;
    float M = -INFINITY;
    for (int c = 0; c < used; ++c) M = fmaxf(M, ml[2 * c]);
    float wsum = 0.0f;
    for (int c = 0; c < used; ++c) wsum += __expf(ml[2 * c] - M) * ml[2 * c + 1];
    const float inv = 1.0f / wsum;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int c = 0; c < used; ++c) acc += __expf(ml[2 * c] - M) * po[size_t(c) * D + d];
        out[size_t(t) * ldo + size_t(hq) * D + d] = __float2half_rn(acc * inv);
    }
}

// Row (head hq, query i) of S [Hq][n][Ls]: softmax over keys 0..pos[i], zeros after, into P.
__global__ void attn_softmax_kernel(const float *__restrict__ S, __half *__restrict__ P, const int32_t *__restrict__ pos,
                                    int n, int L, int Ls) {
    __shared__ float red[32];
    const int i = blockIdx.x, hq = blockIdx.y;
    const size_t off = (size_t(hq) * n + i) * Ls;
    const float *row = S + off;
    __half *prow = P + off;
    const int valid = min(pos[i] + 1, L);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;

    float m = -INFINITY;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) m = fmaxf(m, row[j]);
    m = warp_max(m);
    if (lane == 0) red[warp] = m;
    __syncthreads();
    m = -INFINITY;
    for (int w = 0; w < nw; ++w) m = fmaxf(m, red[w]);
    __syncthreads();

    float l = 0.0f;
    for (int j = threadIdx.x; j < valid; j += blockDim.x) l += __expf(row[j] - m);
    l = warp_sum(l);
    if (lane == 0) red[warp] = l;
    __syncthreads();
    l = 0.0f;
    for (int w = 0; w < nw; ++w) l += red[w];
    const float inv = 1.0f / l;
    for (int j = threadIdx.x; j < Ls; j += blockDim.x)
        prow[j] = __float2half_rn(j < valid ? __expf(row[j] - m) * inv : 0.0f);
}

} // namespace

void attention_split(const __half *q, int ldq, const int32_t *pos, const int32_t *seq, int n, int Hq,
                     const KVLayer &kv, float scale, int n_chunks, float *scratch, __half *out, int ldo,
                     cudaStream_t stream) {
    if (n <= 0) return;
    if (Hq % kv.n_kv) fail(GPTQ_ERR_UNSUPPORTED, "attention: %d query heads not a multiple of %d KV heads", Hq, kv.n_kv);
    const int G = Hq / kv.n_kv, D = kv.D;
    const size_t smem = size_t(G) * (D + kAttnChunk) * sizeof(float);
    if (smem > 48 * 1024)
        fail(GPTQ_ERR_UNSUPPORTED, "attention: %d query heads per KV head with head_dim %d is too large", G, D);
    float *part_o = scratch;
    float *part_ml = scratch + size_t(n) * Hq * n_chunks * D;
    dim3 grid(unsigned(n * kv.n_kv), unsigned(n_chunks));
    attn_split_kernel<<<grid, 128, smem, stream>>>(q, ldq, pos, seq, Hq, kv, scale, part_o, part_ml);
    CUDA_CHECK_LAUNCH();
    attn_combine_kernel<<<unsigned(n * Hq), 128, 0, stream>>>(pos, Hq, D, n_chunks, part_o, part_ml, out, ldo);
    CUDA_CHECK_LAUNCH();
}

void attention_gemm(cublasHandle_t h, const __half *q, int ldq, const int32_t *pos, int n, int L, int seq, int Hq,
                    const KVLayer &kv, float scale, float *scratch, __half *out, int ldo, cudaStream_t stream) {
    if (n <= 0) return;
    const int Hkv = kv.n_kv, D = kv.D, G = Hq / Hkv;
    const int Ls = (L + 7) / 8 * 8;
    float *S = scratch;
    __half *P = reinterpret_cast<__half *>(scratch + size_t(Hq) * n * Ls);
    const __half *K0 = kv.k + size_t(seq) * Hkv * kv.n_ctx * D;
    const __half *V0 = kv.v + size_t(seq) * Hkv * kv.n_ctx * D;
    const long long head_stride = (long long)kv.n_ctx * D;
    CUBLAS_CHECK(cublasSetStream(h, stream));
    const float zero = 0.0f, one = 1.0f;
    for (int g = 0; g < G; ++g) {
        // Sᵀ (L x n, column-major) = K (L x D) · Qᵀ: one batch entry per KV head.
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, L, n, D, &scale, K0, CUDA_R_16F, D,
                                                head_stride, q + size_t(g) * D, CUDA_R_16F, ldq,
                                                (long long)G * D, &zero, S + size_t(g) * n * Ls, CUDA_R_32F, Ls,
                                                (long long)G * n * Ls, Hkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    attn_softmax_kernel<<<dim3(unsigned(n), unsigned(Hq)), 256, 0, stream>>>(S, P, pos, n, L, Ls);
    CUDA_CHECK_LAUNCH();
    for (int g = 0; g < G; ++g) {
        // Oᵀ (D x n) = Vᵀ (D x L) · Pᵀ (L x n).
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, D, n, L, &one, V0, CUDA_R_16F, D,
                                                head_stride, P + size_t(g) * n * Ls, CUDA_R_16F, Ls,
                                                (long long)G * n * Ls, &zero, out + size_t(g) * D, CUDA_R_16F, ldo,
                                                (long long)G * D, Hkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
}

} // namespace cuda
} // namespace gptq
