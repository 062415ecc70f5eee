// q4_spread_kernel.cuh — the fused 4-bit kernel's loop with its work spread evenly over every warp
// the GPU holds at once, for up to 8 rows under the RMSNorm prologue (the decode step's q|k|v and
// gate|up). Device code; q4_spread.cu includes it and launches it.
//
// Why: the classic grid (strips x splits, q4_fused_kernel.cuh) gives every warp an equal share only
// when the strips divide the resident blocks. 7B gate|up at one token has 172 two-tile strips for
// 396 block slots: two splits fill 344 and leave 52 slots idle (q|k|v: 384), and a one-token
// product streams at a rate set by the warps it keeps loading (NOTES run X: taking q|k|v's and
// gate|up's third block per SM cut decode b = 1 from 591.9-595.0 to 454.0-456.3 tok/s on an H200).
// Not yet measured itself: the planner takes it only with GPTQ_Q4_SPREAD=1 (NOTES run Y).
//
// The work is the (column tile, batch) pairs of the layer, tile-major: T = NT * U batches of two
// tile pairs (U = ceil(KP / 2) per tile). Warp w of the W = 4 * blocks takes batches
// [w T / W, (w+1) T / W): the same count, to one, for every warp. A block's range (its four
// warps') is at most U batches long, so it touches at most two tiles (slots 0 and 1), and a warp's
// at most two pieces, one per tile:
//
//   tile ta        │ tile ta+1
//   ....[warp 0][warp 1][wa│rp 2][warp 3]....
//                          └ warp 2 saves its tile-ta sums and goes on with ta+1's batches,
//                            whose loads its register ring issued before the switch
//
// Each block stages the activations of the whole K (the RMSNorm reads the whole row anyway) and
// the scales of its two tiles. At the end the warps' sums meet in shared memory, per slot in warp
// order, and the block writes each tile's sum as one share: a deferred output (Q4Out::defer) takes
// share o = the block's ordinal among the tile's blocks, the tile's last block zeroing the shares
// past its own up to the plan's slices (so the consumer adds a fixed count); an fp32 output adds it
// with atomics.
#pragma once

#include "launch.cuh"
#include "mem_ops.cuh"
#include "q4_fused_math.cuh"
#include "q4_fused_smem.cuh"
#include "q4_fused_stage.cuh"
#include "q4_gemm.cuh"
#include "q4_spread_ranges.cuh"

namespace gptq {
namespace cuda {
namespace fused {
namespace {

template <bool ZT, bool FOLD>
__global__ void __launch_bounds__(kQ4Threads) q4_spread_kernel(const __half *__restrict__ x, int M, int ldx, Q4Dev w,
                                                                 Q4Out out, Q4Prologue pro, int slices) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int KP = w.KT / 2, U = (KP + 1) / 2;
    const long long T = (long long)w.NT * U;
    const int blocks = gridDim.x;
    const SpreadBlock sb = spread_block(blockIdx.x, blocks, w.NT, U);
    if (sb.b1 == sb.b0) return;  // more blocks than batches: nothing here (the planner never asks for it)
    const int ta = sb.ta;        // the block's first tile (slot 0); sb.two: it reaches ta + 1 (slot 1)
    const bool two = sb.two;
    const SpreadWarp sw = spread_warp(blockIdx.x * kQ4Warps + warp, blocks * kQ4Warps, w.NT, U);
    const int tw = sw.tw, n = sw.n, n_a = sw.n_a, pa = sw.pa;  // see SpreadWarp

    Acc<1> A;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) A.acc[0][i][e] = A.tmp[0][i][e] = 0.0f;
    A.tmpk[0][0] = A.tmpk[0][1] = 0.0f;

    // Batch k of the warp's sequence: in tile tw from pair pa, then in tile tw + 1 from pair 0.
    const uint4 *qpa = w.qw + size_t(tw) * w.KT * 32 + lane, *qpb = qpa + size_t(w.KT) * 32;
    auto load_k = [&](WBatch &r, int k) {
        if (k < n_a) load_w<0>(r, qpa, pa + 2 * k, KP);
        else if (k < n) load_w<0>(r, qpb, 2 * (k - n_a), KP);
    };
    WBatch r0, r1, r2;
    load_k(r0, 0);
    load_k(r1, 1);
    load_k(r2, 2);

    // Shared memory: activations [M][ldxs] over the whole K, then the scales (and zeros) of slots 0
    // and 1 over every group, then the RMSNorm stash (norm weights, the rows in fp32) whose room the
    // warps' sums take once the activations are staged.
    extern __shared__ __align__(16) __half fsm[];
    const FusedSmem f = fused_smem(M, KP, w.G, ZT, 2);
    for (int idx = threadIdx.x; idx < 2 * w.G * 8; idx += kQ4Threads) {
        const int t = idx / (w.G * 8), gi = (idx / 8) % w.G, ch = idx % 8;
        const int tile = ta + t;
        if (tile >= w.NT) continue;
        const size_t src = (size_t(tile) * w.G + gi) * 64 + ch * 8;
        const size_t dst = (size_t(t) * w.G + gi) * 64 + ch * 8;
        *reinterpret_cast<uint4 *>(fsm + f.scale_off + dst) = __ldg(reinterpret_cast<const uint4 *>(w.scales + src));
        if constexpr (ZT)
            *reinterpret_cast<uint4 *>(fsm + f.zero_off + dst) = __ldg(reinterpret_cast<const uint4 *>(w.zeros + src));
    }
    float *after = reinterpret_cast<float *>(reinterpret_cast<char *>(fsm) + (f.bytes + 15) / 16 * 16);
    float *wst = nullptr;
    if (pro.stash) {
        wst = after;
        const int SK = KP * kQ4PairK;
        for (int i = 4 * threadIdx.x; i < SK; i += 4 * kQ4Threads)
            *reinterpret_cast<float4 *>(wst + i) = i < w.K ? __ldg(reinterpret_cast<const float4 *>(pro.norm_w + i))
                                                           : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    pdl_enter();
    stage_activations<4, FOLD>(x, M, ldx, w.K, 0, KP, f.ldxs, fsm, pro, wst);
    __syncthreads();

    // The warps' sums per slot: [warp][slot][16 values][32 lanes] (over the stash, now spent).
    float *xch = after;
    auto save = [&](int slot) {
        float *dst = xch + size_t(warp * 2 + slot) * kKSliceAreaFloats<1>;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                dst[(i * 4 + e) * 32 + lane] = A.acc[0][i][e];
                A.acc[0][i][e] = 0.0f;
            }
    };
    const int slot_a = tw - ta;  // the warp's first piece's slot (0, or 1 for a warp starting past ta)

    const DequantConsts dq = dequant_consts<FOLD>(w.zero);
    GroupCursor gc;
    gc.pairs = w.group_kt / 2;
    gc.zoff = int(f.zero_off - f.scale_off);
    {
        const int grp0 = pa / gc.pairs;
        gc.next = (grp0 + 1) * gc.pairs;
        gc.sp = fsm + f.scale_off + (size_t(slot_a * w.G + grp0) * 8 + g) * 8;
        gc.s = *reinterpret_cast<const uint4 *>(gc.sp);
        gc.z = make_uint4(0u, 0u, 0u, 0u);
        if constexpr (ZT) gc.z = *reinterpret_cast<const uint4 *>(gc.sp + gc.zoff);
    }
    const __half *xs = fsm + size_t(g) * f.ldxs + 8 * c;
    const int xstride = 8 * f.ldxs;
    const uint32_t xok = g < M ? 1u : 0u;
    auto compute_k = [&](const WBatch &r, int k) {
        if (k >= n) return;
        if (k == n_a) {  // into tile tw + 1: tile tw's sums to its slot, the cursor to group 0
            flush_group<1, FOLD>(A, gc.s);
            save(slot_a);
            gc.next = gc.pairs;
            gc.sp = fsm + f.scale_off + (size_t((slot_a + 1) * w.G) * 8 + g) * 8;
            gc.s = *reinterpret_cast<const uint4 *>(gc.sp);
            if constexpr (ZT) gc.z = *reinterpret_cast<const uint4 *>(gc.sp + gc.zoff);
        }
        const int pair = k < n_a ? pa + 2 * k : 2 * (k - n_a);
        compute_w<1, ZT, 0, FOLD, 0>(r, A, gc, pair, KP, xs, 0, xstride, xok, dq.zau, dq.zbu, dq.magic);
    };
    for (int k = 0; k < n; k += 3) {  // r0, r1, r2 rotate: two in flight while one is computed
        if (k > 0) load_k(r2, k + 2);
        compute_k(r0, k);
        load_k(r0, k + 3);
        compute_k(r1, k + 1);
        load_k(r1, k + 4);
        compute_k(r2, k + 2);
    }
    // The last piece's slot gets the sums; a slot the warp never reached gets zeros (A.acc is
    // zero once saved). A warp without batches flushes nothing: its cursor's scales may be a slot
    // nobody staged.
    const int slot_last = n > n_a ? slot_a + 1 : slot_a;
    if (n > 0) {
        flush_group<1, FOLD>(A, gc.s);
        save(slot_last);
    }
    for (int s = 0; s < 2; ++s)
        if (n == 0 || (s != slot_a && s != slot_last)) save(s);
    __syncthreads();

    // Warp s sums slot s over the block's warps, in warp order, and writes tile ta + s's share.
    if (warp >= 2 || (warp == 1 && !two)) return;
    const int tile = ta + warp;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            float v = 0.0f;
#pragma unroll
            for (int wi = 0; wi < kQ4Warps; ++wi) v += xch[size_t(wi * 2 + warp) * kKSliceAreaFloats<1> + (i * 4 + e) * 32 + lane];
            A.acc[0][i][e] = v;
        }
    const int first = int(spread_part_of((long long)tile * U, T, blocks));
    const int last = int(spread_part_of((long long)(tile + 1) * U - 1, T, blocks));
    const int o = blockIdx.x - first;
    const int NP = w.NT * kQ4TileN;
    if (out.defer) {
        for_each_output(A, tile, g, c, [&](int row, int col, float v) {
            if (row >= M) return;
            __stcg(out.defer + (size_t(o) * M + row) * NP + col, v);
            if (blockIdx.x == last)
                for (int s = o + 1; s < slices; ++s) __stcg(out.defer + (size_t(s) * M + row) * NP + col, 0.0f);
        });
        return;
    }
    for_each_output(A, tile, g, c, [&](int row, int col, float v) {
        if (row >= M || col >= w.N) return;
        if (out.bias && o == 0) v += __half2float(out.bias[col]);
        atomicAdd(out.out32 + size_t(row) * out.ldo + col, v);
    });
}

} // namespace
} // namespace fused
} // namespace cuda
} // namespace gptq
