// quant_fp32.cuh — the calibration forward in fp32 (quant_fp32.cu), for the GPU quantizer's
// precise mode: every activation and matrix product in fp32 as the CPU pipeline computes them
// (cuBLAS SGEMM with the default math mode: no TF32), so the Hessians match the CPU's to
// rounding. The fast mode uses the CUDA backend's fp16 kernels instead (elementwise.cuh,
// attention.cuh). Plain C++ header.
#pragma once

#include <cstdint>
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace gptq {
namespace cuda {

// y [n, H] = w ⊙ x / rms(x) for rows of x [n, H] (fp32 in and out, sum of squares in double).
void rmsnorm_f32(const float *x, int n, int H, const float *w, float eps, float *y, cudaStream_t s);

// out [n, I] = silu(gu[:, :I]) * gu[:, I:], gu [n, 2I] (gate | up).
void silu_mul_f32(const float *gu, int64_t n, int I, float *out, cudaStream_t s);

// Causal attention of n_win windows of T tokens: qkv [n_win*T, ldq] holds per token Hq query
// heads, Hkv key heads and Hkv value heads (D each). Rotates queries and keys in place (RoPE,
// rotate-half, position = token index in its window), then out [n_win*T, ldo] = softmax(QKᵀ/√D) V.
// scratch: attention_f32_scratch_floats(T, Hkv) floats.
inline size_t attention_f32_scratch_floats(int T, int Hkv) { return size_t(Hkv) * T * T; }
void attention_f32(cublasHandle_t h, float *qkv, int ldq, int n_win, int T, int Hq, int Hkv, int D,
                   const float *inv_freq, float *scratch, float *out, int ldo, cudaStream_t s);

} // namespace cuda
} // namespace gptq
