// attention_common.cuh — device helpers the attention kernels share (attention.cu, attention_decode.cu):
// warp reductions, the merge of softmax partials, and reading a column of a token's q|k|v row.
//
// A partial of one query head over a range of positions is (m, l, o): the range's largest score m,
// l = Σ exp(s_j - m) and the unnormalized o = Σ exp(s_j - m) v_j. Merging ranges c weighs each by
// exp(m_c - M) / Σ_c exp(m_c - M) l_c with M = max_c m_c.
#pragma once

#include "attention.cuh"
#include "launch.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace gptq {
namespace cuda {

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Merges the `used` partials of one query head (ml: [used][2] = (m, l), po: [used][D]) into
// out_row: warp 0 turns the (m, l) into weights (a lane per partial, into wts: at least
// used rounded up to 8, plus 8, floats of shared memory), then the block's threads sum over d.
// Loads bypass L1: other blocks of the same launch may have written the partials.
__device__ inline void merge_partials(const float *ml, const float *po, int used, int D, float *wts,
                                      __half *out_row) {
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        float M = -INFINITY;
        for (int c = lane; c < used; c += 32) M = fmaxf(M, __ldcg(ml + 2 * c));
        M = warp_max(M);
        float wsum = 0.0f;
        for (int c = lane; c < used; c += 32) wsum += __expf(__ldcg(ml + 2 * c) - M) * __ldcg(ml + 2 * c + 1);
        const float inv = 1.0f / warp_sum(wsum);
        for (int c = lane; c < used; c += 32) wts[c] = __expf(__ldcg(ml + 2 * c) - M) * inv;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
#pragma unroll 8
        for (int c = 0; c < used; ++c) acc += wts[c] * __ldcg(po + size_t(c) * D + d);
        out_row[d] = __float2half_rn(acc);
    }
}

// The second pass of a split attention launch that did not merge its own ranges: one block per
// (token t, query head hq) merges the partials at part = (t * Hq + hq) * part_stride. How many
// ranges a token used is the split kernel's own rule, given as used_ranges(pos[t]) (the chunk
// kernel: a range per 32 positions; the range kernel: ranges sized from the position). Dynamic
// shared memory: the merge weights, at least the largest count rounded up to 8, plus 8, floats.
template <class UsedRanges>
__global__ void attn_merge_kernel(const int32_t *__restrict__ pos, int Hq, int D, int part_stride,
                                  const float *__restrict__ part_o, const float *__restrict__ part_ml,
                                  __half *__restrict__ out, int ldo, UsedRanges used_ranges) {
    pdl_enter();
    extern __shared__ float wts[];
    const int t = blockIdx.x / Hq, hq = blockIdx.x % Hq;
    const size_t part = (size_t(t) * Hq + hq) * part_stride;
    merge_partials(part_ml + part * 2, part_o + part * D, used_ranges(pos[t]), D, wts,
                   out + size_t(t) * ldo + size_t(hq) * D);
}

// Column j of one token's q|k|v row (RoPE inside the attention kernel): stored fp16 in qrow, or, with
// deferred shares (fz.qkv_part), their sum in split order rounded to fp16 — what the 4-bit
// product's own fp16 store would have written.
__device__ __forceinline__ __half qkv_column(const __half *qrow, const AttnSplitFusion &fz, int j) {
    if (!fz.qkv_part) return qrow[j];
    float sum = 0.0f;
#pragma unroll 4
    for (int sp = 0; sp < fz.qkv_splits; ++sp) sum += __ldcg(fz.qkv_part + size_t(sp) * fz.qkv_ld + j);
    return __float2half_rn(sum);
}

} // namespace cuda
} // namespace gptq
