// cpu_linear.h — a linear layer as the CPU backend computes it.
//
// Float weights are converted once to fp32 [out, in]. GPTQ weights stay packed (a quarter of the
// memory at 4 bits, less at 2/3) and are dequantized on the fly into a per-call scratch Wt[K, N]
// (the packed layout's own order, so the unpacking loop runs along contiguous words) followed by
// one sgemm: a dequantizing matmul whose extra cost is one pass over K·N per call.
#pragma once

#include "../buffer.h"
#include "../model.h"

namespace gptq {

class CpuLinear {
public:
    CpuLinear() = default;
    explicit CpuLinear(const LinearWeights &w);
    // y[M, out] = x[M, in] · Wᵀ + b; scratch must hold scratch_floats() floats for quantized layers.
    void forward(const float *x, int64_t M, float *y, float *scratch, int n_threads) const;
    size_t scratch_floats() const { return quantized_ ? size_t(in_) * size_t(out_) : 0; }
    int64_t bytes() const;
    // Dequantized (or converted) weights W[out, in].
    void dequantize(float *W, int n_threads) const;
    int in() const { return in_; }
    int out() const { return out_; }

private:
    void dequantize_t(float *Wt, int n_threads) const;  // Wt[in, out]
    int in_ = 0, out_ = 0;
    bool quantized_ = false;
    Buffer<float> w_;          // fp32 [out, in]
    Buffer<float> bias_;
    int bits_ = 0, G_ = 0;
    Buffer<int32_t> qweight_;  // [in*bits/32, out]
    Buffer<float> scales_;     // [G, out]
    Buffer<float> zeros_;      // [G, out], true zero points
    Buffer<int32_t> g_idx_;    // [in]
};

} // namespace gptq
