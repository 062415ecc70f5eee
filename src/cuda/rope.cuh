// rope.cuh — the rotate-half RoPE of one pair (i, i + D/2) at position p, rounded to fp16. One
// definition for rope_store_kv and the attention kernels that rotate for themselves: a key stored
// by one of them is read back by the others, so they must compute and round it alike.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace gptq {
namespace cuda {

// The sine and cosine of pair i's angle at position p (inv_freq: pair i's frequency).
__device__ __forceinline__ void rope_sincos(int p, float inv_freq, float *sn, float *c) {
    sincosf(float(p) * inv_freq, sn, c);
}

// {x1 cos - x2 sin, x2 cos + x1 sin}, each rounded to fp16.
__device__ __forceinline__ __half2 rope_apply(float x1, float x2, float sn, float c) {
    return __halves2half2(__float2half_rn(x1 * c - x2 * sn), __float2half_rn(x2 * c + x1 * sn));
}

// {x1 cos - x2 sin, x2 cos + x1 sin} with angle p * inv_freq, each rounded to fp16.
__device__ __forceinline__ __half2 rope_rotate(float x1, float x2, int p, float inv_freq) {
    float sn, c;
    rope_sincos(p, inv_freq, &sn, &c);
    return rope_apply(x1, x2, sn, c);
}

} // namespace cuda
} // namespace gptq
