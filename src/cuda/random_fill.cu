// random_fill.cu — see random_fill.cuh.
#include "random_fill.cuh"

#include "cuda_check.cuh"

namespace gptq {
namespace cuda {

namespace {

// splitmix64's finalizer over (index, seed): consecutive indices give unrelated words.
__device__ __forceinline__ uint32_t hash32(uint64_t i, uint64_t seed) {
    uint64_t x = i * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return uint32_t(x);
}

__global__ void fill_u32_kernel(uint32_t *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        p[i] = hash32(i, seed);
}

// Uniform in [lo, hi) from the top 24 bits (exact in a float).
__device__ __forceinline__ float uniform(uint64_t i, uint64_t seed, float lo, float hi) {
    return lo + (hi - lo) * float(hash32(i, seed) >> 8) * (1.0f / 16777216.0f);
}

template <typename T> __global__ void fill_uniform_kernel(T *p, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        p[i] = T(uniform(i, seed, lo, hi));
}

} // namespace

void fill_random_u32(uint32_t *p, size_t n, uint64_t seed, cudaStream_t stream) {
    if (n == 0) return;
    fill_u32_kernel<<<1024, 256, 0, stream>>>(p, n, seed);
    CUDA_CHECK_LAUNCH();
}

void fill_random_f16(__half *p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
    if (n == 0) return;
    fill_uniform_kernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
    CUDA_CHECK_LAUNCH();
}

void fill_random_f32(float *p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
    if (n == 0) return;
    fill_uniform_kernel<<<1024, 256, 0, stream>>>(p, n, seed, lo, hi);
    CUDA_CHECK_LAUNCH();
}

} // namespace cuda
} // namespace gptq
