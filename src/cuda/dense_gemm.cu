// dense_gemm.cu — fp16 products through cuBLAS (fp16 checkpoints past dense_gemv's few rows, and
// the many-row 4-bit path after q4_dequant_f16), the bias they add, and the act-order gather of
// activations.
#include "q4_gemm.cuh"

#include "cuda_check.cuh"
#include "cuda_handles.cuh"
#include "launch.cuh"

#include <algorithm>

namespace gptq {
namespace cuda {

namespace {

__global__ void gather_columns_kernel(const __half *__restrict__ x, int M, int ldx, const int32_t *__restrict__ perm,
                                      int K, __half *__restrict__ xp) {
    pdl_enter();
    const int m = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < K; i += gridDim.x * blockDim.x)
        xp[size_t(m) * K + i] = x[size_t(m) * ldx + perm[i]];
}

template <class T>
__global__ void add_bias_kernel(T *__restrict__ y, int M, int N, int ldy, const __half *__restrict__ bias) {
    pdl_enter();
    const int m = blockIdx.y;
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        float v = float(y[size_t(m) * ldy + n]) + __half2float(bias[n]);
        y[size_t(m) * ldy + n] = T(v);
    }
}

} // namespace

void gather_columns(const __half *x, int M, int ldx, const int32_t *perm, int K, __half *xp, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((K + 255) / 256, 64)), unsigned(M));
    launch(gather_columns_kernel, grid, 256, 0, stream, x, M, ldx, perm, K, xp);
    CUDA_CHECK_LAUNCH();
}

void add_bias_f16(__half *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((N + 255) / 256, 64)), unsigned(M));
    launch(add_bias_kernel<__half>, grid, 256, 0, stream, y, M, N, ldy, bias);
    CUDA_CHECK_LAUNCH();
}

void add_bias_f32(float *y, int M, int N, int ldy, const __half *bias, cudaStream_t stream) {
    dim3 grid(unsigned(std::min((N + 255) / 256, 64)), unsigned(M));
    launch(add_bias_kernel<float>, grid, 256, 0, stream, y, M, N, ldy, bias);
    CUDA_CHECK_LAUNCH();
}

static void gemm_ex(cublasHandle_t h, cublasOperation_t opA, const __half *x, int M, int ldx, const __half *W,
                    int K, int N, int ldw, const Q4Out &out, cudaStream_t stream) {
    if (!out.out16 == !out.out32) fail(GPTQ_ERR_BACKEND, "dense_matmul: exactly one output must be set");
    bind_cublas_stream(h, stream);
    const float alpha = 1.0f;
    const float beta = out.out32 && !out.overwrite32 ? 1.0f : 0.0f;
    void *C = out.out16 ? static_cast<void *>(out.out16) : static_cast<void *>(out.out32);
    cudaDataType_t ct = out.out16 ? CUDA_R_16F : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmEx(h, opA, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16F, ldw, x, CUDA_R_16F, ldx, &beta,
                              C, ct, out.ldo, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (out.bias) {
        if (out.out16)
            add_bias_f16(out.out16, M, N, out.ldo, out.bias, stream);
        else
            add_bias_f32(out.out32, M, N, out.ldo, out.bias, stream);
    }
}

void dense_matmul(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                  const Q4Out &out, cudaStream_t stream) {
    if (dense_gemv_takes(x, M, ldx, W, K, ldw)) return dense_gemv(x, M, ldx, W, K, N, ldw, out, stream);
    dense_matmul_cublas(h, x, M, ldx, W, K, N, ldw, out, stream);
}

void dense_matmul_cublas(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                         const Q4Out &out, cudaStream_t stream) {
    gemm_ex(h, CUBLAS_OP_T, x, M, ldx, W, K, N, ldw, out, stream);
}

void dense_matmul_kn(cublasHandle_t h, const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                     const Q4Out &out, cudaStream_t stream) {
    gemm_ex(h, CUBLAS_OP_N, x, M, ldx, W, K, N, ldw, out, stream);
}

} // namespace cuda
} // namespace gptq
