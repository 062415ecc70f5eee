// gpu_linear.cuh — one linear layer of the CUDA backend in device memory: 4-bit GPTQ layers repacked
// into the kernels' tiled layout (q4_layout.cuh), every other one as dense fp16; and the host-side
// conversions the backend's other weights go through.
#pragma once

#include "device_buffer.cuh"
#include "model.h"
#include "q4_gemm.cuh"

#include <cstdint>
#include <vector>

namespace gptq {
namespace cuda {

// One linear layer (possibly several fused along N: q|k|v, gate|up): y[M, N] = x[M, K] · Wᵀ.
struct GpuLinear {
    int K = 0, N = 0;
    bool q4 = false;
    DeviceBuffer w16_own;
    const __half *w16 = nullptr;  // dense: [N, K] fp16 (Hugging Face layout)
    DeviceBuffer qw, sc, zr, pm;
    Q4Dev q;                      // q4: tiled layout
    DeviceBuffer bias_buf;
    const __half *bias = nullptr;

    size_t bytes() const {
        return w16_own.bytes() + qw.bytes() + sc.bytes() + zr.bytes() + pm.bytes() + bias_buf.bytes();
    }
    const int32_t *perm() const { return q4 ? q.perm : nullptr; }
    size_t dequant_elems() const { return q4 ? size_t(q.KT) * 16 * size_t(q.NT) * 64 : 0; }
};

// The layer of the parts fused along N (q|k|v, gate|up: same input). 4-bit parts with the same
// groups and g_idx take the tiled layout; anything else (float checkpoints, 2/3/8 bits, groups the
// kernels cannot take) is dequantized once to fp16.
GpuLinear build_linear(const std::vector<const LinearWeights *> &parts);

// Random weights on the GPU (the end-to-end benchmark's model): 4-bit codes and scales around
// z = 8, or fp16, of standard deviation 1/sqrt(K) so that outputs keep the inputs' scale.
GpuLinear synthetic_linear(int K, int N, bool q4, int group_size, uint64_t seed);

std::vector<float> tensor_f32(const TensorView &t);
void append_f16(const TensorView &t, std::vector<uint16_t> &dst);  // as fp16 bits, appended

} // namespace cuda
} // namespace gptq
