// fixed_sums.cuh — the 64-bit fixed-point slot in which the K splits of a 4-bit product add up one
// fp16 output (q4_fused_kernel.cuh, atomic_out 3). Host and device code: tests/test_fixed_sums.cpp
// checks the rules below on the CPU.
//
// A slot's low 56 bits hold the sum so far in units of 2^-26 (two's complement), its high 8 bits
// how many splits have added. A split adds (1 << 56) + its share with one atomic that returns the
// old slot, so the split that brings the count to S holds the whole sum: it stores the output and
// zeroes the slot for the next launch. Against fp32 sums and a counter per strip: one global
// round trip after the loop instead of the reductions' drain, a fence, the counter's atomic and
// the last block's reads; and integer adds commute, so the output has the same bits whatever
// order the splits arrive in. A share is clamped to +-2^21, so 255 of them stay inside the 56 bits
// (a non-finite share becomes the clamp, and the fp16 output infinite); a unit, 2^-26, is below
// half an ulp of every normal fp16 value.
#pragma once

#include <math.h>

#if defined(__CUDACC__)
#define GPTQ_FIXED_FN __host__ __device__ __forceinline__
#else
#define GPTQ_FIXED_FN inline
#endif

namespace gptq {
namespace cuda {

constexpr int kFixedFracBits = 26, kFixedCountShift = 56;
constexpr int kFixedMaxShares = 255;            // the count field
constexpr float kFixedShareLimit = 2097152.0f;  // 2^21

// What a split adds to its output's slot: one arrival and its share.
GPTQ_FIXED_FN unsigned long long fixed_share(float v) {
    if (!(fabsf(v) <= kFixedShareLimit)) v = copysignf(kFixedShareLimit, v);
    const float scaled = v * float(1 << kFixedFracBits);  // exact: a power of two
#if defined(__CUDA_ARCH__)
    const long long units = __float2ll_rn(scaled);
#else
    const long long units = llrintf(scaled);  // to nearest, ties to even, as __float2ll_rn
#endif
    return (1ull << kFixedCountShift) + static_cast<unsigned long long>(units);
}

// Whether `slot_after` (the slot's old value plus this split's fixed_share) holds all S shares;
// if so, their sum in `sum`.
GPTQ_FIXED_FN bool fixed_complete(unsigned long long slot_after, int S, float &sum) {
    const unsigned long long half = 1ull << (kFixedCountShift - 1);
    if (int((slot_after + half) >> kFixedCountShift) != S) return false;
    const long long units = static_cast<long long>(slot_after - (static_cast<unsigned long long>(S) << kFixedCountShift));
#if defined(__CUDA_ARCH__)
    sum = __ll2float_rn(units) * (1.0f / float(1 << kFixedFracBits));
#else
    sum = static_cast<float>(units) * (1.0f / float(1 << kFixedFracBits));
#endif
    return true;
}

} // namespace cuda
} // namespace gptq

#undef GPTQ_FIXED_FN
