// q4_gemm.cu — 4-bit x fp16 matrix products for the tiled layout of q4_layout.cuh.
//
// The fused kernel (decode and small batches, M <= 32 per pass):
//
//   grid  = (strips of 2 column tiles = 128 columns, splits along K)
//   block = 2 x 2 warps: warp (wn, wk) owns column tile 2*strip + wn and half wk of the split's K
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
// is arranged for it, see q4_layout.cuh); rows >= M are zeros, never loaded. The two K halves of
// a block meet in shared memory. With several splits, each writes fp32 partials and the last
// block to finish a strip (an atomic counter per strip) sums them, four columns per thread and
// several loads in flight, runs the epilogue (bias, fp16 store or fp32 residual accumulate) and
// resets its counter to zero for the next launch.
//
// Large M goes through q4_dequant_f16 (tile -> fp16 via shared memory, coalesced 16-byte stores)
// and cuBLAS.
#include "q4_gemm.cuh"

#include "cuda_check.cuh"
#include "launch.cuh"

#include <algorithm>
#include <cstring>

namespace gptq {
namespace cuda {

namespace {

__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

__device__ __forceinline__ __half2 u2h(uint32_t u) {
    __half2 h;
    memcpy(&h, &u, 4);
    return h;
}
__device__ __forceinline__ uint32_t h2u(__half2 h) {
    uint32_t u;
    memcpy(&u, &h, 4);
    return u;
}

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
// stored), then the scales (and zeros) of its two column tiles over the groups it touches.
struct FusedSmem {
    int ldxs;    // halves per activation row (span*32 + 8: rows 16 bytes apart in banks)
    int ng;      // groups covered
    size_t scale_off, zero_off, bytes;  // in halves / bytes
};
__host__ __device__ inline FusedSmem fused_smem(int M, int span_pairs, int ng, bool zt) {
    FusedSmem f;
    f.ldxs = span_pairs * kQ4PairK + 8;
    f.ng = ng;
    f.scale_off = size_t(M) * f.ldxs;
    f.zero_off = f.scale_off + size_t(kQ4WarpsN) * ng * 64;
    f.bytes = (f.zero_off + (zt ? size_t(kQ4WarpsN) * ng * 64 : 0)) * sizeof(__half);
    return f;
}
__host__ __device__ inline int groups_spanned(int p0, int p1, int group_kt) {
    return (2 * (p1 - 1)) / group_kt - (2 * p0) / group_kt + 1;
}

// Shared memory a plan of `pairs` tile pairs per split needs (the worst split: one more group).
inline size_t plan_smem(int M, int pairs, const Q4Dev &w) {
    const int ng = std::min(w.G, groups_spanned(0, pairs, w.group_kt) + 1);
    return fused_smem(M, pairs, ng, w.zeros != nullptr).bytes;
}

// Per-warp accumulators. The weights are the mma's A operand (16 output columns x 16 k: word i of
// a lane's uint4 holds sub-tiles 2i and 2i+1, i.e. A rows g and g+8) and the tokens its B operand
// (n = 8 tokens per mma, NTOK mmas for up to 8*NTOK tokens). C element e of tmp[t][i] is output
// column 16i + g + 8*(e/2) of token 8t + 2c + e%2. tmp sums x·(q - z) over the current group
// (exact fp16 products, fp32 sums); at the group's end acc += scale · tmp.
template <int NTOK> struct Acc {
    float acc[NTOK][4][4];
    float tmp[NTOK][4][4];
};

template <int NTOK>
__device__ __forceinline__ void flush_group(Acc<NTOK> &A, const uint4 &sv) {
    const uint32_t su[4] = {sv.x, sv.y, sv.z, sv.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 sf = __half22float2(u2h(su[i]));  // scales of sub-tiles 2i (.x) and 2i+1 (.y)
#pragma unroll
        for (int t = 0; t < NTOK; ++t) {
            A.acc[t][i][0] = fmaf(sf.x, A.tmp[t][i][0], A.acc[t][i][0]);
            A.acc[t][i][1] = fmaf(sf.x, A.tmp[t][i][1], A.acc[t][i][1]);
            A.acc[t][i][2] = fmaf(sf.y, A.tmp[t][i][2], A.acc[t][i][2]);
            A.acc[t][i][3] = fmaf(sf.y, A.tmp[t][i][3], A.acc[t][i][3]);
#pragma unroll
            for (int e = 0; e < 4; ++e) A.tmp[t][i][e] = 0.0f;
        }
    }
}

// Dequantizes one tile pair (two k-steps) to exact q - z and issues its mma instructions.
template <int NTOK, bool ZT>
__device__ __forceinline__ void compute_pair(const uint4 &q0, const uint4 &q1, Acc<NTOK> &A, const __half *xs,
                                             int ldxs, int M, int pair_off, const uint4 &zv, __half2 zau,
                                             __half2 zbu, int g, int c) {
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
    uint4 xv[NTOK];  // token 8t + g: k chunk 8c..8c+7 of the pair
#pragma unroll
    for (int t = 0; t < NTOK; ++t) {
        const int row = 8 * t + g;
        xv[t] = row < M ? *reinterpret_cast<const uint4 *>(xs + size_t(row) * ldxs + pair_off + 8 * c)
                        : make_uint4(0u, 0u, 0u, 0u);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const uint4 q = h ? q1 : q0;
        const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t lo = words[i], hi = words[i] >> 8;
            uint32_t a[4];
            a[0] = h2u(__hsub2(u2h((lo & 0x000F000Fu) | 0x64006400u), za[2 * i]));                // col g,   k 2c..
            a[1] = h2u(__hsub2(u2h((hi & 0x000F000Fu) | 0x64006400u), za[2 * i + 1]));            // col g+8, k 2c..
            a[2] = h2u(__hfma2(u2h((lo & 0x00F000F0u) | 0x64006400u), sixteenth, zb[2 * i]));      // col g,   k 2c+8..
            a[3] = h2u(__hfma2(u2h((hi & 0x00F000F0u) | 0x64006400u), sixteenth, zb[2 * i + 1]));  // col g+8, k 2c+8..
#pragma unroll
            for (int t = 0; t < NTOK; ++t) {
                const uint32_t b0 = h ? xv[t].z : xv[t].x, b1 = h ? xv[t].w : xv[t].y;
                mma_16816(A.tmp[t][i], a, b0, b1);
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

template <int NTOK, bool ZT, int MODE>
__device__ __forceinline__ void compute_w(const WBatch &b, Acc<NTOK> &A, int &cur_grp, uint4 &cur_s, int p,
                                          int pend, const __half *xs, int ldxs, int M, int p0, const __half *ss,
                                          const __half *zs, int g0, int group_kt, int wn, int ng, __half2 zau,
                                          __half2 zbu, int g, int c) {
#pragma unroll
    for (int u = 0; u < kQ4PairsPerBatch; ++u) {
        const int pair = p + u;
        if (pair >= pend) break;
        if (MODE == 1) {  // diagnostics: consume the loads, no dequantization or mma
            A.acc[0][0][0] += float((b.q[2 * u].x ^ b.q[2 * u + 1].w) & 1u);
            continue;
        }
        const int grp = (2 * pair) / group_kt;
        const size_t off = (size_t(wn * ng + grp - g0) * 8 + g) * 8;
        if (grp != cur_grp) {
            if (cur_grp >= 0) flush_group(A, cur_s);
            cur_s = *reinterpret_cast<const uint4 *>(ss + off);
            cur_grp = grp;
        }
        uint4 zv = make_uint4(0u, 0u, 0u, 0u);
        if constexpr (ZT) zv = *reinterpret_cast<const uint4 *>(zs + off);
        compute_pair<NTOK, ZT>(b.q[2 * u], b.q[2 * u + 1], A, xs, ldxs, M, (pair - p0) * kQ4PairK, zv, zau, zbu, g,
                               c);
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

// grid (strips of kQ4WarpsN column tiles, splits); block: kQ4WarpsN x kQ4WarpsK warps.
template <int NTOK, bool ZT, int MODE = 0>
__global__ void __launch_bounds__(kQ4Threads) q4_fused_kernel(const __half *__restrict__ x, int M, int ldx, Q4Dev w,
                                                              int pairs_per_split, float *__restrict__ partial,
                                                              unsigned *__restrict__ counters, Q4Out out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int wn = warp % kQ4WarpsN, wk = warp / kQ4WarpsN;
    const int nt = blockIdx.x * kQ4WarpsN + wn;
    const int split = blockIdx.y, S = gridDim.y;
    const int KP = w.KT / 2;
    const int p0 = split * pairs_per_split, p1 = min(KP, p0 + pairs_per_split);
    const int len = (p1 - p0 + kQ4WarpsK - 1) / kQ4WarpsK;
    const int q0 = p0 + wk * len, q1 = min(p1, q0 + len);
    const int NP = w.NT * kQ4TileN;

    Acc<NTOK> A;
#pragma unroll
    for (int t = 0; t < NTOK; ++t)
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) A.acc[t][i][e] = A.tmp[t][i][e] = 0.0f;

    // Weights first (the long latency), then the block's activations and scales to shared memory.
    const uint4 *qp = w.qw + size_t(nt) * w.KT * 32 + lane;
    const bool active = nt < w.NT && q0 < q1;
    WBatch r0, r1, r2;
    if (active) {
        load_w<MODE>(r0, qp, q0, q1);
        load_w<MODE>(r1, qp, q0 + kQ4PairsPerBatch, q1);
    }
    // Everything below reads or writes what earlier kernels in the stream touch.
    pdl_enter();
    extern __shared__ __align__(16) __half fsm[];
    const int g0 = (2 * p0) / w.group_kt;
    const FusedSmem f = fused_smem(M, p1 - p0, groups_spanned(p0, p1, w.group_kt), ZT);
    {
        const int chunks = (p1 - p0) * (kQ4PairK / 8);  // 16-byte chunks per row
        for (int idx = threadIdx.x; idx < M * chunks; idx += kQ4Threads) {
            const int row = idx / chunks, ch = idx % chunks;
            const int k = p0 * kQ4PairK + ch * 8;
            *reinterpret_cast<uint4 *>(fsm + size_t(row) * f.ldxs + ch * 8) =
                k < w.K ? __ldg(reinterpret_cast<const uint4 *>(x + size_t(row) * ldx + k)) : make_uint4(0u, 0u, 0u, 0u);
        }
        for (int idx = threadIdx.x; idx < kQ4WarpsN * f.ng * 8; idx += kQ4Threads) {
            const int t = idx / (f.ng * 8), gi = (idx / 8) % f.ng, ch = idx % 8;
            const int tile = blockIdx.x * kQ4WarpsN + t;
            if (tile >= w.NT) continue;
            const size_t src = (size_t(tile) * w.G + g0 + gi) * 64 + ch * 8;
            const size_t dst = (size_t(t) * f.ng + gi) * 64 + ch * 8;
            *reinterpret_cast<uint4 *>(fsm + f.scale_off + dst) = __ldg(reinterpret_cast<const uint4 *>(w.scales + src));
            if constexpr (ZT)
                *reinterpret_cast<uint4 *>(fsm + f.zero_off + dst) = __ldg(reinterpret_cast<const uint4 *>(w.zeros + src));
        }
    }
    __syncthreads();

    if (active) {
        const __half2 zau = __float2half2_rn(1024.0f + float(w.zero));
        const __half2 zbu = __float2half2_rn(-(64.0f + float(w.zero)));
        const __half *ss = fsm + f.scale_off, *zs = fsm + f.zero_off;
        int cur_grp = -1;
        uint4 cur_s = make_uint4(0u, 0u, 0u, 0u);
        constexpr int B = kQ4PairsPerBatch;
#define Q4_COMPUTE(r, pp)                                                                                       \
    compute_w<NTOK, ZT, MODE>(r, A, cur_grp, cur_s, pp, q1, fsm, f.ldxs, M, p0, ss, zs, g0, w.group_kt, wn, f.ng, \
                              zau, zbu, g, c)
        // Three batches rotate through r0, r1, r2: two in flight while one is computed.
        for (int p = q0; p < q1; p += 3 * B) {
            load_w<MODE>(r2, qp, p + 2 * B, q1);
            Q4_COMPUTE(r0, p);
            load_w<MODE>(r0, qp, p + 3 * B, q1);
            Q4_COMPUTE(r1, p + B);
            load_w<MODE>(r1, qp, p + 4 * B, q1);
            Q4_COMPUTE(r2, p + 2 * B);
        }
#undef Q4_COMPUTE
        if (cur_grp >= 0) flush_group(A, cur_s);
    }

    // The K-slices of a column tile meet in shared memory (reusing the activation area); slice 0
    // keeps the sum.
    float *red = reinterpret_cast<float *>(fsm) + size_t(wn) * NTOK * 16 * 32;  // [NTOK*16][32 lanes]
#pragma unroll
    for (int s = 1; s < kQ4WarpsK; ++s) {
        __syncthreads();
        if (wk == s) {
#pragma unroll
            for (int t = 0; t < NTOK; ++t)
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int e = 0; e < 4; ++e) red[((t * 4 + i) * 4 + e) * 32 + lane] = A.acc[t][i][e];
        }
        __syncthreads();
        if (wk == 0) {
#pragma unroll
            for (int t = 0; t < NTOK; ++t)
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int e = 0; e < 4; ++e) A.acc[t][i][e] += red[((t * 4 + i) * 4 + e) * 32 + lane];
        }
    }

    if (S == 1) {
        if (wk != 0 || nt >= w.NT) return;
#pragma unroll
        for (int t = 0; t < NTOK; ++t)
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int row = 8 * t + 2 * c + (e & 1);
                    const int col = nt * kQ4TileN + 16 * i + g + 8 * (e >> 1);
                    if (row < M && col < w.N) store1(out, row, col, A.acc[t][i][e]);
                }
        return;
    }

    if (wk == 0 && nt < w.NT) {
#pragma unroll
        for (int t = 0; t < NTOK; ++t)
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int row = 8 * t + 2 * c + (e & 1);
                    const int col = nt * kQ4TileN + 16 * i + g + 8 * (e >> 1);
                    if (row < M && col < w.N) __stcg(partial + (size_t(split) * M + row) * NP + col, A.acc[t][i][e]);
                }
    }
    __threadfence();
    __syncthreads();
    __shared__ unsigned s_last;
    if (threadIdx.x == 0) s_last = (atomicAdd(&counters[blockIdx.x], 1u) == unsigned(S - 1));
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    // Last block of the strip: sum the splits, four columns per item, four items in flight.
    const int col0 = blockIdx.x * kQ4WarpsN * kQ4TileN;
    const int w4 = min(kQ4WarpsN * kQ4TileN, w.N - col0) / 4;
    const int items = M * w4;
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
                store2(out, row, col, sum[r].x, sum[r].y);
                store2(out, row, col + 2, sum[r].z, sum[r].w);
            }
        }
    }
    if (threadIdx.x == 0) counters[blockIdx.x] = 0u;
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

template <int NTOK, bool ZT, int MODE = 0>
void launch_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                  const Q4Scratch &sc, cudaStream_t stream) {
    dim3 grid(plan.strips, plan.splits);
    const size_t red = size_t(kQ4WarpsN) * NTOK * 16 * 32 * sizeof(float);  // the K-slice reduction reuses it
    const size_t smem = std::max(plan_smem(M, plan.pairs_per_split, w), red);
    if (smem > kQ4SmemBytes) fail(GPTQ_ERR_BACKEND, "q4_fused: plan needs %zu bytes of shared memory", smem);
    launch(q4_fused_kernel<NTOK, ZT, MODE>, grid, kQ4Threads, smem, stream, x, M, ldx, w, plan.pairs_per_split,
           sc.partial, sc.counters, out);
    CUDA_CHECK_LAUNCH();
}

template <int NTOK>
void launch_fused_z(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
                    const Q4Scratch &sc, cudaStream_t stream) {
    if (w.zeros)
        launch_fused<NTOK, true>(x, M, ldx, w, out, plan, sc, stream);
    else
        launch_fused<NTOK, false>(x, M, ldx, w, out, plan, sc, stream);
}

} // namespace

Q4Plan q4_plan(int M, const Q4Dev &w, int sm_count, int blocks_per_sm_target) {
    Q4Plan p;
    const int KP = w.KT / 2;
    p.strips = (w.NT + kQ4WarpsN - 1) / kQ4WarpsN;
    // Measured (bench-kernels run 16): 3 blocks per SM suits M <= 8; from 9 rows on fewer splits
    // win (the partial sums grow with M).
    if (blocks_per_sm_target <= 0) blocks_per_sm_target = M <= 8 ? 3 : 1;
    const int target = std::max(1, sm_count) * blocks_per_sm_target;
    int splits = std::max(1, (target + p.strips - 1) / p.strips);
    // Keep at least two batches per warp so that loads overlap compute.
    splits = std::min(splits, std::max(1, KP / (2 * kQ4WarpsK * kQ4PairsPerBatch)));
    p.pairs_per_split = (KP + splits - 1) / splits;
    // The block's activations and scales must fit in its shared memory.
    while (p.pairs_per_split > 1 && plan_smem(M, p.pairs_per_split, w) > kQ4SmemBytes)
        p.pairs_per_split = std::max(1, p.pairs_per_split * 7 / 8);
    p.splits = (KP + p.pairs_per_split - 1) / p.pairs_per_split;
    p.partial_floats = p.splits > 1 ? size_t(p.splits) * M * w.NT * kQ4TileN : 0;
    return p;
}

void q4_fused(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Plan &plan,
              const Q4Scratch &sc, cudaStream_t stream) {
    if (M < 1 || M > kQ4FusedMaxM) fail(GPTQ_ERR_BACKEND, "q4_fused: M = %d outside 1..%d", M, kQ4FusedMaxM);
    if (!out.out16 == !out.out32) fail(GPTQ_ERR_BACKEND, "q4_fused: exactly one output must be set");
    if (ldx % 8 || out.ldo % 2 || (reinterpret_cast<uintptr_t>(x) & 15))
        fail(GPTQ_ERR_BACKEND, "q4_fused: x must be 16-byte aligned with ldx %% 8 == 0, ldo even (ldx %d, ldo %d)",
             ldx, out.ldo);
    if (plan.splits > 1) {
        if (plan.partial_floats > sc.partial_floats || plan.strips > sc.n_counters)
            fail(GPTQ_ERR_BACKEND, "q4_fused: scratch too small (%zu floats / %d counters; need %zu / %d)",
                 sc.partial_floats, sc.n_counters, plan.partial_floats, plan.strips);
    }
    if (M <= 8)
        launch_fused_z<1>(x, M, ldx, w, out, plan, sc, stream);
    else if (M <= 16)
        launch_fused_z<2>(x, M, ldx, w, out, plan, sc, stream);
    else
        launch_fused_z<4>(x, M, ldx, w, out, plan, sc, stream);
}

__global__ void empty_kernel() {}

void q4_fused_diagnostic(int mode, const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out,
                         const Q4Plan &plan, const Q4Scratch &sc, cudaStream_t stream) {
    if (M > 8 || w.zeros) fail(GPTQ_ERR_BACKEND, "q4_fused_diagnostic: M <= 8 and uniform zeros only");
    if (mode == 1)
        launch_fused<1, false, 1>(x, M, ldx, w, out, plan, sc, stream);
    else if (mode == 2)
        launch_fused<1, false, 2>(x, M, ldx, w, out, plan, sc, stream);
    else if (mode == 3) {
        empty_kernel<<<1, 32, 0, stream>>>();
        CUDA_CHECK_LAUNCH();
    } else
        launch_fused<1, false, 0>(x, M, ldx, w, out, plan, sc, stream);
}

void q4_matmul(const __half *x, int M, int ldx, const Q4Dev &w, const Q4Out &out, const Q4Workspace &ws,
               cudaStream_t stream) {
    if (M >= ws.large_m && ws.dequant && ws.cublas) {
        const size_t need = size_t(w.KT) * kQ4TileK * w.NT * kQ4TileN;
        if (need > ws.dequant_elems)
            fail(GPTQ_ERR_BACKEND, "q4_matmul: dequant buffer too small (%zu < %zu)", ws.dequant_elems, need);
        q4_dequant_f16(w, ws.dequant, stream);
        dense_matmul_kn(ws.cublas, x, M, ldx, ws.dequant, w.K, w.N, w.NT * kQ4TileN, out, stream);
        return;
    }
    for (int m0 = 0; m0 < M; m0 += kQ4FusedMaxM) {
        const int mc = std::min(kQ4FusedMaxM, M - m0);
        Q4Out o = out;
        if (o.out16) o.out16 += size_t(m0) * o.ldo;
        if (o.out32) o.out32 += size_t(m0) * o.ldo;
        q4_fused(x + size_t(m0) * ldx, mc, ldx, w, o, q4_plan(mc, w, ws.sm_count), ws.fused, stream);
    }
}

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
