// cuda_check.cuh — turns every CUDA / cuBLAS failure into gptq::Error with file:line.
//
// The library never aborts: a failed call throws Error(GPTQ_ERR_OOM) for allocation failures and
// Error(GPTQ_ERR_BACKEND) for everything else, naming the call, the source line and CUDA's text.
// Kernel launches are followed by CUDA_CHECK_LAUNCH(), which reads the launch error without
// synchronizing (asynchronous faults surface at the next checked call).
#pragma once

#include "common.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace gptq {

[[noreturn]] inline void cuda_fail(cudaError_t e, const char *what, const char *file, int line) {
    gptq_status st = (e == cudaErrorMemoryAllocation) ? GPTQ_ERR_OOM : GPTQ_ERR_BACKEND;
    cudaGetLastError();  // clear a sticky-free error so the next call starts clean
    fail(st, "CUDA error at %s:%d: %s: %s (%s)", file, line, what, cudaGetErrorString(e), cudaGetErrorName(e));
}

inline const char *cublas_status_text(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "unknown status";
    }
}

[[noreturn]] inline void cublas_fail(cublasStatus_t s, const char *what, const char *file, int line) {
    gptq_status st = (s == CUBLAS_STATUS_ALLOC_FAILED) ? GPTQ_ERR_OOM : GPTQ_ERR_BACKEND;
    fail(st, "cuBLAS error at %s:%d: %s: %s (%d)", file, line, what, cublas_status_text(s), int(s));
}

} // namespace gptq

#define CUDA_CHECK(call)                                                                 \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) ::gptq::cuda_fail(e_, #call, __FILE__, __LINE__);         \
    } while (0)

#define CUDA_CHECK_LAUNCH()                                                              \
    do {                                                                                 \
        cudaError_t e_ = cudaGetLastError();                                             \
        if (e_ != cudaSuccess) ::gptq::cuda_fail(e_, "kernel launch", __FILE__, __LINE__); \
    } while (0)

#define CUBLAS_CHECK(call)                                                               \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) ::gptq::cublas_fail(s_, #call, __FILE__, __LINE__); \
    } while (0)
