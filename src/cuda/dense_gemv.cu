// dense_gemv.cu — fp16 weights times a few rows of activations: the decode step of an fp16
// checkpoint, and every model's fp16 head. out[m][n] = Σ_k x[m][k] · W[n][k] (+ bias[n]), W in the
// Hugging Face layout [N][ldw] with k inner, fp32 sums; fp16 out overwritten, fp32 out added to
// (or overwritten: Q4Out::overwrite32, the head's logits with no memset before).
//
// Why not cuBLAS at these sizes: a product of one row is a stream of the weights; cuBLAS's kernel
// (nvjet at M = 1) read the 7B head in 96.6 µs on the H100 (floor ~87) and cannot take part in
// the step's programmatic launches; this one 93.4, and fp16 decode at b = 1 went 171.6 -> 180.6
// tok/s (BENCHMARKS.md, session of 2026-12-05 from 18:04). Here each warp owns kRows weight rows
// at a time; its lanes read them in 16-byte chunks (lane l takes chunks l, l + 32, ...), kChunks
// per lane and row in flight at once, the first round before griddepcontrol.wait (weights are
// constants), and reduce their partial sums by shuffles: no shared memory, no block barrier.
// Activations come through L1, where every warp of the block finds the same rows.
#include "q4_gemm.cuh"

#include "cuda_check.cuh"
#include "half_bits.cuh"
#include "launch.cuh"
#include "mem_ops.cuh"

#include "../common.h"

#include <algorithm>

namespace gptq {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Weight rows a warp task owns (with several rows of x each activation chunk serves them all), and
// 16-byte chunks per lane and row in flight. At one row of x, fewer registers let more warps
// stream: the 7B head in a decode step (H100, CUPTI) took 91.6-91.9 µs at 2 rows x 8 chunks (80
// registers), 88.4-89.8 at 2 x 4 (56), 87.0-87.3 at 1 x 4 (32; 1000 blocks).
template <int MT> constexpr int kRows = MT == 1 ? 1 : 2;
template <int MT> constexpr int kChunks = MT == 1 ? 4 : 8;

// MT: the rows of x the instantiation holds sums for (M <= MT).
template <int MT>
__global__ void __launch_bounds__(kThreads) gemv_f16_kernel(const __half *__restrict__ x, int M, int ldx,
                                                            const __half *__restrict__ W, int K, int N, int ldw,
                                                            Q4Out out) {
    const int lane = threadIdx.x & 31;
    const int task_stride = gridDim.x * kWarps * kRows<MT>;
    const int KC = K / 8;  // 16-byte chunks per row
    constexpr int kRound = 32 * kChunks<MT>;  // chunks of a row per round

    uint4 w[kRows<MT>][kChunks<MT>];
    auto load = [&](int n0, int c0) {
#pragma unroll
        for (int r = 0; r < kRows<MT>; ++r)
#pragma unroll
            for (int u = 0; u < kChunks<MT>; ++u) {
                const int n = n0 + r, c = c0 + u * 32 + lane;
                w[r][u] = n < N && c < KC ? ld_stream(reinterpret_cast<const uint4 *>(W + size_t(n) * ldw) + c)
                                          : make_uint4(0u, 0u, 0u, 0u);
            }
    };

    int n0 = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * kRows<MT>;
    if (n0 < N) load(n0, 0);
    pdl_enter();

    for (; n0 < N; n0 += task_stride) {
        float acc[MT][kRows<MT>];
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
            for (int r = 0; r < kRows<MT>; ++r) acc[m][r] = 0.0f;
        for (int c0 = 0; c0 < KC; c0 += kRound) {
            if (c0 > 0) load(n0, c0);  // round 0 was loaded before the wait or the previous task's sums
#pragma unroll
            for (int u = 0; u < kChunks<MT>; ++u) {
                const int c = c0 + u * 32 + lane;
                if (c >= KC) break;
                float wf[kRows<MT>][8];
#pragma unroll
                for (int r = 0; r < kRows<MT>; ++r) unpack8(w[r][u], wf[r]);
#pragma unroll
                for (int m = 0; m < MT; ++m) {
                    if (m >= M) break;
                    float xf[8];
                    unpack8(__ldg(reinterpret_cast<const uint4 *>(x + size_t(m) * ldx) + c), xf);
#pragma unroll
                    for (int r = 0; r < kRows<MT>; ++r)
#pragma unroll
                        for (int e = 0; e < 8; ++e) acc[m][r] = fmaf(xf[e], wf[r][e], acc[m][r]);
                }
            }
        }
        const int next = n0 + task_stride;
        if (next < N) load(next, 0);  // in flight while the sums are reduced and stored
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
            for (int r = 0; r < kRows<MT>; ++r)
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) acc[m][r] += __shfl_xor_sync(0xffffffffu, acc[m][r], o);
        // Every lane holds every sum; lane m * kRows + r stores (m, n0 + r).
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
            for (int r = 0; r < kRows<MT>; ++r) {
                const int n = n0 + r;
                if (lane != m * kRows<MT> + r || m >= M || n >= N) continue;
                float v = acc[m][r];
                if (out.bias) v += __half2float(out.bias[n]);
                if (out.out16)
                    out.out16[size_t(m) * out.ldo + n] = __float2half_rn(v);
                else if (out.overwrite32)
                    out.out32[size_t(m) * out.ldo + n] = v;
                else
                    out.out32[size_t(m) * out.ldo + n] += v;
            }
    }
}

template <int MT> void launch_gemv(const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw,
                                   const Q4Out &out, cudaStream_t stream) {
    const int per_sm = once_per_device<int>(uintptr_t(MT), 1, [](int) {
        int nb = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, gemv_f16_kernel<MT>, kThreads, 0) != cudaSuccess) {
            cudaGetLastError();
            nb = 1;
        }
        return std::max(1, nb);
    });
    // The warps loop over the row tasks; a grid of at most one block per SM slot, cut so that every
    // warp takes the same number of tasks (or one fewer): with the full grid, 32000 rows (a 7B head)
    // gave 160 of 3168 warps a sixth task, run on an otherwise idle GPU at the end.
    const int tasks = (N + kRows<MT> - 1) / kRows<MT>;
    const int max_warps = device_attribute(cudaDevAttrMultiProcessorCount, 1) * per_sm * kWarps;
    const int per_warp = (tasks + max_warps - 1) / max_warps;
    const int warps = (tasks + per_warp - 1) / per_warp;
    const int blocks = (warps + kWarps - 1) / kWarps;
    launch(gemv_f16_kernel<MT>, dim3(unsigned(blocks)), kThreads, 0, stream, x, M, ldx, W, K, N, ldw, out);
    CUDA_CHECK_LAUNCH();
}

// What the kernel can read: 1..8 rows, whole 16-byte chunks of rows that start 16-byte aligned.
bool gemv_shape_ok(const __half *x, int M, int ldx, const __half *W, int K, int ldw) {
    return M >= 1 && M <= kDenseGemvMaxRows && K % 8 == 0 && ldx % 8 == 0 && ldw % 8 == 0 && aligned16(x) &&
           aligned16(W);
}

} // namespace

bool dense_gemv_takes(const __half *x, int M, int ldx, const __half *W, int K, int ldw) {
    return gemv_shape_ok(x, M, ldx, W, K, ldw) && env_int("GPTQ_CUDA_GEMV", 1) != 0;
}

void dense_gemv(const __half *x, int M, int ldx, const __half *W, int K, int N, int ldw, const Q4Out &out,
                cudaStream_t stream) {
    if (!out.out16 == !out.out32) fail(GPTQ_ERR_BACKEND, "dense_gemv: exactly one output must be set");
    if (!gemv_shape_ok(x, M, ldx, W, K, ldw))
        fail(GPTQ_ERR_BACKEND, "dense_gemv: %d rows of K = %d not taken", M, K);
    if (N <= 0) return;
    if (M == 1) launch_gemv<1>(x, M, ldx, W, K, N, ldw, out, stream);
    else if (M == 2) launch_gemv<2>(x, M, ldx, W, K, N, ldw, out, stream);
    else if (M <= 4) launch_gemv<4>(x, M, ldx, W, K, N, ldw, out, stream);
    else launch_gemv<8>(x, M, ldx, W, K, N, ldw, out, stream);
}

} // namespace cuda
} // namespace gptq
