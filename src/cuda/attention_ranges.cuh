// attention_ranges.cuh — how the one-token attention kernel (attention_decode.cu) cuts a token's
// positions 0..p into ranges, for that kernel and for a consumer that merges the ranges' partials
// (o_proj's q4 prologue kind 4), which can then count them from p before its PDL wait.
#pragma once

namespace gptq {
namespace cuda {

constexpr int kAttnMinKeys = 64;  // fewest positions a range takes

// Positions per range of a token at position p cut into at most S ranges.
__host__ __device__ inline int attn_range_len(int p, int S) {
    const int per = (p + S) / S;  // ceil((p + 1) / S)
    return per > kAttnMinKeys ? (per + 31) & ~31 : kAttnMinKeys;
}

// How many ranges that makes (the rest of the S blocks exit at once).
__host__ __device__ inline int attn_ranges_used(int p, int S) {
    const int per = attn_range_len(p, S);
    return (p + per) / per;
}

} // namespace cuda
} // namespace gptq
