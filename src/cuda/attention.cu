// attention.cu — causal attention over the KV cache, two ways (see attention.cuh).
//
// Few tokens per sequence with head_dim 64 or 128 go to the range kernel of attention_decode.cu;
// other head sizes (and GPTQ_CUDA_ATTN_CHUNKED=1) to the chunk kernel here.
//
// Chunk kernel, one block per (token t, KV head h, chunk c of 32 positions):
//
//   q heads h*G .. h*G+G-1 (scaled, fp32 in shared memory)
//   scores[g][j] = q_g · k_j        warps take 8 keys each (all loads first), lanes split D
//   m_g = max_j, p = exp(s - m_g), l_g = Σ p          one warp per head, one lane per key
//   o_g[d] = Σ_j p[g][j] v_j[d]     warps over their keys (K and V rows loaded up front), summed in warp order
//   -> (o, m, l) partials; the merge kernel (attn_merge_kernel) weighs chunk c by exp(m_c - M) / Σ_c exp(m_c - M) l_c.
//
// GEMM path for long runs of one sequence: S = Q Kᵀ per head through strided-batched cuBLAS
// (one call per query head of each KV group), a masked softmax kernel, O = P V through cuBLAS.
#include "attention.cuh"

#include "attention_decode.cuh"
#include "attention_common.cuh"
#include "cuda_check.cuh"
#include "cuda_handles.cuh"
#include "launch.cuh"
#include "mem_ops.cuh"
#include "rope.cuh"

#include <algorithm>
#include <cmath>

namespace gptq {
namespace cuda {

namespace {

static_assert(kAttnChunk == 32, "the split kernel's softmax gives each key of a chunk one lane");

// NI: half2 pairs of a key row per lane kept in registers (64 * NI dims; D = 128 needs 2).
template <int NI>
__global__ void __launch_bounds__(128, NI == 2 ? 4 : 1) attn_split_kernel(const __half *__restrict__ q, int ldq,
                                                         const int32_t *__restrict__ pos,
                                                         const int32_t *__restrict__ seq, int Hq, KVLayer kv,
                                                         float scale, float *__restrict__ part_o,
                                                         float *__restrict__ part_ml,
                                                         AttnSplitFusion fz, __half *__restrict__ out, int ldo,
                                                         int early_kv) {
    const float *__restrict__ inv_freq = fz.inv_freq;
    unsigned *__restrict__ counters = fz.counters;
    extern __shared__ float sm[];
    constexpr int KPW = kAttnChunk / 4;  // keys per warp
    const int Hkv = kv.n_kv, D = kv.D, G = Hq / Hkv;
    const int t = blockIdx.x / Hkv, h = blockIdx.x % Hkv, ch = blockIdx.y, n_chunks = gridDim.y;
    // early_kv (one-token batches): positions, sequences and the cached keys and values before
    // this token's position were all written before the previous kernel started, so they load
    // before the wait for it; only this token's own key and value come after.
    if (!early_kv) pdl_enter();
    const int p = pos[t], s = seq[t];
    const int start = ch * kAttnChunk;
    if (start > p) return;  // the merge never reads this chunk
    const int L = min(kAttnChunk, p + 1 - start);
    const int jcur = early_kv ? p - start : kAttnChunk;  // key loaded after the wait (if < L)
    float *qs = sm;                       // [G][D]
    float *sc = qs + G * D;               // [G][kAttnChunk]
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t head_base = (size_t(s) * Hkv + h) * kv.n_ctx;
    const __half *kbase = kv.k + (head_base + start) * D;
    const __half *vbase = kv.v + (head_base + start) * D;

    // Each warp takes KPW keys; all their loads are issued before the first use. Lanes split D
    // in pairs (half2), up to 64 * NI dims in registers; more goes through a plain loop.
    __half2 kr[KPW][NI], vr[KPW][NI];
#pragma unroll
    for (int jj = 0; jj < KPW; ++jj) {
        const int j = warp * KPW + jj;
#pragma unroll
        for (int i = 0; i < NI; ++i) {
            const int d = 2 * lane + 64 * i;
            const bool ok = j < L && d < D && j != jcur;
            kr[jj][i] = ok ? *reinterpret_cast<const __half2 *>(kbase + size_t(j) * D + d) : __float2half2_rn(0.0f);
            vr[jj][i] = ok ? *reinterpret_cast<const __half2 *>(vbase + size_t(j) * D + d) : __float2half2_rn(0.0f);
        }
    }
    if (early_kv) pdl_enter();

    if (!inv_freq) {
        for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x)
            qs[idx] = __half2float(q[size_t(t) * ldq + size_t(h) * G * D + idx]) * scale;
    } else {
        // RoPE here rather than in rope_store_kv (one token per sequence: no other block of this
        // launch reads the position it writes). Same arithmetic and fp16 rounding as that kernel.
        const int half_d = D / 2;
        const __half *qrow = q + size_t(t) * ldq;
        auto qkv_at = [&](int j) { return qkv_column(qrow, fz, j); };
        for (int idx = threadIdx.x; idx < G * half_d; idx += blockDim.x) {
            const int g = idx / half_d, i = idx % half_d;
            const int hd = (h * G + g) * D;
            const __half2 r =
                rope_rotate(__half2float(qkv_at(hd + i)), __half2float(qkv_at(hd + i + half_d)), p, inv_freq[i]);
            qs[g * D + i] = __low2float(r) * scale;
            qs[g * D + i + half_d] = __high2float(r) * scale;
        }
        if (start + kAttnChunk > p) {  // the chunk holding position p stores its key and value
            __half *kc = kv.k + (head_base + p) * D, *vc = kv.v + (head_base + p) * D;
            const int kh = (Hq + h) * D, vh = (Hq + Hkv + h) * D;
            for (int i = threadIdx.x; i < half_d; i += blockDim.x) {
                const __half2 r =
                    rope_rotate(__half2float(qkv_at(kh + i)), __half2float(qkv_at(kh + i + half_d)), p, inv_freq[i]);
                kc[i] = __low2half(r);
                kc[i + half_d] = __high2half(r);
                vc[i] = qkv_at(vh + i);
                vc[i + half_d] = qkv_at(vh + i + half_d);
            }
            __syncthreads();  // the block's own global stores are visible to its threads after this
        }
    }
    if (jcur < L) {  // this token's own key and value, now written
#pragma unroll
        for (int jj = 0; jj < KPW; ++jj) {
            if (warp * KPW + jj != jcur) continue;
#pragma unroll
            for (int i = 0; i < NI; ++i) {
                const int d = 2 * lane + 64 * i;
                if (d < D) {
                    kr[jj][i] = *reinterpret_cast<const __half2 *>(kbase + size_t(jcur) * D + d);
                    vr[jj][i] = *reinterpret_cast<const __half2 *>(vbase + size_t(jcur) * D + d);
                }
            }
        }
    }
    __syncthreads();
    for (int g = 0; g < G; ++g) {
        float accs[KPW];
#pragma unroll
        for (int jj = 0; jj < KPW; ++jj) {
            float a = 0.0f;
#pragma unroll
            for (int i = 0; i < NI; ++i) {
                const int d = 2 * lane + 64 * i;
                if (d < D) {
                    const float2 kf = __half22float2(kr[jj][i]);
                    a += kf.x * qs[g * D + d] + kf.y * qs[g * D + d + 1];
                }
            }
            const int j = warp * KPW + jj;
            for (int d = 64 * NI + 2 * lane; d < D; d += 64) {
                if (j < L) {
                    const float2 kf = __half22float2(*reinterpret_cast<const __half2 *>(kbase + size_t(j) * D + d));
                    a += kf.x * qs[g * D + d] + kf.y * qs[g * D + d + 1];
                }
            }
            accs[jj] = a;
        }
#pragma unroll
        for (int jj = 0; jj < KPW; ++jj) {
            const float a = warp_sum(accs[jj]);
            if (lane == 0) sc[g * kAttnChunk + warp * KPW + jj] = a;
        }
    }
    __syncthreads();

    // Softmax partial per head: one warp per head, one lane per key (kAttnChunk == 32).
    float *ml = part_ml + (size_t(t) * Hq + size_t(h) * G) * n_chunks * 2;
    for (int g = warp; g < G; g += 4) {
        const float v = lane < L ? sc[g * kAttnChunk + lane] : -INFINITY;
        const float m = warp_max(v);
        const float e = lane < L ? __expf(v - m) : 0.0f;
        sc[g * kAttnChunk + lane] = e;
        const float l = warp_sum(e);
        if (lane == 0) {
            ml[(size_t(g) * n_chunks + ch) * 2] = m;
            ml[(size_t(g) * n_chunks + ch) * 2 + 1] = l;
        }
    }
    __syncthreads();

    // o_g = Σ_j p[g][j] v_j: each warp its KPW keys (values already in registers) into its own
    // [G][D] area — warp 0 the (no longer needed) query area, warps 1..3 the three after the scores —
    // then summed in warp order: the same bits on every run (shared-memory atomics added the warps in
    // whatever order they came, and sampled generations could differ between runs).
    float *wo = warp == 0 ? qs : sc + G * kAttnChunk + size_t(warp - 1) * G * D;
    for (int g = 0; g < G; ++g) {
#pragma unroll
        for (int i = 0; i < NI; ++i) {
            const int d = 2 * lane + 64 * i;
            if (d >= D) continue;
            float ox = 0.0f, oy = 0.0f;
#pragma unroll
            for (int jj = 0; jj < KPW; ++jj) {
                const float p = sc[g * kAttnChunk + warp * KPW + jj];  // 0 past L
                const float2 vf = __half22float2(vr[jj][i]);
                ox += p * vf.x;
                oy += p * vf.y;
            }
            wo[g * D + d] = ox;
            wo[g * D + d + 1] = oy;
        }
        for (int d = 64 * NI + 2 * lane; d < D; d += 64) {
            float ox = 0.0f, oy = 0.0f;
            for (int jj = 0; jj < KPW; ++jj) {
                const int j = warp * KPW + jj;
                if (j >= L) break;
                const float p = sc[g * kAttnChunk + j];
                const float2 vf = __half22float2(*reinterpret_cast<const __half2 *>(vbase + size_t(j) * D + d));
                ox += p * vf.x;
                oy += p * vf.y;
            }
            wo[g * D + d] = ox;
            wo[g * D + d + 1] = oy;
        }
    }
    __syncthreads();
    float *po = part_o + (size_t(t) * Hq + size_t(h) * G) * n_chunks * D;
    const float *w123 = sc + G * kAttnChunk;
    for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) {
        const int g = idx / D, d = idx % D;
        po[(size_t(g) * n_chunks + ch) * D + d] = ((qs[idx] + w123[idx]) + w123[G * D + idx]) + w123[2 * G * D + idx];
    }
    if (!counters) return;  // attn_merge_kernel merges the chunks

    // The last block of (t, h) to finish merges the chunks (no second kernel): weights
    // exp(m_c - M) / sum_c exp(m_c - M) l_c, a lane per chunk, then threads over d.
    const int used = p / kAttnChunk + 1;
    if (!last_to_arrive(&counters[t * Hkv + h], unsigned(used))) return;
    float *wts = sc + G * kAttnChunk + 3 * G * D;  // [n_chunks] (the launch sizes shared memory for it)
    for (int g = 0; g < G; ++g) {
        merge_partials(ml + size_t(g) * n_chunks * 2, po + size_t(g) * n_chunks * D, used, D, wts,
                     out + size_t(t) * ldo + size_t(h * G + g) * D);
        __syncthreads();  // wts is rewritten for the next head
    }
    if (threadIdx.x == 0) counters[t * Hkv + h] = 0u;  // ready for the next launch
}

// The chunk kernel's rule for the merge pass: a range per kAttnChunk positions.
struct ChunksUsed {
    __device__ int operator()(int p) const { return p / kAttnChunk + 1; }
};

// Row (head hq, query i) of S [Hq][n][Ls]: softmax over keys 0..pos[i], zeros after, into P.
__global__ void attn_softmax_kernel(const float *__restrict__ S, __half *__restrict__ P, const int32_t *__restrict__ pos,
                                    int n, int L, int Ls) {
    pdl_enter();
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
                     cudaStream_t stream, const AttnSplitFusion &fuse) {
    if (n <= 0) return;
    if (Hq % kv.n_kv) fail(GPTQ_ERR_UNSUPPORTED, "attention: %d query heads not a multiple of %d KV heads", Hq, kv.n_kv);
    if (fuse.inv_freq && (n != 1 || kv.D % 2))
        fail(GPTQ_ERR_BACKEND, "attention: RoPE inside the split kernel needs one token and an even head_dim (n %d)", n);
    if (fuse.qkv_part && (!fuse.inv_freq || fuse.qkv_splits < 1))
        fail(GPTQ_ERR_BACKEND, "attention: deferred qkv shares need RoPE inside the kernel and >= 1 split");
    if (attention_decode(q, ldq, pos, seq, n, Hq, kv, scale, n_chunks, scratch, out, ldo, stream, fuse)) return;
    if (fuse.merge_used) fail(GPTQ_ERR_BACKEND, "attention_split: unmerged ranges need the range kernel (head_dim %d)", kv.D);
    const int G = Hq / kv.n_kv, D = kv.D;
    // Queries (then warp 0's outputs), scores, warps 1..3's outputs, then (when the last block
    // merges) the chunk weights, padded: the compiler reads them four floats at a time in the
    // unrolled loop.
    const size_t wts_floats = size_t(n_chunks + 7) / 8 * 8 + 8;
    const size_t smem = (size_t(G) * (4 * D + kAttnChunk) + (fuse.counters ? wts_floats : 0)) * sizeof(float);
    // Past 48 KB (many query heads per KV head at a large head_dim) the kernel opts in to more, up
    // to what the GPU gives a block; beyond that a clear status.
    if (smem > size_t(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024)))
        fail(GPTQ_ERR_UNSUPPORTED, "attention: %d query heads per KV head with head_dim %d is too large", G, D);
    float *part_o = scratch;
    float *part_ml = scratch + attn_split_ml_offset(n, Hq, D, n_chunks);
    dim3 grid(unsigned(n * kv.n_kv), unsigned(n_chunks));
    const auto kernel = D <= 128 ? attn_split_kernel<2> : attn_split_kernel<4>;
    allow_dynamic_smem(kernel, smem);
    launch(kernel, grid, 128, smem, stream, q, ldq, pos, seq, Hq, kv, scale, part_o, part_ml, fuse, out, ldo,
           n == 1 ? 1 : 0);
    CUDA_CHECK_LAUNCH();
    if (fuse.counters) return;
    launch(attn_merge_kernel<ChunksUsed>, unsigned(n * Hq), 128, wts_floats * sizeof(float), stream, pos, Hq, D,
           n_chunks, part_o, part_ml, out, ldo, ChunksUsed());
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
    bind_cublas_stream(h, stream);
    const float zero = 0.0f, one = 1.0f;
    for (int g = 0; g < G; ++g) {
        // Sᵀ (L x n, column-major) = K (L x D) · Qᵀ: one batch entry per KV head.
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, L, n, D, &scale, K0, CUDA_R_16F, D,
                                                head_stride, q + size_t(g) * D, CUDA_R_16F, ldq,
                                                (long long)G * D, &zero, S + size_t(g) * n * Ls, CUDA_R_32F, Ls,
                                                (long long)G * n * Ls, Hkv, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    launch(attn_softmax_kernel, dim3(unsigned(n), unsigned(Hq)), 256, 0, stream, S, P, pos, n, L, Ls);
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
