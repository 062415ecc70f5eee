// q4_wgmma.cu — the sm_90a tensor-core kernel for many-row 4-bit products (q4_wgmma.cuh).
//
// Why the layout's words are wgmma A fragments: wgmma m64nNk16 with A in registers gives warp w of
// the warpgroup rows 16w .. 16w+15 of A, thread (g = lane/4, c = lane%4) holding
//   a0 = {A[g][2c], A[g][2c+1]}      a1 = {A[g+8][2c], A[g+8][2c+1]}
//   a2 = {A[g][2c+8], A[g][2c+9]}    a3 = {A[g+8][2c+8], A[g+8][2c+9]}.
// With A = the weight transposed (rows = output columns, 16 k), word w of lane (g, c)'s uint4 in a
// tile (q4_layout.cuh) holds fragment rows 2c, 2c+1, 2c+8, 2c+9 of columns 16w + g (low byte of
// each half) and 16w + 8 + g (high byte): a0 and a2 from its low byte, a1 and a3 from the high
// one. So warp w of a warpgroup takes word w of the 32 lanes' uint4s of a tile and the warpgroup
// covers the tile's 64 columns, 16 k. Dequantizing is the same mask, subtract and multiply as
// q4_dequant_f16, so the A operand holds exactly the fp16 weights that path would have written.
//
// The B operand is the activations, K-major in shared memory with the 128-byte swizzle: one stage
// is bt token rows of 64 k (128 bytes each), the 16-byte chunk j of row t stored at chunk j ^ (t%8)
// (what the hardware undoes when it reads through the descriptor). Since the activations were
// permuted once into fragment order (q4_wgmma_permute), k slot i of tile kt is column 16 kt + i.
//
// Pipeline: as many buffers in shared memory as fit (at most 8), each one stage (64 k) of
// activations, the weight tiles of the block's column tiles and their scales (and zero points).
// A producer warpgroup issues each stage as a handful of cp.async.bulk copies (a warp per kind, a
// lane per copy) completing on the buffer's "full" mbarrier, as soon as every consumer warp has
// released the buffer on its "empty" mbarrier. Each iteration issues the stage's wgmmas as one group and then
// waits until only that group is in flight, so the tensor cores always have one group queued while
// the threads dequantize the next stage (into the other of two register sets: a group's A registers
// stay untouched until it completes); the buffer of the group that completed goes back to the
// producer.
#include "q4_wgmma.cuh"

#include "../common.h"
#include "cuda_check.cuh"
#include "half_bits.cuh"
#include "launch.cuh"
#include "mem_ops.cuh"
#include "wgmma_ops.cuh"

#include <algorithm>
#include <cstring>

namespace gptq {
namespace cuda {

namespace {

// The consumer warpgroups (wgmma, dequantization, epilogue) and, after them, one producer warpgroup
// whose first thread issues the copies. A producer inside a consumer warp held that warp's own stage
// back whenever it waited for a free buffer (measured, H200, M = 256: 70B gate+up 498 -> 427 us,
// 70B down 415 -> 295 us with the producer apart). The producer gives most of its registers to the
// consumers (setmaxnreg), so the 256-token tile keeps its 128 accumulators per thread.
constexpr int kConsumerThreads = kQ4WgWarpgroups * 128;
constexpr int kThreads = kConsumerThreads + 128;
constexpr int kProducerRegs = 40, kConsumerRegs = 232;  // 128 * 40 + 256 * 232 <= 65536
static_assert(128 * kProducerRegs + kConsumerThreads * kConsumerRegs <= 65536, "the register file holds both roles");
constexpr int kTileBytes = 32 * 16;  // one 16 x 64 weight tile
constexpr int kSmemPerBlock = 227 * 1024;  // sm_90's opt-in limit (the only target of this kernel)
// Row stride (floats) of a warp's epilogue slab: thread (g, c) writes rows 2c (+ 1), column g
// (+ 8), so 2c * 20 + g covers the 32 banks once (a stride of 17 put 4 threads on one bank; Nsight
// Compute: 4-way conflicts on every epilogue store). Reads of 16 columns x 2 rows conflict 2-way.
constexpr int kSlabStride = 20;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GPTQ_WGMMA_DEVICE 1
#else
#define GPTQ_WGMMA_DEVICE 0
#endif

// Everything below up to the kernel is used by the sm_90a kernel body only.
#if GPTQ_WGMMA_DEVICE

__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Matrix descriptor of a K-major operand with the 128-byte swizzle: rows 128 bytes apart, groups
// of 8 rows 1024 bytes apart (stride byte offset), leading byte offset unused for this mode.
__device__ __forceinline__ uint64_t swizzle128_desc(uint32_t addr) {
    return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) |
           (uint64_t(1) << 62);
}

// Scale and zero point of this thread's two columns (16w + g, 16w + 8 + g) in one group.
struct ColGroup {
    uint32_t s;   // {scale lo, scale hi}
    uint32_t z;   // {1024 + z lo, 1024 + z hi}
};

// Four 8 x 8 fp16 matrices from accumulator fragments (thread (g, c) holds row g, elements 2c and
// 2c + 1 of each) into shared memory transposed: matrix i's column r lands as 16 contiguous bytes
// at the address lane 8i + r gives.
__device__ __forceinline__ void stmatrix_x4_trans(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(addr), "r"(r0), "r"(r1),
                 "r"(r2), "r"(r3)
                 : "memory");
}

// One word of the layout -> this thread's A fragment: a[0], a[2] from column lo, a[1], a[3] from hi.
__device__ __forceinline__ void dequant_fragment(uint32_t v, const ColGroup &cg, uint32_t magic, uint32_t (&a)[4]) {
    const __half2 s2 = u2h(cg.s);
    const __half2 s_lo = __low2half2(s2), s_hi = __high2half2(s2);
    const ZeroTerms zt = zero_terms(cg.z);
    const __half2 za_lo = zt.za[0], za_hi = zt.za[1], zb_lo = zt.zb[0], zb_hi = zt.zb[1];
    const __half2 sixteenth = __float2half2_rn(0.0625f);
    const uint32_t h = v >> 8;
    a[0] = h2u(__hmul2(__hsub2(u2h(and_or<0x000F000Fu>(v, magic)), za_lo), s_lo));
    a[2] = h2u(__hmul2(__hfma2(u2h(and_or<0x00F000F0u>(v, magic)), sixteenth, zb_lo), s_lo));
    a[1] = h2u(__hmul2(__hsub2(u2h(and_or<0x000F000Fu>(h, magic)), za_hi), s_hi));
    a[3] = h2u(__hmul2(__hfma2(u2h(and_or<0x00F000F0u>(h, magic)), sixteenth, zb_hi), s_hi));
}

#endif // GPTQ_WGMMA_DEVICE

// One pipeline stage in shared memory: the activations (bt rows of 128 bytes, swizzled), the block's
// weight tiles (4 k-tiles per column tile), then per column tile and tile pair the 64 scales (and
// zero points) of the pair's group, so that no global load is left on the per-stage critical path.
template <int BT, int WGN, bool ZT> struct WgSmem {
    static constexpr int kTiles = kQ4WgWarpgroups * WGN;                      // column tiles per block
    static constexpr int kXBytes = BT * 128;
    static constexpr int kWBytes = kTiles * 4 * kTileBytes;
    static constexpr int kSBytes = kTiles * 2 * 128;                          // [tile][pair][64] fp16
    static constexpr int kStageBytes = (kXBytes + kWBytes + kSBytes * (ZT ? 2 : 1) + 1023) / 1024 * 1024;
    // As many buffers as fit (less alignment slack and the static barriers), at most 8: the
    // consumers waiting for their stage to land was the largest stall (Nsight Compute, 5 buffers).
    static constexpr int kFit = (kSmemPerBlock - 2048) / kStageBytes;
    static constexpr int kStages = kFit < 8 ? kFit : 8;
    static constexpr size_t kBytes = size_t(kStages) * kStageBytes + 1024;   // + alignment slack
    static_assert(size_t(8) * BT * kSlabStride * 4 <= size_t(kStages) * kStageBytes, "epilogue slabs fit the buffers");
    // The fp16 tile of the epilogue: BT rows of the block's columns, 16 bytes of padding per row so
    // that the 8 rows one stmatrix writes fall in different banks.
    static constexpr int kTileRow = kTiles * 64 + 8;  // halves
    static_assert(size_t(BT) * kTileRow * 2 <= size_t(kStages) * kStageBytes, "the fp16 tile fits the buffers");
    // The fp32 tile: rows 4 floats past a multiple of 32 banks, so that the four token rows 2c a
    // warp's fragments write (8 columns each) fall in different banks.
    static constexpr int kTile32Row = kTiles * 64 + 4;  // floats
    static_assert(size_t(BT) * kTile32Row * 4 <= size_t(kStages) * kStageBytes, "the fp32 tile fits the buffers");
};

// What the blocks of one launch compute: runs of consecutive (tile, stage) units, the tiles laid end
// to end (tile t = column block t / row_blocks, token block t % row_blocks), `stages` units each.
// Classic grid (units == 0): block (x, y, z) takes stages [z * per_split, ...) of tile
// x * row_blocks + y. Stream-K (units = tiles * stages): block b of gridDim.x takes units
// [b * units / gridDim.x, (b + 1) * units / gridDim.x), so every SM gets the same work whatever the
// tile count; a tile cut between blocks is finished by the block that ran its first stages (it
// reaches them last, at the end of its run), the others hand over their sums.
struct WgWork {
    int stages = 0;
    int row_blocks = 1;
    int per_split = 0;
    int units = 0;
    float *partial = nullptr;   // stream-K, fp16 output: a slot of fp32 sums per block
    unsigned *flags = nullptr;  // ... and a flag per block: 1 while its slot holds its first tile's sums
};

#if GPTQ_WGMMA_DEVICE
// (units * gridDim.x < 2^31: launch_wg checks; a 64-bit division would cost registers the tile needs.)
__device__ __forceinline__ int sk_begin(const WgWork &wk, int b) { return int(unsigned(wk.units) * unsigned(b) / gridDim.x); }
__device__ __forceinline__ unsigned ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_release(unsigned *p, unsigned v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
#endif

template <int BT, int WGN, bool ZT, bool OUT32, bool SK>
__global__ void __launch_bounds__(kThreads, 1)
    q4_wgmma_kernel(const __half *__restrict__ xf, int M, int Mp, Q4Dev w, Q4Out out, WgWork wk) {
#if GPTQ_WGMMA_DEVICE
    using Op = Wgmma<BT>;
    using Sm = WgSmem<BT, WGN, ZT>;
    constexpr int kTilesPerBlock = Sm::kTiles;
    constexpr int kStages = Sm::kStages;
    constexpr int kSlotFloat4s = kConsumerThreads * WGN * Op::kRegs / 4;
    extern __shared__ uint8_t smem_raw[];
    // Aligned to 1024 bytes (the swizzle's period) by an offset from the array itself, so that the
    // compiler still knows the pointer is shared memory and loads through it are LDS, not generic.
    uint8_t *smem = smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u);

    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2;
    const int S = wk.stages;
    constexpr int kProducerWarps = ZT ? 4 : 3;
    // The block's run of units [x, y). Each role computes it after its register reallocation: held
    // across the producer's cut to kProducerRegs, such values were spilled and reloaded at every stage.
    auto block_units = [&]() -> int2 {
        if (SK) return make_int2(sk_begin(wk, blockIdx.x), sk_begin(wk, blockIdx.x + 1));
        const int t0 = (int(blockIdx.x) * wk.row_blocks + int(blockIdx.y)) * S;
        const int first = t0 + int(blockIdx.z) * wk.per_split;
        return make_int2(first, min(t0 + S, first + wk.per_split));
    };

    // full[b]: buffer b's copies landed (an arrival per producer warp, plus the bytes); empty[b]:
    // every consumer warp is done with it (its wgmma group completed).
    __shared__ __align__(8) uint64_t full_bar[kStages], empty_bar[kStages];
    static_assert(kStages >= 3, "the pipeline needs three buffers");
    if (tid == 0) {
        for (int b = 0; b < kStages; ++b) {
            mbar_init(smem_addr(&full_bar[b]), kProducerWarps);
            mbar_init(smem_addr(&empty_bar[b]), kConsumerThreads / 32);
        }
        mbar_init_fence();
    }
    __syncthreads();

    // The activations are written by the kernel before (permute); the weights are constant.
    griddep_wait();
    griddep_trigger();

    // The producer warpgroup issues the stages, each warp one kind of bulk copy: warp 0 the
    // activations (one contiguous block of xf: q4_wgmma_permute lays them out as the swizzled
    // shared-memory image), warp 1 the weight tiles, warps 2 and 3 the scales and zero points of the
    // stage's two tile pairs, a lane per copy. Each warp arms the buffer's barrier with its own bytes
    // (kProducerWarps arrivals complete a stage). One thread issuing everything in turn was as slow
    // per stage as the tensor cores' work on it (H200, M = 256: 7B qkv 65.0 us with a thread, 60.4
    // with a warp, 57.3 with a thread and no stream-K bookkeeping).
    if (tid >= kConsumerThreads) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kProducerRegs));
        const int pw = (tid - kConsumerThreads) >> 5, pl = lane;
        if (pw >= kProducerWarps) return;
        const int v = pw == 1 ? pl : pl >> 1, pr = pl & 1;  // this lane's column tile (and tile pair)
        const int2 run = block_units();
        const int u_begin = run.x, u_end = run.y;
        const size_t x_stage_stride = size_t(Mp) * 128;    // bytes of xf per stage
        int t = u_begin / S, s = u_begin - t * S;         // the tile and stage of unit u
        int nt0 = 0, m0 = 0, tiles = 0;                     // the tile's first column tile and token, its column tiles
        int grp = 0, grp_end = 0;                           // the group of this lane's pair, its end (k tiles)
        auto enter_tile = [&] {
            nt0 = t / wk.row_blocks * kTilesPerBlock, m0 = t % wk.row_blocks * BT;
            tiles = min(kTilesPerBlock, w.NT - nt0);
            grp = (4 * s + 2 * pr) / w.group_kt, grp_end = (grp + 1) * w.group_kt;
        };
        enter_tile();
        int it = 0;
        for (int u = u_begin; u < u_end; ++u, ++it) {
            const int b = it % kStages;
            if (it >= kStages) mbar_wait(smem_addr(&empty_bar[b]), ((it / kStages) - 1) & 1);
            const uint32_t bar = smem_addr(&full_bar[b]);
            uint8_t *xs = smem + b * Sm::kStageBytes;
            uint8_t *wsm = xs + Sm::kXBytes, *ssm = wsm + Sm::kWBytes;
            if (pw == 0) {
                if (pl == 0) {
                    mbar_expect_tx(bar, BT * 128);
                    bulk_copy(smem_addr(xs), reinterpret_cast<const uint8_t *>(xf) + s * x_stage_stride + size_t(m0) * 128,
                              BT * 128, bar);
                }
            } else if (pw == 1) {
                const int ktiles = min(4, w.KT - 4 * s);
                if (pl == 0) mbar_expect_tx(bar, tiles * ktiles * kTileBytes);
                __syncwarp();
                if (v < tiles)
                    bulk_copy(smem_addr(wsm + v * 4 * kTileBytes), w.qw + (size_t(nt0 + v) * w.KT + 4 * s) * 32,
                              ktiles * kTileBytes, bar);
            } else {
                if (pl == 0) mbar_expect_tx(bar, tiles * 2 * 128);
                __syncwarp();
                if (v < tiles) {
                    const size_t off = (size_t(nt0 + v) * w.G + min(grp, w.G - 1)) * 64;
                    bulk_copy(smem_addr(ssm + (pw == 2 ? 0 : Sm::kSBytes) + (v * 2 + pr) * 128),
                              (pw == 2 ? w.scales : w.zeros) + off, 128, bar);
                }
            }
            if (++s == S) {
                s = 0, ++t;
                enter_tile();
            } else {
                while (4 * s + 2 * pr >= grp_end) ++grp, grp_end += w.group_kt;
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kConsumerRegs));

    float acc[WGN][Op::kRegs];
    const __half zh = __float2half(1024.0f + float(w.zero));
    const uint32_t zero2 = h2u(__halves2half2(zh, zh));  // uniform zero point: 1024 + z
    // Two register sets of A fragments, alternating by stage parity: a group's A registers must
    // stay untouched until it completes.
    const uint32_t magic = 0x64006400u;
    uint32_t a_even[WGN][4][4], a_odd[WGN][4][4];

    // Stage `it` of the block's run; release_prev: stage it - 1's buffer goes back to the producer
    // once its group has completed (the first stage of a tile has none: the tile before released it).
    auto run_stage = [&](int it, uint32_t (&a)[WGN][4][4], bool release_prev) {
        mbar_wait(smem_addr(&full_bar[it % kStages]), (it / kStages) & 1);
        __syncwarp();  // the wgmma instructions below are warp-aligned
        const uint8_t *xs = smem + (it % kStages) * Sm::kStageBytes;
        const uint8_t *wsm = xs + Sm::kXBytes, *ssm = wsm + Sm::kWBytes;
        ColGroup cg[WGN][2];
#pragma unroll
        for (int u = 0; u < WGN; ++u)
#pragma unroll
            for (int pr = 0; pr < 2; ++pr) {
                // Columns 16 warp + g and + 8: halves g * 8 + 2 warp and + 1 of the pair's 64.
                const int off = ((wg * WGN + u) * 2 + pr) * 128 + (g * 8 + 2 * warp) * 2;
                cg[u][pr].s = *reinterpret_cast<const uint32_t *>(ssm + off);
                cg[u][pr].z = ZT ? *reinterpret_cast<const uint32_t *>(ssm + Sm::kSBytes + off) : zero2;
            }
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
#pragma unroll
            for (int u = 0; u < WGN; ++u) {
                const uint32_t v = *reinterpret_cast<const uint32_t *>(
                    wsm + (((wg * WGN + u) * 4 + kk) * 32 + lane) * 16 + warp * 4);
                dequant_fragment(v, cg[u][kk >> 1], magic, a[u][kk]);
            }
        wgmma_fence();
#pragma unroll
        for (int u = 0; u < WGN; ++u) Op::fence(acc[u]);
        const uint32_t xa = smem_addr(xs);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
#pragma unroll
            for (int u = 0; u < WGN; ++u) Op::mma(acc[u], a[u][kk], swizzle128_desc(xa + kk * 32));
        wgmma_commit();
#pragma unroll
        for (int u = 0; u < WGN; ++u) Op::fence(acc[u]);
        wgmma_wait<1>();  // stage it - 1's group has completed: its buffer goes back to the producer
        if (release_prev && lane == 0) mbar_arrive(smem_addr(&empty_bar[(it - 1) % kStages]));
    };

    // Stores of a tile's sums (plus bias) into the output, straight from the accumulators:
    // d[4j + e] is column 16 warp + g + 8 (e / 2) of the tile, token 8j + 2c + e % 2. Used for a tile
    // that is not the block's last (the pipeline's buffers are busy with the next one); fp32 outputs
    // take atomic adds, which need no load (a whole tile has no other writer: same result as a store).
    const int c = lane & 3;
    // Barrier 1: the consumer warpgroups only (the producer warps have left or wait on mbarriers).
    auto consumers_sync = [] { asm volatile("bar.sync 1, %0;" ::"n"(kConsumerThreads) : "memory"); };
    auto store_direct = [&](int nt0, int m0, bool add_bias) {
        const int t_end = min(BT, M - m0);
#pragma unroll
        for (int u = 0; u < WGN; ++u) {
            const int nt = nt0 + wg * WGN + u;
            if (nt >= w.NT) continue;
            const int n_lo = nt * kQ4TileN + 16 * warp + g, n_hi = n_lo + 8;
            const float b_lo = add_bias && n_lo < w.N ? __half2float(out.bias[n_lo]) : 0.0f;
            const float b_hi = add_bias && n_hi < w.N ? __half2float(out.bias[n_hi]) : 0.0f;
#pragma unroll
            for (int j = 0; j < BT / 8; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int t = 8 * j + 2 * c + (e & 1), n = e >> 1 ? n_hi : n_lo;
                    const float v = acc[u][4 * j + e] + (e >> 1 ? b_hi : b_lo);
                    if (t < t_end && n < w.N) {
                        if constexpr (OUT32) atomicAdd(out.out32 + size_t(m0 + t) * out.ldo + n, v);
                        else out.out16[size_t(m0 + t) * out.ldo + n] = __float2half_rn(v);
                    }
                }
        }
    };

    // The same through shared memory, for the block's last tile (the buffers are free then): each
    // warp stages its 16-column slab so that a token's 16 columns leave as whole 32-byte sectors
    // instead of 2- or 4-byte pieces 8 columns apart. Only for outputs whose rows are not 16-byte
    // aligned: store_tile16 and store_tile32 below move whole rows.
    auto store_slab = [&](int nt0, int m0, bool add_bias) {
        consumers_sync();  // every consumer warp drained
        float *slab = reinterpret_cast<float *>(smem) + size_t(wg * 4 + warp) * BT * kSlabStride;  // [BT][kSlabStride]
        const int t_end = min(BT, M - m0);
#pragma unroll
        for (int u = 0; u < WGN; ++u) {
            const int nt = nt0 + wg * WGN + u;
            if (nt >= w.NT) continue;  // uniform across the warp
            const int n0 = nt * kQ4TileN + 16 * warp;
#pragma unroll
            for (int j = 0; j < BT / 8; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    slab[(8 * j + 2 * c + (e & 1)) * kSlabStride + g + 8 * (e >> 1)] = acc[u][4 * j + e];
            __syncwarp();
            // Lane l handles column l % 16 of tokens t = l / 16, l / 16 + 2, ...: 16 consecutive lanes
            // cover one token's 16 columns (64 contiguous bytes of fp32, 32 of fp16). Every lane runs
            // the same trips (the stores are predicated), so the warp leaves the epilogue converged.
            const int col = lane & 15, n = n0 + col, th = lane >> 4;
            const bool col_ok = n < w.N;
            const float b = add_bias && col_ok ? __half2float(out.bias[n]) : 0.0f;
            if constexpr (OUT32) {
                // Added with reductions (no load, no wait): a whole tile has no other writer, so the
                // sum is the one a load, add and store would give; those took ~16 round trips of
                // batched loads at the end of every tile (7B qkv M = 256: 66 vs 52 us into fp16).
                float *dst = out.out32 + size_t(m0) * out.ldo + n;
                for (int t0 = 0; t0 < t_end; t0 += 2) {
                    const int t = t0 + th;
                    if (col_ok && t < t_end) atomicAdd(dst + size_t(t) * out.ldo, slab[t * kSlabStride + col] + b);
                }
            } else {
                __half *dst = out.out16 + size_t(m0) * out.ldo + n;
                for (int t0 = 0; t0 < t_end; t0 += 2) {
                    const int t = t0 + th;
                    if (col_ok && t < t_end) dst[size_t(t) * out.ldo] = __float2half_rn(slab[t * kSlabStride + col] + b);
                }
            }
            __syncwarp();
        }
    };

    // fp16 outputs of the block's last tile: the accumulators go to shared memory as the tile's
    // rows (stmatrix, transposed: a token's columns become contiguous), then every consumer thread
    // writes whole 16-byte pieces of rows. The per-warp slab above writes 2 bytes per lane per store
    // and walks the tile's tokens two at a time; it stays for outputs whose rows are not 16-byte
    // aligned. Measured (H200, M = 256, same run): 7B qkv 53.2 -> 48.2 us, gate+up 83.5 -> 78.3.
    const bool vec_out16 = !OUT32 && (reinterpret_cast<uintptr_t>(out.out16) & 15) == 0 && out.ldo % 8 == 0;
    auto store_tile16 = [&](int nt0, int m0, bool add_bias) {
        consumers_sync();  // every consumer warp drained
        __half *tile = reinterpret_cast<__half *>(smem);
        const uint32_t tile_addr = smem_addr(tile);
        const int r = lane & 7, mi = lane >> 3;  // the row this lane addresses, of matrix mi
#pragma unroll
        for (int u = 0; u < WGN; ++u) {
            const int col0 = (wg * WGN + u) * 64 + 16 * warp;  // this warp's 16 columns in the tile
            float b[2] = {0.0f, 0.0f};
            if (add_bias)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int n = nt0 * kQ4TileN + col0 + g + 8 * h;
                    b[h] = n < w.N ? __half2float(out.bias[n]) : 0.0f;
                }
#pragma unroll
            for (int j = 0; j < BT / 8; j += 2) {
                // Matrices (j, cols 0-7), (j, cols 8-15), (j + 1, 0-7), (j + 1, 8-15) of 8 tokens x 8 columns.
                uint32_t v[4];
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                    const int jj = j + (q >> 1), h = q & 1;
                    v[q] = h2u(__floats2half2_rn(acc[u][4 * jj + 2 * h] + b[h], acc[u][4 * jj + 2 * h + 1] + b[h]));
                }
                const int token = 8 * (j + (mi >> 1)) + r;
                stmatrix_x4_trans(tile_addr + uint32_t((token * Sm::kTileRow + col0 + 8 * (mi & 1)) * 2), v[0], v[1], v[2], v[3]);
            }
        }
        consumers_sync();
        constexpr int kChunks = kTilesPerBlock * 8;  // 16-byte pieces per row
        const int t_end = min(BT, M - m0);
        const int n_base = nt0 * kQ4TileN;
        for (int q = tid; q < t_end * kChunks; q += kConsumerThreads) {
            const int t = q / kChunks, ch = q % kChunks, n = n_base + ch * 8;
            const uint4 v = *reinterpret_cast<const uint4 *>(tile + t * Sm::kTileRow + ch * 8);
            // N % 8 == 0 (repack_q4 refuses others): a piece is wholly inside or wholly past N.
            if (n < w.N) *reinterpret_cast<uint4 *>(out.out16 + size_t(m0 + t) * out.ldo + n) = v;
        }
    };

    // fp32 outputs of the block's last tile: the tile's sums go to shared memory as rows, then every
    // consumer thread adds whole 16-byte pieces of rows into the output with vector reductions
    // (red.global.add.v4.f32) instead of the slab's one float per lane. Measured (H200, same
    // binary, three runs): 7B o_proj at M = 256 20.4-20.6 vs 21.5-21.7 us; 70B down within its
    // run-to-run spread (170-195 us either way).
    const bool vec_out32 = OUT32 && (reinterpret_cast<uintptr_t>(out.out32) & 15) == 0 && out.ldo % 4 == 0;
    auto store_tile32 = [&](int nt0, int m0, bool add_bias) {
        consumers_sync();  // every consumer warp drained
        float *tile = reinterpret_cast<float *>(smem);
#pragma unroll
        for (int u = 0; u < WGN; ++u) {
            const int col0 = (wg * WGN + u) * 64 + 16 * warp + g;
#pragma unroll
            for (int j = 0; j < BT / 8; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    tile[(8 * j + 2 * c + (e & 1)) * Sm::kTile32Row + col0 + 8 * (e >> 1)] = acc[u][4 * j + e];
        }
        consumers_sync();
        constexpr int kQuads = kTilesPerBlock * 16;  // float4 per row
        const int t_end = min(BT, M - m0), n_base = nt0 * kQ4TileN;
        for (int q = tid; q < t_end * kQuads; q += kConsumerThreads) {
            const int t = q / kQuads, n = n_base + 4 * (q % kQuads);
            if (n >= w.N) continue;  // N % 8 == 0: a piece is wholly inside or past N
            float4 v = *reinterpret_cast<const float4 *>(tile + t * Sm::kTile32Row + (n - n_base));
            if (add_bias) {
                v.x += __half2float(out.bias[n]), v.y += __half2float(out.bias[n + 1]);
                v.z += __half2float(out.bias[n + 2]), v.w += __half2float(out.bias[n + 3]);
            }
            atomicAdd(reinterpret_cast<float4 *>(out.out32 + size_t(m0 + t) * out.ldo + n), v);
        }
    };

    // The block's run, one tile (or part of one) at a time.
    const int2 run = block_units();
    const int u_end = run.y;
    int it = 0;
    for (int u = run.x; u < u_end;) {
        const int n = min(S - u % S, u_end - u);
#pragma unroll
        for (int v = 0; v < WGN; ++v)
#pragma unroll
            for (int i = 0; i < Op::kRegs; ++i) acc[v][i] = 0.0f;
        int i = 0;
        for (; i + 1 < n; i += 2) {
            run_stage(it + i, a_even, i > 0);
            run_stage(it + i + 1, a_odd, true);
        }
        if (i < n) run_stage(it + i, a_even, i > 0);
        wgmma_wait<0>();
#pragma unroll
        for (int v = 0; v < WGN; ++v) Op::fence(acc[v]);
        it += n;
        const int t = u / S, s0 = u - t * S, s1 = s0 + n;
        u += n;
        const bool last = u >= u_end;
        if (!last && lane == 0) mbar_arrive(smem_addr(&empty_bar[(it - 1) % kStages]));
        const int nt0 = t / wk.row_blocks * kTilesPerBlock, m0 = t % wk.row_blocks * BT;

        if (SK && !OUT32 && s0 > 0) {
            // Stream-K, a later part of a tile: hand the sums to the block that ran its first stages
            // (a block's run starts a tile part-way only with its first tile, so one slot per block).
            float4 *slot = reinterpret_cast<float4 *>(wk.partial) + size_t(blockIdx.x) * kSlotFloat4s;
#pragma unroll
            for (int v = 0; v < WGN; ++v)
#pragma unroll
                for (int q = 0; q < Op::kRegs / 4; ++q)
                    __stcg(slot + (v * Op::kRegs / 4 + q) * kConsumerThreads + tid,
                           make_float4(acc[v][4 * q], acc[v][4 * q + 1], acc[v][4 * q + 2], acc[v][4 * q + 3]));
            consumers_sync();
            if (tid == 0) st_release(wk.flags + blockIdx.x, 1u);
            continue;
        }
        if (SK && !OUT32 && s1 < S) {
            // Stream-K, the first part of a tile the next blocks finish: wait for their sums (they ran
            // them first thing, while this block was still on its earlier units) and add them. Only
            // later blocks are waited for, and all blocks are resident (one per SM), so this ends.
            // The first warp polls, lane 0 reading and the warp taking its answer, so that the warp
            // stays converged.
            const int tile_end = (t + 1) * S;
            // The later blocks that ran part of the tile: those whose run starts before its end (a
            // block with no units at all hands nothing over).
            auto for_each_contributor = [&](auto &&f) {
                for (int b = blockIdx.x + 1; b < int(gridDim.x); ++b) {
                    const int lo = sk_begin(wk, b);
                    if (lo >= tile_end) break;
                    if (sk_begin(wk, b + 1) != lo) f(b);
                }
            };
            if (tid < 32)
                for_each_contributor([&](int b) {
                    while (__shfl_sync(0xFFFFFFFFu, lane == 0 ? ld_acquire(wk.flags + b) : 0u, 0) == 0) __nanosleep(64);
                });
            consumers_sync();
            for_each_contributor([&](int b) {
                const float4 *slot = reinterpret_cast<const float4 *>(wk.partial) + size_t(b) * kSlotFloat4s;
                constexpr int kPerThread = kSlotFloat4s / kConsumerThreads;
                if constexpr (kPerThread > 16) {
                    // The 256-token tile (32 float4 per thread): the thread's share of the slot all in
                    // flight at once into shared memory (the buffers are free: this is the run's last
                    // tile), then added: one round trip instead of four batches of 8 loads into
                    // registers (H200, M = 256, two runs: 7B qkv 48.0 / 48.1 -> 47.1 / 47.2 us, gate+up
                    // 78.5 / 78.5 -> 77.5 / 77.2; at M = 128, two batches, it did not pay: 33.8 -> 34.5).
                    // Each thread reads back only what it copied, so its own wait is the only sync.
                    static_assert(size_t(kSlotFloat4s) * 16 <= size_t(kStages) * Sm::kStageBytes, "a slot fits the buffers");
                    float4 *staged = reinterpret_cast<float4 *>(smem);
#pragma unroll
                    for (int i = 0; i < kPerThread; ++i)
                        cp_async16(smem_addr(staged + i * kConsumerThreads + tid), slot + i * kConsumerThreads + tid);
                    cp_async_wait_all();
#pragma unroll
                    for (int v = 0; v < WGN; ++v)
#pragma unroll
                        for (int q = 0; q < Op::kRegs / 4; ++q) {
                            const float4 p = staged[(v * Op::kRegs / 4 + q) * kConsumerThreads + tid];
                            acc[v][4 * q] += p.x, acc[v][4 * q + 1] += p.y, acc[v][4 * q + 2] += p.z, acc[v][4 * q + 3] += p.w;
                        }
                } else {
#pragma unroll
                    for (int v = 0; v < WGN; ++v)
#pragma unroll
                        for (int q = 0; q < Op::kRegs / 4; ++q) {
                            // At most 8 loads in flight: all of them at once would not fit beside the sums.
                            if (q % 8 == 0) asm volatile("" ::: "memory");
                            const float4 p = __ldcg(slot + (v * Op::kRegs / 4 + q) * kConsumerThreads + tid);
                            acc[v][4 * q] += p.x, acc[v][4 * q + 1] += p.y, acc[v][4 * q + 2] += p.z, acc[v][4 * q + 3] += p.w;
                        }
                }
                if (tid == 0) wk.flags[b] = 0;  // consumed; the slot is written again only by a later launch
            });
        }
        // Tiles are stored (fp16) or added with atomics (fp32: whole tiles, the classic grid's K
        // splits, stream-K's cut tiles); the bias comes with the tile's first stages.
        const bool add_bias = out.bias != nullptr && s0 == 0;
        if (last && vec_out16) store_tile16(nt0, m0, add_bias);
        else if (last && vec_out32) store_tile32(nt0, m0, add_bias);
        else if (last) store_slab(nt0, m0, add_bias);
        else store_direct(nt0, m0, add_bias);
        // A loop around the pipeline costs the 128 x 2 tile its wgmma overlap (ptxas runs out of
        // registers and serializes the wgmmas), so the classic grid's kernels have none and that
        // tile has no stream-K kernel.
        if constexpr (!SK) break;
    }
#endif
}

// The activations in the layout's k order, laid out as the shared-memory image of each stage:
// for stage s (64 k) and row m, 128 bytes at (s * Mp + m) * 128 whose 16-byte chunk j holds slots
// 8j .. 8j + 7 of the stage and sits at chunk j ^ (m % 8) (the 128-byte swizzle). Slot i of tile
// kt = 2P + h is the weight's stored row 32P + 8c + 4h + 2hi + e for i = 2c + e + 8hi
// (q4_layout.cuh); rows m >= M and columns >= K are zeros. One thread per (row, pair, c): 8 source
// columns, 4 destinations.
__global__ void q4_wgmma_permute_kernel(const __half *__restrict__ x, int M, int ldx, int K, int Kx, int Mp,
                                        __half *__restrict__ xf) {
    pdl_enter();
    const int m = blockIdx.y;
    const int id = blockIdx.x * blockDim.x + threadIdx.x;  // pair * 4 + c
    if (m >= Mp || id >= Kx / 8) return;
    const int P = id >> 2, c = id & 3;
    const int r0 = 32 * P + 8 * c;
    uint32_t v[4] = {0, 0, 0, 0};
    if (m < M) {
        const __half *src = x + size_t(m) * ldx + r0;
        if (r0 + 8 <= K) {
            const uint4 q = *reinterpret_cast<const uint4 *>(src);
            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        } else {
            __half h[8];
            for (int i = 0; i < 8; ++i) h[i] = r0 + i < K ? src[i] : __float2half(0.0f);
            for (int i = 0; i < 4; ++i) v[i] = h2u(__halves2half2(h[2 * i], h[2 * i + 1]));
        }
    }
    // Rows 8c + 2i, 2i + 1 go to slots 32 (P % 2) + 8i + 2c, + 1: chunk 4 (P % 2) + i, halves 2c, 2c + 1.
    __half *row = xf + (size_t(P >> 1) * Mp + m) * 64;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int chunk = (4 * (P & 1) + i) ^ (m & 7);
        *reinterpret_cast<uint32_t *>(row + chunk * 8 + 2 * c) = v[i];
    }
}

__global__ void wgmma_probe_kernel(int *has) { *has = GPTQ_WGMMA_DEVICE; }

// Whether a tile has a stream-K kernel: the 128x2 tile has none (a loop around the pipeline makes
// ptxas serialize its wgmmas; see the kernel's tile loop). The launcher and the plan check ask it.
constexpr bool wg_has_stream_k(int bt, int wgn) { return !(bt == 128 && wgn == 2); }

template <int BT, int WGN, bool ZT, bool OUT32>
void launch_wg(const __half *xf, int M, int Mp, int Kx, const Q4Dev &w, const Q4Out &out, const Q4WgmmaPlan &plan,
               const Q4WgScratch &sk, cudaStream_t stream) {
    using Sm = WgSmem<BT, WGN, ZT>;
    constexpr bool kHasSk = wg_has_stream_k(BT, WGN);
    auto kernel = plan.sk && kHasSk ? q4_wgmma_kernel<BT, WGN, ZT, OUT32, kHasSk> : q4_wgmma_kernel<BT, WGN, ZT, OUT32, false>;
    allow_dynamic_smem(kernel, Sm::kBytes);
    WgWork wk;
    wk.stages = Kx / kQ4WgStageK;
    wk.row_blocks = (M + BT - 1) / BT;
    const int tiles_per_block = kQ4WgWarpgroups * WGN;
    const unsigned col_blocks = unsigned((w.NT + tiles_per_block - 1) / tiles_per_block);
    dim3 grid;
    if (plan.sk) {
        // Every block must be resident at once (a block may wait for a later one's sums): one block
        // per SM (its shared memory), at most as many blocks as SMs.
        if (plan.sk > device_attribute(cudaDevAttrMultiProcessorCount, 0))
            fail(GPTQ_ERR_BACKEND, "q4_wgmma: stream-K over %d blocks, more than the GPU's SMs", plan.sk);
        const size_t slot = size_t(kConsumerThreads) * WGN * Wgmma<BT>::kRegs;
        if (!OUT32 && (sk.n_flags < plan.sk || sk.partial_floats < slot * size_t(plan.sk)))
            fail(GPTQ_ERR_BACKEND, "q4_wgmma: stream-K over %d blocks needs %zu floats and %d flags of scratch (%zu, %d)",
                 plan.sk, slot * size_t(plan.sk), plan.sk, sk.partial_floats, sk.n_flags);
        const long units = long(col_blocks) * wk.row_blocks * wk.stages;
        if (units * plan.sk >= (long(1) << 31)) fail(GPTQ_ERR_BACKEND, "q4_wgmma: %ld stream-K units", units);
        wk.units = int(units);
        wk.partial = sk.partial;
        wk.flags = sk.flags;
        grid = dim3(unsigned(plan.sk));
    } else {
        wk.per_split = (wk.stages + plan.splits - 1) / plan.splits;
        grid = dim3(col_blocks, unsigned(wk.row_blocks), unsigned((wk.stages + wk.per_split - 1) / wk.per_split));
    }
    launch(kernel, grid, kThreads, Sm::kBytes, stream, xf, M, Mp, w, out, wk);
    CUDA_CHECK_LAUNCH();
}

template <int BT, int WGN>
void launch_wg_z(const __half *xf, int M, int Mp, int Kx, const Q4Dev &w, const Q4Out &out, const Q4WgmmaPlan &plan,
                 const Q4WgScratch &sk, cudaStream_t stream) {
    const bool zt = w.zeros != nullptr;
    if (out.out32) {
        if (zt) launch_wg<BT, WGN, true, true>(xf, M, Mp, Kx, w, out, plan, sk, stream);
        else launch_wg<BT, WGN, false, true>(xf, M, Mp, Kx, w, out, plan, sk, stream);
    } else {
        if (zt) launch_wg<BT, WGN, true, false>(xf, M, Mp, Kx, w, out, plan, sk, stream);
        else launch_wg<BT, WGN, false, false>(xf, M, Mp, Kx, w, out, plan, sk, stream);
    }
}

// Relative speed of a block tile per unit of work, measured (H200, 7B qkv at M = 2048, same work
// under each forced tile, the producer's copies spread over its warps: 304.8 / 341.7 / 420.5 /
// 538.9 / 745.1 us for 256x1 / 128x2 / 128x1 / 64x2 / 64x1).
double tile_efficiency(const Q4WgmmaPlan &p) {
    if (p.bt == 256) return 1.0;
    if (p.bt == 128) return p.wgn == 2 ? 0.89 : 0.72;
    return p.wgn == 2 ? 0.57 : 0.41;
}

} // namespace

bool q4_wgmma_supported() {
    if (env_int("GPTQ_Q4_WGMMA", 1) == 0) return false;
    return once_per_device<bool>(0, false, [](int) {
        if (device_attribute(cudaDevAttrComputeCapabilityMajor, 0) != 9 ||
            device_attribute(cudaDevAttrComputeCapabilityMinor, -1) != 0)
            return false;
        // A Hopper GPU, but the binary may lack sm_90a code (then the kernel body is empty).
        bool ok = false;
        int *d = nullptr;
        if (cudaMalloc(&d, sizeof(int)) == cudaSuccess) {
            int has = 0;
            wgmma_probe_kernel<<<1, 1>>>(d);
            if (cudaMemcpy(&has, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess) ok = has == 1;
            cudaFree(d);
        }
        cudaGetLastError();
        return ok;
    });
}

bool q4_wgmma_plan_valid(const Q4WgmmaPlan &p, bool out32) {
    const bool shape = (p.bt == 64 || p.bt == 128 || p.bt == 256) && (p.wgn == 1 || p.wgn == 2) &&
                       !(p.bt == 256 && p.wgn == 2);
    const bool sk = p.sk == 0 || (p.sk > 0 && p.splits == 1 && wg_has_stream_k(p.bt, p.wgn));
    return shape && p.splits >= 1 && (out32 || p.splits == 1) && sk;
}

bool q4_wgmma_sk_ready(const Q4WgScratch &sk, int blocks) {
    return sk.flags && sk.n_flags >= blocks && sk.partial_floats >= q4_wgmma_sk_floats(blocks);
}

Q4WgmmaPlan q4_wgmma_plan(int M, const Q4Dev &w, int sm_count, bool out32, bool allow_sk, bool unordered) {
    // Any K split into fp32 adds partial sums in no fixed order.
    const bool stream_k = allow_sk && (!out32 || unordered);
    const int max_splits = out32 && unordered ? 4 : 1;
    static const char *forced = std::getenv("GPTQ_Q4_WG");
    if (forced) {
        Q4WgmmaPlan p;
        const int got = std::sscanf(forced, "%d,%d,%d,%d", &p.bt, &p.wgn, &p.splits, &p.sk);
        if (got >= 3 && q4_wgmma_plan_valid(p, out32) && (p.sk == 0 || stream_k) && p.splits <= max_splits) return p;
    }
    // One resident block per SM (registers, shared memory): pick the tile and the schedule that
    // keep the SMs busiest, weighting each tile by how efficiently it computes, in units of one
    // stage of work. The classic grid pays for its last, partly filled wave; stream-K spreads the
    // units evenly over the SMs and pays for the tiles it cuts. Epilogue costs, fitted to the H200's
    // M = 64-256 runs of bench-kernels: a tile part added into fp32 with atomics ~8 stages (a
    // stream-K block has two), the hand-over of an fp16 tile's sums ~2.
    constexpr double kAtomicTile = 8.0, kHandOver = 2.0;
    const int stages = q4_wgmma_kx(w) / kQ4WgStageK;
    Q4WgmmaPlan best;
    double best_t = 1e30;
    for (int bt : {64, 128, 256})
        for (int wgn : {1, 2}) {
            if (!q4_wgmma_plan_valid(Q4WgmmaPlan{bt, wgn, 1, 0}, out32)) continue;
            const long cols = (w.NT + kQ4WgWarpgroups * wgn - 1) / (kQ4WgWarpgroups * wgn);
            const long tiles = cols * ((M + bt - 1) / bt);
            const double per_stage = double(bt) * wgn / tile_efficiency(Q4WgmmaPlan{bt, wgn, 1, 0});
            for (int splits = 1; splits <= max_splits; ++splits) {
                if (stages / splits < 4) continue;
                const long waves = (tiles * splits + sm_count - 1) / sm_count;
                const double per_block = double(stages) / splits + (splits > 1 ? kAtomicTile : 0.0);
                const double t = waves * per_block * per_stage;
                if (t < best_t) best_t = t, best = Q4WgmmaPlan{bt, wgn, splits, 0};
            }
            const long units = tiles * stages;
            if (stream_k && units >= 4L * sm_count && q4_wgmma_plan_valid(Q4WgmmaPlan{bt, wgn, 1, sm_count}, out32)) {
                const double per_block = double((units + sm_count - 1) / sm_count) + (out32 ? 2 * kAtomicTile : kHandOver);
                const double t = per_block * per_stage;
                if (t < best_t) best_t = t, best = Q4WgmmaPlan{bt, wgn, 1, sm_count};
            }
        }
    return best;
}

void q4_wgmma_permute(const __half *x, int M, int ldx, int K, int Kx, int Mp, __half *xf, cudaStream_t stream) {
    const int threads = Kx / 8;
    dim3 grid(unsigned((threads + 127) / 128), unsigned(Mp));
    launch(q4_wgmma_permute_kernel, grid, 128, 0, stream, x, M, ldx, K, Kx, Mp, xf);
    CUDA_CHECK_LAUNCH();
}

void q4_wgmma(const __half *xf, int M, int Mp, const Q4Dev &w, const Q4Out &out, const Q4WgmmaPlan &plan,
              const Q4WgScratch &sk, cudaStream_t stream) {
    if (!out.out16 == !out.out32 || out.defer) fail(GPTQ_ERR_BACKEND, "q4_wgmma: exactly one of out16 / out32");
    if (!q4_wgmma_plan_valid(plan, out.out32 != nullptr))
        fail(GPTQ_ERR_BACKEND, "q4_wgmma: invalid plan (bt %d, wgn %d, splits %d, stream-K %d)", plan.bt, plan.wgn,
             plan.splits, plan.sk);
    if (w.group_kt % 2 != 0) fail(GPTQ_ERR_BACKEND, "q4_wgmma: groups must be whole tile pairs");
    if (Mp % plan.bt != 0 || Mp < M) fail(GPTQ_ERR_BACKEND, "q4_wgmma: %d padded rows for %d rows, tile %d", Mp, M, plan.bt);
    const int Kx = q4_wgmma_kx(w);
    if (M <= 0) return;
    switch (plan.bt * 4 + plan.wgn) {
    case 64 * 4 + 1: launch_wg_z<64, 1>(xf, M, Mp, Kx, w, out, plan, sk, stream); break;
    case 64 * 4 + 2: launch_wg_z<64, 2>(xf, M, Mp, Kx, w, out, plan, sk, stream); break;
    case 128 * 4 + 1: launch_wg_z<128, 1>(xf, M, Mp, Kx, w, out, plan, sk, stream); break;
    case 128 * 4 + 2: launch_wg_z<128, 2>(xf, M, Mp, Kx, w, out, plan, sk, stream); break;
    case 256 * 4 + 1: launch_wg_z<256, 1>(xf, M, Mp, Kx, w, out, plan, sk, stream); break;
    default: fail(GPTQ_ERR_BACKEND, "q4_wgmma: no kernel for bt %d wgn %d", plan.bt, plan.wgn);
    }
}

} // namespace cuda
} // namespace gptq
