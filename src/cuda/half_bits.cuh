// half_bits.cuh — bit-level helpers for fp16 data: those the 4-bit kernels dequantize with, and
// the unpacking of 8 halves that the fp16 streaming kernels (attention, GEMV) share.
//
// A 4-bit code q OR-ed into the mantissa of the fp16 number 1024 (0x6400) is the fp16 value
// 1024 + q, exactly; subtracting 1024 + z then gives q - z with no integer-to-float conversion.
#pragma once

#include <cstdint>
#include <cstring>
#include <cuda_fp16.h>

namespace gptq {
namespace cuda {

__device__ __forceinline__ __half2 u2h(uint32_t u) {
    __half2 h;
    memcpy(&h, &u, 4);
    return h;
}

__device__ __forceinline__ uint32_t h2u(__half2 h) {
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
}

// The 8 halves of a 16-byte load as fp32.
__device__ __forceinline__ void unpack8(const uint4 &u, float (&f)[8]) {
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 v = __half22float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}

// (a & mask) | magic in one LOP3. Written in C++ the compiler emits an AND and an OR, because a
// LOP3 takes one immediate operand and both constants are immediates; with the magic number in a
// register (it stays there across the loop) one instruction does both.
template <uint32_t kMask> __device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t magic) {
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "n"(kMask), "r"(magic));
    return d;
}

// The zero terms of two columns from their stored 1024 + z (q4_layout.cuh zeros, one half each):
// za = 1024 + z, subtracted from the low nibbles' 1024 + q; zb = -(64 + z), added to the high
// nibbles' 1024 + 16 q scaled by 1/16 (64 + q). Exact in fp16. [0]: the first column, [1]: the
// second, each in both halves.
struct ZeroTerms {
    __half2 za[2], zb[2];
};
__device__ __forceinline__ ZeroTerms zero_terms(uint32_t z2) {
    const __half2 p = u2h(z2);
    const __half2 nz = __hsub2(__float2half2_rn(960.0f), p);
    return {{__low2half2(p), __high2half2(p)}, {__low2half2(nz), __high2half2(nz)}};
}

} // namespace cuda
} // namespace gptq
