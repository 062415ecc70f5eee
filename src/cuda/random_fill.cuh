// random_fill.cuh — deterministic pseudo-random fills of device memory, for the benchmarks' random
// models (the speed of a product does not depend on the values, so nothing is downloaded).
// Plain C++ header. Element i of a fill is a hash of (i, seed): the same on every GPU and launch.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace gptq {
namespace cuda {

// p[i] = 32 random bits (4-bit codes: every nibble uniform).
void fill_random_u32(uint32_t *p, size_t n, uint64_t seed, cudaStream_t stream = 0);
// p[i] uniform in [lo, hi).
void fill_random_f16(__half *p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream = 0);
void fill_random_f32(float *p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream = 0);

} // namespace cuda
} // namespace gptq
