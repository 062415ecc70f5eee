// q4_gemm.cu — 4-bit x fp16 matrix products for the tiled layout of q4_layout.cuh.
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
// Large M goes through q4_dequant_f16 (tile -> fp16 via shared memory, coalesced 16-byte stores)
// and cuBLAS.
#include "q4_gemm.cuh"
#include "q4_wgmma.cuh"

#include "cuda_check.cuh"
#include "half_bits.cuh"
#include "launch.cuh"
#include "mem_ops.cuh"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace gptq {
namespace cuda {

namespace {

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Loads one scale (and zero) half per sub-tile j for this lane's column g: 8 halves, 16 bytes.
template <bool ZT>
__device__ __forceinline__ void load_group(const Q4Dev &w, int nt, int grp, int g, __half2 (&s2)[8],
                                           __half2 (&za)[8], __half2 (&zb)[8]) {
    size_t off = ((size_t(nt) * w.G + grp) * 8 + g) * 8;
    uint4 sv = __ldg(reinterpret_cast<const uint4 *>(w.scales + off));
    const uint32_t su[4] = {sv.x, sv.y, sv.z, sv.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        __half2 p = u2h(su[i]);
        s2[2 * i] = __low2half2(p);
        s2[2 * i + 1] = __high2half2(p);
    }
    if constexpr (ZT) {
        uint4 zv = __ldg(reinterpret_cast<const uint4 *>(w.zeros + off));
        const uint32_t zu[4] = {zv.x, zv.y, zv.z, zv.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const __half2 p = u2h(zu[i]);                              // 1024 + z
            const __half2 nz = __hsub2(__float2half2_rn(960.0f), p);  // -(64 + z), exact
            za[2 * i] = __low2half2(p);
            za[2 * i + 1] = __high2half2(p);
            zb[2 * i] = __low2half2(nz);
            zb[2 * i + 1] = __high2half2(nz);
        }
    }
}

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
            const __half2 zp = u2h(zu[i]);                              // 1024 + z
            const __half2 nz = __hsub2(__float2half2_rn(960.0f), zp);  // -(64 + z), exact
            za[2 * i] = __low2half2(zp);
            za[2 * i + 1] = __high2half2(zp);
            zb[2 * i] = __low2half2(nz);
            zb[2 * i + 1] = __high2half2(nz);
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
        if (MODE == 1 || MODE >= 3) {  // diagnostics: consume the loads, no dequantization or mma
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

// Writes v to (row, col): bias, then fp16 store or fp32 accumulate.
__device__ __forceinline__ void store1(const Q4Out &out, int row, int col, float v) {
    if (out.bias) v += __half2float(out.bias[col]);
    if (out.out16)
        out.out16[size_t(row) * out.ldo + col] = __float2half_rn(v);
    else
        out.out32[size_t(row) * out.ldo + col] += v;
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

// 8 fp32 values -> 8 fp16 in one uint4.
__device__ __forceinline__ uint4 pack8(const float (&v)[8]) {
    uint4 r;
    r.x = h2u(__floats2half2_rn(v[0], v[1]));
    r.y = h2u(__floats2half2_rn(v[2], v[3]));
    r.z = h2u(__floats2half2_rn(v[4], v[5]));
    r.w = h2u(__floats2half2_rn(v[6], v[7]));
    return r;
}

// Stores one 16-byte activation chunk (8 halves: k 8c..8c+7 of a tile pair) to shared memory. With
// the zero point folded (FOLD), halves 2, 3, 6, 7 (the fragment rows fed from high nibbles) are
// stored divided by 16, exactly (a power of two), so that the raw 1024 + 16 q times x / 16 equals
// 64 x + q x, as the low nibbles' 1024 + q times x is 1024 x + q x.
template <bool FOLD>
__device__ __forceinline__ void put8(__half *dst, uint4 v) {
    if constexpr (FOLD) {
        const __half2 s = __float2half2_rn(0.0625f);
        v.y = h2u(__hmul2(u2h(v.y), s));
        v.w = h2u(__hmul2(u2h(v.w), s));
    }
    *reinterpret_cast<uint4 *>(dst) = v;
}

// Writes the activation rows < M over the block's K range [32 p0, 32 p1) (stored order) to shared
// memory xs [M][ldxs], zeros past K; computing them first as the prologue says (q4_gemm.cuh).
// Every loop issues SB chunks' loads per thread before it uses any: the staging sits between the
// wait for the previous kernel and the first mma, so its round trips are not hidden. SB = 4 is the
// default; SB = 2 needs fewer registers (one more block per SM at one token), which pays where a
// plan has no split to shrink and would otherwise run a second wave (Q4Plan::stage_batch).
template <int SB, bool FOLD>
__device__ void stage_activations(const __half *__restrict__ x, int M, int ldx, int K, int p0, int p1, int ldxs,
                                  __half *xs, const Q4Prologue &pro, float *wst) {
    const int chunks = (p1 - p0) * (kQ4PairK / 8);  // 16-byte chunks per row
    const int kbase = p0 * kQ4PairK;
    const int total = M * chunks;
    if (pro.kind == 0) {
        for (int i0 = threadIdx.x; i0 < total; i0 += SB * kQ4Threads) {
            uint4 v[SB];
#pragma unroll
            for (int u = 0; u < SB; ++u) {
                const int idx = i0 + u * kQ4Threads;
                const int row = idx / chunks, k = kbase + (idx % chunks) * 8;
                v[u] = idx < total && k < K ? __ldg(reinterpret_cast<const uint4 *>(x + size_t(row) * ldx + k))
                                            : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int u = 0; u < SB; ++u) {
                const int idx = i0 + u * kQ4Threads;
                if (idx < total)
                    put8<FOLD>(xs + size_t(idx / chunks) * ldxs + (idx % chunks) * 8, v[u]);
            }
        }
        return;
    }
    if (pro.kind == 2) {  // SwiGLU of gate | up (K % 8 == 0: a chunk is all in or all out)
        for (int i0 = threadIdx.x; i0 < total; i0 += SB * kQ4Threads) {
            uint4 gv[SB], uv[SB];
#pragma unroll
            for (int u = 0; u < SB; ++u) {
                const int idx = i0 + u * kQ4Threads;
                const int row = idx / chunks, k = kbase + (idx % chunks) * 8;
                const bool in = idx < total && k < K;
                const __half *gr = pro.gu + size_t(row) * pro.ldgu;
                gv[u] = in ? __ldg(reinterpret_cast<const uint4 *>(gr + k)) : make_uint4(0u, 0u, 0u, 0u);
                uv[u] = in ? __ldg(reinterpret_cast<const uint4 *>(gr + K + k)) : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int u = 0; u < SB; ++u) {
                const int idx = i0 + u * kQ4Threads;
                if (idx >= total) continue;
                const uint32_t gw[4] = {gv[u].x, gv[u].y, gv[u].z, gv[u].w}, uw[4] = {uv[u].x, uv[u].y, uv[u].z, uv[u].w};
                float v[8];
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float2 g2 = __half22float2(u2h(gw[i])), u2 = __half22float2(u2h(uw[i]));
                    v[2 * i] = g2.x / (1.0f + __expf(-g2.x)) * u2.x;
                    v[2 * i + 1] = g2.y / (1.0f + __expf(-g2.y)) * u2.y;
                }
                // Past K the loads gave zeros, and silu(0) * 0 = 0.
                put8<FOLD>(xs + size_t(idx / chunks) * ldxs + (idx % chunks) * 8, pack8(v));
            }
        }
        return;
    }
    if (pro.kind == 4) {  // attention's ranges merged, a chunk of 8 columns within one head
        for (int idx = threadIdx.x; idx < total; idx += kQ4Threads) {
            const int row = idx / chunks, k = kbase + (idx % chunks) * 8;
            float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            if (k < K) {
                const int hq = k / pro.attn_d, d = k % pro.attn_d, used = pro.attn_used[row];
                const size_t part = (size_t(row) * pro.attn_heads + hq) * pro.attn_stride;
                const float *ml = pro.attn_ml + part * 2, *po = pro.attn_o + part * pro.attn_d + d;
                float mx = -INFINITY;
                for (int c = 0; c < used; ++c) mx = fmaxf(mx, __ldcg(ml + 2 * c));
                float wsum = 0.0f;
                for (int c = 0; c < used; ++c) {
                    const float2 r = __ldcg(reinterpret_cast<const float2 *>(ml + 2 * c));
                    const float e = __expf(r.x - mx);
                    wsum += e * r.y;
                    const float4 a = __ldcg(reinterpret_cast<const float4 *>(po + size_t(c) * pro.attn_d));
                    const float4 b = __ldcg(reinterpret_cast<const float4 *>(po + size_t(c) * pro.attn_d + 4));
                    v[0] += e * a.x, v[1] += e * a.y, v[2] += e * a.z, v[3] += e * a.w;
                    v[4] += e * b.x, v[5] += e * b.y, v[6] += e * b.z, v[7] += e * b.w;
                }
                const float inv = 1.0f / wsum;
#pragma unroll
                for (int i = 0; i < 8; ++i) v[i] *= inv;
            }
            put8<FOLD>(xs + size_t(row) * ldxs + (idx % chunks) * 8, pack8(v));
        }
        return;
    }
    if (pro.kind == 3) {  // SwiGLU of a deferred gate|up product: sum the shares in order first
        const int S = pro.gu_splits;
        for (int idx = threadIdx.x; idx < total; idx += kQ4Threads) {
            const int row = idx / chunks, k = kbase + (idx % chunks) * 8;
            float v[8];
            if (k < K) {
                float4 gs[2] = {make_float4(0.f, 0.f, 0.f, 0.f), make_float4(0.f, 0.f, 0.f, 0.f)};
                float4 us[2] = {gs[0], gs[1]};
#pragma unroll 4
                for (int sp = 0; sp < S; ++sp) {
                    const float *pr = pro.gu_part + (size_t(sp) * M + row) * pro.ldgu;
#pragma unroll
                    for (int hh = 0; hh < 2; ++hh) {
                        const float4 a = __ldcg(reinterpret_cast<const float4 *>(pr + k + 4 * hh));
                        const float4 b = __ldcg(reinterpret_cast<const float4 *>(pr + K + k + 4 * hh));
                        gs[hh].x += a.x; gs[hh].y += a.y; gs[hh].z += a.z; gs[hh].w += a.w;
                        us[hh].x += b.x; us[hh].y += b.y; us[hh].z += b.z; us[hh].w += b.w;
                    }
                }
                const float gf[8] = {gs[0].x, gs[0].y, gs[0].z, gs[0].w, gs[1].x, gs[1].y, gs[1].z, gs[1].w};
                const float uf[8] = {us[0].x, us[0].y, us[0].z, us[0].w, us[1].x, us[1].y, us[1].z, us[1].w};
#pragma unroll
                for (int i = 0; i < 8; ++i) {
                    const float gt = __half2float(__float2half_rn(gf[i])), up = __half2float(__float2half_rn(uf[i]));
                    v[i] = gt / (1.0f + __expf(-gt)) * up;
                }
            } else {
#pragma unroll
                for (int i = 0; i < 8; ++i) v[i] = 0.0f;
            }
            put8<FOLD>(xs + size_t(row) * ldxs + (idx % chunks) * 8, pack8(v));
        }
        return;
    }
    // RMSNorm: each row's sum of squares over all K columns (float4 loads, eight in flight per
    // thread), reduced per warp and then over the block's warps in a fixed order.
    __shared__ float s_part[kQ4FusedMaxM][kQ4Threads / 32];
    __shared__ float s_inv[kQ4FusedMaxM];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int K4 = K / 4;
    // With the stash (no perm), the values of the block's own K range are kept in shared memory as
    // they pass by (xst [M][SK] fp32, next to the norm weights wst [SK] staged before the wait),
    // so the normalized activations need no second trip to global memory.
    const int SK = (p1 - p0) * kQ4PairK;
    float *xst = wst ? wst + SK : nullptr;
    for (int row = 0; row < M; ++row) {
        const float4 *xr = reinterpret_cast<const float4 *>(pro.x32 + size_t(row) * pro.ldx32);
        float ss = 0.0f;
        for (int c0 = 0; c0 < K4; c0 += 8 * kQ4Threads) {
            float4 v[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                const int c = c0 + u * kQ4Threads + threadIdx.x;
                v[u] = c < K4 ? xr[c] : make_float4(0.f, 0.f, 0.f, 0.f);
            }
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                ss += v[u].x * v[u].x + v[u].y * v[u].y + v[u].z * v[u].z + v[u].w * v[u].w;
                const int off = 4 * (c0 + u * kQ4Threads + threadIdx.x) - kbase;
                if (xst && off >= 0 && off < SK) *reinterpret_cast<float4 *>(xst + size_t(row) * SK + off) = v[u];
            }
        }
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (lane == 0) s_part[row][warp] = ss;
    }
    __syncthreads();
    if (threadIdx.x < M) {
        float t = 0.0f;
#pragma unroll
        for (int i = 0; i < kQ4Threads / 32; ++i) t += s_part[threadIdx.x][i];
        s_inv[threadIdx.x] = rsqrtf(t / float(K) + pro.eps);
    }
    __syncthreads();
    if (pro.perm) {  // act-order: element-wise gather
        for (int idx = threadIdx.x; idx < total; idx += kQ4Threads) {
            const int row = idx / chunks, k = kbase + (idx % chunks) * 8;
            const float inv = s_inv[row];
            const float *xr = pro.x32 + size_t(row) * pro.ldx32;
            int src[8];
#pragma unroll
            for (int i = 0; i < 8; ++i) src[i] = k + i < K ? pro.perm[k + i] : -1;
            float v[8];
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = src[i] >= 0 ? xr[src[i]] * inv * pro.norm_w[src[i]] : 0.0f;
            put8<FOLD>(xs + size_t(row) * ldxs + (idx % chunks) * 8, pack8(v));
        }
        return;
    }
    if (wst) {  // from the stash (written before the barriers above)
        for (int idx = threadIdx.x; idx < total; idx += kQ4Threads) {
            const int row = idx / chunks, k = kbase + (idx % chunks) * 8;
            const float inv = s_inv[row];
            float v[8];
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const bool in = k + 4 * hh < K;
                const int off = k + 4 * hh - kbase;
                const float4 xv = in ? *reinterpret_cast<const float4 *>(xst + size_t(row) * SK + off)
                                     : make_float4(0.f, 0.f, 0.f, 0.f);
                const float4 wv = in ? *reinterpret_cast<const float4 *>(wst + off) : make_float4(0.f, 0.f, 0.f, 0.f);
                v[4 * hh] = xv.x * inv * wv.x;
                v[4 * hh + 1] = xv.y * inv * wv.y;
                v[4 * hh + 2] = xv.z * inv * wv.z;
                v[4 * hh + 3] = xv.w * inv * wv.w;
            }
            put8<FOLD>(xs + size_t(row) * ldxs + (idx % chunks) * 8, pack8(v));
        }
        return;
    }
    for (int i0 = threadIdx.x; i0 < total; i0 += SB * kQ4Threads) {
        // K % 4 == 0: each float4 half of a chunk is all in or all out.
        float4 xv[SB][2], wv[SB][2];
#pragma unroll
        for (int u = 0; u < SB; ++u) {
            const int idx = i0 + u * kQ4Threads;
            const int row = idx / chunks, k = kbase + (idx % chunks) * 8;
            const float *xr = pro.x32 + size_t(row) * pro.ldx32;
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const bool in = idx < total && k + 4 * hh < K;
                xv[u][hh] = in ? *reinterpret_cast<const float4 *>(xr + k + 4 * hh) : make_float4(0.f, 0.f, 0.f, 0.f);
                wv[u][hh] = in ? __ldg(reinterpret_cast<const float4 *>(pro.norm_w + k + 4 * hh))
                               : make_float4(0.f, 0.f, 0.f, 0.f);
            }
        }
#pragma unroll
        for (int u = 0; u < SB; ++u) {
            const int idx = i0 + u * kQ4Threads;
            if (idx >= total) continue;
            const float inv = s_inv[idx / chunks];
            float v[8];
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                v[4 * hh] = xv[u][hh].x * inv * wv[u][hh].x;
                v[4 * hh + 1] = xv[u][hh].y * inv * wv[u][hh].y;
                v[4 * hh + 2] = xv[u][hh].z * inv * wv[u][hh].z;
                v[4 * hh + 3] = xv[u][hh].w * inv * wv[u][hh].w;
            }
            put8<FOLD>(xs + size_t(idx / chunks) * ldxs + (idx % chunks) * 8, pack8(v));
        }
    }
}

// Where the K slices of a block meet (reusing the activation area): for each of the WN column
// tiles, one area of [NTOK*16][32 lanes] floats per slice but the first. The launcher reserves it.
template <int NTOK> constexpr int kKSliceAreaFloats = NTOK * 16 * 32;
template <int NTOK, int WN>
constexpr size_t kKSliceExchangeFloats = size_t(WN) * (kQ4Warps / WN - 1) * kKSliceAreaFloats<NTOK>;

// grid (strips of WN column tiles, splits); block: WN column tiles x (kQ4Warps / WN) K slices.
// XD (Q4Plan::x_direct, 16-token kernel, x as given): the activations are read from global memory
// at each batch instead of staged into shared memory over the split's K range, so no shared-memory
// cap cuts the K range into short splits. XD = 2 also scales the weights in fp16 (128 registers
// instead of 150: 4 blocks per SM instead of 3).
// CL: the launch groups the S splits of a strip into a thread-block cluster (1, S, 1) whose rank 0
// sums them from the others' shared memory (sm_90; a variant of its own: the branch in every
// kernel cost the 16-row fp16-scaled kernel ~5%, 70B gate|up 92.8-94.0 -> 97.2-98.9 µs).
// WN (Q4Plan::tiles_per_block): column tiles per block, 1 or 2.
template <int NTOK, bool ZT, int MODE = 0, int SB = 4, bool FOLD = false, int XD = 0, int WN = 2, bool CL = false>
__global__ void __launch_bounds__(kQ4Threads) q4_fused_kernel(const __half *__restrict__ x, int M, int ldx, Q4Dev w,
                                                              int pairs_per_split, float *__restrict__ partial,
                                                              unsigned *__restrict__ counters, Q4Out out,
                                                              Q4Prologue pro, int atomic_out) {
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
    for (int idx = threadIdx.x; MODE < 3 && idx < WN * f.ng * 8; idx += kQ4Threads) {
        const int t = idx / (f.ng * 8), gi = (idx / 8) % f.ng, ch = idx % 8;
        const int tile = blockIdx.x * WN + t;
        if (tile >= w.NT) continue;
        const size_t src = (size_t(tile) * w.G + g0 + gi) * 64 + ch * 8;
        const size_t dst = (size_t(t) * f.ng + gi) * 64 + ch * 8;
        *reinterpret_cast<uint4 *>(fsm + f.scale_off + dst) = __ldg(reinterpret_cast<const uint4 *>(w.scales + src));
        if constexpr (ZT)
            *reinterpret_cast<uint4 *>(fsm + f.zero_off + dst) = __ldg(reinterpret_cast<const uint4 *>(w.zeros + src));
    }
    // RMSNorm stash: the norm weights of the block's K range are constants, staged before the wait.
    float *wst = nullptr;
    if (pro.kind == 1 && pro.stash) {
        wst = reinterpret_cast<float *>(reinterpret_cast<char *>(fsm) + (f.bytes + 15) / 16 * 16);
        const int SK = (p1 - p0) * kQ4PairK, kb = p0 * kQ4PairK;
        for (int i = 4 * threadIdx.x; i < SK; i += 4 * kQ4Threads)
            *reinterpret_cast<float4 *>(wst + i) = kb + i < w.K
                                                       ? __ldg(reinterpret_cast<const float4 *>(pro.norm_w + kb + i))
                                                       : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    // Everything below reads or writes what earlier kernels in the stream touch.
    pdl_enter();
    if constexpr (!XD && MODE < 4) stage_activations<SB, FOLD>(x, M, ldx, w.K, p0, p1, f.ldxs, fsm, pro, wst);
    __syncthreads();

    if (active) {
        // Zero terms: subtracted from the dequantized halves, or (FOLD) the constant fragment's rows.
        const __half2 zau = __float2half2_rn(1024.0f + float(w.zero));
        const __half2 zbu = __float2half2_rn(FOLD ? 1024.0f + 16.0f * float(w.zero) : -(64.0f + float(w.zero)));
        uint32_t magic = 0x64006400u;  // a register (see and_or), not an immediate
        asm volatile("" : "+r"(magic));
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
#define Q4_COMPUTE(r, pp) compute_w<NTOK, ZT, MODE, FOLD, XD>(r, A, gc, pp, q1, xs, xbase, xstride, xok, zau, zbu, magic)
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

    if constexpr (MODE == 5) {  // diagnostics: the loop alone, no epilogue
        if (A.acc[0][0][0] == -1.0f) out.out16[0] = __float2half(0.0f);
        return;
    }
    // The K slices of a column tile meet in shared memory (kKSliceExchangeFloats): slices 1..WK-1
    // write their sums to areas of their own, one barrier, and slice 0 adds them in order.
    // red: the first of column tile wn's WK - 1 areas.
    constexpr int kRedFloats = kKSliceAreaFloats<NTOK>;
    float *red = reinterpret_cast<float *>(fsm) + size_t(wn) * (WK - 1) * kRedFloats;
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

    if (out.defer) {  // deferred reduction: every split's share to its slice, the consumer sums
        if (wk != 0 || nt >= w.NT) return;
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M) __stcg(out.defer + (size_t(split) * M + row) * NP + col, v);
        });
        return;
    }

    if constexpr (CL) {  // the splits of a strip are one cluster (1, S, 1): rank 0 adds the others' sums
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        // Each lane's NTOK x 16 sums as float4s in the K-slice exchange area of its warp (only slice
        // 0's warp read it last, in another layout: the warp's own barrier orders that first).
        float4 *mine = reinterpret_cast<float4 *>(red) + size_t(lane) * NTOK * 4;
        __syncwarp();
        if (wk == 0) {
#pragma unroll
            for (int t = 0; t < NTOK; ++t)
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    mine[t * 4 + i] = make_float4(A.acc[t][i][0], A.acc[t][i][1], A.acc[t][i][2], A.acc[t][i][3]);
        }
        cluster_sync();
        if (cluster_rank() == 0 && wk == 0 && nt < w.NT) {
            for (int r = 1; r < S; ++r) {  // in split order: the same sum on every run
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
            for_each_output(A, nt, g, c, [&](int row, int col, float v) {
                if (row < M && col < w.N) store1(out, row, col, v);
            });
        }
        cluster_sync();  // the others' shared memory stays until rank 0 has read it
#endif
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
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M && col < w.N) {
                if (out.bias && split == 0) v += __half2float(out.bias[col]);
                atomicAdd(out.out32 + size_t(row) * out.ldo + col, v);
            }
        });
        return;
    }

    // atomic_out 2 (fp16 output): partial is the fp32 sums [M][NP]; every split adds its share, the
    // last block rounds the sums and zeroes them for the next launch (launch_fused says when).
    if (wk == 0 && nt < w.NT)
        for_each_output(A, nt, g, c, [&](int row, int col, float v) {
            if (row < M && col < w.N) {
                if (atomic_out == 2) atomicAdd(partial + size_t(row) * NP + col, v);
                else __stcg(partial + (size_t(split) * M + row) * NP + col, v);
            }
        });
    __threadfence();
    __syncthreads();
    __shared__ unsigned s_last;
    if (threadIdx.x == 0) s_last = (atomicAdd(&counters[blockIdx.x], 1u) == unsigned(S - 1));
    __syncthreads();
    if (!s_last) return;
    __threadfence();
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

std::atomic<int> &atomic_switch() {
    static std::atomic<int> on{[] {
        const char *e = std::getenv("GPTQ_CUDA_DETERMINISTIC");
        return (e && std::strcmp(e, "1") == 0) ? 0 : 1;
    }()};
    return on;
}
bool q4_atomic_enabled() { return atomic_switch().load(std::memory_order_relaxed) != 0; }

// The RMSNorm stash (one global round trip after the wait instead of two); GPTQ_Q4_NORM_STASH=0
// switches it off (measurements), read at every launch.
bool q4_norm_stash_enabled() {
    const char *e = std::getenv("GPTQ_Q4_NORM_STASH");
    return !(e && std::strcmp(e, "0") == 0);
}

// One warp expands one 16x64 tile into fp16 through shared memory.
__global__ void __launch_bounds__(128) q4_dequant_kernel(Q4Dev w, __half *__restrict__ W, int ldw) {
    pdl_enter();
    __shared__ __align__(16) __half tile[4][16][72];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const size_t t = size_t(blockIdx.x) * 4 + warp;
    if (t >= size_t(w.NT) * w.KT) return;
    const int nt = int(t / w.KT), kt = int(t % w.KT);
    const uint4 q = __ldg(w.qw + t * 32 + lane);
    __half2 s2[8], za[8], zb[8];
    if (w.zeros) {
        load_group<true>(w, nt, kt / w.group_kt, g, s2, za, zb);
    } else {
        load_group<false>(w, nt, kt / w.group_kt, g, s2, za, zb);
        for (int j = 0; j < 8; ++j) {
            za[j] = __float2half2_rn(1024.0f + float(w.zero));
            zb[j] = __float2half2_rn(-(64.0f + float(w.zero)));
        }
    }
    const __half2 sixteenth = __float2half2_rn(0.0625f);
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
    __half (*tl)[72] = tile[warp];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint32_t lo = words[i], hi = words[i] >> 8;
#pragma unroll
        for (int s = 0; s < 2; ++s) {
            const int j = 2 * i + s;
            const uint32_t v = s ? hi : lo;
            const __half2 b0 = __hmul2(__hsub2(u2h((v & 0x000F000Fu) | 0x64006400u), za[j]), s2[j]);
            const __half2 b1 = __hmul2(__hfma2(u2h((v & 0x00F000F0u) | 0x64006400u), sixteenth, zb[j]), s2[j]);
            const int col = j * 8 + g;
            tl[2 * c][col] = __low2half(b0);
            tl[2 * c + 1][col] = __high2half(b0);
            tl[2 * c + 8][col] = __low2half(b1);
            tl[2 * c + 9][col] = __high2half(b1);
        }
    }
    __syncwarp();
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const int id = lane + 32 * r;
        const int row = id / 8, ch = id % 8;  // fragment row -> weight row (q4_layout.cuh)
        const int wrow = (kt / 2) * kQ4PairK + 8 * ((row % 8) / 2) + 4 * (kt % 2) + 2 * (row / 8) + row % 2;
        *reinterpret_cast<uint4 *>(W + size_t(wrow) * ldw + nt * kQ4TileN + ch * 8) =
            *reinterpret_cast<const uint4 *>(&tl[row][ch * 8]);
    }
}

__global__ void gather_columns_kernel(const __half *__restrict__ x, int M, int ldx, const int32_t *__restrict__ perm,
                                      int K, __half *__restrict__ xp) {
    pdl_enter();
    const int m = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < K; i += gridDim.x * blockDim.x)
        xp[size_t(m) * K + i] = x[size_t(m) * ldx + perm[i]];
}

template <class T>
__global__ void add_bias_kernel(T *__restrict__ y, int M, int N, int ldy, const __half *__restrict__ bias) {
    pdl_enter();
    const int m = blockIdx.y;
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        float v = float(y[size_t(m) * ldy + n]) + __half2float(bias[n]);
        y[size_t(m) * ldy + n] = T(v);
    }
}

// Shared memory of the current device: per SM, and what one block may opt in to (capped at
// kQ4SmemMaxBytes).
struct DeviceSmem {
    size_t per_sm, per_block;
};
DeviceSmem device_smem() {
    DeviceSmem d;
    d.per_sm = size_t(device_attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor, 48 * 1024));
    d.per_block = std::min(kQ4SmemMaxBytes, size_t(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024)));
    return d;
}

// Whether uniform-zero layers take the folded zero point (Acc): GPTQ_Q4_FOLD=0/1, read at every
// launch (the tests run both).
bool q4_fold_enabled() { return env_int("GPTQ_Q4_FOLD", 1) != 0; }

} // namespace

size_t q4_smem_cap() {
    const int kb = env_int("GPTQ_Q4_SMEM_KB", 47);
    return std::min(device_smem().per_block, size_t(std::max(16, kb)) * 1024);
}

namespace {

template <int NTOK, bool ZT, int MODE, int SB, bool FOLD, int XD, int WN>
void launch_fused_tiles(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                        const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue &pro) {
    dim3 grid(plan.strips, plan.splits);
    const size_t red = kKSliceExchangeFloats<NTOK, WN> * sizeof(float);  // the K slices meet there
    size_t smem = std::max(plan_smem(XD ? 0 : M, plan.pairs_per_split, w), red);
    if (smem > device_smem().per_block)
        fail(GPTQ_ERR_BACKEND, "q4_fused: plan needs %zu bytes of shared memory", smem);
    Q4Prologue p = pro;
    p.stash = 0;
    if (p.kind == 1 && !p.perm && q4_norm_stash_enabled()) {  // room for the RMSNorm stash?
        const size_t with = (plan_smem(M, plan.pairs_per_split, w) + 15) / 16 * 16 +
                            (size_t(M) + 1) * plan.pairs_per_split * kQ4PairK * sizeof(float);
        if (with <= q4_smem_cap()) {
            p.stash = 1;
            smem = std::max(smem, with);
        }
    }
    // 1: fp32 output, the splits add into it; 2: fp16 output, the splits add into sc.sums and the
    // last block rounds; 0: partials summed in order by the last block. Into fp16 the sums pay at up
    // to 8 rows and, above, from 5 splits on; measured against the ordered partials in one run
    // (H200, graph-timed, fp16 outputs): one row of 7B q|k|v (4 splits) 11.1 vs 11.9 us, of o_proj
    // (12) 7.1 vs 11.2, of down 10.8 vs 14.7; 16 rows of o_proj (5 splits) 12.7 vs 17.7, of down (9)
    // 17.6 vs 27.6, of 70B down (21) 73.0 vs 93.5, of 70B gate|up (7) 145.9 vs 156.1; but 16 rows of
    // 7B gate|up (4 splits, one wave) 30.5 vs 26.6 (every block then waits for its atomics to land
    // before it counts itself done, which reading back four slices does not outweigh). The direct
    // activations' plans (XD) from 2 splits on, against this rule, eager-timed in one run: 16 rows
    // of 7B q|k|v (4 splits) 19.2 vs 20.1 us (a later run: 20.2 under the rule, i.e. within the
    // spread), 7B gate|up (2) 30.8 vs 27.6, 70B gate|up (2) 134.9 vs 128.4.
    constexpr int kSumsMinSplits = 5;  // above 8 rows
    int atomic_out = 0;
    if (plan.splits > 1 && q4_atomic_enabled()) {
        if (out.out32) atomic_out = 1;
        else if (out.out16 && (M <= 8 || plan.splits >= kSumsMinSplits) && sc.sums && sc.sums_floats >= plan.sums_floats)
            atomic_out = 2;
    }
    // Two splits into fp16 (sm_90): the strip's two blocks form a thread-block cluster and split 0
    // adds the other's sums from its shared memory (no atomics, counter or scratch; the same sum on
    // every run). Measured (H200, graph-timed, one binary): 7B gate|up (2 splits) one row 16.6 ->
    // 15.3 µs, 16 rows 26.2 -> 23.1, decode b=16 3848-3850 -> 3932-3938 tok/s; but clusters of 4
    // and 6 were far slower than the atomic sums (q|k|v one row 11.2 -> 17.8, 16 rows 19.3 -> 26.0;
    // 70B down 33.5 -> 52.4; decode b=16 3791-3806 -> 3661-3710), so two splits only.
    // GPTQ_Q4_CLUSTER=0 never, =N up to N <= 8 splits (measurements, tests; read at every launch).
    // The variant exists for the kernels of the 7B shapes' two-split plans: one token (folded zero
    // point) and 9-16 rows read directly.
    constexpr bool kClusterable = MODE == 0 && !ZT && ((NTOK == 1 && FOLD && SB == 4) || (NTOK == 2 && XD == 1));
    auto kernel = q4_fused_kernel<NTOK, ZT, MODE, SB, FOLD, XD, WN>;
    unsigned cluster = 1;  // blocks per cluster along the splits
    if constexpr (kClusterable) {
        const int cluster_max = std::min(8, env_int("GPTQ_Q4_CLUSTER", 2));
        if (plan.splits > 1 && plan.splits <= cluster_max && out.out16 && !out.defer &&
            device_attribute(cudaDevAttrComputeCapabilityMajor, 0) >= 9) {
            kernel = q4_fused_kernel<NTOK, ZT, MODE, SB, FOLD, XD, WN, true>;
            cluster = unsigned(plan.splits);
            atomic_out = 0;  // the cluster sums in shared memory: no atomics, partials or counters
        }
    }
    allow_dynamic_smem(kernel, smem);
    launch_clustered(kernel, grid, kQ4Threads, smem, stream, dim3(1, cluster, 1), x, M, ldx, w, plan.pairs_per_split,
                     atomic_out == 2 ? sc.sums : sc.partial, sc.counters, out, p, atomic_out);
    CUDA_CHECK_LAUNCH();
}

// The kernel for the plan's tiles per block (one tile: up to 16 rows).
template <int NTOK, bool ZT, int MODE = 0, int SB = 4, bool FOLD = false, int XD = 0>
void launch_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                  const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue &pro) {
    if constexpr (NTOK <= 2) {
        if (plan.tiles_per_block == 1) {
            launch_fused_tiles<NTOK, ZT, MODE, SB, FOLD, XD, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
    }
    launch_fused_tiles<NTOK, ZT, MODE, SB, FOLD, XD, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
}

template <int NTOK>
void launch_fused_z(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                    const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue &pro) {
    // Folded zero point for up to 8 rows only: measured (H200) decode b=1 569 vs 556 tok/s with it,
    // but 16-row products ~1% slower (the extra mma weighs more at two token tiles).
    const bool fold = NTOK == 1 && q4_fold_enabled();
    if constexpr (NTOK == 1) {
        if (plan.stage_batch == 2) {
            if (w.zeros) launch_fused<1, true, 0, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
            else if (fold) launch_fused<1, false, 0, 2, true>(x, M, ldx, w, out, plan, sc, stream, pro);
            else launch_fused<1, false, 0, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
    }
    if constexpr (NTOK == 2) {
        if (plan.x_direct) {
            if (plan.x_direct == 2) {
                if (w.zeros) launch_fused<2, true, 0, 4, false, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
                else launch_fused<2, false, 0, 4, false, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
            } else if (w.zeros) launch_fused<2, true, 0, 4, false, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
            else launch_fused<2, false, 0, 4, false, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
    }
    if (w.zeros) {
        launch_fused<NTOK, true>(x, M, ldx, w, out, plan, sc, stream, pro);
        return;
    }
    if constexpr (NTOK == 1) {
        if (fold) {
            launch_fused<1, false, 0, 4, true>(x, M, ldx, w, out, plan, sc, stream, pro);
            return;
        }
    }
    launch_fused<NTOK, false>(x, M, ldx, w, out, plan, sc, stream, pro);
}

} // namespace

namespace {

// Resident blocks per SM of the fused kernel for M rows (registers bound it; the shared memory of
// a small-M plan is a few KB).
// The one-token entries ask the instantiation that runs (folded zero point or not); all ask the
// two-tile kernels, whose one-tile twins fit as many blocks (ptxas, sm_90a: 168 / 168 registers
// for one token, 150 / 158 for 16 rows read directly, 128 / 128 for the fp16-scaled kernel).
int fused_blocks_per_sm(int M, int stage_batch = 4, int x_direct = 0) {
    const bool fold = M <= 8 && q4_fold_enabled();
    int i;  // 0 / 3: one token, staging batch 4 / 2; 4 / 5: the same folded; 1, 2: 16, 32 rows;
            // 6 / 7: 16 rows with direct activations (Q4Plan::x_direct 1 / 2)
    if (M > 8 && M <= 16 && x_direct) i = x_direct == 2 ? 7 : 6;
    else if (M > 8) i = M <= 16 ? 1 : 2;
    else if (stage_batch == 2) i = fold ? 5 : 3;
    else i = fold ? 4 : 0;
    return once_per_device<int>(uintptr_t(i), 1, [i](int) {
        int n = 0;
        cudaError_t e = cudaSuccess;
        const size_t smem = 8 * 1024;
        if (i == 0) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<1, false, 0>, kQ4Threads, smem);
        else if (i == 1) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<2, false, 0>, kQ4Threads, smem);
        else if (i == 2) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<4, false, 0>, kQ4Threads, smem);
        else if (i == 3) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<1, false, 0, 2>, kQ4Threads, smem);
        else if (i == 4) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<1, false, 0, 4, true>, kQ4Threads, smem);
        else if (i == 6) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<2, false, 0, 4, false, 1>, kQ4Threads, smem);
        else if (i == 7) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<2, false, 0, 4, false, 2>, kQ4Threads, smem);
        else e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, q4_fused_kernel<1, false, 0, 2, true>, kQ4Threads, smem);
        if (e != cudaSuccess) {
            cudaGetLastError();
            n = 1;
        }
        return std::max(1, n);
    });
}

std::atomic<int> &split_fit_switch() {  // -1: by M (the default), 0: off, 1: on
    static std::atomic<int> on{env_int("GPTQ_Q4_SPLIT_FIT", -1)};
    return on;
}

// The staging batch at M <= 8: -1 chooses per plan (the default), 2 or 4 forces
// (GPTQ_Q4_STAGE_BATCH; read at every plan, as the tests switch it).
int stage_batch_mode() {
    const int v = env_int("GPTQ_Q4_STAGE_BATCH", -1);
    return v == 2 || v == 4 ? v : -1;
}

// Q4Plan::tiles_per_block forced: GPTQ_Q4_BLOCK_TILES=1 or 2 (read at every plan; the tests
// switch it); -1: as planned. One tile per block is taken for up to 16 rows only.
int block_tiles_mode() {
    const int v = env_int("GPTQ_Q4_BLOCK_TILES", -1);
    return v == 1 || v == 2 ? v : -1;
}

// Whether a call may read its activations directly (Q4Plan::x_direct): the 16-token kernel only, x
// as given, and whole tile pairs of K in x (no zero fill past K).
bool x_direct_allowed(int M, const Q4Dev &w, int prologue) {
    return M > 8 && M <= 16 && prologue == 0 && w.K % kQ4PairK == 0;
}

// Q4Plan::x_direct for M rows of w under prologue kind `prologue`: 0 where x_direct_allowed says
// no; -1: direct, the kernel chosen by the plan. GPTQ_Q4_XDIRECT=0 / 1 / 2 (read at every plan; the
// tests switch it) forces staged / either.
int x_direct_for(int M, const Q4Dev &w, int prologue) {
    if (!x_direct_allowed(M, w, prologue)) return 0;
    const int v = env_int("GPTQ_Q4_XDIRECT", -1);
    return v >= 0 && v <= 2 ? v : -1;
}

} // namespace

void q4_set_split_fit(int mode) { split_fit_switch() = mode < 0 ? -1 : (mode ? 1 : 0); }
void q4_set_atomic_accumulate(bool on) { atomic_switch() = on ? 1 : 0; }

Q4Plan q4_plan(int M, const Q4Dev &w, int sm_count, int blocks_per_sm_target, int prologue_kind) {
    Q4Plan p;
    const int KP = w.KT / 2;
    const int tiles_mode = block_tiles_mode();
    if (M <= 16 && tiles_mode == 1) p.tiles_per_block = 1;
    p.strips = (w.NT + p.tiles_per_block - 1) / p.tiles_per_block;
    p.x_direct = x_direct_for(M, w, prologue_kind);
    if (p.x_direct < 0) {
        // The fp16-scaling kernel pays a multiply per weight pair for a fourth block per SM; measured
        // (H200, graph-timed, 16 rows, against the 3-block kernel): 70B gate|up 92.0 µs over one
        // split in one wave (95.5 over two) vs 118.4, but 7B q|k|v 21.6 vs 19.4, gate|up 30.3 vs
        // 26.2, 70B down 59.5 vs 50.5, decode b=16 3754 vs 3813 tok/s. So it runs where its fourth
        // block is what puts every strip in one wave.
        const int sms = std::max(1, sm_count);
        p.x_direct = p.strips > sms * fused_blocks_per_sm(M, 4, 1) && p.strips <= sms * fused_blocks_per_sm(M, 4, 2)
                         ? 2 : 1;
    }
    // Rows of activations a block stages (none when it reads them directly).
    const int staged = p.x_direct ? 0 : M;
    // Measured (bench-kernels run 16): 3 blocks per SM suits M <= 8; from 9 rows on fewer splits
    // win (the partial sums grow with M). Atomic fp32 outputs had 2 while 3 still made a second
    // wave; under the one-wave fit 3 is better for them too (lead's run of 2026-11-23: decode
    // b=1 410.2 tok/s at 3 against 389.5 at 2).
    const bool default_target = blocks_per_sm_target <= 0;
    // Direct activations (16 rows) plan as one token does (no staged rows make splits costly), with
    // as many blocks per SM as their kernel fits (3, or 4 with the fp16 scaling).
    if (default_target) blocks_per_sm_target = M <= 8 ? 3 : p.x_direct ? 4 : 1;
    int splits;
    const int fit_mode = split_fit_switch().load(std::memory_order_relaxed);
    const int sb_mode = stage_batch_mode();
    if (fit_mode == 1 || (fit_mode < 0 && (M <= 8 || p.x_direct))) {
        // Whole blocks in one wave: never more blocks than can be resident at once.
        const int resident =
            std::max(1, sm_count) * std::min(blocks_per_sm_target, fused_blocks_per_sm(M, 4, p.x_direct));
        // One column tile per block, for x as given, where its strips fit in one wave with the
        // activations of their splits in shared memory (8 staged rows of gate|up's whole K do not:
        // the cap would cut each strip into 2 splits, 688 blocks in two waves, 17.2 -> 22.8 µs), and
        // at up to 8 rows only where that leaves a strip at most two splits (a cluster, or none: no
        // global round trip at the end). Measured (H200, graph-timed, µs, two tiles -> one): one row
        // of 7B q|k|v (4 splits -> 2) 11.6 -> 10.2, gate|up (2 -> 1) 15.4 -> 14.1, 4 rows 12.4 -> 10.9
        // and 16.1 -> 15.8, 8 rows of q|k|v 13.4 -> 12.0; but one row of o_proj (12 -> 6) 7.2 -> 7.6,
        // 70B down (6 -> 3) 33.7 -> 34.4, down 11.1 -> 10.9; 16 rows read directly: q|k|v 19.3 ->
        // 13.4, o_proj 11.3 -> 9.6, gate|up 23.2 -> 20.0, down 16.0 -> 14.9, 70B down 50.8 -> 50.9;
        // 70B gate|up's 896 tiles (more than one wave) 90.4 -> 122.2 in a trial build. Decode
        // (bench-e2e): b=16 3905 -> 4204 tok/s; b=1 584 -> 542 with the rule applied to its
        // prologues and deferred outputs (no split epilogue to save, twice the K range to stage
        // per block), so not with a prologue.
        const int single_splits = std::max(1, resident / std::max(1, w.NT));
        if (M <= 16 && tiles_mode < 0 && prologue_kind == 0 && w.NT <= resident &&
            plan_smem(staged, (KP + single_splits - 1) / single_splits, w) <= q4_smem_cap() &&
            (M > 8 || single_splits <= 2)) {
            p.tiles_per_block = 1;
            p.strips = w.NT;
        }
        splits = std::max(1, resident / p.strips);
        // Direct activations, more strips than resident blocks (16 rows of 70B gate|up on the
        // 3-block kernel: 448 strips, 396 blocks; measured S1 144.3, S2 127.0 µs): the second wave
        // would be a few blocks of the full K range; a split per wave of strips shortens it.
        if (p.x_direct && p.strips > resident) splits = (p.strips + resident - 1) / resident;
        // More strips than resident blocks (one split each; the 70B gate|up at one token): the
        // leaner staging fits one more block per SM, and with it perhaps the whole plan in one wave.
        if (M <= 8 && sb_mode < 0 && p.strips > resident &&
            p.strips <= std::max(1, sm_count) * fused_blocks_per_sm(M, 2))
            p.stage_batch = 2;
    } else {
        const int target = std::max(1, sm_count) * blocks_per_sm_target;
        splits = std::max(1, (target + p.strips - 1) / p.strips);
    }
    if (M <= 8 && sb_mode == 2) p.stage_batch = 2;
    const int forced = env_int("GPTQ_Q4_SPLITS", 0);  // measurements: a split count forced
    if (forced > 0) splits = forced;
    // Keep at least two batches per warp so that loads overlap compute.
    splits = std::min(splits, std::max(1, KP / (2 * (kQ4Warps / p.tiles_per_block) * kQ4PairsPerBatch)));
    p.pairs_per_split = (KP + splits - 1) / splits;
    // The block's activations and scales must fit in its shared memory.
    const size_t cap = q4_smem_cap();
    while (p.pairs_per_split > 1 && plan_smem(staged, p.pairs_per_split, w) > cap)
        p.pairs_per_split = std::max(1, p.pairs_per_split * 7 / 8);
    p.splits = (KP + p.pairs_per_split - 1) / p.pairs_per_split;
    // Many rows, and the shared-memory cap left more blocks than fit at once (16 rows of 7B gate|up:
    // 4 splits of 172 strips = 688 blocks for 396 slots, two waves): as many splits as one wave
    // holds, with more shared memory per block, as long as the SM still holds the resident count
    // (H200: 33.5 -> 26.5 us; q|k|v and down, already in one wave, keep their plans).
    if (default_target && M > 8 && !p.x_direct && fit_mode < 0) {
        const int per_sm = fused_blocks_per_sm(M);
        const int resident = std::max(1, sm_count) * per_sm;
        if (p.strips * p.splits > resident && p.strips <= resident) {
            const int ws = std::max(1, resident / p.strips);
            const int pps = (KP + ws - 1) / ws;
            const DeviceSmem d = device_smem();
            const size_t room = d.per_sm / size_t(per_sm) - 1024;  // the driver keeps 1 KB per block
            if (ws < p.splits && plan_smem(M, pps, w) <= std::min(room, d.per_block)) {
                p.pairs_per_split = pps;
                p.splits = ws;
            }
        }
    }
    // Even out the splits the shrinking left (16 rows of 7B q|k|v: 42, 42, 42, 2 pairs -> 4 x 32;
    // the short last split made the strip wait on the long ones: 25.2 -> 21.7 us measured).
    p.pairs_per_split = (KP + p.splits - 1) / p.splits;
    p.partial_floats = p.splits > 1 ? size_t(p.splits) * M * w.NT * kQ4TileN : 0;
    p.sums_floats = p.splits > 1 ? size_t(M) * w.NT * kQ4TileN : 0;
    return p;
}

void q4_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
              const Q4Scratch &sc, cudaStream_t stream, const Q4Prologue *pro_in) {
    const Q4Prologue pro = pro_in ? *pro_in : Q4Prologue();
    if (pro.kind == 1 && (w.K % 4 || pro.ldx32 % 4 || (reinterpret_cast<uintptr_t>(pro.x32) & 15) || !pro.norm_w ||
                          (!pro.perm && (reinterpret_cast<uintptr_t>(pro.norm_w) & 15))))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the RMSNorm prologue needs K %% 4 == 0 and 16-byte aligned rows (K %d)", w.K);
    if (pro.kind == 2 && (w.K % 8 || pro.ldgu % 8 || (reinterpret_cast<uintptr_t>(pro.gu) & 15)))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the SwiGLU prologue needs K %% 8 == 0 and 16-byte aligned rows (K %d)", w.K);
    if (pro.kind < 0 || pro.kind > 4) fail(GPTQ_ERR_BACKEND, "q4_fused: unknown prologue %d", pro.kind);
    if (pro.kind == 4 && (w.K % 8 || pro.attn_d % 8 || pro.attn_d <= 0 || w.perm || !pro.attn_o || !pro.attn_ml ||
                          !pro.attn_used || w.K != pro.attn_heads * pro.attn_d))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the attention-merge prologue needs K = heads * D, K %% 8 == 0 and no perm (K %d)",
             w.K);
    if (M < 1 || M > kQ4FusedMaxM) fail(GPTQ_ERR_BACKEND, "q4_fused: M = %d outside 1..%d", M, kQ4FusedMaxM);
    if ((out.out16 != nullptr) + (out.out32 != nullptr) + (out.defer != nullptr) != 1)
        fail(GPTQ_ERR_BACKEND, "q4_fused: exactly one output must be set");
    if (out.defer && out.bias) fail(GPTQ_ERR_BACKEND, "q4_fused: a deferred output takes no bias");
    const size_t shares = size_t(plan.splits) * M * w.NT * kQ4TileN;  // floats of a deferred output
    if (out.defer && shares > out.defer_floats)
        fail(GPTQ_ERR_BACKEND, "q4_fused: the deferred shares need %zu floats, the buffer has %zu", shares,
             out.defer_floats);
    if (pro.kind == 3 && (w.K % 8 || pro.ldgu % 4 || pro.gu_splits < 1 || (reinterpret_cast<uintptr_t>(pro.gu_part) & 15)))
        fail(GPTQ_ERR_BACKEND, "q4_fused: the deferred SwiGLU prologue needs K %% 8 == 0 and aligned shares (K %d)", w.K);
    if (pro.kind == 0 && (ldx % 8 || (reinterpret_cast<uintptr_t>(x) & 15)))
        fail(GPTQ_ERR_BACKEND, "q4_fused: x must be 16-byte aligned with ldx %% 8 == 0 (ldx %d)", ldx);
    if (out.ldo % 2)
        fail(GPTQ_ERR_BACKEND, "q4_fused: ldo must be even (ldo %d)", out.ldo);
    if (plan.splits > 1) {
        if (plan.partial_floats > sc.partial_floats || plan.strips > sc.n_counters)
            fail(GPTQ_ERR_BACKEND, "q4_fused: scratch too small (%zu floats / %d counters; need %zu / %d)",
                 sc.partial_floats, sc.n_counters, plan.partial_floats, plan.strips);
    }
    if (plan.tiles_per_block != 2 && !(plan.tiles_per_block == 1 && M <= 16))
        fail(GPTQ_ERR_BACKEND, "q4_fused: %d column tiles per block (1 for up to 16 rows, or 2)", plan.tiles_per_block);
    if (plan.x_direct && !x_direct_allowed(M, w, pro.kind))
        fail(GPTQ_ERR_BACKEND, "q4_fused: direct activations need 9..16 rows, x as given and K %% 32 == 0 (M %d, K %d)",
             M, w.K);
    if (M <= 8)
        launch_fused_z<1>(x, M, ldx, w, out, plan, sc, stream, pro);
    else if (M <= 16)
        launch_fused_z<2>(x, M, ldx, w, out, plan, sc, stream, pro);
    else
        launch_fused_z<4>(x, M, ldx, w, out, plan, sc, stream, pro);
}

__global__ void empty_kernel() {}

void q4_fused_diagnostic(int mode, const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out,
                         const Q4Plan &plan, const Q4Scratch &sc, cudaStream_t stream) {
    if (M > 16 || w.zeros) fail(GPTQ_ERR_BACKEND, "q4_fused_diagnostic: M <= 16 and uniform zeros only");
    const Q4Prologue pro;
    const bool fold = q4_fold_enabled();
    if (mode == 3) {
        empty_kernel<<<1, 32, 0, stream>>>();
        CUDA_CHECK_LAUNCH();
    } else if (M <= 8) {
        if (mode == 1) launch_fused<1, false, 1>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 4) launch_fused<1, false, 3>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 5) launch_fused<1, false, 4>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 6) launch_fused<1, false, 5>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 2 && fold) launch_fused<1, false, 2, 4, true>(x, M, ldx, w, out, plan, sc, stream, pro);
        else if (mode == 2) launch_fused<1, false, 2>(x, M, ldx, w, out, plan, sc, stream, pro);
        else launch_fused<1, false, 0>(x, M, ldx, w, out, plan, sc, stream, pro);
    } else {  // the 16-row kernel the plan names: staged, direct, or direct with fp16 scaling
        auto run = [&](auto xd) {
            constexpr int XD = decltype(xd)::value;
            if (mode == 1) launch_fused<2, false, 1, 4, false, XD>(x, M, ldx, w, out, plan, sc, stream, pro);
            else if (mode == 2) launch_fused<2, false, 2, 4, false, XD>(x, M, ldx, w, out, plan, sc, stream, pro);
            else launch_fused<2, false, 0, 4, false, XD>(x, M, ldx, w, out, plan, sc, stream, pro);
        };
        if (plan.x_direct == 2) run(std::integral_constant<int, 2>{});
        else if (plan.x_direct == 1) run(std::integral_constant<int, 1>{});
        else run(std::integral_constant<int, 0>{});
    }
}

Q4Plan q4_default_plan(int M, const Q4Dev &w, const Q4Workspace &ws, int prologue_kind) {
    return q4_plan(M, w, ws.sm_count, 0, prologue_kind);
}

namespace {

// The fused kernel over M rows in passes of up to kQ4FusedMaxM: each pass's rows of x (or of the
// prologue's inputs) and of the output. Returns the last pass's splits.
int fused_passes(const __half *x, int ldx, const Q4Prologue *pro, int M, const Q4Dev &w, const Q4Out &out,
                 const Q4Workspace &ws, cudaStream_t stream) {
    int splits = 0;
    for (int m0 = 0; m0 < M; m0 += kQ4FusedMaxM) {
        const int mc = std::min(kQ4FusedMaxM, M - m0);
        Q4Out o = out;
        if (o.out16) o.out16 += size_t(m0) * o.ldo;
        if (o.out32) o.out32 += size_t(m0) * o.ldo;
        Q4Prologue p = pro ? *pro : Q4Prologue();
        if (p.x32) p.x32 += size_t(m0) * p.ldx32;
        if (p.gu) p.gu += size_t(m0) * p.ldgu;
        const Q4Plan plan = q4_default_plan(mc, w, ws, pro ? pro->kind : 0);
        q4_fused(x ? x + size_t(m0) * ldx : nullptr, mc, ldx, w, o, plan, ws.fused, stream, pro ? &p : nullptr);
        splits = plan.splits;
    }
    return splits;
}

} // namespace

namespace {

// Rows per pass of the wgmma path (0: the path is not taken for M rows of w). The permuted
// activations take whole tiles of up to kQ4WgMaxRows rows.
int wgmma_rows(int M, const Q4Dev &w, const Q4Workspace &ws) {
    if (!ws.wgmma || !ws.xfrag || M < ws.wgmma_min_m || w.group_kt % 2 != 0) return 0;
    if (M > ws.wgmma_max_m && ws.dequant && ws.cublas) return 0;
    const size_t fit = ws.xfrag_elems / size_t(q4_wgmma_kx(w));
    if (fit >= size_t(q4_wgmma_rows_padded(M, kQ4WgMaxRows))) return M;
    return fit >= size_t(kQ4WgMaxRows) ? int(fit / kQ4WgMaxRows * kQ4WgMaxRows) : 0;
}

void wgmma_passes(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
                  int rows, cudaStream_t stream) {
    const int Kx = q4_wgmma_kx(w);
    for (int m0 = 0; m0 < M; m0 += rows) {
        const int mc = std::min(rows, M - m0);
        Q4Out o = out;
        if (o.out16) o.out16 += size_t(m0) * o.ldo;
        if (o.out32) o.out32 += size_t(m0) * o.ldo;
        const bool out32 = o.out32 != nullptr;
        const bool allow_sk = out32 || q4_wgmma_sk_ready(ws.wgmma_sk, ws.sm_count);
        Q4WgmmaPlan plan = q4_wgmma_plan(mc, w, ws.sm_count, out32, allow_sk, q4_atomic_enabled());
        if (ws.wgmma_force[0])
            plan = {ws.wgmma_force[0], ws.wgmma_force[1], ws.wgmma_force[2], ws.wgmma_force[3]};
        const int Mp = q4_wgmma_rows_padded(mc, plan.bt);
        q4_wgmma_permute(x + size_t(m0) * ldx, mc, ldx, w.K, Kx, Mp, ws.xfrag, stream);
        q4_wgmma(ws.xfrag, mc, Mp, w, o, plan, ws.wgmma_sk, stream);
    }
}

} // namespace

int q4_matmul(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
              cudaStream_t stream) {
    if (const int rows = out.defer ? 0 : wgmma_rows(M, w, ws)) {
        wgmma_passes(x, M, ldx, w, out, ws, rows, stream);
        return 0;
    }
    if (M >= ws.large_m && ws.dequant && ws.cublas) {
        if (out.defer) fail(GPTQ_ERR_BACKEND, "q4_matmul: a deferred output needs the fused kernel (M %d)", M);
        const size_t need = size_t(w.KT) * kQ4TileK * w.NT * kQ4TileN;
        if (need > ws.dequant_elems)
            fail(GPTQ_ERR_BACKEND, "q4_matmul: dequant buffer too small (%zu < %zu)", ws.dequant_elems, need);
        q4_dequant_f16(w, ws.dequant, stream);
        dense_matmul_kn(ws.cublas, x, M, ldx, ws.dequant, w.K, w.N, w.NT * kQ4TileN, out, stream);
        return 0;
    }
    if (out.defer && M > kQ4FusedMaxM) fail(GPTQ_ERR_BACKEND, "q4_matmul: a deferred output takes one pass (M %d)", M);
    return fused_passes(x, ldx, nullptr, M, w, out, ws, stream);
}

bool q4_takes_prologue(int M, const Q4Workspace &ws) {
    const bool wgmma = ws.wgmma && ws.xfrag && M >= ws.wgmma_min_m;
    return M >= 1 && !wgmma && !(M >= ws.large_m && ws.dequant && ws.cublas);
}

int q4_matmul_pro(const Q4Prologue &pro, int M, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
                  cudaStream_t stream) {
    if (!q4_takes_prologue(M, ws)) fail(GPTQ_ERR_BACKEND, "q4_matmul_pro: %d rows take a many-row path (wgmma or dequantize + cuBLAS)", M);
    if ((out.defer || pro.kind == 3) && M > kQ4FusedMaxM)
        fail(GPTQ_ERR_BACKEND, "q4_matmul_pro: deferred products take one pass (M %d)", M);
    return fused_passes(nullptr, 0, &pro, M, w, out, ws, stream);
}

// Read at every call (graph captures and eager forwards only), so benchmarks can switch them.
// Defaults measured (device run 2): both fusions pay at one row; at 16 rows the separate kernels
// won (re-reading the rows in every block, b=16 decode 2285 vs 2202 tokens/s for SwiGLU).
int q4_prologue_norm_rows() { return env_int("GPTQ_Q4_NORM_ROWS", 4); }

int q4_prologue_silu_rows() { return env_int("GPTQ_Q4_SILU_ROWS", 4); }

void q4_dequant_f16(const Q4Dev &w, __half *W, cudaStream_t stream) {
    const size_t tiles = size_t(w.NT) * w.KT;
    const unsigned blocks = unsigned((tiles + 3) / 4);
    launch(q4_dequant_kernel, blocks, 128, 0, stream, w, W, w.NT * kQ4TileN);
    CUDA_CHECK_LAUNCH();
}

void gather_columns(const __half *x, int M, int ldx, const int32_t *perm, int K, __half *xp, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((K + 255) / 256, 64)), unsigned(M));
    launch(gather_columns_kernel, grid, 256, 0, stream, x, M, ldx, perm, K, xp);
    CUDA_CHECK_LAUNCH();
}

void add_bias_f16(__half *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((N + 255) / 256, 64)), unsigned(M));
    launch(add_bias_kernel<__half>, grid, 256, 0, stream, y, M, N, ldy, bias);
    CUDA_CHECK_LAUNCH();
}

void add_bias_f32(float *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((N + 255) / 256, 64)), unsigned(M));
    launch(add_bias_kernel<float>, grid, 256, 0, stream, y, M, N, ldy, bias);
    CUDA_CHECK_LAUNCH();
}

static void gemm_ex(cublasHandle_t h, cublasOperation_t opA, const __half *x, int M, int ldx, const __half *W,
                    int K, int N, int ldw, const Q4Out &out, cudaStream_t stream) {
    if (!out.out16 == !out.out32) fail(GPTQ_ERR_BACKEND, "dense_matmul: exactly one output must be set");
    CUBLAS_CHECK(cublasSetStream(h, stream));
    const float alpha = 1.0f;
    const float beta = out.out32 ? 1.0f : 0.0f;
    void *C = out.out16 ? static_cast<void *>(out.out16) : static_cast<void *>(out.out32);
    cudaDataType_t ct = out.out16 ? CUDA_R_16F : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmEx(h, opA, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16F, ldw, x, CUDA_R_16F, ldx, &beta,
                              C, ct, out.ldo, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (out.bias) {
        if (out.out16)
            add_bias_f16(out.out16, M, N, out.ldo, out.bias, stream);
        else
            add_bias_f32(out.out32, M, N, out.ldo, out.bias, stream);
    }
}

void dense_matmul(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                  const Q4Out &out, cudaStream_t stream) {
    gemm_ex(h, CUBLAS_OP_T, x, M, ldx, W, K, N, ldw, out, stream);
}

void dense_matmul_kn(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                     const Q4Out &out, cudaStream_t stream) {
    gemm_ex(h, CUBLAS_OP_N, x, M, ldx, W, K, N, ldw, out, stream);
}

} // namespace cuda
} // namespace gptq
