// quant_solver.cu — GPTQ for one linear layer on the GPU (see quant_solver.cuh). Every step
// mirrors solver.cpp so the results agree to floating-point noise: the same grid (grid.h /
// pack.cpp's quant_params_from_range, rounding half to even), the same stale-group rule (a
// group's grid is found on W as it stood when the current block started), the same factor.
#include "cuda/quant_solver.cuh"
#include "cuda/launch.cuh"
#include "cuda/quant_pipeline.h"

#include "common.h"
#include "quant/pack.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace gptq {
namespace cuda {

OwnedSolverHandles::OwnedSolverHandles(unsigned stream_flags) {
    stream_ = make_stream(stream_flags);
    blas_ = make_cublas(stream_.get());
    cusolverDnHandle_t solver = nullptr;
    CUSOLVER_CHECK(cusolverDnCreate(&solver));
    solver_.reset(solver);
    CUSOLVER_CHECK(cusolverDnSetStream(solver, stream_.get()));
    h_ = {stream_.get(), blas_.get(), solver};
}

std::atomic<size_t> &quant_bytes_live() { static std::atomic<size_t> v{0}; return v; }
std::atomic<size_t> &quant_bytes_peak() { static std::atomic<size_t> v{0}; return v; }

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kBlockCols = 128;   // the widest block the sweep kernel takes (4 columns per lane)
constexpr int kRowsPerWarp = 4;
constexpr int kWarps = 8;

inline unsigned blocks_for(size_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// ------------------------------------------------------------------ grid (pack.cpp / solver.cpp)

// quant_params_from_range + grid_scale: scale (fp16-rounded when fp16_scales) and zero point of a
// group whose weights span [wmin, wmax]. A scale beyond fp16 sets *bad.
__device__ __forceinline__ void grid_params(float wmin, float wmax, int maxq, bool sym, bool fp16_scales,
                                            int *bad, float &scale, float &zero) {
    float xmin = fminf(wmin, 0.f), xmax = fmaxf(wmax, 0.f);
    if (sym) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0.f && xmax == 0.f) { xmin = -1.f; xmax = 1.f; }
    float s = (xmax - xmin) / float(maxq);
    zero = sym ? float((maxq + 1) / 2) : rintf(-xmin / s);
    s = fmaxf(s, 5.9604645e-8f);  // 2^-24, fp16's smallest step
    const __half h = __float2half_rn(s);
    if ((__half_as_ushort(h) & 0x7c00) == 0x7c00) atomicExch(bad, 1);
    scale = fp16_scales ? __half2float(h) : s;
}

__device__ __forceinline__ int quantize_code_d(float w, float scale, float zero, int maxq) {
    float v = rintf(w / scale) + zero;
    v = fmaxf(0.f, v);
    v = fminf(float(maxq), v);
    return int(v);
}

__device__ __forceinline__ void warp_minmax(float &lo, float &hi) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        lo = fminf(lo, __shfl_xor_sync(kFull, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(kFull, hi, o));
    }
}

// The clipping search (solver.h, GptqOptions::mse_clip) for one output row, run by a warp: scale
// (the full-range grid, fp16-rounded as set) becomes scale x p for the p in 1, 1 - 1/grid, ...
// with the least Σ h_k |w_k - q(w_k)|^norm over the group's weights w[0, len); the zero point
// stays. Every lane returns the same choice.
struct ClipArgs {
    bool on = false;
    int steps = 0, grid = 100;
    float norm = 2.4f;
    bool fp16_scales = true;
};

__device__ __forceinline__ float clip_scale(const float *w, int len, const float *h, float full, float zero, int maxq,
                                            const ClipArgs &c, int *bad) {
    const int lane = threadIdx.x % 32;
    const bool square = c.norm == 2.f;
    float best = INFINITY, chosen = full;
    for (int i = 0; i < c.steps; ++i) {
        const float p = 1.f - float(i) / float(c.grid);
        const float s = fmaxf(full * p, 5.9604645e-8f);
        const __half hs = __float2half_rn(s);
        if ((__half_as_ushort(hs) & 0x7c00) == 0x7c00) atomicExch(bad, 1);
        const float cand = c.fp16_scales ? __half2float(hs) : s;
        float err = 0.f;
        for (int k = lane; k < len; k += 32) {
            const float x = w[k];
            const float d = fabsf(x - cand * (float(quantize_code_d(x, cand, zero, maxq)) - zero));
            err += (h ? h[k] : 1.f) * (square ? d * d : powf(d, c.norm));
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) err += __shfl_xor_sync(kFull, err, o);
        if (err < best) { best = err; chosen = cand; }
    }
    return chosen;
}

// ------------------------------------------------------------------ factor kernels

__global__ void diag_kernel(const float *S, int K, float *d) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < K) d[i] = S[size_t(i) * K + i];
}

// A = (scale · S)[rev, rev] with dead diagonals 1, plus `add` on the diagonal.
__global__ void damped_gather_kernel(const float *S, int K, float scale, const int32_t *perm,
                                     const uint8_t *dead, float add, float *A) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y;
    if (j >= K) return;
    const int ri = perm[K - 1 - i], rj = perm[K - 1 - j];
    float v = scale * S[size_t(ri) * K + rj];
    if (i == j) {
        if (dead[ri]) v = 1.f;
        v += add;
    }
    A[size_t(i) * K + j] = v;
}

// U[i][j] = M[K-1-j][K-1-i] for j >= i, else 0, where M is A read row-major (A holds L⁻¹ in
// column-major lower storage): U = J L⁻¹ J, solver.cpp's anti_transpose_upper out of place.
__global__ void anti_transpose_kernel(const float *A, int K, float *U, int *bad_diag) {
    __shared__ float tile[32][33];
    const int i0 = blockIdx.y * 32, j0 = blockIdx.x * 32;
    for (int ty = threadIdx.y; ty < 32; ty += blockDim.y) {
        const int r = K - 1 - (j0 + ty), c = K - 1 - (i0 + threadIdx.x);
        tile[ty][threadIdx.x] = (r >= 0 && c >= 0) ? A[size_t(r) * K + c] : 0.f;
    }
    __syncthreads();
    for (int ty = threadIdx.y; ty < 32; ty += blockDim.y) {
        const int i = i0 + ty, j = j0 + threadIdx.x;
        if (i >= K || j >= K) continue;
        const float v = j >= i ? tile[threadIdx.x][ty] : 0.f;
        U[size_t(i) * K + j] = v;
        if (i == j && !isfinite(v)) atomicExch(bad_diag, 1);
    }
}

// ------------------------------------------------------------------ weight preparation kernels

// One warp per (row n, segment g) of W [N, K]: the grid of weights [g*len, (g+1)*len) of row n.
// With do_range the grid from the segment's min/max; with clip.on the clipping search on top
// (of the grid just found, or of the one in scales/zeros). h: diag(H) of the inputs, or null.
__global__ void segment_grid_kernel(const float *W, int N, int K, int len, int G, int maxq, bool sym,
                                    bool fp16_scales, bool do_range, ClipArgs clip, const float *h, float *scales,
                                    float *zeros, int *bad) {
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= N * G) return;
    const int n = warp / G, g = warp % G;
    const float *w = W + size_t(n) * K + size_t(g) * len;
    float s, z;
    if (do_range) {
        float lo = 0.f, hi = 0.f;  // the grid includes 0 anyway
        for (int k = lane; k < len; k += 32) {
            lo = fminf(lo, w[k]);
            hi = fmaxf(hi, w[k]);
        }
        warp_minmax(lo, hi);
        grid_params(lo, hi, maxq, sym, fp16_scales, bad, s, z);
    } else {
        s = scales[size_t(g) * N + n];
        z = zeros[size_t(g) * N + n];
    }
    if (clip.on) s = clip_scale(w, len, h ? h + size_t(g) * len : nullptr, s, z, maxq, clip, bad);
    if (lane == 0) {
        scales[size_t(g) * N + n] = s;
        zeros[size_t(g) * N + n] = z;
    }
}

__global__ void zero_dead_kernel(float *W, int N, int K, const uint8_t *dead) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < size_t(N) * K && dead[i % K]) W[i] = 0.f;
}

__global__ void permute_cols_kernel(const float *W, int N, int K, const int32_t *perm, float *Wp) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= size_t(N) * K) return;
    const size_t n = i / K;
    Wp[i] = W[n * K + perm[i % K]];
}

// ------------------------------------------------------------------ the column sweep

struct SweepArgs {
    const float *W;      // [N, K] permuted, lazily updated
    int N, K, i1, cnt, ldE;
    const float *U;      // [K, K]
    float *Err;          // [N, ldE]
    uint8_t *codes;      // [N, K]
    float *scales, *zeros;  // [G, N]
    const int32_t *perm;
    int gs, mode;        // mode 0: one grid per column (precomputed), 1: dynamic groups, 2: static groups
    int maxq;
    bool sym, fp16_scales;
    double *loss;
    int *bad;
    ClipArgs clip;
    const float *hw;     // diag(H) in sweep order for the weighted clipping search, or null
};

// One block of up to 128 columns. Warp w of the CTA owns output rows row0..row0+3; lane l holds
// columns 4l..4l+3 of the block for each of them. Column c: its owner lane's value is broadcast,
// every lane computes the same code and error (no divergence), and each lane updates its own
// columns with the block's U row c (zero left of the diagonal, so no masking).
__global__ void __launch_bounds__(kWarps * 32) sweep_kernel(SweepArgs a) {
    extern __shared__ float sU[];  // [cnt][128]
    for (int idx = threadIdx.x; idx < a.cnt * kBlockCols; idx += blockDim.x) {
        const int r = idx / kBlockCols, j = idx % kBlockCols;
        sU[idx] = (j < a.cnt && j >= r) ? a.U[size_t(a.i1 + r) * a.K + a.i1 + j] : 0.f;
    }
    __syncthreads();
    const int lane = threadIdx.x % 32;
    const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * kRowsPerWarp;
    if (row0 >= a.N) return;

    float w[kRowsPerWarp][4], e[kRowsPerWarp][4], scale[kRowsPerWarp], zero[kRowsPerWarp];
    int code[kRowsPerWarp][4];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
        const int n = row0 + r;
        scale[r] = 1.f; zero[r] = 0.f;
        if (a.mode == 0 && n < a.N) { scale[r] = a.scales[n]; zero[r] = a.zeros[n]; }
        if (a.mode == 1 && a.i1 % a.gs != 0 && n < a.N) {  // a group that began in an earlier block
            const size_t gn = size_t(a.i1 / a.gs) * a.N + n;
            scale[r] = a.scales[gn];
            zero[r] = a.zeros[gn];
        }
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const int j = lane * 4 + t;
            w[r][t] = (n < a.N && j < a.cnt) ? a.W[size_t(n) * a.K + a.i1 + j] : 0.f;
            e[r][t] = 0.f;
            code[r][t] = 0;
        }
    }
    float loss = 0.f;
    int last_g = -1;
    for (int L = 0; L * 4 < a.cnt; ++L) {
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const int c = L * 4 + t;
            if (c >= a.cnt) break;
            const int cg = a.i1 + c;
            if (a.mode == 1 && cg % a.gs == 0) {
                // A new group: its grid from W as it stood when this block started (global W is
                // not written in the block's columns) and, past the block, with the lazy updates.
                const int g = cg / a.gs;
#pragma unroll
                for (int r = 0; r < kRowsPerWarp; ++r) {
                    const int n = row0 + r;
                    if (n >= a.N) continue;
                    const float *src = a.W + size_t(n) * a.K + cg;
                    float lo = 0.f, hi = 0.f;
                    for (int k = lane; k < a.gs; k += 32) {
                        lo = fminf(lo, src[k]);
                        hi = fmaxf(hi, src[k]);
                    }
                    warp_minmax(lo, hi);
                    grid_params(lo, hi, a.maxq, a.sym, a.fp16_scales, a.bad, scale[r], zero[r]);
                    if (a.clip.on)
                        scale[r] = clip_scale(src, a.gs, a.hw ? a.hw + cg : nullptr, scale[r], zero[r], a.maxq, a.clip,
                                              a.bad);
                    if (lane == 0) {
                        a.scales[size_t(g) * a.N + n] = scale[r];
                        a.zeros[size_t(g) * a.N + n] = zero[r];
                    }
                }
            } else if (a.mode == 2) {
                const int g = a.perm[cg] / a.gs;
                if (g != last_g) {
                    last_g = g;
#pragma unroll
                    for (int r = 0; r < kRowsPerWarp; ++r) {
                        const int n = row0 + r;
                        if (n < a.N) { scale[r] = a.scales[size_t(g) * a.N + n]; zero[r] = a.zeros[size_t(g) * a.N + n]; }
                    }
                }
            }
            const float d = sU[c * kBlockCols + c];
            const float4 u = *reinterpret_cast<const float4 *>(sU + c * kBlockCols + lane * 4);
#pragma unroll
            for (int r = 0; r < kRowsPerWarp; ++r) {
                const float wv = __shfl_sync(kFull, w[r][t], L);
                const int q = quantize_code_d(wv, scale[r], zero[r], a.maxq);
                const float err = (wv - scale[r] * (float(q) - zero[r])) / d;
                if (lane == L) { e[r][t] = err; code[r][t] = q; }
                if (row0 + r < a.N) loss += err * err;
                w[r][0] -= err * u.x;
                w[r][1] -= err * u.y;
                w[r][2] -= err * u.z;
                w[r][3] -= err * u.w;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
        const int n = row0 + r;
        if (n >= a.N) continue;
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const int j = lane * 4 + t;
            if (j < a.cnt) {
                a.Err[size_t(n) * a.ldE + j] = e[r][t];
                a.codes[size_t(n) * a.K + a.i1 + j] = uint8_t(code[r][t]);
            }
        }
    }
    if (lane == 0) atomicAdd(a.loss, double(loss));
}

// ------------------------------------------------------------------ packing, dequantizing

// qweight[wrd, n]: the bit stream of the codes of input k = 0.. (original order) along K.
__global__ void pack_qweight_kernel(const uint8_t *codes, const int32_t *invperm, int N, int K, int bits,
                                    uint32_t *qweight) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int words = int(int64_t(K) * bits / 32);
    if (i >= size_t(words) * N) return;
    const int wrd = int(i / N), n = int(i % N);
    const int b0 = wrd * 32;
    const int k0 = b0 / bits, k1 = min(K - 1, (b0 + 31) / bits);
    const uint8_t *row = codes + size_t(n) * K;
    uint32_t v = 0;
    for (int k = k0; k <= k1; ++k) {
        const uint32_t q = row[invperm[k]];
        const int pos = k * bits - b0;
        v |= pos >= 0 ? (q << pos) : (q >> -pos);
    }
    qweight[i] = v;
}

__device__ __forceinline__ void store_out(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_out(float *p, float v) { *p = v; }

template <class Out>
__global__ void dequant_kernel(const uint8_t *codes, const int32_t *invperm, const int32_t *g_idx,
                               const float *scales, const float *zeros, int N, int K, Out *out, int ldo) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= size_t(N) * K) return;
    const int n = int(i / K), k = int(i % K);
    const size_t gn = size_t(g_idx[k]) * N + n;
    const float s = __half2float(__float2half_rn(scales[gn]));
    const float q = float(codes[size_t(n) * K + invperm[k]]);
    store_out(out + size_t(n) * ldo + k, s * (q - zeros[gn]));
}

} // namespace

// ------------------------------------------------------------------ GpuFactor

void GpuFactor::build(const float *S, int64_t n_rows, int K_, const GptqOptions &opt, const char *name,
                      const SolverHandles &h) {
    K = K_;
    const size_t KK = size_t(K) * K;
    const float scale = float(2.0 / double(std::max<int64_t>(1, n_rows)));
    // The diagonal decides dead inputs, act-order and the damping; NaN/Inf anywhere in an input
    // row shows on the diagonal (x_k² or a NaN product).
    DevBuf<float> diag_d(static_cast<size_t>(K));
    diag_kernel<<<blocks_for(size_t(K), 256), 256, 0, h.stream>>>(S, K, diag_d.get());
    CUDA_CHECK_LAUNCH();
    std::vector<float> diag(static_cast<size_t>(K));
    CUDA_CHECK(cudaMemcpyAsync(diag.data(), diag_d.get(), size_t(K) * 4, cudaMemcpyDeviceToHost, h.stream));
    CUDA_CHECK(cudaStreamSynchronize(h.stream));
    std::vector<uint8_t> dead(static_cast<size_t>(K));
    std::vector<float> hdiag(static_cast<size_t>(K));  // diag(H), dead inputs 0 (the clipping search's weights)
    any_dead = false;
    double mean_diag = 0;
    for (int k = 0; k < K; ++k) {
        const float v = scale * diag[size_t(k)];
        if (!std::isfinite(v))
            fail(GPTQ_ERR_NUMERIC, "layer %s: Hessian [%d, %d] is %s (non-finite calibration inputs)", name, k, k,
                 std::isnan(v) ? "NaN" : "infinite");
        dead[size_t(k)] = v == 0.f;
        hdiag[size_t(k)] = v;
        any_dead |= v == 0.f;
        diag[size_t(k)] = dead[size_t(k)] ? 1.f : v;
        mean_diag += diag[size_t(k)];
    }
    mean_diag /= K;
    perm.resize(size_t(K));
    std::iota(perm.begin(), perm.end(), 0);
    if (opt.desc_act)
        std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return diag[size_t(a)] > diag[size_t(b)]; });
    std::vector<int32_t> inv(static_cast<size_t>(K));
    for (int j = 0; j < K; ++j) inv[size_t(perm[size_t(j)])] = j;
    perm_d.reserve(size_t(K));
    invperm_d.reserve(size_t(K));
    dead_d.reserve(size_t(K));
    CUDA_CHECK(cudaMemcpyAsync(perm_d.get(), perm.data(), size_t(K) * 4, cudaMemcpyHostToDevice, h.stream));
    CUDA_CHECK(cudaMemcpyAsync(invperm_d.get(), inv.data(), size_t(K) * 4, cudaMemcpyHostToDevice, h.stream));
    CUDA_CHECK(cudaMemcpyAsync(dead_d.get(), dead.data(), size_t(K), cudaMemcpyHostToDevice, h.stream));
    std::vector<float> hdiag_p(static_cast<size_t>(K));
    for (int j = 0; j < K; ++j) hdiag_p[size_t(j)] = hdiag[size_t(perm[size_t(j)])];
    hdiag_d.reserve(size_t(K));
    hdiag_perm_d.reserve(size_t(K));
    CUDA_CHECK(cudaMemcpyAsync(hdiag_d.get(), hdiag.data(), size_t(K) * 4, cudaMemcpyHostToDevice, h.stream));
    CUDA_CHECK(cudaMemcpyAsync(hdiag_perm_d.get(), hdiag_p.data(), size_t(K) * 4, cudaMemcpyHostToDevice, h.stream));

    A_.reserve(KK);
    U.reserve(KK);
    info_.reserve(2);
    CUSOLVER_CHECK(cusolverDnSetStream(h.solver, h.stream));
    int lwork = 0;
    CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(h.solver, CUBLAS_FILL_MODE_LOWER, K, A_.get(), K, &lwork));
    size_t dws = 0, hws = 0;
    CUSOLVER_CHECK(cusolverDnXtrtri_bufferSize(h.solver, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, K, CUDA_R_32F,
                                               A_.get(), K, &dws, &hws));
    work_.reserve(std::max(size_t(lwork) * 4, dws) + 16);
    host_work_.resize(std::max<size_t>(hws, 1));

    const int max_tries = 10;
    float damp = opt.damp_percent;
    for (int attempt = 1;; ++attempt) {
        const float add = float(double(damp) * mean_diag);
        damped_gather_kernel<<<dim3(blocks_for(size_t(K), 256), unsigned(K)), 256, 0, h.stream>>>(
            S, K, scale, perm_d.get(), dead_d.get(), add, A_.get());
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaMemsetAsync(info_.get(), 0, 2 * sizeof(int), h.stream));
        CUSOLVER_CHECK(cusolverDnSpotrf(h.solver, CUBLAS_FILL_MODE_LOWER, K, A_.get(), K,
                                        reinterpret_cast<float *>(work_.get()), lwork, info_.get()));
        int info[2] = {0, 0};
        CUDA_CHECK(cudaMemcpyAsync(info, info_.get(), sizeof(int), cudaMemcpyDeviceToHost, h.stream));
        CUDA_CHECK(cudaStreamSynchronize(h.stream));
        const char *step = "Cholesky factorization";
        int code = info[0];
        if (code == 0) {
            step = "triangular inversion";
            CUSOLVER_CHECK(cusolverDnXtrtri(h.solver, CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, K, CUDA_R_32F,
                                            A_.get(), K, work_.get(), dws, host_work_.data(), hws, info_.get()));
            dim3 tb(32, 8), grid(unsigned((K + 31) / 32), unsigned((K + 31) / 32));
            anti_transpose_kernel<<<grid, tb, 0, h.stream>>>(A_.get(), K, U.get(), info_.get() + 1);
            CUDA_CHECK_LAUNCH();
            CUDA_CHECK(cudaMemcpyAsync(info, info_.get(), 2 * sizeof(int), cudaMemcpyDeviceToHost, h.stream));
            CUDA_CHECK(cudaStreamSynchronize(h.stream));
            code = info[0];
            if (code == 0 && info[1] == 0) {
                damp_used = damp;
                return;
            }
            if (code == 0) step = "inverse (non-finite values)";
        }
        if (attempt >= max_tries || opt.damp_auto_increment <= 0)
            fail(GPTQ_ERR_NUMERIC,
                 "layer %s: the Hessian's %s failed (cuSOLVER info %d) with damp_percent %g after %d tries; the "
                 "layer's calibration inputs are degenerate",
                 name, step, code, double(damp), attempt);
        const float next = damp + opt.damp_auto_increment;
        log_msg(GPTQ_LOG_WARN, "layer %s: Hessian %s failed with damp_percent %g; retrying with %g", name, step,
                double(damp), double(next));
        damp = next;
    }
}

// ------------------------------------------------------------------ GpuSolver

void GpuSolver::solve(float *W, int N, int K, const GpuFactor &f, const GptqOptions &opt, const char *name,
                      const SolverHandles &h, GpuLayerResult &r) {
    if (f.K != K) fail(GPTQ_ERR_INTERNAL, "layer %s: factor of size %d for K = %d", name, f.K, K);
    const int gs = opt.group_size;
    if (gs != -1 && (gs <= 0 || K % gs != 0))
        fail(GPTQ_ERR_INVALID_ARG, "layer %s: group_size %d does not divide the input size K = %d", name, gs, K);
    const int B = std::min(opt.block_size, K);
    if (B <= 0 || B > kBlockCols)
        fail(GPTQ_ERR_UNSUPPORTED, "layer %s: the GPU solver takes block_size 1..%d, not %d", name, kBlockCols,
             opt.block_size);
    const int maxq = (1 << opt.bits) - 1;
    const size_t NK = size_t(N) * K;
    r.K = K; r.N = N; r.gs = gs; r.static_groups = opt.static_groups;
    r.G = gs == -1 ? 1 : K / gs;
    r.codes.reserve(NK);
    r.scales.reserve(size_t(r.G) * N);
    r.zeros.reserve(size_t(r.G) * N);
    loss_.reserve(1);
    flag_.reserve(1);
    CUDA_CHECK(cudaMemsetAsync(loss_.get(), 0, sizeof(double), h.stream));
    CUDA_CHECK(cudaMemsetAsync(flag_.get(), 0, sizeof(int), h.stream));
    const unsigned nb = blocks_for(NK, 256);
    const unsigned warps_blocks = blocks_for(size_t(N) * r.G * 32, 256);

    ClipArgs clip;
    clip.on = opt.mse_clip;
    clip.steps = std::max(1, int(opt.mse_max_shrink * float(opt.mse_grid)));
    clip.grid = opt.mse_grid;
    clip.norm = opt.mse_norm;
    clip.fp16_scales = opt.fp16_scales;
    const float *hw = opt.mse_h_weighted ? f.hdiag_d.get() : nullptr;
    const ClipArgs no_clip;
    // Per-column grid: found on W before dead inputs are zeroed (as the reference does); the
    // clipping search runs on the zeroed W.
    if (gs == -1)
        segment_grid_kernel<<<blocks_for(size_t(N) * 32, 256), 256, 0, h.stream>>>(
            W, N, K, K, 1, maxq, opt.sym, opt.fp16_scales, true, no_clip, nullptr, r.scales.get(), r.zeros.get(),
            flag_.get());
    if (f.any_dead) zero_dead_kernel<<<nb, 256, 0, h.stream>>>(W, N, K, f.dead_d.get());
    if (gs == -1 && clip.on)
        segment_grid_kernel<<<blocks_for(size_t(N) * 32, 256), 256, 0, h.stream>>>(
            W, N, K, K, 1, maxq, opt.sym, opt.fp16_scales, false, clip, hw, r.scales.get(), r.zeros.get(), flag_.get());
    if (gs != -1 && opt.static_groups)
        segment_grid_kernel<<<warps_blocks, 256, 0, h.stream>>>(W, N, K, gs, r.G, maxq, opt.sym, opt.fp16_scales, true,
                                                               clip, hw, r.scales.get(), r.zeros.get(), flag_.get());
    CUDA_CHECK_LAUNCH();
    float *Wp = W;
    if (opt.desc_act) {
        Wp_.reserve(NK);
        Wp = Wp_.get();
        permute_cols_kernel<<<nb, 256, 0, h.stream>>>(W, N, K, f.perm_d.get(), Wp);
        CUDA_CHECK_LAUNCH();
    }
    Err_.reserve(size_t(N) * B);

    SweepArgs a;
    a.W = Wp; a.N = N; a.K = K; a.ldE = B; a.U = f.U.get(); a.Err = Err_.get(); a.codes = r.codes.get();
    a.scales = r.scales.get(); a.zeros = r.zeros.get(); a.perm = f.perm_d.get();
    a.gs = gs; a.mode = gs == -1 ? 0 : (opt.static_groups ? 2 : 1);
    a.maxq = maxq; a.sym = opt.sym; a.fp16_scales = opt.fp16_scales; a.loss = loss_.get(); a.bad = flag_.get();
    a.clip = clip;
    a.hw = opt.mse_h_weighted ? f.hdiag_perm_d.get() : nullptr;
    const int smem = B * kBlockCols * 4;
    allow_dynamic_smem(sweep_kernel, size_t(smem));
    const unsigned grid = blocks_for(size_t(N), kWarps * kRowsPerWarp);
    CUBLAS_CHECK(cublasSetStream(h.blas, h.stream));
    for (int i1 = 0; i1 < K; i1 += B) {
        const int i2 = std::min(K, i1 + B);
        a.i1 = i1;
        a.cnt = i2 - i1;
        sweep_kernel<<<grid, kWarps * 32, smem, h.stream>>>(a);
        CUDA_CHECK_LAUNCH();
        if (i2 < K) {
            // W[:, i2:] -= Err · U[i1:i2, i2:] (column-major view: Wᵀ[i2:, :] -= U[i1:i2, i2:]ᵀ · Errᵀ).
            const float minus_one = -1.f, one = 1.f;
            CUBLAS_CHECK(cublasSgemm(h.blas, CUBLAS_OP_N, CUBLAS_OP_N, K - i2, N, i2 - i1, &minus_one,
                                     f.U.get() + size_t(i1) * K + i2, K, Err_.get(), B, &one, Wp + i2, K));
        }
    }
    double loss = 0;
    int bad = 0;
    CUDA_CHECK(cudaMemcpyAsync(&loss, loss_.get(), sizeof(double), cudaMemcpyDeviceToHost, h.stream));
    CUDA_CHECK(cudaMemcpyAsync(&bad, flag_.get(), sizeof(int), cudaMemcpyDeviceToHost, h.stream));
    CUDA_CHECK(cudaStreamSynchronize(h.stream));
    if (bad) fail(GPTQ_ERR_NUMERIC, "layer %s: a quantization scale does not fit in fp16", name);
    r.error = loss / 2;
    r.damp_used = f.damp_used;
}

void GpuSolver::pack(const GpuLayerResult &r, const GpuFactor &f, int bits, int32_t *qweight, cudaStream_t s) {
    const size_t n = size_t(r.K) * bits / 32 * r.N;
    pack_qweight_kernel<<<blocks_for(n, 256), 256, 0, s>>>(r.codes.get(), f.invperm_d.get(), r.N, r.K, bits,
                                                           reinterpret_cast<uint32_t *>(qweight));
    CUDA_CHECK_LAUNCH();
}

std::vector<int32_t> gptq_g_idx(const GpuFactor &f, int gs, bool static_groups) {
    std::vector<int32_t> g(size_t(f.K));
    for (int j = 0; j < f.K; ++j) {
        const int k = f.perm[size_t(j)];
        g[size_t(k)] = gs == -1 ? 0 : (static_groups ? k / gs : j / gs);
    }
    return g;
}

template <class Out>
void dequantize_impl(const GpuLayerResult &r, const GpuFactor &f, Out *out, int ldo, cudaStream_t s) {
    const std::vector<int32_t> g = gptq_g_idx(f, r.gs, r.static_groups);
    DevBuf<int32_t> g_d(size_t(r.K));
    CUDA_CHECK(cudaMemcpyAsync(g_d.get(), g.data(), size_t(r.K) * 4, cudaMemcpyHostToDevice, s));
    dequant_kernel<<<blocks_for(size_t(r.N) * r.K, 256), 256, 0, s>>>(
        r.codes.get(), f.invperm_d.get(), g_d.get(), r.scales.get(), r.zeros.get(), r.N, r.K, out, ldo);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaStreamSynchronize(s));  // g_d is freed on return
}

void GpuSolver::dequantize(const GpuLayerResult &r, const GpuFactor &f, __half *out, int ldo, cudaStream_t s) {
    dequantize_impl(r, f, out, ldo, s);
}

void GpuSolver::dequantize(const GpuLayerResult &r, const GpuFactor &f, float *out, int ldo, cudaStream_t s) {
    dequantize_impl(r, f, out, ldo, s);
}

} // namespace cuda

// ------------------------------------------------------------------ one layer, for tests

GptqResult gptq_quantize_layer_cuda(const float *W, int N, int K, const float *H, const GptqOptions &opt,
                                    const char *name_in) {
    using namespace cuda;
    const char *name = name_in && *name_in ? name_in : "(unnamed layer)";
    if (N <= 0 || K <= 0) fail(GPTQ_ERR_INVALID_ARG, "layer %s: empty weight [%d, %d]", name, N, K);
    if (!W || !H) fail(GPTQ_ERR_INVALID_ARG, "layer %s: no weight or no Hessian", name);
    if (opt.bits != 2 && opt.bits != 3 && opt.bits != 4 && opt.bits != 8)
        fail(GPTQ_ERR_UNSUPPORTED, "layer %s: %d bits is not a GPTQ bit width (2, 3, 4 or 8)", name, opt.bits);
    for (size_t i = 0; i < size_t(N) * K; ++i)
        if (!std::isfinite(W[i])) fail(GPTQ_ERR_NUMERIC, "layer %s: weight %zu is not finite", name, i);
    const OwnedSolverHandles owned(cudaStreamDefault);  // synchronous with the default stream's copies
    const SolverHandles &h = owned.get();
    // The factor takes S = Σ x xᵀ over n rows: pass H itself as the sum of 2 rows.
    DevBuf<float> S(size_t(K) * K), Wd(size_t(N) * K);
    CUDA_CHECK(cudaMemcpy(S.get(), H, size_t(K) * K * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(Wd.get(), W, size_t(N) * K * 4, cudaMemcpyHostToDevice));
    GpuFactor f;
    f.build(S.get(), 2, K, opt, name, h);
    GpuSolver solver;
    GpuLayerResult r;
    solver.solve(Wd.get(), N, K, f, opt, name, h, r);

    GptqResult res;
    res.K = K; res.N = N; res.G = r.G;
    res.error = r.error;
    res.damp_used = r.damp_used;
    std::vector<uint8_t> codes_nk(size_t(N) * K);
    res.scales.resize(size_t(r.G) * N);
    std::vector<float> zf(size_t(r.G) * N);
    CUDA_CHECK(cudaMemcpy(codes_nk.data(), r.codes.get(), codes_nk.size(), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(res.scales.data(), r.scales.get(), zf.size() * 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(zf.data(), r.zeros.get(), zf.size() * 4, cudaMemcpyDeviceToHost));
    res.codes.resize(size_t(K) * N);
    for (int n = 0; n < N; ++n)
        for (int j = 0; j < K; ++j)
            res.codes[size_t(f.perm[size_t(j)]) * N + n] = codes_nk[size_t(n) * K + j];
    res.zeros.resize(zf.size());
    for (size_t i = 0; i < zf.size(); ++i) res.zeros[i] = int32_t(zf[i]);
    res.g_idx = gptq_g_idx(f, r.gs, r.static_groups);
    res.dequantized.resize(size_t(N) * K);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) {
            const size_t gn = size_t(res.g_idx[size_t(k)]) * N + n;
            res.dequantized[size_t(n) * K + k] =
                dequantize_value(res.codes[size_t(k) * N + n], f16_to_f32(f32_to_f16(res.scales[gn])), zf[gn]);
        }
    return res;
}

void pack_qweight_cuda(const uint8_t *codes, const int32_t *perm, int K, int N, int bits, int32_t *qweight) {
    using namespace cuda;
    if (!packable(K, bits)) fail(GPTQ_ERR_INVALID_ARG, "pack_qweight_cuda: K = %d cannot be packed at %d bits", K, bits);
    std::vector<uint8_t> cp(size_t(N) * K);
    std::vector<int32_t> inv(static_cast<size_t>(K));
    for (int j = 0; j < K; ++j) {
        inv[size_t(perm[j])] = j;
        for (int n = 0; n < N; ++n) cp[size_t(n) * K + j] = codes[size_t(perm[j]) * N + n];
    }
    const size_t words = size_t(K) * bits / 32 * N;
    DevBuf<uint8_t> c_d(cp.size());
    DevBuf<int32_t> inv_d(inv.size()), q_d(words);
    CUDA_CHECK(cudaMemcpy(c_d.get(), cp.data(), cp.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(inv_d.get(), inv.data(), inv.size() * 4, cudaMemcpyHostToDevice));
    pack_qweight_kernel<<<blocks_for(words, 256), 256>>>(c_d.get(), inv_d.get(), N, K, bits,
                                                         reinterpret_cast<uint32_t *>(q_d.get()));
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(qweight, q_d.get(), words * 4, cudaMemcpyDeviceToHost));
}

} // namespace gptq
