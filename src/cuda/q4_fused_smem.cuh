// q4_fused_smem.cuh — the fused 4-bit kernel's shared memory (q4_fused_kernel.cuh), in the one
// layout the kernel, its launcher and the planner (q4_plan.cu) size it by.
#pragma once

#include "q4_gemm.cuh"

#include <algorithm>
#include <cstddef>

namespace gptq {
namespace cuda {

// Shared memory of one block: the activation rows < M over the block's K range (K order as
// stored), then the scales (and zeros) of its `tiles` column tiles over the groups it touches.
struct FusedSmem {
    int ldxs;    // halves per activation row (span*32 + 8: rows 16 bytes apart in banks)
    int ng;      // groups covered
    size_t scale_off, zero_off, bytes;  // in halves / bytes
};
__host__ __device__ inline FusedSmem fused_smem(int M, int span_pairs, int ng, bool zt, int tiles) {
    FusedSmem f;
    f.ldxs = span_pairs * kQ4PairK + 8;
    f.ng = ng;
    f.scale_off = size_t(M) * f.ldxs;
    f.zero_off = f.scale_off + size_t(tiles) * ng * 64;
    f.bytes = (f.zero_off + (zt ? size_t(tiles) * ng * 64 : 0)) * sizeof(__half);
    return f;
}
__host__ __device__ inline int groups_spanned(int p0, int p1, int group_kt) {
    return (2 * (p1 - 1)) / group_kt - (2 * p0) / group_kt + 1;
}

// Shared memory a plan of `pairs` tile pairs per split needs (the worst split: one more group;
// two tiles' scales, whatever the plan's tiles per block).
inline size_t plan_smem(int M, int pairs, const Q4Dev &w) {
    const int ng = std::min(w.G, groups_spanned(0, pairs, w.group_kt) + 1);
    return fused_smem(M, pairs, ng, w.zeros != nullptr, kQ4MaxTilesPerBlock).bytes;
}

// Where the K slices of a block meet (reusing the activation area): for each of the WN column
// tiles, one area of [NTOK*16][32 lanes] floats per slice but the first. The launcher reserves it.
template <int NTOK> constexpr int kKSliceAreaFloats = NTOK * 16 * 32;
template <int NTOK, int WN>
constexpr size_t kKSliceExchangeFloats = size_t(WN) * (kQ4Warps / WN - 1) * kKSliceAreaFloats<NTOK>;


} // namespace cuda
} // namespace gptq
