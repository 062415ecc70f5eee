// q4_fused_kernel.cuh — the fused 4-bit x fp16 kernel for few rows (decode, small batches), for the
// tiled layout of q4_layout.cuh. Device code; q4_fused.cu includes it and launches it.
//
// The fused kernel (decode and small batches, M <= 32 per pass):
//
//   grid  = (strips of 2 column tiles = 128 columns, splits along K)
//   block = 2 x 2 warps: warp (wn, wk) owns column tile 2*strip + wn and half wk of the split's K
//   (or, where q4_plan takes one tile per block, 1 x 4 warps: four quarters of the split's K)
//
//        K ─────────────────────────────────────────────►
//   N  ┌──────── split 0 ─────────┬──────── split 1 ─────────┐   each warp streams its tile's
//   │  │ (0,0) pairs ..  │ (0,1)  │ (0,0)  …                 │   512-byte k-steps with 16-byte
//   │  │ (1,0)           │ (1,1)  │                          │   loads, one batch (4 steps:
//   ▼  └─────────────────┴────────┴──────────────────────────┘   weights, activations, scales)
//                                                                 ahead of the one it computes,
//   dequantizes each step into 16 half2 B fragments in registers and issues 8·MT mma.m16n8k16.
//   Before the PDL wait a warp loads its whole ring and asks the L2 for a few pairs past it.
//
// x rows are read with one 16-byte load per row per two k-steps (the K order inside 32-row blocks
// is arranged for it, see q4_layout.cuh); rows >= M are zeros, never loaded. The block stages its
// rows of x over its K range in shared memory first (computing them there when a prologue asks),
// except for 9-16 rows of x as given (Q4Plan::x_direct), read from global memory at each batch:
// 16 staged rows fill shared memory fast enough to cut the K range into many short splits. The
// K slices of a block meet in shared memory. With several splits, each adds its share into
// fp32 (the output, or sums the last block rounds to fp16) with atomics, or writes fp32 partials
// that the last block to finish a strip (an atomic counter per strip) sums in order; that block
// runs the epilogue (bias, fp16 store or fp32 residual accumulate) and resets its counter to zero
// for the next launch. Two splits into fp16 (sm_90, the 7B shapes' kernels) instead form a
// thread-block cluster whose split 0 adds the other's sums from its shared memory.
//
#pragma once

#include "block_stamps.cuh"
#include "launch.cuh"
#include "mem_ops.cuh"
#include "q4_fused_math.cuh"
#include "q4_fused_smem.cuh"
#include "q4_fused_stage.cuh"
#include "q4_gemm.cuh"

namespace gptq {
namespace cuda {
namespace fused {
// Internal linkage, as for a kernel defined in its .cu file: q4_fused.cu alone includes this header,
// and ptxas compiles an internal entry differently from a visible one (the same PTX as a visible
// entry gave other SASS for every kernel that stages its activations).
namespace {

// A flag on the kernel's atomic_out (0: ordered partials, 1: fp32 atomics, 2: fp32 sums behind an
// fp16 output): the atomics add four columns at a time (red_add4; the launcher checks alignment).
constexpr int kQ4AtomicsBy4 = 4;

// MODE 9 (q4_stamps_begin): where thread 0 of each block records its phase times.
__device__ Q4Stamp *g_stamps;
__device__ unsigned g_stamp_cursor, g_stamp_capacity;

// Writes v to (row, col): bias, then fp16 store or fp32 accumulate.
__device__ __forceinline__ void store1(const Q4Out &out, int row, int col, float v) {
    if (out.bias) v += __half2float(out.bias[col]);
    if (out.out16)
        out.out16[size_t(row) * out.ldo + col] = __float2half_rn(v);
    else
        out.out32[size_t(row) * out.ldo + col] += v;
}

// Adds v to the fp32 output at (row, col) with an atomic, one of several splits doing so (the
// bias once: by the first split).
__device__ __forceinline__ void add1_atomic(const Q4Out &out, int row, int col, float v, bool first_split) {
    if (out.bias && first_split) v += __half2float(out.bias[col]);
    atomicAdd(out.out32 + size_t(row) * out.ldo + col, v);
}

// Adds v to the four fp32 values at p (16-byte aligned) as one vector reduction (sm_90; four scalar
// atomics before). Why: the splits of a strip all add into the same outputs at about the same time,
// and the L2 performs the adds to one address one after another; a quarter of the operations
// shortens the tail that the next kernel waits for.
__device__ __forceinline__ void red_add4(float *p, const float4 &v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
#else
    atomicAdd(p, v.x);
    atomicAdd(p + 1, v.y);
    atomicAdd(p + 2, v.z);
    atomicAdd(p + 3, v.w);
#endif
}

// add1_atomic for four neighbouring columns (col a multiple of 4; out.out32 and out.ldo 16-byte
// aligned: the launcher checks).
__device__ __forceinline__ void add4_atomic(const Q4Out &out, int row, int col, float4 v, bool first_split) {
    if (out.bias && first_split) {
        v.x += __half2float(out.bias[col]);
        v.y += __half2float(out.bias[col + 1]);
        v.z += __half2float(out.bias[col + 2]);
        v.w += __half2float(out.bias[col + 3]);
    }
    red_add4(out.out32 + size_t(row) * out.ldo + col, v);
}

// Writes v to (row, col) and (row, col+1): bias, then fp16 store or fp32 accumulate.
__device__ __forceinline__ void store2(const Q4Out &out, int row, int col, float v0, float v1) {
    if (out.bias) {
        v0 += __half2float(out.bias[col]);
        v1 += __half2float(out.bias[col + 1]);
    }
    if (out.out16) {
        *reinterpret_cast<__half2 *>(out.out16 + size_t(row) * out.ldo + col) = __floats2half2_rn(v0, v1);
    } else {
        float2 *p = reinterpret_cast<float2 *>(out.out32 + size_t(row) * out.ldo + col);
        float2 o = *p;
        o.x += v0;
        o.y += v1;
        *p = o;
    }
}

// Writes v to (row, col .. col + 3) (N is a multiple of 8: repack_q4 refuses other layers).
__device__ __forceinline__ void store4(const Q4Out &out, int row, int col, const float4 &v) {
    store2(out, row, col, v.x, v.y);
    store2(out, row, col + 2, v.z, v.w);
}

// The K slices of a column tile meet in shared memory (kKSliceExchangeFloats): slices 1..WK-1
// write their sums to areas of their own (red: the first of the tile's WK - 1), one barrier, and
// slice 0 adds them in order.
template <int NTOK, int WK>
__device__ __forceinline__ void meet_k_slices(Acc<NTOK> &A, float *red, int wk, int lane) {
    constexpr int kRedFloats = kKSliceAreaFloats<NTOK>;
    __syncthreads();  // every warp is done with the activations
    if (wk > 0) {
        float *mine = red + size_t(wk - 1) * kRedFloats;
#pragma unroll
        for (int t = 0; t < NTOK; ++t)
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int e = 0; e < 4; ++e) mine[((t * 4 + i) * 4 + e) * 32 + lane] = A.acc[t][i][e];
    }
    __syncthreads();
    if (wk == 0) {
#pragma unroll
        for (int s = 0; s < WK - 1; ++s)
#pragma unroll
            for (int t = 0; t < NTOK; ++t)
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int e = 0; e < 4; ++e)
                        A.acc[t][i][e] += red[size_t(s) * kRedFloats + ((t * 4 + i) * 4 + e) * 32 + lane];
    }
}

// for_each_output four columns at a time, for the warp of K slice 0 after meet_k_slices: f(row,
// col, float4) for rows < M and columns < N, col a multiple of 4. The warp's sums go through its
// tile's first exchange area (`area`; only this warp reads it, and it is done) so that one lane
// holds four neighbouring columns, which the mma's layout spreads over four lanes.
template <int NTOK, class F>
__device__ __forceinline__ void for_each_output4(const Acc<NTOK> &A, float *area, int nt, int g, int c, int lane,
                                                 int M, int N, F &&f) {
    static_assert(8 * NTOK * kQ4TileN <= kKSliceAreaFloats<NTOK>, "a tile's rows fit in one exchange area");
    __syncwarp();  // every lane has read the area in meet_k_slices
    for_each_output(A, nt, g, c, [&](int row, int col, float v) {
        if (row < M) area[row * kQ4TileN + col - nt * kQ4TileN] = v;
    });
    __syncwarp();
    constexpr int kQuads = kQ4TileN / 4;
    const int items = min(M, 8 * NTOK) * kQuads;
    for (int i = lane; i < items; i += 32) {
        const int row = i / kQuads, c4 = 4 * (i % kQuads);
        if (nt * kQ4TileN + c4 < N)
            f(row, nt * kQ4TileN + c4, *reinterpret_cast<const float4 *>(area + row * kQ4TileN + c4));
    }
}

// The S splits of a strip as one thread-block cluster (1, S, 1): rank 0's first K slice adds the
// others' sums from their shared memory, in split order (the same sum on every run), and calls
// store() (for a column tile inside the layer) before the cluster's last barrier. Every thread of
// every block calls it (two cluster barriers).
template <int NTOK, class F>
__device__ __forceinline__ void cluster_sum(Acc<NTOK> &A, float *red, bool first_slice, bool in_layer, int lane, int S,
                                            F &&store) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // Each lane's NTOK x 16 sums as float4s in the K-slice exchange area of its warp (only slice
    // 0's warp read it last, in another layout: the warp's own barrier orders that first).
    float4 *mine = reinterpret_cast<float4 *>(red) + size_t(lane) * NTOK * 4;
    __syncwarp();
    if (first_slice) {
#pragma unroll
        for (int t = 0; t < NTOK; ++t)
#pragma unroll
            for (int i = 0; i < 4; ++i)
                mine[t * 4 + i] = make_float4(A.acc[t][i][0], A.acc[t][i][1], A.acc[t][i][2], A.acc[t][i][3]);
    }
    cluster_sync();
    if (cluster_rank() == 0 && first_slice && in_layer) {
        for (int r = 1; r < S; ++r) {  // in split order
            float4 v[NTOK * 4];
#pragma unroll
            for (int q = 0; q < NTOK * 4; ++q) v[q] = ld_cluster_f4(mine + q, uint32_t(r));
#pragma unroll
            for (int t = 0; t < NTOK; ++t)
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    A.acc[t][i][0] += v[t * 4 + i].x;
                    A.acc[t][i][1] += v[t * 4 + i].y;
                    A.acc[t][i][2] += v[t * 4 + i].z;
                    A.acc[t][i][3] += v[t * 4 + i].w;
                }
        }
        store();
    }
    cluster_sync();  // the others' shared memory stays until rank 0 has read it
#endif
}

// The splits of a cluster summed by a push (CL == 2): the first K slices of ranks 1..C-1 write
// their sums straight into rank 0's shared memory (push_area: a slot of WN x 32 lanes x NTOK*4
// float4s per rank, an area of its own, since rank 0 may still be in its loop) and arrive on rank
// 0's mbarrier (initialised before the loop by push_sum_arm: one arrival per first-slice lane of
// every other rank), then leave; rank 0 waits for those arrivals instead of two cluster-wide
// barriers, adds the slots in rank order (for two ranks the order of cluster_sum: the same bits)
// and calls store(). Every thread of every block of the cluster calls it.
template <int NTOK> constexpr size_t kPushSlotBytes = size_t(32) * NTOK * 4 * sizeof(float4);  // one warp's sums
// The shared memory a block of a C-rank push cluster adds for the others' sums.
template <int NTOK, int WN> __host__ __device__ inline size_t push_bytes(int ranks) {
    return size_t(ranks - 1) * WN * kPushSlotBytes<NTOK>;
}
struct PushArea {
    float4 *in;
    uint64_t *bar;
};
// The area at the end of the dynamic shared memory (the launcher adds push_bytes to it), the
// barrier in static shared memory of the kernels that push (CL == 2) only.
template <int NTOK, int WN>
__device__ __forceinline__ PushArea push_area(void *dyn) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    __shared__ uint64_t bar;
    const size_t bytes = push_bytes<NTOK, WN>(int(cluster_blocks()));
    return {reinterpret_cast<float4 *>(reinterpret_cast<char *>(dyn) + dynamic_smem_bytes() - bytes), &bar};
#else
    return {nullptr, nullptr};
#endif
}

template <int NTOK, int WN, class F>
__device__ __forceinline__ void push_sum(Acc<NTOK> &A, const PushArea &pa, bool first_slice, bool in_layer, int wn,
                                         int lane, F &&store) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const uint32_t rank = cluster_rank(), ranks = cluster_blocks();
    constexpr int kSlot = 32 * NTOK * 4;  // float4s of a warp's sums
    cluster_wait();  // pairs push_sum_arm's arrival: rank 0's barrier is initialised
    if (rank != 0) {
        if (first_slice) {
            float4 *slot = pa.in + (size_t(rank - 1) * WN + wn) * kSlot + size_t(lane) * NTOK * 4;
#pragma unroll
            for (int t = 0; t < NTOK; ++t)
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    st_cluster_f4(slot + t * 4 + i, 0u,
                                  make_float4(A.acc[t][i][0], A.acc[t][i][1], A.acc[t][i][2], A.acc[t][i][3]));
            mbar_arrive_remote(smem_addr(pa.bar), 0u);
        }
        return;  // rank 0's wait keeps its shared memory until the writes have landed
    }
    if (first_slice && in_layer) {
        mbar_wait_cluster(smem_addr(pa.bar), 0u);
        for (uint32_t r = 1; r < ranks; ++r) {  // in rank order
            const float4 *slot = pa.in + (size_t(r - 1) * WN + wn) * kSlot + size_t(lane) * NTOK * 4;
#pragma unroll
            for (int t = 0; t < NTOK; ++t)
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float4 v = slot[t * 4 + i];
                    A.acc[t][i][0] += v.x;
                    A.acc[t][i][1] += v.y;
                    A.acc[t][i][2] += v.z;
                    A.acc[t][i][3] += v.w;
                }
        }
        store();
    }
#endif
}
// Before the loop: rank 0 initialises the barrier push_sum waits on, and every thread arrives on
// the cluster barrier whose wait (in push_sum) makes that initialisation visible to the others.
template <int WN>
__device__ __forceinline__ void push_sum_arm(const PushArea &pa) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (threadIdx.x == 0 && cluster_rank() == 0) {
        mbar_init(smem_addr(pa.bar), int(cluster_blocks() - 1) * WN * 32);
        mbar_init_fence();
    }
    cluster_arrive_relaxed();
#endif
}

// grid (strips of WN column tiles, splits); block: WN column tiles x (kQ4Warps / WN) K slices.
// XD (Q4Plan::x_direct, 16-token kernel, x as given): the activations are read from global memory
// at each batch instead of staged into shared memory over the split's K range, so no shared-memory
// cap cuts the K range into short splits. XD = 2 also scales the weights in fp16 (128 registers
// instead of 150: 4 blocks per SM instead of 3).
// CL: the launch groups the splits of a strip into thread-block clusters (1, C, 1) whose rank 0
// sums them: 1 (C = S) from the others' shared memory (cluster_sum), 2 from what the others pushed
// into its own (push_sum; into fp32 with atomics, C may divide S). sm_90; a variant of its own:
// the branch in every kernel cost the 16-row fp16-scaled kernel ~5%, 70B gate|up 92.8-94.0 ->
// 97.2-98.9 µs.
// WN (Q4Plan::tiles_per_block): column tiles per block, 1 or 2.
// l2_head: tile pairs per warp past its register ring that the L2 fetches before the PDL wait (sm_90).
template <int NTOK, bool ZT, int MODE = 0, int SB = 4, bool FOLD = false, int XD = 0, int WN = 2, int CL = 0>
__global__ void __launch_bounds__(kQ4Threads) q4_fused_kernel(const __half *__restrict__ x, int M, int ldx, Q4Dev w,
                                                              int pairs_per_split, float *__restrict__ partial,
                                                              unsigned *__restrict__ counters, Q4Out out,
                                                              Q4Prologue pro, int atomic_out, int l2_head) {
    uint64_t stamp[3] = {0, 0, 0};
    if constexpr (MODE == 9) stamp[0] = globaltimer();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    static_assert(WN == 1 || WN == 2, "one or two column tiles per block");
    constexpr int WK = kQ4Warps / WN;  // K slices
    const int wn = warp % WN, wk = warp / WN;
    const int nt = blockIdx.x * WN + wn;
    const int split = blockIdx.y, S = gridDim.y;
    const int KP = w.KT / 2;
    const int p0 = split * pairs_per_split, p1 = min(KP, p0 + pairs_per_split);
    const int len = (p1 - p0 + WK - 1) / WK;
    const int q0 = p0 + wk * len, q1 = min(p1, q0 + len);
    const int NP = w.NT * kQ4TileN;
    const bool red4 = atomic_out >= kQ4AtomicsBy4;  // the flag is the highest bit
    atomic_out &= kQ4AtomicsBy4 - 1;

    Acc<NTOK> A;
#pragma unroll
    for (int t = 0; t < NTOK; ++t)
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) A.acc[t][i][e] = A.tmp[t][i][e] = 0.0f;
#pragma unroll
    for (int t = 0; t < NTOK; ++t) A.tmpk[t][0] = A.tmpk[t][1] = 0.0f;

    // Weights first (the long latency), then the block's activations and scales to shared memory.
    const uint4 *qp = w.qw + size_t(nt) * w.KT * 32 + lane;
    const bool active = nt < w.NT && q0 < q1;
    // Batches of weights in the register ring: three (two in flight while one is computed), or two
    // for 16 rows read directly (one in flight): 150 instead of 164 registers, and measured faster
    // on every 16-row product (H200 graph-timed, two calls, two vs three: 7B q|k|v 19.3 vs 19.7 µs,
    // o_proj 11.3 vs 11.4, gate+up 26.0 vs 27.2, down 15.9 vs 16.6, 70B gate+up 118.4 vs 126.6, 70B
    // down 50.7 vs 53.3; decode b=16 3804.5 vs 3763.6 tok/s), though both run 3 blocks per SM. Two
    // for the one-row products too was slower (gate+up 18.6 vs 16.7 µs, decode b=1 560.8 vs 581.4).
    constexpr int kRing = XD ? 2 : 3;
    WBatch r0, r1, r2;
    if (active) {  // the whole ring: small layers are then in flight before the wait
        load_w<MODE>(r0, qp, q0, q1);
        load_w<MODE>(r1, qp, q0 + kQ4PairsPerBatch, q1);
        if (kRing == 3) load_w<MODE>(r2, qp, q0 + 2 * kQ4PairsPerBatch, q1);
    }
    // The block's scales (and zeros) are constants too: to shared memory before the wait.
    extern __shared__ __align__(16) __half fsm[];
    const int g0 = (2 * p0) / w.group_kt;
    static_assert(!XD || !FOLD, "direct activations: as given, zero point not folded");
    const FusedSmem f = fused_smem(XD ? 0 : M, p1 - p0, groups_spanned(p0, p1, w.group_kt), ZT, WN);
    // Each thread loads a round of its chunks first (2 of the scales, 8 of the norm weights below),
    // then stores them: a round waits once for its loads, which return behind the ring's. One load
    // and its store at a time made every chunk a round trip, and the block reached the wait late.
    // Measured (H100, decode b=1, binaries alternating): 537-547 -> 546-552 tok/s. Not better:
    // both lists in one round of up to 10 chunks (510-519 against 553-558; why not separated), or
    // cp.async for both, waited for before the wait (527-533 against 550-555). The two loops are one
    // pattern, but written as one helper taking lambdas they compiled to other SASS and decode fell
    // 550-552 -> 528 (H100, alternating three times), with the products alone unchanged.
    const int n_scale = q4_mode_stages_scales(MODE) ? WN * f.ng * 8 : 0;
    for (int base = threadIdx.x; base < n_scale; base += 2 * kQ4Threads) {
        uint4 sv[2], zv[2];
        size_t dst[2];
        bool ok[2];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
            const int idx = base + j * kQ4Threads;
            const int t = idx / (f.ng * 8), gi = (idx / 8) % f.ng, ch = idx % 8;
            const int tile = blockIdx.x * WN + t;
            ok[j] = idx < n_scale && tile < w.NT;
            const size_t src = (size_t(tile) * w.G + g0 + gi) * 64 + ch * 8;
            dst[j] = (size_t(t) * f.ng + gi) * 64 + ch * 8;
            if (ok[j]) {
                sv[j] = __ldg(reinterpret_cast<const uint4 *>(w.scales + src));
                if constexpr (ZT) zv[j] = __ldg(reinterpret_cast<const uint4 *>(w.zeros + src));
            }
        }
#pragma unroll
        for (int j = 0; j < 2; ++j)
            if (ok[j]) {
                *reinterpret_cast<uint4 *>(fsm + f.scale_off + dst[j]) = sv[j];
                if constexpr (ZT) *reinterpret_cast<uint4 *>(fsm + f.zero_off + dst[j]) = zv[j];
            }
    }
    // RMSNorm stash: the norm weights of the block's K range are constants, staged before the wait.
    float *wst = nullptr;
    if (pro.kind == 1 && pro.stash) {
        wst = reinterpret_cast<float *>(reinterpret_cast<char *>(fsm) + (f.bytes + 15) / 16 * 16);
        const int SK = (p1 - p0) * kQ4PairK, kb = p0 * kQ4PairK;
        constexpr int kRound = 8;
        for (int i0 = 4 * threadIdx.x; i0 < SK; i0 += 4 * kQ4Threads * kRound) {
            float4 v[kRound];
#pragma unroll
            for (int j = 0; j < kRound; ++j) {
                const int i = i0 + j * 4 * kQ4Threads;
                v[j] = i < SK && kb + i < w.K ? __ldg(reinterpret_cast<const float4 *>(pro.norm_w + kb + i))
                                              : make_float4(0.f, 0.f, 0.f, 0.f);
            }
#pragma unroll
            for (int j = 0; j < kRound; ++j) {
                const int i = i0 + j * 4 * kQ4Threads;
                if (i < SK) *reinterpret_cast<float4 *>(wst + i) = v[j];
            }
        }
    }
    PushArea push{};
    if constexpr (CL == 2) {
        push = push_area<NTOK, WN>(fsm);
        push_sum_arm<WN>(push);
    }
    // The L2 head: the warp's next l2_head tile pairs past its ring (1 KB each, contiguous in the
    // layout), asked of the L2 by one bulk prefetch. Until the wait and the staging after it are
    // done, the ring is the warp's only load in flight and memory idles; the loop then finds these
    // pairs in L2. Issued after the constants' copies above: issued before them, the prefetches
    // delayed those loads and with them the wait (measured, launch_fused_tiles). The address is
    // lane 0's qp, recomputed from w.qw on purpose: written from qp, 42 kernels' SASS changed and
    // decode b=1 fell 550.0-550.7 -> 546.9-548.7 tok/s (H100, alternating three times).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (MODE == 0 || MODE == 9) {
        if (l2_head > 0 && active && lane == 0) {
            const int h0 = q0 + kRing * kQ4PairsPerBatch, h1 = min(q1, h0 + l2_head);
            constexpr uint32_t kPairBytes = 2 * 32 * sizeof(uint4);  // two k-steps of the warp's 32 lanes
            if (h1 > h0) prefetch_l2(w.qw + (size_t(nt) * w.KT + size_t(2 * h0)) * 32, uint32_t(h1 - h0) * kPairBytes);
        }
    }
#endif
    // Everything below reads or writes what earlier kernels in the stream touch.
    pdl_enter();
    if constexpr (MODE == 9) stamp[1] = globaltimer();
    if constexpr (!XD && q4_mode_stages_x(MODE))
        stage_activations<SB, FOLD>(x, M, ldx, w.K, p0, p1, f.ldxs, fsm, pro, wst);
    __syncthreads();
    if constexpr (MODE == 9) stamp[2] = globaltimer();

    if (active) {
        const DequantConsts dq = dequant_consts<FOLD>(w.zero);
        GroupCursor gc;
        gc.pairs = w.group_kt / 2;
        const int grp0 = q0 / gc.pairs;
        gc.next = (grp0 + 1) * gc.pairs;
        gc.sp = fsm + f.scale_off + (size_t(wn * f.ng + grp0 - g0) * 8 + g) * 8;
        gc.zoff = int(f.zero_off - f.scale_off);
        gc.s = *reinterpret_cast<const uint4 *>(gc.sp);
        gc.z = make_uint4(0u, 0u, 0u, 0u);
        if constexpr (ZT) gc.z = *reinterpret_cast<const uint4 *>(gc.sp + gc.zoff);
        // Lane (g, c) reads token 8t + g's chunk 8c..8c+7 of each pair; pair P starts at (P - xbase) * 32.
        const __half *xs = XD ? x + size_t(g) * ldx + 8 * c : fsm + size_t(g) * f.ldxs + 8 * c;
        const int xstride = XD ? 8 * ldx : 8 * f.ldxs;
        const int xbase = XD ? 0 : p0;
        uint32_t xok = 0;
#pragma unroll
        for (int t = 0; t < NTOK; ++t) xok |= (8 * t + g < M ? 1u : 0u) << t;
        constexpr int B = kQ4PairsPerBatch;
#define Q4_COMPUTE(r, pp) \
    compute_w<NTOK, ZT, MODE, FOLD, XD>(r, A, gc, pp, q1, xs, xbase, xstride, xok, dq.zau, dq.zbu, dq.magic)
        if constexpr (kRing == 2) {  // r0 and r1 alternate: one in flight while one is computed
            for (int p = q0; p < q1; p += 2 * B) {
                Q4_COMPUTE(r0, p);
                load_w<MODE>(r0, qp, p + 2 * B, q1);
                Q4_COMPUTE(r1, p + B);
                load_w<MODE>(r1, qp, p + 3 * B, q1);
            }
        } else {  // r0, r1, r2 rotate: two in flight while one is computed
            for (int p = q0; p < q1; p += 3 * B) {
                if (p > q0) load_w<MODE>(r2, qp, p + 2 * B, q1);
                Q4_COMPUTE(r0, p);
                load_w<MODE>(r0, qp, p + 3 * B, q1);
                Q4_COMPUTE(r1, p + B);
                load_w<MODE>(r1, qp, p + 4 * B, q1);
                Q4_COMPUTE(r2, p + 2 * B);
            }
        }
#undef Q4_COMPUTE
        if constexpr (XD != 2) flush_group<NTOK, FOLD>(A, gc.s);
    }

    if constexpr (MODE == 5 || MODE == 7) {  // diagnostics: the loop alone, no epilogue
        if (A.acc[0][0][0] == -1.0f) out.out16[0] = __float2half(0.0f);
        return;
    }
    // The K slices meet; red: the first of column tile wn's WK - 1 exchange areas.
    float *red = reinterpret_cast<float *>(fsm) + size_t(wn) * (WK - 1) * kKSliceAreaFloats<NTOK>;
    meet_k_slices<NTOK, WK>(A, red, wk, lane);
    if constexpr (MODE == 9)
        if (threadIdx.x == 0)
            record_block_stamp(StampSink{g_stamps, &g_stamp_cursor, g_stamp_capacity}, w.K, w.N, stamp);

    if constexpr (MODE == 6) {  // diagnostics: every split stores its own sums, none added across splits
        if (wk != 0 || nt >= w.NT) return;
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M && col < w.N) store1(out, row, col, v);
        });
        return;
    }

    if (out.defer) {  // deferred reduction: every split's share to its slice, the consumer sums
        if (wk != 0 || nt >= w.NT) return;
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M) __stcg(out.defer + (size_t(split) * M + row) * NP + col, v);
        });
        return;
    }

    if constexpr (CL != 0) {  // the splits of a strip in clusters: rank 0 adds the others' sums
        // Rank 0 stores the cluster's sum, or into fp32 with several clusters along the splits
        // (atomic_out 1, push only) adds it with an atomic.
        auto store = [&] {
            for_each_output(A, nt, g, c, [&](int row, int col, float v) {
                if (row < M && col < w.N) store1(out, row, col, v);
            });
        };
        if constexpr (CL == 2) {
            if (atomic_out == 1)
                push_sum<NTOK, WN>(A, push, wk == 0, nt < w.NT, wn, lane, [&] {
                    for_each_output(A, nt, g, c, [&](int row, int col, float v) {
                        if (row < M && col < w.N) add1_atomic(out, row, col, v, split == 0);
                    });
                });
            else push_sum<NTOK, WN>(A, push, wk == 0, nt < w.NT, wn, lane, store);
        } else {
            cluster_sum(A, red, wk == 0, nt < w.NT, lane, S, store);
        }
        return;
    }

    if (S == 1) {
        if (wk != 0 || nt >= w.NT) return;
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M && col < w.N) store1(out, row, col, v);
        });
        return;
    }

    if (atomic_out == 1) {  // fp32 output: each split adds its share, no partials (bias: split 0)
        if (wk != 0 || nt >= w.NT) return;
        if (red4) {
            for_each_output4(A, red, nt, g, c, lane, M, w.N,
                             [&](int row, int col, const float4 &v) { add4_atomic(out, row, col, v, split == 0); });
            return;
        }
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M && col < w.N) add1_atomic(out, row, col, v, split == 0);
        });
        return;
    }

    // atomic_out 2 (fp16 output): partial is the fp32 sums [M][NP]; every split adds its share, the
    // last block rounds the sums and zeroes them for the next launch (launch_fused says when).
    if (wk == 0 && nt < w.NT && red4 && atomic_out == 2)
        for_each_output4(A, red, nt, g, c, lane, M, w.N,
                         [&](int row, int col, const float4 &v) { red_add4(partial + size_t(row) * NP + col, v); });
    else if (wk == 0 && nt < w.NT)
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M && col < w.N) {
                if (atomic_out == 2) atomicAdd(partial + size_t(row) * NP + col, v);
                else __stcg(partial + (size_t(split) * M + row) * NP + col, v);
            }
        });
    if (!last_to_arrive(&counters[blockIdx.x], unsigned(S))) return;
    const int col0 = blockIdx.x * WN * kQ4TileN;
    const int w4 = min(WN * kQ4TileN, w.N - col0) / 4;
    const int items = M * w4;
    if (atomic_out == 2) {
        for (int idx = threadIdx.x; idx < items; idx += kQ4Threads) {
            const int row = idx / w4, col = col0 + 4 * (idx % w4);
            float4 *p = reinterpret_cast<float4 *>(partial + size_t(row) * NP + col);
            const float4 v = __ldcg(p);
            __stcg(p, make_float4(0.f, 0.f, 0.f, 0.f));
            store4(out, row, col, v);
        }
        if (threadIdx.x == 0) counters[blockIdx.x] = 0u;
        return;
    }
    // Last block of the strip: sum the splits, four columns per item, four items in flight.
    for (int base = threadIdx.x; base < items; base += 4 * kQ4Threads) {
        float4 sum[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) sum[r] = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int sp = 0; sp < S; ++sp) {
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int idx = base + r * kQ4Threads;
                if (idx < items) {
                    const int row = idx / w4, col = col0 + 4 * (idx % w4);
                    const float4 v = __ldcg(reinterpret_cast<const float4 *>(partial + (size_t(sp) * M + row) * NP + col));
                    sum[r].x += v.x; sum[r].y += v.y; sum[r].z += v.z; sum[r].w += v.w;
                }
            }
        }
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int idx = base + r * kQ4Threads;
            if (idx < items) {
                const int row = idx / w4, col = col0 + 4 * (idx % w4);
                store4(out, row, col, sum[r]);
            }
        }
    }
    if (threadIdx.x == 0) counters[blockIdx.x] = 0u;
}

} // namespace
} // namespace fused
} // namespace cuda
} // namespace gptq
