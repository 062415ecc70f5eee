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
// A producer warpgroup (one thread of it) issues each stage as a handful of cp.async.bulk copies
// completing on the buffer's "full" mbarrier, as soon as every consumer warp has released the
// buffer on its "empty" mbarrier. Each iteration issues the stage's wgmmas as one group and then
// waits until only that group is in flight, so the tensor cores always have one group queued while
// the threads dequantize the next stage (into the other of two register sets: a group's A registers
// stay untouched until it completes); the buffer of the group that completed goes back to the
// producer.
#include "q4_wgmma.cuh"

#include "../common.h"
#include "cuda_check.cuh"
#include "half_bits.cuh"
#include "launch.cuh"
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

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// mbarriers (shared::cta, 64-bit) and the bulk copy engine: a copy of `bytes` (multiple of 16)
// from global to shared memory that reports its bytes to an mbarrier when it lands.
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred done;\nwait_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra wait_%=;\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}

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

// One word of the layout -> this thread's A fragment: a[0], a[2] from column lo, a[1], a[3] from hi.
__device__ __forceinline__ void dequant_fragment(uint32_t v, const ColGroup &cg, uint32_t magic, uint32_t (&a)[4]) {
    const __half2 s2 = u2h(cg.s), z2 = u2h(cg.z);
    const __half2 s_lo = __low2half2(s2), s_hi = __high2half2(s2);
    const __half2 za_lo = __low2half2(z2), za_hi = __high2half2(z2);
    // -(64 + z): the high nibbles come as 1024 + 16 q, scaled by 1/16 to 64 + q (exact).
    const __half2 zb2 = __hsub2(__float2half2_rn(960.0f), z2);
    const __half2 zb_lo = __low2half2(zb2), zb_hi = __high2half2(zb2);
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
};

template <int BT, int WGN, bool ZT, bool OUT32>
__global__ void __launch_bounds__(kThreads, 1)
    q4_wgmma_kernel(const __half *__restrict__ xf, int M, int Mp, int Kx, Q4Dev w, Q4Out out, int stages_per_split) {
#if GPTQ_WGMMA_DEVICE
    using Op = Wgmma<BT>;
    using Sm = WgSmem<BT, WGN, ZT>;
    constexpr int kTilesPerBlock = Sm::kTiles;
    constexpr int kStages = Sm::kStages;
    extern __shared__ uint8_t smem_raw[];
    uint8_t *smem = reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));

    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2;
    const int nt0 = blockIdx.x * kTilesPerBlock;
    const int m0 = blockIdx.y * BT;
    const int s_begin = blockIdx.z * stages_per_split;
    const int n_stages = min(Kx / kQ4WgStageK, s_begin + stages_per_split) - s_begin;

    // full[b]: buffer b's copies landed (one arrival, the producer's, plus the bytes); empty[b]:
    // every consumer warp is done with it (its wgmma group completed).
    __shared__ __align__(8) uint64_t full_bar[kStages], empty_bar[kStages];
    static_assert(kStages >= 3, "the pipeline needs three buffers");
    if (tid == 0) {
        for (int b = 0; b < kStages; ++b) {
            mbar_init(smem_addr(&full_bar[b]), 1);
            mbar_init(smem_addr(&empty_bar[b]), kConsumerThreads / 32);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    // The activations are written by the kernel before (permute); the weights are constant.
    griddep_wait();
    griddep_trigger();

    // A stage is 1 + 3 (or 5) bulk copies per column tile. The activations of a stage are one
    // contiguous block of xf (q4_wgmma_permute lays them out as the swizzled shared-memory image).
    const size_t x_stage_stride = size_t(Mp) * 128;  // bytes of xf per stage
    auto issue = [&](int it) {
        const int b = it % kStages;
        const int s = s_begin + it;
        const int ktiles = min(4, w.KT - 4 * s);
        int tiles = 0;
        for (int u = 0; u < kTilesPerBlock; ++u) tiles += nt0 + u < w.NT;
        const uint32_t bytes = BT * 128 + tiles * (ktiles * kTileBytes + 2 * 128 * (ZT ? 2 : 1));
        const uint32_t bar = smem_addr(&full_bar[b]);
        mbar_expect_tx(bar, bytes);
        uint8_t *xs = smem + b * Sm::kStageBytes;
        bulk_copy(smem_addr(xs), reinterpret_cast<const uint8_t *>(xf) + s * x_stage_stride + size_t(m0) * 128,
                  BT * 128, bar);
        uint8_t *wsm = xs + Sm::kXBytes, *ssm = wsm + Sm::kWBytes;
        for (int u = 0; u < tiles; ++u) {
            const int nt = nt0 + u;
            bulk_copy(smem_addr(wsm + u * 4 * kTileBytes), w.qw + (size_t(nt) * w.KT + 4 * s) * 32,
                      ktiles * kTileBytes, bar);
            for (int pr = 0; pr < 2; ++pr) {
                const int grp = min((4 * s + 2 * pr) / w.group_kt, w.G - 1);
                const size_t off = (size_t(nt) * w.G + grp) * 64;
                bulk_copy(smem_addr(ssm + (u * 2 + pr) * 128), w.scales + off, 128, bar);
                if (ZT) bulk_copy(smem_addr(ssm + Sm::kSBytes + (u * 2 + pr) * 128), w.zeros + off, 128, bar);
            }
        }
    };

    if (tid >= kConsumerThreads) {  // the producer warpgroup
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kProducerRegs));
        if (tid == kConsumerThreads)
            for (int it = 0; it < n_stages; ++it) {
                const int use = it / kStages;
                if (use > 0) mbar_wait(smem_addr(&empty_bar[it % kStages]), (use - 1) & 1);
                issue(it);
            }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kConsumerRegs));

    float acc[WGN][Op::kRegs];
#pragma unroll
    for (int u = 0; u < WGN; ++u)
#pragma unroll
        for (int i = 0; i < Op::kRegs; ++i) acc[u][i] = 0.0f;

    const __half zh = __float2half(1024.0f + float(w.zero));
    const uint32_t zero2 = h2u(__halves2half2(zh, zh));  // uniform zero point: 1024 + z
    // Two register sets of A fragments, alternating by stage parity: a group's A registers must
    // stay untouched until it completes.
    const uint32_t magic = 0x64006400u;
    uint32_t a_even[WGN][4][4], a_odd[WGN][4][4];

    auto run_stage = [&](int it, uint32_t (&a)[WGN][4][4]) {
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
        if (it > 0 && lane == 0) mbar_arrive(smem_addr(&empty_bar[(it - 1) % kStages]));
    };

    int it = 0;
    for (; it + 1 < n_stages; it += 2) {
        run_stage(it, a_even);
        run_stage(it + 1, a_odd);
    }
    if (it < n_stages) run_stage(it, a_even);
    wgmma_wait<0>();
#pragma unroll
    for (int u = 0; u < WGN; ++u) Op::fence(acc[u]);

    // Epilogue. d[4j + e] is column 16 warp + g + 8 (e / 2) of the tile, token 8j + 2c + e % 2: a
    // warp owns a 16-column slab of its tiles. Each warp stages its slab through shared memory (the
    // pipeline's buffers are free once every consumer warpgroup has drained) so that a token's 16
    // columns leave as whole 32-byte sectors instead of 2- or 4-byte pieces 8 columns apart.
    asm volatile("bar.sync 1, %0;" ::"n"(kConsumerThreads) : "memory");
    const int c = lane & 3;
    const bool add_bias = out.bias != nullptr && blockIdx.z == 0;
    float *slab = reinterpret_cast<float *>(smem) + size_t(wg * 4 + warp) * BT * kSlabStride;  // [BT][kSlabStride]
#pragma unroll
    for (int u = 0; u < WGN; ++u) {
        const int nt = nt0 + wg * WGN + u;
        if (nt >= w.NT) continue;  // uniform across the warp
        const int n0 = nt * kQ4TileN + 16 * warp;
#pragma unroll
        for (int j = 0; j < BT / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) slab[(8 * j + 2 * c + (e & 1)) * kSlabStride + g + 8 * (e >> 1)] = acc[u][4 * j + e];
        __syncwarp();
        // Lane l handles column l % 16 of tokens t = l / 16, l / 16 + 2, ...: 16 consecutive lanes
        // cover one token's 16 columns (64 contiguous bytes of fp32, 32 of fp16).
        const int col = lane & 15, n = n0 + col;
        if (n < w.N) {
            const float b = add_bias ? __half2float(out.bias[n]) : 0.0f;
            const int t_end = min(BT, M - m0);
            if constexpr (OUT32) {
                float *dst = out.out32 + size_t(m0) * out.ldo + n;
                if (gridDim.z > 1) {
                    for (int t = lane >> 4; t < t_end; t += 2) atomicAdd(dst + size_t(t) * out.ldo, slab[t * kSlabStride + col] + b);
                } else {
                    // Loads first, stores after: interleaved, each load would wait for the store before it.
                    constexpr int kBatch = 8;
                    for (int t0 = lane >> 4; t0 < t_end; t0 += 2 * kBatch) {
                        float v[kBatch];
#pragma unroll
                        for (int i = 0; i < kBatch; ++i) {
                            const int t = t0 + 2 * i;
                            v[i] = t < t_end ? dst[size_t(t) * out.ldo] : 0.0f;
                        }
#pragma unroll
                        for (int i = 0; i < kBatch; ++i) {
                            const int t = t0 + 2 * i;
                            if (t < t_end) dst[size_t(t) * out.ldo] = v[i] + slab[t * kSlabStride + col] + b;
                        }
                    }
                }
            } else {
                __half *dst = out.out16 + size_t(m0) * out.ldo + n;
                for (int t = lane >> 4; t < t_end; t += 2) dst[size_t(t) * out.ldo] = __float2half_rn(slab[t * kSlabStride + col] + b);
            }
        }
        __syncwarp();
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

template <int BT, int WGN, bool ZT, bool OUT32>
void launch_wg(const __half *xf, int M, int Mp, int Kx, const Q4Dev &w, const Q4Out &out, int splits,
               cudaStream_t stream) {
    using Sm = WgSmem<BT, WGN, ZT>;
    auto kernel = q4_wgmma_kernel<BT, WGN, ZT, OUT32>;
    allow_dynamic_smem(kernel, Sm::kBytes);
    const int stages = Kx / kQ4WgStageK;
    const int per_split = (stages + splits - 1) / splits;
    const int tiles_per_block = kQ4WgWarpgroups * WGN;
    dim3 grid(unsigned((w.NT + tiles_per_block - 1) / tiles_per_block), unsigned((M + BT - 1) / BT),
              unsigned((stages + per_split - 1) / per_split));
    launch(kernel, grid, kThreads, Sm::kBytes, stream, xf, M, Mp, Kx, w, out, per_split);
    CUDA_CHECK_LAUNCH();
}

template <int BT, int WGN>
void launch_wg_z(const __half *xf, int M, int Mp, int Kx, const Q4Dev &w, const Q4Out &out, int splits,
                 cudaStream_t stream) {
    const bool zt = w.zeros != nullptr;
    if (out.out32) {
        if (zt) launch_wg<BT, WGN, true, true>(xf, M, Mp, Kx, w, out, splits, stream);
        else launch_wg<BT, WGN, false, true>(xf, M, Mp, Kx, w, out, splits, stream);
    } else {
        if (zt) launch_wg<BT, WGN, true, false>(xf, M, Mp, Kx, w, out, splits, stream);
        else launch_wg<BT, WGN, false, false>(xf, M, Mp, Kx, w, out, splits, stream);
    }
}

// Relative speed of a block tile per unit of work, measured (H200, 7B qkv at M = 2048, same work
// under each forced tile, producer warpgroup: 347 / 391 / 548 / 692 / 1028 us for 256x1 / 128x2 /
// 128x1 / 64x2 / 64x1).
double tile_efficiency(const Q4WgmmaPlan &p) {
    if (p.bt == 256) return 1.0;
    if (p.bt == 128) return p.wgn == 2 ? 0.89 : 0.63;
    return p.wgn == 2 ? 0.50 : 0.34;
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
    return shape && p.splits >= 1 && (out32 || p.splits == 1);
}

Q4WgmmaPlan q4_wgmma_plan(int M, const Q4Dev &w, int sm_count, bool out32) {
    static const char *forced = std::getenv("GPTQ_Q4_WG");
    if (forced) {
        Q4WgmmaPlan p;
        if (std::sscanf(forced, "%d,%d,%d", &p.bt, &p.wgn, &p.splits) == 3 && q4_wgmma_plan_valid(p, out32)) return p;
    }
    // One resident block per SM (registers): pick the tile and split that keep the SMs busiest,
    // weighting each tile by how efficiently it computes.
    const int stages = q4_wgmma_kx(w) / kQ4WgStageK;
    Q4WgmmaPlan best;
    double best_t = 1e30;
    for (int bt : {64, 128, 256})
        for (int wgn : {1, 2})
            for (int splits = 1; splits <= (out32 ? 4 : 1); ++splits) {
                Q4WgmmaPlan p{bt, wgn, splits};
                if (!q4_wgmma_plan_valid(p, out32) || stages / splits < 4) continue;
                const long cols = (w.NT + kQ4WgWarpgroups * wgn - 1) / (kQ4WgWarpgroups * wgn);
                const long blocks = cols * ((M + bt - 1) / bt) * splits;
                const long waves = (blocks + sm_count - 1) / sm_count;
                const double work = double(bt) * wgn * stages / splits;  // per block
                const double t = waves * work / tile_efficiency(p) * (splits > 1 ? 1.05 : 1.0);
                if (t < best_t) best_t = t, best = p;
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
              cudaStream_t stream) {
    if (!out.out16 == !out.out32 || out.defer) fail(GPTQ_ERR_BACKEND, "q4_wgmma: exactly one of out16 / out32");
    if (!q4_wgmma_plan_valid(plan, out.out32 != nullptr))
        fail(GPTQ_ERR_BACKEND, "q4_wgmma: invalid plan (bt %d, wgn %d, splits %d)", plan.bt, plan.wgn, plan.splits);
    if (w.group_kt % 2 != 0) fail(GPTQ_ERR_BACKEND, "q4_wgmma: groups must be whole tile pairs");
    if (Mp % plan.bt != 0 || Mp < M) fail(GPTQ_ERR_BACKEND, "q4_wgmma: %d padded rows for %d rows, tile %d", Mp, M, plan.bt);
    const int Kx = q4_wgmma_kx(w);
    if (M <= 0) return;
    switch (plan.bt * 4 + plan.wgn) {
    case 64 * 4 + 1: launch_wg_z<64, 1>(xf, M, Mp, Kx, w, out, plan.splits, stream); break;
    case 64 * 4 + 2: launch_wg_z<64, 2>(xf, M, Mp, Kx, w, out, plan.splits, stream); break;
    case 128 * 4 + 1: launch_wg_z<128, 1>(xf, M, Mp, Kx, w, out, plan.splits, stream); break;
    case 128 * 4 + 2: launch_wg_z<128, 2>(xf, M, Mp, Kx, w, out, plan.splits, stream); break;
    case 256 * 4 + 1: launch_wg_z<256, 1>(xf, M, Mp, Kx, w, out, plan.splits, stream); break;
    default: fail(GPTQ_ERR_BACKEND, "q4_wgmma: no kernel for bt %d wgn %d", plan.bt, plan.wgn);
    }
}

} // namespace cuda
} // namespace gptq
