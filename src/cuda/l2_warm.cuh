// l2_warm.cuh — asking the L2 to fetch, ahead of time, bytes that a later kernel will read first.
//
// Why: a decode step's products stream their 4-bit weights from HBM, and between them come phases
// in which HBM is mostly idle (attention at one token reads a few MB of cache with few blocks; a
// product's last blocks drain; a short product fed from L2). A kernel running such a phase can
// issue bulk prefetches (sm_90 `cp.async.bulk.prefetch.L2`: one instruction per slice, no
// registers held, no completion to wait for) of the next product's weights, which then come from
// the 50 MB L2 instead of HBM. A hint only: nothing reads the prefetched lines until the product
// that owns them runs, and no result depends on whether they are still in L2 by then.
//
// What to fetch is the head of every K slice a product's warps stream (the first bytes each one
// reads), or whole slices, counted in units (a 4-bit tile pair of 1 KB; a tile's scales). An L2Warm
// range is `count` slices over tiles of tile_units units cut into splits of split_units (the last
// one shorter) and each split into `inner` equal slices (rounded up, the last one shorter), as the
// fused kernel cuts a column tile among its blocks and warps; slice i is slice k = j % inner of
// split j / inner of tile i / per_tile (j = i % per_tile), and its first `percent` % (rounded up to
// a unit) is fetched. q4_gemm.cuh's q4_l2_warm describes a 4-bit layer under its plan.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gptq {
namespace cuda {

struct L2Warm {
    const char *base = nullptr;
    int count = 0;     // slices; 0 = nothing
    int per_tile = 1;  // slices per tile
    int inner = 1;     // slices per split
    int tile_units = 1, split_units = 1, percent = 100;
    size_t unit_bytes = 0;
};

// Slice i of r: its first unit and how many units of it to fetch (0: an empty slice). Host and
// device: the tests check it against the fused kernel's own cut.
struct L2Slice {
    size_t unit = 0;
    int units = 0;
};
#ifdef __CUDACC__
__host__ __device__
#endif
inline L2Slice l2_warm_slice(const L2Warm &r, int i) {
    const int j = i % r.per_tile, split = j / r.inner, k = j % r.inner;
    const int s0 = split * r.split_units;
    const int split_len = r.tile_units - s0 < r.split_units ? r.tile_units - s0 : r.split_units;
    L2Slice s;
    if (split_len <= 0) return s;
    const int len = (split_len + r.inner - 1) / r.inner, q0 = s0 + k * len;
    const int n = s0 + split_len - q0 < len ? s0 + split_len - q0 : len;
    if (n <= 0) return s;
    const int head = (len * r.percent + 99) / 100;
    s.unit = size_t(i / r.per_tile) * size_t(r.tile_units) + size_t(q0);
    s.units = head < n ? head : n;
    return s;
}

// What one kernel warms: a layer's weights and its scales (and zeros), or nothing.
struct L2WarmSet {
    static constexpr int kRanges = 3;
    L2Warm r[kRanges];
    bool empty() const { return r[0].count == 0 && r[1].count == 0 && r[2].count == 0; }
};

#ifdef __CUDACC__
// Issues the slices worker, worker + workers, ... of every range (every thread of a grid may call it
// with its own index). No-op before sm_90 (the bulk prefetch is Hopper's; a per-line prefetch loop
// would cost the issuing kernel more than it saves on older parts, unmeasured).
__device__ __forceinline__ void l2_warm(const L2WarmSet &s, int worker, int workers) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#pragma unroll
    for (int k = 0; k < L2WarmSet::kRanges; ++k) {
        const L2Warm &r = s.r[k];
        for (int i = worker; i < r.count; i += workers) {
            const L2Slice sl = l2_warm_slice(r, i);
            if (sl.units > 0)
                asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(r.base + sl.unit * r.unit_bytes),
                             "r"(uint32_t(sl.units * r.unit_bytes))
                             : "memory");
        }
    }
#else
    (void)s;
    (void)worker;
    (void)workers;
#endif
}
#endif

} // namespace cuda
} // namespace gptq
