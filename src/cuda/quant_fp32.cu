// quant_fp32.cu — the GPU quantizer's fp32 calibration forward (see quant_fp32.cuh). The
// arithmetic follows src/cpu/ops.cpp (rmsnorm with a double sum of squares, RoPE angles
// pos · inv_freq in fp32, silu as g / (1 + e^-g)).
#include "cuda/quant_fp32.cuh"
#include "cuda/cuda_check.cuh"

#include <cmath>

namespace gptq {
namespace cuda {
namespace {

__global__ void rmsnorm_f32_kernel(const float *x, int H, const float *w, float eps, float *y) {
    const size_t r = blockIdx.x;
    const float *xr = x + r * H;
    double ss = 0;
    for (int i = threadIdx.x; i < H; i += blockDim.x) ss += double(xr[i]) * xr[i];
    __shared__ double part[32];
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    const float inv = 1.0f / sqrtf(float(part[0] / H) + eps);
    for (int i = threadIdx.x; i < H; i += blockDim.x) y[r * H + i] = w[i] * (xr[i] * inv);
}

__global__ void silu_mul_f32_kernel(const float *gu, int64_t n, int I, float *out) {
    const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= size_t(n) * I) return;
    const size_t r = i / I, j = i % I;
    const float g = gu[r * 2 * I + j], u = gu[r * 2 * I + I + j];
    out[i] = g / (1.0f + expf(-g)) * u;
}

// One block per token: rotates its Hq query heads and Hkv key heads.
__global__ void rope_f32_kernel(float *qkv, int ldq, int T, int Hq, int Hkv, int D, const float *inv_freq) {
    const size_t t = blockIdx.x;
    const int pos = int(t % T), half = D / 2;
    float *row = qkv + t * ldq;
    for (int idx = threadIdx.x; idx < (Hq + Hkv) * half; idx += blockDim.x) {
        const int h = idx / half, i = idx % half;
        float *xh = row + size_t(h) * D;  // key heads follow the query heads
        const float angle = float(pos) * inv_freq[i];
        const float c = cosf(angle), s = sinf(angle);
        const float a = xh[i], b = xh[i + half];
        xh[i] = a * c - b * s;
        xh[i + half] = b * c + a * s;
    }
}

// Row i (a query) of one head's scores [T, T] (keys contiguous): causal softmax in place.
__global__ void causal_softmax_f32_kernel(float *S, int T) {
    float *row = S + (size_t(blockIdx.y) * T + blockIdx.x) * T;
    const int i = blockIdx.x;
    __shared__ float red[32];
    float m = -INFINITY;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) m = fmaxf(m, row[j]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = m;
    __syncthreads();
    m = -INFINITY;
    for (int w = 0; w < int(blockDim.x / 32); ++w) m = fmaxf(m, red[w]);
    __syncthreads();
    float sum = 0.f;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        const float e = j <= i ? expf(row[j] - m) : 0.f;
        row[j] = e;
        sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
    __syncthreads();
    sum = 0.f;
    for (int w = 0; w < int(blockDim.x / 32); ++w) sum += red[w];
    const float inv = 1.0f / sum;
    for (int j = threadIdx.x; j <= i; j += blockDim.x) row[j] *= inv;
}

} // namespace

void rmsnorm_f32(const float *x, int n, int H, const float *w, float eps, float *y, cudaStream_t s) {
    if (n <= 0) return;
    rmsnorm_f32_kernel<<<unsigned(n), 256, 0, s>>>(x, H, w, eps, y);
    CUDA_CHECK_LAUNCH();
}

void silu_mul_f32(const float *gu, int64_t n, int I, float *out, cudaStream_t s) {
    const size_t total = size_t(n) * I;
    if (total == 0) return;
    silu_mul_f32_kernel<<<unsigned((total + 255) / 256), 256, 0, s>>>(gu, n, I, out);
    CUDA_CHECK_LAUNCH();
}

void attention_f32(cublasHandle_t h, float *qkv, int ldq, int n_win, int T, int Hq, int Hkv, int D,
                   const float *inv_freq, float *scratch, float *out, int ldo, cudaStream_t s) {
    if (n_win <= 0) return;
    rope_f32_kernel<<<unsigned(size_t(n_win) * T), 128, 0, s>>>(qkv, ldq, T, Hq, Hkv, D, inv_freq);
    CUDA_CHECK_LAUNCH();
    CUBLAS_CHECK(cublasSetStream(h, s));
    const int G = Hq / Hkv;
    const float scale = 1.0f / std::sqrt(float(D)), one = 1.f, zero = 0.f;
    const long long TT = (long long)T * T;
    for (int w = 0; w < n_win; ++w) {
        const float *base = qkv + size_t(w) * T * ldq;
        const float *K0 = base + size_t(Hq) * D, *V0 = base + size_t(Hq + Hkv) * D;
        float *O0 = out + size_t(w) * T * ldo;
        for (int g = 0; g < G; ++g) {
            // Scores of query heads kvh*G + g, one batch entry per KV head: S (keys x queries,
            // column-major) = K · Qᵀ · scale.
            CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, &scale, K0, ldq, D,
                                                   base + size_t(g) * D, ldq, (long long)G * D, &zero, scratch, T,
                                                   TT, Hkv));
            causal_softmax_f32_kernel<<<dim3(unsigned(T), unsigned(Hkv)), 128, 0, s>>>(scratch, T);
            CUDA_CHECK_LAUNCH();
            // Oᵀ (D x queries) = Vᵀ (D x keys) · Pᵀ.
            CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, D, T, T, &one, V0, ldq, D, scratch, T,
                                                   TT, &zero, O0 + size_t(g) * D, ldo, (long long)G * D, Hkv));
        }
    }
}

} // namespace cuda
} // namespace gptq
