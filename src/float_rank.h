// float_rank.h — how the sampler ranks logits, on their bits. The host sampler (sampler.cpp) and
// the device's ranking (cuda/top_candidates.cu) must agree bit for bit, so both use these.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GPTQ_HOST_DEVICE __host__ __device__
#else
#define GPTQ_HOST_DEVICE
#endif

namespace gptq {

constexpr uint32_t kNegInfBits = 0xff800000u;

// The value a logit ranks by: NaN impossible (-inf), +inf the largest float (so differences stay
// finite), -0 as +0 (equal values tie, and ties go by id). Integer selects: a loop over the
// vocabulary vectorises, where float compares would not.
GPTQ_HOST_DEVICE inline uint32_t rank_bits(uint32_t u) {
    uint32_t r = u == 0x80000000u ? 0u : u;
    r = u == 0x7f800000u ? 0x7f7fffffu : r;
    return (u & 0x7fffffffu) > 0x7f800000u ? kNegInfBits : r;
}

// Float order as signed integer order (for any non-NaN value; -0 below +0, so no -0 may reach
// it). Its own inverse on the bits.
GPTQ_HOST_DEVICE inline int32_t float_order(uint32_t bits) {
    const int32_t s = int32_t(bits);
    return s ^ ((s >> 31) & 0x7fffffff);
}

// A radix-sort key whose ascending unsigned order is the values' descending order.
GPTQ_HOST_DEVICE inline uint32_t descending_key(uint32_t bits) {
    return ~(uint32_t(float_order(bits)) ^ 0x80000000u);
}
GPTQ_HOST_DEVICE inline uint32_t bits_of_descending_key(uint32_t key) {
    return uint32_t(float_order(~key ^ 0x80000000u));
}

} // namespace gptq
