// cuda_handles.cuh — owning CUDA streams and cuBLAS handles.
//
// Released with their owner, also when the owner's constructor throws after creating them (a
// context whose scratch allocation fails must not leak its stream and cuBLAS handle).
#pragma once

#include "cuda_check.cuh"

#include <memory>
#include <type_traits>

namespace gptq {
namespace cuda {

struct StreamRelease {
    void operator()(cudaStream_t s) const {  // waits for the stream's work, then destroys it
        cudaStreamSynchronize(s);
        cudaStreamDestroy(s);
    }
};
struct CublasRelease {
    void operator()(cublasHandle_t h) const { cublasDestroy(h); }
};
using OwnedStream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamRelease>;
using OwnedCublas = std::unique_ptr<std::remove_pointer_t<cublasHandle_t>, CublasRelease>;

inline OwnedStream make_stream(unsigned flags) {
    cudaStream_t s = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, flags));
    return OwnedStream(s);
}

// Points h's calls at `stream` unless they already go there. cublasSetStream also drops a
// workspace given by cublasSetWorkspace (back to cuBLAS's own pool), so calling it only on a
// change keeps the workspace a handle was made with.
inline void bind_cublas_stream(cublasHandle_t h, cudaStream_t stream) {
    cudaStream_t current = nullptr;
    CUBLAS_CHECK(cublasGetStream(h, &current));
    if (current != stream) CUBLAS_CHECK(cublasSetStream(h, stream));
}

// A cuBLAS handle whose calls go to `stream`, with `workspace` (device memory the caller owns and
// keeps while the handle lives; null: cuBLAS's own pool). Set after the stream, which resets it.
inline OwnedCublas make_cublas(cudaStream_t stream, void *workspace = nullptr, size_t workspace_bytes = 0) {
    cublasHandle_t h = nullptr;
    CUBLAS_CHECK(cublasCreate(&h));
    OwnedCublas owned(h);
    CUBLAS_CHECK(cublasSetStream(h, stream));
    if (workspace) CUBLAS_CHECK(cublasSetWorkspace(h, workspace, workspace_bytes));
    return owned;
}

} // namespace cuda
} // namespace gptq
