// q4_spread_ranges.cuh — how the spread kernel (q4_spread_kernel.cuh) cuts a layer's work: the
// ranges of batches each block and each warp take, shared by the kernel, the planner (the shares a
// tile's sum comes in) and the host tests that walk them. Plain C++ with CUDA qualifiers.
//
// The work is T = NT * U batches (U = ceil(KP / 2) batches of two tile pairs per column tile,
// tile-major). Part i of P parts starts at floor(i T / P): blocks are the P = blocks parts, warps
// the P = 4 * blocks parts, so a block's four warps tile its range exactly.
#pragma once

#include <cuda_runtime.h>

namespace gptq {
namespace cuda {

__host__ __device__ inline long long spread_start(long long i, long long T, long long parts) { return i * T / parts; }

// The part (of `parts`) holding batch u: the last part starting at or before u.
__host__ __device__ inline long long spread_part_of(long long u, long long T, long long parts) {
    return ((u + 1) * parts - 1) / T;
}

// A block's range [b0, b1), its first tile ta (slot 0) and whether it reaches tile ta + 1 (slot
// 1). With blocks >= NT a range is at most U batches long, so it touches at most these two.
struct SpreadBlock {
    long long b0, b1;
    int ta;
    bool two;
};
__host__ __device__ inline SpreadBlock spread_block(int b, int blocks, int NT, int U) {
    const long long T = (long long)NT * U;
    SpreadBlock s;
    s.b0 = spread_start(b, T, blocks);
    s.b1 = spread_start(b + 1, T, blocks);
    s.ta = int(s.b0 / U);
    s.two = s.b1 > (long long)(s.ta + 1) * U && s.ta + 1 < NT;
    return s;
}

// A warp's batches: n of them from its first tile tw's pair pa on, n_a of those in tw and the rest
// in tile tw + 1 from pair 0 (a warp's range is shorter than a tile: at most two pieces).
struct SpreadWarp {
    int tw, n, n_a, pa;
};
__host__ __device__ inline SpreadWarp spread_warp(int gw, int warps, int NT, int U) {
    const long long T = (long long)NT * U;
    const long long u0 = spread_start(gw, T, warps), u1 = spread_start(gw + 1, T, warps);
    SpreadWarp s;
    s.tw = int(u0 / U);
    s.n = int(u1 - u0);
    const long long end_a = (long long)(s.tw + 1) * U;
    s.n_a = int((u1 < end_a ? u1 : end_a) - u0);
    s.pa = 2 * int(u0 - (long long)s.tw * U);
    return s;
}

} // namespace cuda
} // namespace gptq
