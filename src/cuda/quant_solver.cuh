// quant_solver.cuh — GPTQ for one linear layer on the GPU (quant_solver.cu), the device-side
// counterpart of src/quant/solver.cpp, which it follows step by step:
//
//   GpuFactor    H = 2/n S (S = Σ x xᵀ on the device) -> dead inputs, act-order permutation,
//                damping, Cholesky (cuSOLVER potrf) and triangular inverse (trtri) of the reversed
//                permuted H, anti-transposed into U (the upper factor of H⁻¹); damping retries.
//                Built once per Hessian: q, k, v share one, so do gate and up.
//   GpuSolver    the blocked column sweep: one fused kernel per block of up to 128 columns (each
//                warp owns 4 output rows; a lane owns 4 of the block's columns in registers; the
//                block's U tile sits in shared memory), then the lazy trailing update as a cuBLAS
//                fp32 GEMM. Codes, scales and zeros stay on the device; packing (qweight in the
//                original input order) and the fp16 dequantized weights for the next forward are
//                kernels too. The optional clipping search (GptqOptions::mse_clip) runs where the
//                grids are set, a warp per output row, as solver.cpp's clip_search.
#pragma once

#include "quant/solver.h"
#include "cuda/cuda_check.cuh"
#include "cuda/cuda_handles.cuh"

#include <cuda_fp16.h>
#include <cusolverDn.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace gptq {
namespace cuda {

// Device bytes the quantizer holds (for its peak-memory report).
std::atomic<size_t> &quant_bytes_live();
std::atomic<size_t> &quant_bytes_peak();

// A device array that grows on demand and is counted in quant_bytes_*.
template <class T> class DevBuf {
public:
    DevBuf() = default;
    explicit DevBuf(size_t n) { reserve(n); }
    ~DevBuf() { release(); }
    DevBuf(const DevBuf &) = delete;
    DevBuf &operator=(const DevBuf &) = delete;
    DevBuf(DevBuf &&o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
    void reserve(size_t n) {
        if (n <= n_) return;
        release();
        void *p = nullptr;
        CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
        p_ = static_cast<T *>(p);
        n_ = n;
        const size_t live = quant_bytes_live() += n * sizeof(T);
        size_t peak = quant_bytes_peak().load();
        while (live > peak && !quant_bytes_peak().compare_exchange_weak(peak, live)) {}
    }
    void release() {
        if (!p_) return;
        cudaFree(p_);
        quant_bytes_live() -= n_ * sizeof(T);
        p_ = nullptr;
        n_ = 0;
    }
    T *get() const { return p_; }
    size_t size() const { return n_; }

private:
    T *p_ = nullptr;
    size_t n_ = 0;
};

#define CUSOLVER_CHECK(call)                                                                      \
    do {                                                                                          \
        cusolverStatus_t s_ = (call);                                                             \
        if (s_ != CUSOLVER_STATUS_SUCCESS)                                                        \
            ::gptq::fail(s_ == CUSOLVER_STATUS_ALLOC_FAILED ? GPTQ_ERR_OOM : GPTQ_ERR_BACKEND,    \
                         "cuSOLVER error at %s:%d: %s: status %d", __FILE__, __LINE__, #call, int(s_)); \
    } while (0)

struct SolverHandles {
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    cusolverDnHandle_t solver = nullptr;
};

// A quantization's stream and its cuBLAS and cuSOLVER handles (both on the stream), owned:
// released with it, the stream once its work is done, also when creating a later one throws.
class OwnedSolverHandles {
public:
    explicit OwnedSolverHandles(unsigned stream_flags);
    const SolverHandles &get() const { return h_; }

private:
    struct CusolverRelease {
        void operator()(cusolverDnHandle_t h) const { cusolverDnDestroy(h); }
    };
    OwnedStream stream_;  // released last
    OwnedCublas blas_;
    std::unique_ptr<std::remove_pointer_t<cusolverDnHandle_t>, CusolverRelease> solver_;
    SolverHandles h_;
};

// The inverse-Hessian factor of one layer input.
class GpuFactor {
public:
    // S: device [K, K] symmetric Σ x xᵀ over n_rows rows. H = 2/n_rows · S. Throws NUMERIC naming
    // `name` when H has NaN/Inf or the factorization keeps failing.
    void build(const float *S, int64_t n_rows, int K, const GptqOptions &opt, const char *name,
               const SolverHandles &h);
    int K = 0;
    float damp_used = 0;
    bool any_dead = false;
    std::vector<int32_t> perm;  // permuted position j holds input perm[j]
    DevBuf<int32_t> perm_d, invperm_d;
    DevBuf<uint8_t> dead_d;
    DevBuf<float> hdiag_d, hdiag_perm_d;  // diag(H) in input / sweep order (dead inputs 0)
    DevBuf<float> U;            // [K, K] row-major upper factor; lower triangle zero

private:
    DevBuf<float> A_;
    DevBuf<uint8_t> work_;
    DevBuf<int> info_;
    std::vector<uint8_t> host_work_;
};

// The solved layer, on the device.
struct GpuLayerResult {
    int K = 0, N = 0, G = 0, gs = -1;
    bool static_groups = false;
    DevBuf<uint8_t> codes;          // [N, K] in permuted order
    DevBuf<float> scales, zeros;    // [G, N]
    double error = 0;
    float damp_used = 0;
};

class GpuSolver {
public:
    // W: device [N, K] fp32 in the original input order; used as scratch (dead inputs zeroed).
    void solve(float *W, int N, int K, const GpuFactor &f, const GptqOptions &opt, const char *name,
               const SolverHandles &h, GpuLayerResult &r);
    // qweight [K*bits/32, N] (original order), on the device.
    void pack(const GpuLayerResult &r, const GpuFactor &f, int bits, int32_t *qweight, cudaStream_t s);
    // out [N, ldo] fp16 = what the file dequantizes to (fp16 scales), original input order.
    void dequantize(const GpuLayerResult &r, const GpuFactor &f, __half *out, int ldo, cudaStream_t s);
    void dequantize(const GpuLayerResult &r, const GpuFactor &f, float *out, int ldo, cudaStream_t s);

private:
    DevBuf<float> Wp_, Err_;
    DevBuf<double> loss_;
    DevBuf<int> flag_;
};

// g_idx [K] of a solved layer (host), as solver.cpp writes it.
std::vector<int32_t> gptq_g_idx(const GpuFactor &f, int gs, bool static_groups);

} // namespace cuda
} // namespace gptq
