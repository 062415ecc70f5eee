// solver.h — the GPTQ algorithm for one linear layer (Frantar et al., 2022), on the CPU.
//
//   H = 2/n Σ x xᵀ over calibration rows (fp32; padding never added)
//   dead inputs (H[i,i] = 0): H[i,i] = 1, W[:, i] = 0
//   act-order: columns permuted by decreasing diag(H)
//   H += damp · mean(diag H) · I; Cholesky; H⁻¹; upper Cholesky factor U of H⁻¹
//     (Cholesky failure: damp += damp_auto_increment, retry, up to 10 times)
//   sweep columns in blocks of block_size: quantize column, error e = (w - q) / U[i,i],
//     update the rest of the block with e·U[i, i+1:], then the trailing columns lazily (GEMM)
//   groups: parameters found on the (already updated) weights when a group starts; with static
//     groups, found once up front on the original order from the unmodified W
#pragma once

#include "../buffer.h"

#include <cstdint>
#include <vector>

namespace gptq {

// Accumulates H = 2/n Σ x xᵀ for one layer input of size K, as the reference does (running
// rescale so H stays an average). Rows with any NaN/Inf throw Error(GPTQ_ERR_NUMERIC).
class HessianAccumulator {
public:
    explicit HessianAccumulator(int K);
    void add(const float *X, int64_t rows);  // X: [rows, K]
    int K() const { return K_; }
    int64_t n_samples() const { return n_; }
    const float *data() const { return H_.data(); }  // [K, K] symmetric
    float *data() { return H_.data(); }

private:
    int K_;
    int64_t n_ = 0;
    Buffer<float> H_;
};

struct GptqOptions {
    int bits = 4;
    int group_size = 128;  // -1 = per column
    bool sym = true;
    bool desc_act = false;
    bool static_groups = false;
    float damp_percent = 0.01f;
    float damp_auto_increment = 0.01f;
    int block_size = 128;
    bool fp16_scales = true;   // solve with fp16-rounded scales (what the file holds)
    // Clipping search: when a group's grid is set, try scale x p for p = 1, 1 - 1/grid, ...
    // (down to 1 - max_shrink) and keep, per output column, the p with the least
    // Σ h_k |w - q(w)|^norm over the group's inputs (h_k = diag(H) when h_weighted, else 1).
    bool mse_clip = false;
    float mse_norm = 2.4f;
    int mse_grid = 100;
    float mse_max_shrink = 0.8f;
    bool mse_h_weighted = false;
    int n_threads = 0;
};

struct GptqResult {
    int K = 0, N = 0, G = 0;
    std::vector<uint8_t> codes;   // [K, N] in the ORIGINAL input order (k-major)
    std::vector<float> scales;    // [G, N]
    std::vector<int32_t> zeros;   // [G, N] true zero points
    std::vector<int32_t> g_idx;   // [K]
    float damp_used = 0;          // the damping that succeeded
    double error = 0;             // Σ over the layer of the GPTQ loss (w-q)²/U[i,i]² / 2... as reference "error"
    std::vector<float> dequantized;  // [N, K] fake-quantized weights (what the file dequantizes to)
};

// Quantizes W [N, K] (row-major, Hugging Face layout) given the layer input's Hessian H [K, K]
// (copied; the accumulator is not modified). Throws Error(GPTQ_ERR_NUMERIC) naming `name` when H
// or W has NaN/Inf or Cholesky keeps failing; INVALID_ARG when group_size does not divide K.
GptqResult gptq_quantize_layer(const float *W, int N, int K, const float *H, const GptqOptions &opt,
                               const char *name);

// Round-to-nearest with the same grid (baseline and fallback).
GptqResult rtn_quantize_layer(const float *W, int N, int K, const GptqOptions &opt);

} // namespace gptq
