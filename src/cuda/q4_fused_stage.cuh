// q4_fused_stage.cuh — how the fused 4-bit kernel (q4_fused_kernel.cuh) puts a block's activation
// rows into shared memory: copied as given, or computed there by the prologue the call names
// (RMSNorm, SwiGLU, SwiGLU of deferred shares, attention merge; Q4Prologue in q4_gemm.cuh).
#pragma once

#include "half_bits.cuh"
#include "q4_gemm.cuh"

namespace gptq {
namespace cuda {
namespace fused {

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
        // Two threads per chunk (neighbouring lanes), each taking every other range with the loads
        // of up to kAt ranges in flight at once and a running maximum; the pair then combines its
        // two partial merges by shuffles. One global round trip for up to 2 * kAt ranges instead of
        // two (the maximum first, then the weighted sums): measured (H100, e87abe8's binary against
        // this one, alternating, three runs of two each) decode b = 1 511.2-515.9 -> 517.3-522.4
        // tok/s. Five in flight in the one-token folded kernels (SB = 4, FOLD): the 7B decode's 9
        // ranges (64 positions each at ~520) then take one round trip, not two (H100, three runs
        // each, alternating: 556.7-557.8 -> 560.3-561.2 tok/s). The others keep four: five took
        // the SB = 2 kernels from 128 registers to 168 (the block per SM that SB = 2 exists to
        // win), and the table's 16-row o_proj from 9.2 to 10.0 µs.
        constexpr int kAt = SB == 4 && FOLD ? 5 : 4;
        const int span = (2 * total + kQ4Threads - 1) / kQ4Threads * kQ4Threads;  // whole warps loop
        for (int i2 = threadIdx.x; i2 < span; i2 += kQ4Threads) {
            const int idx = i2 >> 1, half = i2 & 1;
            const bool on = i2 < 2 * total;
            const int row = on ? idx / chunks : 0, k = kbase + (idx % chunks) * 8;
            float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, mx = -INFINITY, wsum = 0.0f;
            if (on && k < K) {
                const int hq = k / pro.attn_d, d = k % pro.attn_d, used = pro.attn_used[row];
                const size_t part = (size_t(row) * pro.attn_heads + hq) * pro.attn_stride;
                const float *ml = pro.attn_ml + part * 2, *po = pro.attn_o + part * pro.attn_d + d;
                for (int c0 = half; c0 < used; c0 += 2 * kAt) {
                    float2 r[kAt];
                    float4 a[kAt], b[kAt];
#pragma unroll
                    for (int j = 0; j < kAt; ++j) {
                        const int c = c0 + 2 * j;
                        r[j] = c < used ? __ldcg(reinterpret_cast<const float2 *>(ml + 2 * c)) : make_float2(-INFINITY, 0.f);
                        a[j] = c < used ? __ldcg(reinterpret_cast<const float4 *>(po + size_t(c) * pro.attn_d))
                                        : make_float4(0.f, 0.f, 0.f, 0.f);
                        b[j] = c < used ? __ldcg(reinterpret_cast<const float4 *>(po + size_t(c) * pro.attn_d + 4))
                                        : make_float4(0.f, 0.f, 0.f, 0.f);
                    }
                    float gm = mx;
#pragma unroll
                    for (int j = 0; j < kAt; ++j) gm = fmaxf(gm, r[j].x);
                    const float sc = mx == -INFINITY ? 0.0f : __expf(mx - gm);
                    wsum *= sc;
#pragma unroll
                    for (int i = 0; i < 8; ++i) v[i] *= sc;
#pragma unroll
                    for (int j = 0; j < kAt; ++j) {
                        const float e = r[j].x == -INFINITY ? 0.0f : __expf(r[j].x - gm);
                        wsum += e * r[j].y;
                        v[0] += e * a[j].x, v[1] += e * a[j].y, v[2] += e * a[j].z, v[3] += e * a[j].w;
                        v[4] += e * b[j].x, v[5] += e * b[j].y, v[6] += e * b[j].z, v[7] += e * b[j].w;
                    }
                    mx = gm;
                }
            }
            const float om = __shfl_xor_sync(0xffffffffu, mx, 1), ow = __shfl_xor_sync(0xffffffffu, wsum, 1);
            float ov[8];
#pragma unroll
            for (int i = 0; i < 8; ++i) ov[i] = __shfl_xor_sync(0xffffffffu, v[i], 1);
            if (!on || half) continue;
            if (k < K) {
                const float gm = fmaxf(mx, om);
                const float s0 = mx == -INFINITY ? 0.0f : __expf(mx - gm), s1 = om == -INFINITY ? 0.0f : __expf(om - gm);
                const float inv = 1.0f / (wsum * s0 + ow * s1);
#pragma unroll
                for (int i = 0; i < 8; ++i) v[i] = (v[i] * s0 + ov[i] * s1) * inv;
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

} // namespace fused
} // namespace cuda
} // namespace gptq
