// half_bits.cuh — the bit-level helpers both 4-bit kernel files dequantize with.
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

// (a & mask) | magic in one LOP3. Written in C++ the compiler emits an AND and an OR, because a
// LOP3 takes one immediate operand and both constants are immediates; with the magic number in a
// register (it stays there across the loop) one instruction does both.
template <uint32_t kMask> __device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t magic) {
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(a), "n"(kMask), "r"(magic));
    return d;
}

} // namespace cuda
} // namespace gptq
