// q4_fused_math.cuh — the fused 4-bit kernel's inner loop (q4_fused_kernel.cuh): weight batches in
// registers, dequantization to fp16 fragments, mma.sync against the activations, and the per-group
// fp32 sums.
#pragma once

#include "half_bits.cuh"
#include "mem_ops.cuh"
#include "q4_gemm.cuh"

namespace gptq {
namespace cuda {
namespace fused {

// The kernel's MODE (q4_fused_diagnostic): 0 the product; diagnostics 1 loads only, 2 compute only
// (no weight traffic), 3 loads only w/o the scales' staging, 4 w/o any staging, 5 w/o staging or
// epilogue, 6 the product with each split storing its own sums, 7 the product without epilogue, 9
// the product stamping its phases (q4_stamps_begin).
constexpr bool q4_mode_loads_only(int mode) { return mode == 1 || (mode >= 3 && mode <= 5); }
constexpr bool q4_mode_stages_scales(int mode) { return mode < 3 || mode >= 6; }
constexpr bool q4_mode_stages_x(int mode) { return mode < 4 || mode >= 6; }

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Per-warp accumulators. The weights are the mma's A operand (16 output columns x 16 k: word i of
// a lane's uint4 holds sub-tiles 2i and 2i+1, i.e. A rows g and g+8) and the tokens its B operand
// (n = 8 tokens per mma, NTOK mmas for up to 8*NTOK tokens). C element e of tmp[t][i] is output
// column 16i + g + 8*(e/2) of token 8t + 2c + e%2. tmp sums x·(q - z) over the current group
// (exact fp16 products, fp32 sums); at the group's end acc += scale · tmp.
//
// Folded zero point (FOLD, uniform zeros only): the mma takes the raw 1024 + q (low nibbles) and
// 1024 + 16 q (high nibbles, against activations stored / 16, see put8) with no subtraction, and
// one more mma per k-step multiplies the same activations by the constant fragment 1024 + z (low)
// / 1024 + 16 z (high): tmpk. tmp - tmpk is then x·(q - z): two fewer fp16 operations per weight
// pair than subtracting before the mma, at the price of a cancellation in fp32 (tmp and tmpk are
// ~1024·Σx, their difference ~8·Σ|x|: about 8 of fp32's 24 bits), still well below the fp16
// rounding of the outputs. Every row of the constant fragment is the same, so tmpk holds one value
// per token column: element e of tmp[t][i] pairs with tmpk[t][e & 1].
template <int NTOK> struct Acc {
    float acc[NTOK][4][4];
    float tmp[NTOK][4][4];
    float tmpk[NTOK][2];
};

// Calls f(row, col, value) for every accumulator of a warp's column tile nt, in the C layout above.
template <int NTOK, class F>
__device__ __forceinline__ void for_each_output(const Acc<NTOK> &A, int nt, int g, int c, F &&f) {
#pragma unroll
    for (int t = 0; t < NTOK; ++t)
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e)
                f(8 * t + 2 * c + (e & 1), nt * kQ4TileN + 16 * i + g + 8 * (e >> 1), A.acc[t][i][e]);
}

template <int NTOK, bool FOLD>
__device__ __forceinline__ void flush_group(Acc<NTOK> &A, const uint4 &sv) {
    const uint32_t su[4] = {sv.x, sv.y, sv.z, sv.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 sf = __half22float2(u2h(su[i]));  // scales of sub-tiles 2i (.x) and 2i+1 (.y)
#pragma unroll
        for (int t = 0; t < NTOK; ++t) {
            if constexpr (FOLD) {
#pragma unroll
                for (int e = 0; e < 4; ++e) A.tmp[t][i][e] -= A.tmpk[t][e & 1];
            }
            A.acc[t][i][0] = fmaf(sf.x, A.tmp[t][i][0], A.acc[t][i][0]);
            A.acc[t][i][1] = fmaf(sf.x, A.tmp[t][i][1], A.acc[t][i][1]);
            A.acc[t][i][2] = fmaf(sf.y, A.tmp[t][i][2], A.acc[t][i][2]);
            A.acc[t][i][3] = fmaf(sf.y, A.tmp[t][i][3], A.acc[t][i][3]);
#pragma unroll
            for (int e = 0; e < 4; ++e) A.tmp[t][i][e] = 0.0f;
        }
    }
    if constexpr (FOLD) {
#pragma unroll
        for (int t = 0; t < NTOK; ++t) A.tmpk[t][0] = A.tmpk[t][1] = 0.0f;
    }
}

// This lane's activations of one tile pair: token 8t + g's chunk 8c..8c+7 (xp + t * xstride);
// rows at or past M read as zeros (xok). XG: xp points into global memory (the activations were not
// staged; read through L1, where the block's other warps and the SM's other blocks find them).
template <int NTOK, bool XG>
__device__ __forceinline__ void load_x(uint4 (&xv)[NTOK], const __half *xp, int xstride, uint32_t xok) {
#pragma unroll
    for (int t = 0; t < NTOK; ++t) {
        const uint4 *src = reinterpret_cast<const uint4 *>(xp + t * xstride);
        xv[t] = (xok >> t) & 1u ? (XG ? __ldg(src) : *src) : make_uint4(0u, 0u, 0u, 0u);
    }
}

// Dequantizes one tile pair (two k-steps) to exact q - z and issues its mma instructions against
// the pair's activations xv (load_x).
// SI: the weights are scaled in fp16 here (the group's scales sv: fp16((q - z) * s), the rounding
// of the format's own dequantization) and the mma adds into acc, instead of summing x·(q - z) per
// group into tmp for flush_group to scale in fp32: 32 fewer registers, one multiply per pair more.
template <int NTOK, bool ZT, bool FOLD, bool SI = false>
__device__ __forceinline__ void compute_pair(const uint4 &q0, const uint4 &q1, Acc<NTOK> &A, const uint4 (&xv)[NTOK],
                                             const uint4 &zv, __half2 zau, __half2 zbu, uint32_t magic,
                                             const uint4 &sv = uint4{}) {
    static_assert(!(FOLD && ZT), "the folded zero point needs uniform zeros");
    static_assert(!(FOLD && SI), "the folded zero point sums per group");
    const uint32_t su[4] = {sv.x, sv.y, sv.z, sv.w};
    const __half2 sixteenth = __float2half2_rn(0.0625f);
    __half2 za[8], zb[8];
    const uint32_t zu[4] = {zv.x, zv.y, zv.z, zv.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if constexpr (ZT) {
            const ZeroTerms zt = zero_terms(zu[i]);
            za[2 * i] = zt.za[0];
            za[2 * i + 1] = zt.za[1];
            zb[2 * i] = zt.zb[0];
            zb[2 * i + 1] = zt.zb[1];
        } else {
            za[2 * i] = za[2 * i + 1] = zau;
            zb[2 * i] = zb[2 * i + 1] = zbu;
        }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const uint4 q = h ? q1 : q0;
        const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t lo = words[i], hi = words[i] >> 8;
            uint32_t a[4];
            if constexpr (FOLD) {  // raw 1024 + q / 1024 + 16 q; tmpk takes the offsets out
                a[0] = and_or<0x000F000Fu>(lo, magic);
                a[1] = and_or<0x000F000Fu>(hi, magic);
                a[2] = and_or<0x00F000F0u>(lo, magic);
                a[3] = and_or<0x00F000F0u>(hi, magic);
            } else {
                a[0] = h2u(__hsub2(u2h(and_or<0x000F000Fu>(lo, magic)), za[2 * i]));                // col g,   k 2c..
                a[1] = h2u(__hsub2(u2h(and_or<0x000F000Fu>(hi, magic)), za[2 * i + 1]));            // col g+8, k 2c..
                a[2] = h2u(__hfma2(u2h(and_or<0x00F000F0u>(lo, magic)), sixteenth, zb[2 * i]));      // col g,   k 2c+8..
                a[3] = h2u(__hfma2(u2h(and_or<0x00F000F0u>(hi, magic)), sixteenth, zb[2 * i + 1]));  // col g+8, k 2c+8..
            }
            if constexpr (SI) {  // column g takes the scale of sub-tile 2i, column g + 8 that of 2i + 1
                const __half2 sc = u2h(su[i]), slo = __low2half2(sc), shi = __high2half2(sc);
                a[0] = h2u(__hmul2(u2h(a[0]), slo));
                a[1] = h2u(__hmul2(u2h(a[1]), shi));
                a[2] = h2u(__hmul2(u2h(a[2]), slo));
                a[3] = h2u(__hmul2(u2h(a[3]), shi));
            }
#pragma unroll
            for (int t = 0; t < NTOK; ++t) {
                const uint32_t b0 = h ? xv[t].z : xv[t].x, b1 = h ? xv[t].w : xv[t].y;
                mma_16816(SI ? A.acc[t][i] : A.tmp[t][i], a, b0, b1);
            }
        }
        if constexpr (FOLD) {  // the offsets: 1024 + z (low rows), 1024 + 16 z (high rows), every column
            const uint32_t kc[4] = {h2u(zau), h2u(zau), h2u(zbu), h2u(zbu)};
#pragma unroll
            for (int t = 0; t < NTOK; ++t) {
                float ck[4] = {A.tmpk[t][0], A.tmpk[t][1], A.tmpk[t][0], A.tmpk[t][1]};
                mma_16816(ck, kc, h ? xv[t].z : xv[t].x, h ? xv[t].w : xv[t].y);
                A.tmpk[t][0] = ck[0];
                A.tmpk[t][1] = ck[1];
            }
        }
    }
}

// The constants compute_pair takes for uniform zeros: the zero terms (subtracted from the
// dequantized halves, or with FOLD the constant fragment's rows) and the exponent bits that and_or
// merges into the nibbles, kept in a register rather than folded into an immediate.
struct DequantConsts {
    __half2 zau, zbu;
    uint32_t magic;
};
template <bool FOLD> __device__ __forceinline__ DequantConsts dequant_consts(int zero) {
    DequantConsts d;
    d.zau = __float2half2_rn(1024.0f + float(zero));
    d.zbu = __float2half2_rn(FOLD ? 1024.0f + 16.0f * float(zero) : -(64.0f + float(zero)));
    d.magic = 0x64006400u;
    asm volatile("" : "+r"(d.magic));
    return d;
}

// A batch: the weights of kQ4PairsPerBatch tile pairs (4 k-steps, 2 KB per warp).
struct WBatch {
    uint4 q[2 * kQ4PairsPerBatch];
};

template <int MODE>
__device__ __forceinline__ void load_w(WBatch &b, const uint4 *qp, int p, int pend) {
#pragma unroll
    for (int u = 0; u < kQ4PairsPerBatch; ++u)
        if (MODE == 2) {  // diagnostics: no memory traffic
            b.q[2 * u] = make_uint4(p * 0x9E3779B9u, u, p ^ 0x5555u, 7u);
            b.q[2 * u + 1] = make_uint4(p * 0x85EBCA6Bu, u, p ^ 0x3333u, 9u);
        } else if (p + u < pend) {
            b.q[2 * u] = ld_stream(qp + size_t(2 * (p + u)) * 32);
            b.q[2 * u + 1] = ld_stream(qp + size_t(2 * (p + u) + 1) * 32);
        }
}

// Where a warp stands in its groups: the first pair of the next group, and the current group's
// scales (and zeros) with the lane's shared-memory pointer to them. Groups are runs of whole tile
// pairs and a warp walks its pairs in order, so a group change is a compare, not a division.
struct GroupCursor {
    int next;          // first pair of the next group
    int pairs;         // pairs per group
    const __half *sp;  // the lane's scales (8 halves) of the current group; +64 per group
    int zoff;          // zeros at sp + zoff
    uint4 s, z;
};

// xs: this lane's activations of pair xbase (shared memory, or global memory when XD; see load_x).
// XD = 2: the weights are scaled in fp16 (compute_pair's SI), no group sums to flush.
template <int NTOK, bool ZT, int MODE, bool FOLD, int XD>
__device__ __forceinline__ void compute_w(const WBatch &b, Acc<NTOK> &A, GroupCursor &gc, int p, int pend,
                                          const __half *xs, int xbase, int xstride, uint32_t xok, __half2 zau,
                                          __half2 zbu, uint32_t magic) {
    // From global memory the whole batch's activations are loaded first: one wait per batch.
    uint4 xg[XD ? kQ4PairsPerBatch : 1][NTOK];
    if constexpr (XD != 0) {
#pragma unroll
        for (int u = 0; u < kQ4PairsPerBatch; ++u)
            load_x<NTOK, true>(xg[u], xs + (p + u - xbase) * kQ4PairK, xstride, p + u < pend ? xok : 0u);
    }
#pragma unroll
    for (int u = 0; u < kQ4PairsPerBatch; ++u) {
        const int pair = p + u;
        if (pair >= pend) break;
        if (q4_mode_loads_only(MODE)) {  // diagnostics: consume the loads, no dequantization or mma
            A.acc[0][0][0] += float((b.q[2 * u].x ^ b.q[2 * u + 1].w) & 1u);
            continue;
        }
        if (pair == gc.next) {  // the finished group's sums, scaled, into acc; the next group's scales
            if constexpr (XD != 2) flush_group<NTOK, FOLD>(A, gc.s);
            gc.next += gc.pairs;
            gc.sp += 64;
            gc.s = *reinterpret_cast<const uint4 *>(gc.sp);
            if constexpr (ZT) gc.z = *reinterpret_cast<const uint4 *>(gc.sp + gc.zoff);
        }
        if constexpr (XD != 0) {
            compute_pair<NTOK, ZT, FOLD, XD == 2>(b.q[2 * u], b.q[2 * u + 1], A, xg[u], gc.z, zau, zbu, magic, gc.s);
        } else {
            uint4 xv[NTOK];
            load_x<NTOK, false>(xv, xs + (pair - xbase) * kQ4PairK, xstride, xok);
            compute_pair<NTOK, ZT, FOLD>(b.q[2 * u], b.q[2 * u + 1], A, xv, gc.z, zau, zbu, magic);
        }
    }
}

} // namespace fused
} // namespace cuda
} // namespace gptq
