// attention_decode.cu — attention of a few query tokens against their sequences' cached keys and
// values, the decode step's attention (attention_decode.cuh; the general kernel is attention.cu's).
//
// One block per (token t, KV head h, group of GP query heads of h, range r of S). A token's
// positions 0..p are cut into ranges of at least kMinKeys positions sized from p itself: the grid
// (fixed while a CUDA graph replays it) does not grow with the context capacity, and every block
// that runs has work. Why not one block per 32 positions, as the chunk kernel does: at a 7B
// model's 32 heads and ~600 positions those ~600 small blocks made two waves of a short, mostly
// serial body (profile in NOTES.md: 25% occupancy, 10% of the DRAM bandwidth).
//
// Inside a block 4 warps stream the range in batches of kRows rows; a lane holds 8 dims (16
// bytes) of one key and of one value per row, D/8 lanes per key, and the next batch's loads are in
// flight while the current one is reduced. Each warp keeps an online softmax per query head
// (running max m, sum l, unnormalized output o); the block merges its warps in shared memory and
// the last block of (t, h, group) to finish merges the ranges (attention_common.cuh) — or, with
// fz.merge_used (one-token decode), nobody here: the ranges' partials stay in scratch and o_proj's
// activation staging merges them (q4 prologue kind 4), so this kernel ends without a fence, a
// counter and a dependent merge (decode b=1 559-561 -> 584 tok/s on the H200).
//
// One-token batches (early): the cached keys and values before position p were written before
// the previous kernel started, so the first batch loads before griddepcontrol.wait; position p
// itself (written by this kernel with RoPE inside, or by rope_store_kv just before) goes through
// shared memory as one extra key.
#include "attention_decode.cuh"

#include "attention_common.cuh"
#include "block_stamps.cuh"
#include "cuda_check.cuh"
#include "half_bits.cuh"
#include "launch.cuh"
#include "mem_ops.cuh"
#include "rope.cuh"

#include "../common.h"

#include <algorithm>
#include <cmath>

namespace gptq {
namespace cuda {

namespace {

// 4 warps a block rather than 8: at one token (7B: 124 registers a thread) an SM then holds four
// blocks; the grid is sized to fill them (16 ranges at 7B), and at position ~520 the ranges in
// use make ~2 blocks per SM, so o_proj's first blocks fit beside them and load their weights while
// attention runs (with 8 warps, two blocks filled the register file). Measured on the H100
// against 8 warps, same call, alternating: decode b = 1 517.1-522.2 -> 519.9-524.5 tok/s, b = 16
// 3645.0-3669.1 -> 3693.7-3707.3 (CUPTI: attention adds 4.9 µs to a layer instead of 6.0, o_proj
// 7.7 instead of 7.3).
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 4;       // key rows per warp batch (8 * kRows keys at D = 128)
constexpr int kMinKeys = 64;   // fewest positions a range takes
constexpr int kMaxRanges = 32; // merge_partials gives each range one lane

// Positions per range of a token at position p cut into at most S ranges, and how many ranges
// that makes (the rest of the S blocks exit at once).
__device__ __forceinline__ int range_len(int p, int S) {
    const int per = (p + S) / S;  // ceil((p + 1) / S)
    return max(kMinKeys, (per + 31) & ~31);
}
__device__ __forceinline__ int ranges_used(int p, int S) {
    const int per = range_len(p, S);
    return (p + per) / per;
}

// STAMP: the benchmark's twin (bench-e2e --stamps), whose thread 0 stamps entry, wait, the queries
// staged and the end into sink's record (K = N = 0); blocks of unused ranges stamp nothing.
template <int D, int GP, bool STAMP = false>
__global__ void __launch_bounds__(kThreads, GP <= 2 ? 4 : 2)
    attn_decode_kernel(const __half *__restrict__ q, int ldq, const int32_t *__restrict__ pos,
                       const int32_t *__restrict__ seq, int Hq, KVLayer kv, float scale, float *__restrict__ part_o,
                       float *__restrict__ part_ml, int part_stride, AttnSplitFusion fz, __half *__restrict__ out,
                       int ldo, int early, StampSink sink) {
    uint64_t stamp[3] = {0, 0, 0};
    if constexpr (STAMP) stamp[0] = globaltimer();
    constexpr int LPK = D / 8;      // lanes per key
    constexpr int KR = 32 / LPK;    // keys per row of a warp load
    constexpr int BS = kRows * KR;  // keys per warp batch
    __shared__ float qs[GP][D];
    __shared__ __align__(16) __half kp_s[D];
    __shared__ __align__(16) __half vp_s[D];
    __shared__ float wo[kWarps][GP][D];
    __shared__ float wml[kWarps][GP][2];
    __shared__ float wts[kMaxRanges + 8];

    const int Hkv = kv.n_kv, G = Hq / Hkv, HG = G / GP;
    const int S = gridDim.y, r = blockIdx.y;
    const int t = blockIdx.x / (Hkv * HG), h = (blockIdx.x / HG) % Hkv, hg = blockIdx.x % HG;
    const int hq0 = h * G + hg * GP;  // the block's first query head
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int grp = lane / LPK, dl = (lane % LPK) * 8;

    if (!early) pdl_enter();
    const int p = pos[t], s = seq[t];
    const int per = range_len(p, S), used = ranges_used(p, S);
    const bool merge_later = fz.merge_used != nullptr;  // the consumer merges the ranges
    if (r >= used) return;
    const int k0 = r * per, k1 = min(k0 + per, p + 1);
    const bool has_p = k1 == p + 1;
    const int kend = early ? min(k1, p) : k1;  // keys streamed from the cache: [k0, kend)
    const int nb = (kend - k0 + BS - 1) / BS;
    const size_t head_base = (size_t(s) * Hkv + h) * kv.n_ctx;
    const __half *kbase = kv.k + head_base * D, *vbase = kv.v + head_base * D;

    // Read-only loads are safe: the one cache entry this launch writes (position p, RoPE inside) is
    // never read from global memory by it (the key and value of p come through shared memory).
    auto load = [&](int b, uint4(&kr)[kRows], uint4(&vr)[kRows]) {
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
            const int key = k0 + b * BS + i * KR + grp;
            if (key < kend) {
                kr[i] = __ldg(reinterpret_cast<const uint4 *>(kbase + size_t(key) * D + dl));
                vr[i] = __ldg(reinterpret_cast<const uint4 *>(vbase + size_t(key) * D + dl));
            } else {
                kr[i] = make_uint4(0, 0, 0, 0);
                vr[i] = make_uint4(0, 0, 0, 0);
            }
        }
    };
    // The first two batches of each warp (often the whole range) load before the wait when early.
    uint4 ka[kRows], va[kRows], kb[kRows], vb[kRows];
    if (warp < nb) load(warp, ka, va);
    const bool kb_early = early && warp + kWarps < nb;
    if (kb_early) load(warp + kWarps, kb, vb);
    // RoPE's sine and cosine before the wait: they need only p and the frequencies, and a thread's
    // pair index is the same in every pass of the staging loop below.
    static_assert(kThreads % (D / 2) == 0, "one rotation pair per thread");
    float rope_sn = 0.0f, rope_cs = 1.0f;
    if (fz.inv_freq) rope_sincos(p, fz.inv_freq[threadIdx.x % (D / 2)], &rope_sn, &rope_cs);
    if (early) pdl_enter();
    if constexpr (STAMP) stamp[1] = globaltimer();
    // The token's range count for the consumer, from its first block (r = 0 always gets here), after
    // the wait in either mode: the previous step's consumer has read the old count by then.
    if (merge_later && blockIdx.x % (Hkv * HG) == 0 && r == 0 && threadIdx.x == 0) fz.merge_used[t] = used;

    // The block's queries (scaled, fp32) and, in the range holding p when early, p's key and value.
    if (!fz.inv_freq) {
        for (int i = threadIdx.x; i < GP * D; i += kThreads)
            qs[i / D][i % D] = __half2float(q[size_t(t) * ldq + size_t(hq0) * D + i]) * scale;
        if (early && has_p) {
            const size_t at = (head_base + p) * D;
            for (int i = threadIdx.x; i < D; i += kThreads) {
                kp_s[i] = kv.k[at + i];
                vp_s[i] = kv.v[at + i];
            }
        }
    } else {
        // RoPE here rather than in rope_store_kv, with that kernel's arithmetic and fp16 rounding.
        constexpr int half_d = D / 2;
        const __half *qrow = q + size_t(t) * ldq;
        auto qkv_at = [&](int j) { return qkv_column(qrow, fz, j); };
        // Items: GP query heads' rotation pairs, then (the range holding p) the key's pairs, with
        // the value's two columns; one pass so that all their loads are in flight together.
        const size_t at = (head_base + p) * D;
        const int kh = (Hq + h) * D, vh = (Hq + Hkv + h) * D;
        const int items = (GP + (has_p ? 1 : 0)) * half_d;
        for (int i2 = threadIdx.x; i2 < items; i2 += kThreads) {
            const int g = i2 / half_d, i = i2 % half_d;
            const int hd = g < GP ? (hq0 + g) * D : kh;  // a query head, or the key head
            const __half2 r = rope_apply(__half2float(qkv_at(hd + i)), __half2float(qkv_at(hd + i + half_d)), rope_sn,
                                         rope_cs);  // i == threadIdx.x % half_d
            if (g < GP) {
                qs[g][i] = __low2float(r) * scale;
                qs[g][i + half_d] = __high2float(r) * scale;
            } else {
                const __half r1 = __low2half(r), r2 = __high2half(r);
                const __half v1 = qkv_at(vh + i), v2 = qkv_at(vh + i + half_d);
                kp_s[i] = r1;
                kp_s[i + half_d] = r2;
                vp_s[i] = v1;
                vp_s[i + half_d] = v2;
                if (hg == 0) {  // one block per KV head stores the cache entry
                    kv.k[at + i] = r1;
                    kv.k[at + i + half_d] = r2;
                    kv.v[at + i] = v1;
                    kv.v[at + i + half_d] = v2;
                }
            }
        }
    }
    __syncthreads();
    if constexpr (STAMP) stamp[2] = globaltimer();

    float qf[GP][8], o[GP][8], m[GP], l[GP];
#pragma unroll
    for (int g = 0; g < GP; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            qf[g][i] = qs[g][dl + i];
            o[g][i] = 0.0f;
        }
    }

    // One batch of R rows (kRows in the stream, 1 for position p): keys base + i*KR + grp (i < R)
    // count when < end.
    auto consume = [&](const auto &kr, const auto &vr, int base, int end) {
        constexpr int R = sizeof(kr) / sizeof(uint4);
        float sc[R][GP];
#pragma unroll
        for (int i = 0; i < R; ++i) {
            float kf[8];
            unpack8(kr[i], kf);
            const bool valid = base + i * KR + grp < end;
#pragma unroll
            for (int g = 0; g < GP; ++g) {
                float a = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; ++e) a += qf[g][e] * kf[e];
#pragma unroll
                for (int off = LPK / 2; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
                sc[i][g] = valid ? a : -INFINITY;
            }
        }
#pragma unroll
        for (int g = 0; g < GP; ++g) {
            float bm = sc[0][g];
#pragma unroll
            for (int i = 1; i < R; ++i) bm = fmaxf(bm, sc[i][g]);
#pragma unroll
            for (int off = LPK; off < 32; off <<= 1) bm = fmaxf(bm, __shfl_xor_sync(0xffffffffu, bm, off));
            const float mn = fmaxf(m[g], bm);
            if (mn == -INFINITY) continue;  // warp-uniform: no key of this warp counted yet
            const float alpha = __expf(m[g] - mn);  // 0 while m is -inf
            m[g] = mn;
            l[g] *= alpha;
#pragma unroll
            for (int e = 0; e < 8; ++e) o[g][e] *= alpha;
#pragma unroll
            for (int i = 0; i < R; ++i) {
                const float pr = __expf(sc[i][g] - mn);  // 0 for keys that do not count
                float vf[8];
                unpack8(vr[i], vf);
                l[g] += pr;
#pragma unroll
                for (int e = 0; e < 8; ++e) o[g][e] += pr * vf[e];
            }
        }
    };

    // One copy of the batch code (a long kernel body costs instruction fetches at every launch):
    // the next batch loads into kb while ka is reduced, then moves into ka (the move waits for
    // exactly the data the next iteration needs anyway).
    for (int b = warp; b < nb; b += kWarps) {
        const int bn = b + kWarps;
        if (bn < nb && !(kb_early && b == warp)) load(bn, kb, vb);
        consume(ka, va, k0 + b * BS, kend);
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
            ka[i] = kb[i];
            va[i] = vb[i];
        }
    }
    // Position p from shared memory (lane group 0), by the warp with the fewest batches: p's range
    // is often the shortest, so that warp may have had no other keys (else the block's end waits on
    // warp 0's extra row).
    if (early && has_p && warp == nb % kWarps) {
        const uint4 kr[1] = {*reinterpret_cast<const uint4 *>(kp_s + dl)};
        const uint4 vr[1] = {*reinterpret_cast<const uint4 *>(vp_s + dl)};
        consume(kr, vr, p, p + 1);
    }

    // The warp's lane groups held different keys: sum their l and o, then the block merges warps.
#pragma unroll
    for (int g = 0; g < GP; ++g) {
#pragma unroll
        for (int off = LPK; off < 32; off <<= 1) {
            l[g] += __shfl_xor_sync(0xffffffffu, l[g], off);
#pragma unroll
            for (int e = 0; e < 8; ++e) o[g][e] += __shfl_xor_sync(0xffffffffu, o[g][e], off);
        }
        if (grp == 0) {
#pragma unroll
            for (int e = 0; e < 8; ++e) wo[warp][g][dl + e] = o[g][e];
        }
        if (lane == 0) {
            wml[warp][g][0] = m[g];
            wml[warp][g][1] = l[g];
        }
    }
    __syncthreads();

    const bool direct = used == 1 && fz.counters && !merge_later;  // one range: the block writes the output itself
    for (int i = threadIdx.x; i < GP * D; i += kThreads) {
        const int g = i / D, d = i % D;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) M = fmaxf(M, wml[w][g][0]);
        float acc = 0.0f, L = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) {
            const float mw = wml[w][g][0];
            const float e = mw == -INFINITY ? 0.0f : __expf(mw - M);
            acc += e * wo[w][g][d];
            L += e * wml[w][g][1];
        }
        const int hq = hq0 + g;
        if (direct) {
            out[size_t(t) * ldo + size_t(hq) * D + d] = __float2half_rn(acc / L);
        } else {
            const size_t part = (size_t(t) * Hq + hq) * part_stride + r;
            part_o[part * D + d] = acc;
            if (d == 0) {
                part_ml[part * 2] = M;
                part_ml[part * 2 + 1] = L;
            }
        }
    }
    if constexpr (STAMP) {
        if (threadIdx.x == 0) record_block_stamp(sink, 0, 0, stamp);
    }
    if (direct || !fz.counters || merge_later) return;  // no merge, attn_merge_kernel's, or the consumer's

    if (!last_to_arrive(&fz.counters[blockIdx.x], unsigned(used))) return;
    for (int g = 0; g < GP; ++g) {
        const size_t part = (size_t(t) * Hq + hq0 + g) * part_stride;
        merge_partials(part_ml + part * 2, part_o + part * D, used, D, wts,
                       out + size_t(t) * ldo + size_t(hq0 + g) * D);
        __syncthreads();  // wts is rewritten for the next head
    }
    if (threadIdx.x == 0) fz.counters[blockIdx.x] = 0u;  // ready for the next launch
}

// The range kernel's rule for the merge pass (when it does not merge its own ranges).
struct RangesUsed {
    int S;
    __device__ int operator()(int p) const { return ranges_used(p, S); }
};

using DecodeKernel = void (*)(const __half *, int, const int32_t *, const int32_t *, int, KVLayer, float, float *,
                              float *, int, AttnSplitFusion, __half *, int, int, StampSink);

// The kernel for (D, GP) and how many of its blocks an SM holds (asked once per variant); the
// stamping twin while the benchmark records (its occupancy taken as the kernel's).
DecodeKernel pick_kernel(int D, int GP, bool stamp, int *blocks_per_sm) {
    static int cache[2][3] = {};
    const int di = D == 64 ? 0 : 1, gi = GP == 1 ? 0 : GP == 2 ? 1 : 2;
    static const DecodeKernel table[2][3] = {
        {attn_decode_kernel<64, 1>, attn_decode_kernel<64, 2>, attn_decode_kernel<64, 4>},
        {attn_decode_kernel<128, 1>, attn_decode_kernel<128, 2>, attn_decode_kernel<128, 4>}};
    static const DecodeKernel stamping[2][3] = {
        {attn_decode_kernel<64, 1, true>, attn_decode_kernel<64, 2, true>, attn_decode_kernel<64, 4, true>},
        {attn_decode_kernel<128, 1, true>, attn_decode_kernel<128, 2, true>, attn_decode_kernel<128, 4, true>}};
    DecodeKernel k = table[di][gi];
    if (cache[di][gi] == 0) {
        int nb = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, k, kThreads, 0) != cudaSuccess) {
            cudaGetLastError();
            nb = 1;
        }
        cache[di][gi] = std::max(1, nb);
    }
    *blocks_per_sm = cache[di][gi];
    return stamp ? stamping[di][gi] : k;
}

} // namespace

bool attention_decode_available(int D) {
    return (D == 64 || D == 128) && env_int("GPTQ_CUDA_ATTN_CHUNKED", 0) == 0;
}

bool attention_decode(const __half *q, int ldq, const int32_t *pos, const int32_t *seq, int n, int Hq,
                      const KVLayer &kv, float scale, int n_chunks, float *scratch, __half *out, int ldo,
                      cudaStream_t stream, const AttnSplitFusion &fuse) {
    // Read per call (once per layer at graph capture): the benchmark switches them between contexts.
    const int forced_ranges = env_int("GPTQ_CUDA_ATTN_SPLITS", 0);
    const int D = kv.D, G = Hq / kv.n_kv;
    if (!attention_decode_available(D)) return false;
    const int GP = G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1;
    int per_sm = 1;
    const StampSink sink = n == 1 ? q4_stamp_sink() : StampSink();
    const DecodeKernel kernel = pick_kernel(D, GP, sink.buf != nullptr, &per_sm);
    // Enough ranges to fill the SMs once; the ranges' partials live in the chunk kernel's scratch
    // (n_chunks per head).
    const int units = n * kv.n_kv * (G / GP);
    int S = forced_ranges > 0 ? forced_ranges : std::max(1, device_attribute(cudaDevAttrMultiProcessorCount, 1) * per_sm / units);
    S = std::max(1, std::min({S, n_chunks, kMaxRanges}));
    float *part_o = scratch;
    float *part_ml = scratch + attn_split_ml_offset(n, Hq, D, n_chunks);
    launch(kernel, dim3(unsigned(units), unsigned(S)), kThreads, 0, stream, q, ldq, pos, seq, Hq, kv, scale, part_o,
           part_ml, n_chunks, fuse, out, ldo, n == 1 ? 1 : 0, sink);
    CUDA_CHECK_LAUNCH();
    if (!fuse.counters && !fuse.merge_used) {
        launch(attn_merge_kernel<RangesUsed>, unsigned(n * Hq), 128, (kMaxRanges + 8) * sizeof(float), stream, pos, Hq,
               D, n_chunks, part_o, part_ml, out, ldo, RangesUsed{S});
        CUDA_CHECK_LAUNCH();
    }
    return true;
}

} // namespace cuda
} // namespace gptq
