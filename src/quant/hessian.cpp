// hessian.cpp — H = 2/n Σ x xᵀ over a layer's calibration inputs, kept as a running average the
// way the reference GPTQ code does (H *= n/(n+rows); n += rows; H += 2/n XᵀX), in fp32.
#include "quant/solver.h"

#include "common.h"

#include <cblas.h>
#include <algorithm>
#include <climits>
#include <cmath>

namespace gptq {

HessianAccumulator::HessianAccumulator(int K) : K_(K) {
    if (K <= 0) fail(GPTQ_ERR_INVALID_ARG, "HessianAccumulator: input size %d must be positive", K);
    H_.resize(size_t(K) * size_t(K));
}

void HessianAccumulator::add(const float *X, int64_t rows) {
    if (rows < 0) fail(GPTQ_ERR_INVALID_ARG, "HessianAccumulator::add: %lld rows", (long long)rows);
    if (rows == 0) return;
    // Check first so a bad batch leaves H untouched (and names where the problem is).
    const size_t K = size_t(K_);
    for (int64_t r = 0; r < rows; ++r) {
        const float *x = X + size_t(r) * K;
        for (size_t k = 0; k < K; ++k)
            if (!std::isfinite(x[k]))
                fail(GPTQ_ERR_NUMERIC, "Hessian input row %lld, feature %zu is %s", (long long)r, k,
                     std::isnan(x[k]) ? "NaN" : "infinite");
    }
    const double old_n = double(n_);
    n_ += rows;
    const float rescale = float(old_n / double(n_));
    const float alpha = float(2.0 / double(n_));
    // syrk updates the upper triangle only (row-major); chunks keep the row count within an int.
    const int64_t chunk = INT_MAX;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int r = int(std::min<int64_t>(chunk, rows - r0));
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K_, r, alpha, X + size_t(r0) * K, K_,
                    r0 == 0 ? rescale : 1.0f, H_.data(), K_);
    }
    // Mirror into the lower triangle so data() is the full symmetric matrix; tiles keep it cached.
    float *H = H_.data();
    const size_t T = 64;
    for (size_t i0 = 0; i0 < K; i0 += T)
        for (size_t j0 = 0; j0 <= i0; j0 += T)
            for (size_t i = i0; i < std::min(K, i0 + T); ++i)
                for (size_t j = j0; j < std::min(i, j0 + T); ++j) H[i * K + j] = H[j * K + i];
}

} // namespace gptq
