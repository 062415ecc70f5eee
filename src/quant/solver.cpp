// solver.cpp — GPTQ (Frantar et al., 2022) for one linear layer on the CPU, following the
// reference implementation step by step (see solver.h), plus round-to-nearest on the same grid.
//
// Layout: the solver works on Wt = Wᵀ [K, N] (k-major), so "column c of W" — what GPTQ quantizes
// one at a time — is a contiguous row of N floats. Every output column n evolves independently
// of the others (they share only U), so each thread takes a slice of n and runs the whole blocked
// sweep on it, lazy-batch GEMMs included (OpenBLAS single-threaded meanwhile): no barriers, and
// no OpenMP and OpenBLAS threads competing for the cores.
#include "quant/solver.h"

#include "common.h"
#include "quant/grid.h"
#include "quant/pack.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>

// LAPACK (Fortran symbols in OpenBLAS); the trailing argument is the hidden length of `uplo`.
extern "C" {
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
void strtri_(const char *uplo, const char *diag, const int *n, float *a, const int *lda, int *info,
             size_t uplo_len, size_t diag_len);
}

namespace gptq {
namespace {

const char *layer_name(const char *name) { return name && *name ? name : "(unnamed layer)"; }

void validate(const float *W, int N, int K, const GptqOptions &opt, const char *name) {
    if (N <= 0 || K <= 0) fail(GPTQ_ERR_INVALID_ARG, "layer %s: empty weight [%d, %d]", name, N, K);
    if (!W) fail(GPTQ_ERR_INVALID_ARG, "layer %s: no weight", name);
    if (opt.bits != 2 && opt.bits != 3 && opt.bits != 4 && opt.bits != 8)
        fail(GPTQ_ERR_UNSUPPORTED, "layer %s: %d bits is not a GPTQ bit width (2, 3, 4 or 8)", name,
             opt.bits);
    if (opt.group_size != -1 && (opt.group_size <= 0 || K % opt.group_size != 0))
        fail(GPTQ_ERR_INVALID_ARG,
             "layer %s: group_size %d does not divide the input size K = %d (use -1 or a divisor)",
             name, opt.group_size, K);
    if (opt.block_size <= 0)
        fail(GPTQ_ERR_INVALID_ARG, "layer %s: block_size %d must be positive", name, opt.block_size);
    if (!(opt.damp_percent >= 0) || !(opt.damp_auto_increment >= 0))
        fail(GPTQ_ERR_INVALID_ARG, "layer %s: damp_percent %g and damp_auto_increment %g must be >= 0",
             name, double(opt.damp_percent), double(opt.damp_auto_increment));
    const size_t n = size_t(N) * size_t(K);
    for (size_t i = 0; i < n; ++i)
        if (!std::isfinite(W[i]))
            fail(GPTQ_ERR_NUMERIC, "layer %s: weight [%zu, %zu] is %s", name, i / size_t(K),
                 i % size_t(K), std::isnan(W[i]) ? "NaN" : "infinite");
}

// The scale the quantizer uses and the file stores. It must survive the trip to fp16; with
// fp16_scales the solver uses the fp16 value itself so its error feedback sees the file's weights.
// A group of tiny weights (|w| below ~1e-7) would get a scale that fp16 flushes to 0: it gets
// fp16's smallest step 2^-24 instead, which still dequantizes such weights to about 0.
float grid_scale(float scale, bool fp16_scales, const char *name) {
    scale = std::max(scale, 5.9604645e-8f);  // 2^-24
    const uint16_t h = f32_to_f16(scale);
    if ((h & 0x7c00) == 0x7c00)
        fail(GPTQ_ERR_NUMERIC, "layer %s: quantization scale %g does not fit in fp16", name,
             double(scale));
    return fp16_scales ? f16_to_f32(h) : scale;
}

// Grid parameters of one group for output columns [n0, n1), from the group's min/max per column.
void set_params(const float *wmin, const float *wmax, int n0, int n1, const GptqOptions &opt,
                const char *name, float *scale, float *zero) {
    for (int n = n0; n < n1; ++n) {
        QuantParams p = quant_params_from_range(wmin[n], wmax[n], opt.bits, opt.sym);
        scale[n] = grid_scale(p.scale, opt.fp16_scales, name);
        zero[n] = p.zero;
    }
}

// Row-wise min/max over `rows` rows of a k-major matrix, for columns [n0, n1).
template <class RowFn>
void range_of_rows(RowFn row, int rows, int n0, int n1, float *wmin, float *wmax) {
    for (int n = n0; n < n1; ++n) { wmin[n] = 0.f; wmax[n] = 0.f; }  // the grid includes 0 anyway
    for (int r = 0; r < rows; ++r) {
        const float *x = row(r);
        for (int n = n0; n < n1; ++n) {
            wmin[n] = std::min(wmin[n], x[n]);
            wmax[n] = std::max(wmax[n], x[n]);
        }
    }
}

// The clipping search of solver.h (GptqOptions::mse_clip) for output columns [n0, n1): `scale`
// and `zero` hold the full-range grid on entry and the best shrunk one on return. Shrinking the
// range by p scales the step by p and leaves the zero point where it was (the reference's
// round(-p·xmin / (p·scale)) does not depend on p). row(r) is the r-th input row of the group
// (k-major, N floats); h[r] its weight, or nullptr for 1.
template <class RowFn>
void clip_search(RowFn row, int rows, const float *h, int n0, int n1, const GptqOptions &opt,
                 const char *name, float *scale, float *zero) {
    const int maxq = (1 << opt.bits) - 1;
    const int steps = std::max(1, int(opt.mse_max_shrink * float(opt.mse_grid)));
    const bool square = opt.mse_norm == 2.f;
    constexpr int W = 64;  // columns per pass, so the running sums stay in L1
    float full[W], cand[W], err[W], best[W];
    for (int c0 = n0; c0 < n1; c0 += W) {
        const int w = std::min(W, n1 - c0);
        for (int j = 0; j < w; ++j) { full[j] = scale[c0 + j]; best[j] = INFINITY; }
        for (int i = 0; i < steps; ++i) {
            const float p = 1.f - float(i) / float(opt.mse_grid);
            for (int j = 0; j < w; ++j) { cand[j] = grid_scale(full[j] * p, opt.fp16_scales, name); err[j] = 0.f; }
            const float *z = zero + c0;
            for (int r = 0; r < rows; ++r) {
                const float *x = row(r) + c0;
                const float hr = h ? h[r] : 1.f;
                for (int j = 0; j < w; ++j) {
                    const float d = std::fabs(x[j] - dequantize_value(quantize_code(x[j], cand[j], z[j], maxq), cand[j], z[j]));
                    err[j] += hr * (square ? d * d : std::pow(d, opt.mse_norm));
                }
            }
            for (int j = 0; j < w; ++j)
                if (err[j] < best[j]) { best[j] = err[j]; scale[c0 + j] = cand[j]; }
        }
    }
}

// Quantizes one column (a row of Wt) over [n0, n1): codes, and the scaled error (w - q) / d that
// GPTQ feeds forward. Returns Σ ((w - q) / d)², the column's share of the reference's loss.
double quantize_column(const float *__restrict w, const float *__restrict scale,
                       const float *__restrict zero, float d, int maxq, int n0, int n1,
                       uint8_t *__restrict codes, float *__restrict err) {
    for (int n = n0; n < n1; ++n) {
        const int q = quantize_code(w[n], scale[n], zero[n], maxq);
        codes[n] = uint8_t(q);
        err[n] = (w[n] - dequantize_value(q, scale[n], zero[n])) / d;
    }
    float loss = 0.f;  // a separate loop: the one above vectorizes without it
    for (int n = n0; n < n1; ++n) loss += err[n] * err[n];
    return loss;
}

// w[n] -= e[n] * u over [n0, n1).
void subtract_scaled(float *__restrict w, const float *__restrict e, float u, int n0, int n1) {
    for (int n = n0; n < n1; ++n) w[n] -= e[n] * u;
}

// Splits [0, N) into nt slices aligned to 16 floats (one cache line), so threads never share one.
void thread_slice(int N, int nt, int t, int *n0, int *n1) {
    const int lines = (N + 15) / 16;
    const int per = lines / nt, extra = lines % nt;
    const int l0 = t * per + std::min(t, extra);
    const int l1 = l0 + per + (t < extra ? 1 : 0);
    *n0 = std::min(N, l0 * 16);
    *n1 = std::min(N, l1 * 16);
}

// OpenBLAS's (process-wide) thread count, changed for the phases of one solve and restored after.
class BlasThreads {
public:
    BlasThreads() : saved_(openblas_get_num_threads()) {}
    ~BlasThreads() { restore(); }
    void set(int n) {
        if (n > 0 && n != openblas_get_num_threads()) openblas_set_num_threads(n);
    }
    void restore() { set(saved_); }

private:
    int saved_;
};

// The column sweep of GPTQ for the output columns [n0, n1). Every output column's quantization
// depends only on its own weights and the shared U, so threads each take a slice of columns and
// run all blocks without synchronizing.
struct Sweep {
    const GptqOptions *opt;
    const char *name;
    int K, N, B, maxq;
    const int *perm;
    const float *U;      // [K, K] upper factor (row-major)
    const float *hdiag;  // [K] diag(H) in permuted order, for the weighted clipping search, or null
    float *Wt;           // [K, N] permuted weights, updated in place
    float *scales;       // [G, N] grid per group (filled here unless static / per column)
    float *zeros;        // [G, N]
    uint8_t *codes;      // [K, N] codes in permuted order
    float *Err;          // [B, N] (w - q) / U[c,c] of the block's columns
    float *Stale;        // [B, N] the block's columns before this block's updates

    double run(int n0, int n1) const {
        const int gs = opt->group_size;
        const bool dynamic_groups = gs != -1 && !opt->static_groups;
        const size_t width = size_t(n1 - n0);
        std::vector<float> tmin(N), tmax(N);
        double loss = 0;
        for (int i1 = 0; i1 < K; i1 += B) {
            const int i2 = std::min(K, i1 + B), cnt = i2 - i1;
            // The reference finds a group's grid on its W, whose columns inside the current
            // block have not seen this block's updates yet: snapshot them when a group starts
            // mid-block.
            const bool need_stale = dynamic_groups && (i1 / gs + 1) * gs < i2;
            if (need_stale)
                for (int r = i1; r < i2; ++r)
                    std::memcpy(Stale + size_t(r - i1) * N + n0, Wt + size_t(r) * N + n0,
                                sizeof(float) * width);
            for (int c = i1; c < i2; ++c) {
                int g = 0;
                if (gs != -1) {
                    g = opt->static_groups ? perm[c] / gs : c / gs;
                    if (dynamic_groups && c % gs == 0) {
                        auto row = [&](int r) {
                            const int k = c + r;
                            return need_stale && k < i2 ? Stale + size_t(k - i1) * N : Wt + size_t(k) * N;
                        };
                        range_of_rows(row, gs, n0, n1, tmin.data(), tmax.data());
                        set_params(tmin.data(), tmax.data(), n0, n1, *opt, name,
                                   scales + size_t(g) * N, zeros + size_t(g) * N);
                        if (opt->mse_clip)
                            clip_search(row, gs, hdiag ? hdiag + c : nullptr, n0, n1, *opt, name,
                                        scales + size_t(g) * N, zeros + size_t(g) * N);
                    }
                }
                float *e = Err + size_t(c - i1) * N;
                loss += quantize_column(Wt + size_t(c) * N, scales + size_t(g) * N,
                                        zeros + size_t(g) * N, U[size_t(c) * K + c], maxq, n0, n1,
                                        codes + size_t(c) * N, e);
                // Spread the error over the rest of the block (rank-1 update, row by row).
                const float *u = U + size_t(c) * K;
                for (int j = c + 1; j < i2; ++j) subtract_scaled(Wt + size_t(j) * N, e, u[j], n0, n1);
            }
            // The lazy batch update of all later columns: Wt[i2:] -= U[i1:i2, i2:]ᵀ · Err.
            if (i2 < K)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K - i2, int(width), cnt, -1.f,
                            U + size_t(i1) * K + i2, K, Err + n0, N, 1.f, Wt + size_t(i2) * N + n0, N);
        }
        return loss;
    }
};

// Fills codes-derived fields of the result: g_idx, dequantized weights (with the fp16 scales the
// file holds), integer zeros.
void finish_result(GptqResult &res, const std::vector<float> &zero_f) {
    const int K = res.K, N = res.N;
    res.zeros.resize(zero_f.size());
    for (size_t i = 0; i < zero_f.size(); ++i) res.zeros[i] = int32_t(zero_f[i]);
    std::vector<float> s16(res.scales.size());
    for (size_t i = 0; i < s16.size(); ++i) s16[i] = f16_to_f32(f32_to_f16(res.scales[i]));
    res.dequantized.assign(size_t(N) * K, 0.f);
    const int KB = 64;
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int k1 = std::min(K, k0 + KB);
        for (int n = 0; n < N; ++n) {
            float *w = res.dequantized.data() + size_t(n) * K;
            for (int k = k0; k < k1; ++k) {
                const size_t gn = size_t(res.g_idx[k]) * N + n;
                w[k] = dequantize_value(res.codes[size_t(k) * N + n], s16[gn], zero_f[gn]);
            }
        }
    }
}

// Transposes the upper triangle of a row-major K x K matrix about its anti-diagonal, in place:
// M[i][j] <-> M[K-1-j][K-1-i]. Tiles keep both sides of each swap in cache.
void anti_transpose_upper(float *M, int K) {
    const int T = 64;
    for (int i0 = 0; i0 < K; i0 += T)
        for (int j0 = i0; j0 < K; j0 += T)
            for (int i = i0; i < std::min(K, i0 + T); ++i)
                for (int j = std::max(i, j0); j < std::min(K, j0 + T) && i + j < K - 1; ++j)
                    std::swap(M[size_t(i) * K + j], M[size_t(K - 1 - j) * K + (K - 1 - i)]);
}

// U, the upper Cholesky factor of the inverse of the damped, permuted Hessian Hp (Hp⁻¹ = UᵀU,
// U row-major) — what the reference gets from cholesky(Hp), cholesky_inverse and an upper
// cholesky of the result. The same factor costs half the work without forming Hp⁻¹: with J the
// order reversal, JHpJ = L Lᵀ gives Hp⁻¹ = J L⁻ᵀ L⁻¹ J = UᵀU for the upper U = J L⁻¹ J (a
// Cholesky factor with a positive diagonal is unique, so this is the reference's U).
// Row-major upper is LAPACK's column-major lower, hence 'L' below.
// Returns the damp fraction that worked; throws NUMERIC after max_tries failures.
float damped_inverse_cholesky(const float *H, int K, const std::vector<int> &perm,
                              const std::vector<char> &dead, const GptqOptions &opt,
                              const char *name, float *U) {
    double mean_diag = 0;
    for (int i = 0; i < K; ++i) mean_diag += dead[i] ? 1.0 : double(H[size_t(i) * K + i]);
    mean_diag /= K;
    std::vector<int> rev(K);  // JHpJ's order: act-order reversed
    for (int i = 0; i < K; ++i) rev[i] = perm[K - 1 - i];
    const int max_tries = 10;
    float damp = opt.damp_percent;
    for (int attempt = 1;; ++attempt) {
        const float add = float(double(damp) * mean_diag);
        for (int i = 0; i < K; ++i) {
            const float *__restrict src = H + size_t(rev[i]) * K;
            float *__restrict dst = U + size_t(i) * K;
            for (int j = i; j < K; ++j) dst[j] = src[rev[j]];  // the upper triangle is enough
            if (dead[rev[i]]) dst[i] = 1.f;
            dst[i] += add;
        }
        int info = 0;
        spotrf_("L", &K, U, &K, &info, 1);
        const char *step = "Cholesky factorization";
        if (info == 0) {
            step = "triangular inversion";
            strtri_("L", "N", &K, U, &K, &info, 1, 1);
        }
        if (info == 0) {
            bool finite = true;
            for (int i = 0; i < K && finite; ++i) finite = std::isfinite(U[size_t(i) * K + i]);
            if (finite) {
                anti_transpose_upper(U, K);
                return damp;
            }
            step = "inverse (non-finite values)";
        }
        if (attempt >= max_tries || opt.damp_auto_increment <= 0)
            fail(GPTQ_ERR_NUMERIC,
                 "layer %s: the Hessian's %s failed (LAPACK info %d) with damp_percent %g after %d "
                 "tries; the layer's calibration inputs are degenerate",
                 name, step, info, double(damp), attempt);
        const float next = damp + opt.damp_auto_increment;
        log_msg(GPTQ_LOG_WARN,
                "layer %s: Hessian %s failed with damp_percent %g; retrying with %g", name, step,
                double(damp), double(next));
        damp = next;
    }
}

} // namespace

GptqResult gptq_quantize_layer(const float *W, int N, int K, const float *H, const GptqOptions &opt,
                               const char *name_in) {
    const char *name = layer_name(name_in);
    validate(W, N, K, opt, name);
    if (!H) fail(GPTQ_ERR_INVALID_ARG, "layer %s: no Hessian", name);
    const size_t KK = size_t(K) * size_t(K);
    for (size_t i = 0; i < KK; ++i)
        if (!std::isfinite(H[i]))
            fail(GPTQ_ERR_NUMERIC, "layer %s: Hessian [%zu, %zu] is %s", name, i / size_t(K),
                 i % size_t(K), std::isnan(H[i]) ? "NaN" : "infinite");

    const int gs = opt.group_size;
    const int G = gs == -1 ? 1 : K / gs;
    const int maxq = (1 << opt.bits) - 1;
    // Threads split the output columns; a small layer is not worth waking them for.
    int nt = std::max(1, std::min(resolve_threads(opt.n_threads), (N + 15) / 16));
    if (size_t(N) * size_t(K) < (size_t(1) << 16)) nt = 1;
    BlasThreads blas_threads;
    if (opt.n_threads > 0) blas_threads.set(resolve_threads(opt.n_threads));

    GptqResult res;
    res.K = K; res.N = N; res.G = G;
    res.scales.assign(size_t(G) * N, 0.f);
    std::vector<float> zero_f(size_t(G) * N, 0.f);
    std::vector<float> wmin(N), wmax(N);

    // Wt = Wᵀ with dead inputs (H[k,k] = 0: never active in calibration) zeroed.
    std::vector<char> dead(K);
    std::vector<float> hdiag(K);  // diag(H) in the original order; dead inputs weigh nothing
    for (int k = 0; k < K; ++k) {
        dead[k] = H[size_t(k) * K + k] == 0.f;
        hdiag[k] = H[size_t(k) * K + k];
    }
    Buffer<float> Wt(size_t(K) * N);
    for (int n0 = 0; n0 < N; n0 += 64)
        for (int k = 0; k < K; ++k)
            for (int n = n0; n < std::min(N, n0 + 64); ++n)
                Wt[size_t(k) * N + n] = dead[k] ? 0.f : W[size_t(n) * K + k];
    const float *hw = opt.mse_h_weighted ? hdiag.data() : nullptr;
    auto wt_row = [&](int k) { return Wt.data() + size_t(k) * N; };

    // Per-column grid (group_size -1): the reference finds it on W before dead columns are zeroed.
    if (gs == -1) {
        for (int n = 0; n < N; ++n) {
            const float *w = W + size_t(n) * K;
            wmin[n] = *std::min_element(w, w + K);
            wmax[n] = *std::max_element(w, w + K);
        }
        set_params(wmin.data(), wmax.data(), 0, N, opt, name, res.scales.data(), zero_f.data());
        if (opt.mse_clip) clip_search(wt_row, K, hw, 0, N, opt, name, res.scales.data(), zero_f.data());
    }

    // Static groups: fixed up front on the original column order of the (dead-zeroed) W.
    if (gs != -1 && opt.static_groups) {
        for (int g = 0; g < G; ++g) {
            const float *base = Wt.data() + size_t(g) * gs * N;
            range_of_rows([&](int r) { return base + size_t(r) * N; }, gs, 0, N, wmin.data(),
                          wmax.data());
            set_params(wmin.data(), wmax.data(), 0, N, opt, name, res.scales.data() + size_t(g) * N,
                       zero_f.data() + size_t(g) * N);
            if (opt.mse_clip)
                clip_search([&](int r) { return base + size_t(r) * N; }, gs, hw ? hw + size_t(g) * gs : nullptr,
                            0, N, opt, name, res.scales.data() + size_t(g) * N, zero_f.data() + size_t(g) * N);
        }
    }

    // Act-order: inputs by decreasing H diagonal (ties keep their order).
    std::vector<int> perm(K);
    std::iota(perm.begin(), perm.end(), 0);
    if (opt.desc_act) {
        std::vector<float> diag(K);
        for (int k = 0; k < K; ++k) diag[k] = dead[k] ? 1.f : H[size_t(k) * K + k];
        std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return diag[a] > diag[b]; });
        Buffer<float> tmp(size_t(K) * N);
        for (int j = 0; j < K; ++j)
            std::memcpy(tmp.data() + size_t(j) * N, Wt.data() + size_t(perm[j]) * N, sizeof(float) * N);
        Wt = std::move(tmp);
    }
    std::vector<float> hdiag_p(K);  // diag(H) in sweep order
    for (int j = 0; j < K; ++j) hdiag_p[j] = hdiag[perm[j]];

    Buffer<float> U(KK);
    res.damp_used = damped_inverse_cholesky(H, K, perm, dead, opt, name, U.data());

    // The sweep, in permuted order. codes_p[j] holds the codes of permuted position j.
    std::vector<uint8_t> codes_p(size_t(K) * N);
    Sweep sw;
    sw.opt = &opt; sw.name = name; sw.K = K; sw.N = N; sw.maxq = maxq;
    sw.B = std::min(opt.block_size, K);
    sw.perm = perm.data(); sw.U = U.data(); sw.Wt = Wt.data();
    sw.hdiag = hw ? hdiag_p.data() : nullptr;
    sw.scales = res.scales.data(); sw.zeros = zero_f.data(); sw.codes = codes_p.data();
    Buffer<float> Err(size_t(sw.B) * N), Stale(size_t(sw.B) * N);
    sw.Err = Err.data(); sw.Stale = Stale.data();
    double loss = 0;
    std::exception_ptr thrown;  // an exception must not leave an OpenMP region
    blas_threads.set(1);        // each thread runs its own GEMMs on its slice
#pragma omp parallel num_threads(nt) if (nt > 1) reduction(+ : loss)
    {
        int n0, n1;
        thread_slice(N, omp_get_num_threads(), omp_get_thread_num(), &n0, &n1);
        try {
            if (n0 < n1) loss += sw.run(n0, n1);
        } catch (...) {
#pragma omp critical(gptq_solver_error)
            if (!thrown) thrown = std::current_exception();
        }
    }
    blas_threads.restore();
    if (thrown) std::rethrow_exception(thrown);
    res.error = loss / 2;

    // Back to the original input order.
    res.g_idx.resize(K);
    if (opt.desc_act) {
        res.codes.resize(size_t(K) * N);
        for (int j = 0; j < K; ++j)
            std::memcpy(res.codes.data() + size_t(perm[j]) * N, codes_p.data() + size_t(j) * N, N);
    } else {
        res.codes = std::move(codes_p);
    }
    for (int j = 0; j < K; ++j) {
        const int k = perm[j];
        res.g_idx[k] = gs == -1 ? 0 : (opt.static_groups ? k / gs : j / gs);
    }
    finish_result(res, zero_f);
    return res;
}

GptqResult rtn_quantize_layer(const float *W, int N, int K, const GptqOptions &opt) {
    const char *name = "(round-to-nearest)";
    validate(W, N, K, opt, name);
    const int gs = opt.group_size == -1 ? K : opt.group_size;
    const int G = K / gs;
    const int maxq = (1 << opt.bits) - 1;
    GptqResult res;
    res.K = K; res.N = N; res.G = G;
    res.scales.assign(size_t(G) * N, 0.f);
    std::vector<float> zero_f(size_t(G) * N, 0.f);
    res.codes.assign(size_t(K) * N, 0);
    res.g_idx.resize(K);
    for (int k = 0; k < K; ++k) res.g_idx[k] = k / gs;
    for (int n = 0; n < N; ++n) {
        const float *w = W + size_t(n) * K;
        for (int g = 0; g < G; ++g) {
            const float *wg = w + size_t(g) * gs;
            const float lo = *std::min_element(wg, wg + gs), hi = *std::max_element(wg, wg + gs);
            const QuantParams p = quant_params_from_range(lo, hi, opt.bits, opt.sym);
            const float scale = grid_scale(p.scale, opt.fp16_scales, name);
            res.scales[size_t(g) * N + n] = scale;
            zero_f[size_t(g) * N + n] = p.zero;
            for (int k = g * gs; k < (g + 1) * gs; ++k)
                res.codes[size_t(k) * N + n] = uint8_t(quantize_value(w[k], scale, p.zero, maxq));
        }
    }
    finish_result(res, zero_f);
    return res;
}

} // namespace gptq
