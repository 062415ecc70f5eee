// bench-boundary — what a kernel boundary costs in a chain of dependent kernels, back to back in a
// CUDA graph, as the decode step's products are: each kernel reads what a block of the kernel
// before it wrote, so it cannot start its dependent work before that block is done.
//
// Three ways to wait, each kernel of 3 blocks of 128 threads per SM (the 4-bit kernel's shape):
//   wait      programmatic dependent launch: griddepcontrol.wait (the whole previous grid done and
//             its writes flushed), then the dependent read; what every kernel of the step does now
//   flag one  the kernel lets its dependents launch at its start, and each block spins (acquire) on
//             the one flag of the block whose value it reads, set (release) after that block's writes
//   flag all  the same, spinning on every flag of the previous kernel (a grid-wide dependency, as a
//             product that needs a whole RMSNorm row has)
// Each block also streams its share of `MB` of weights (rotating copies, more than the L2 holds):
// up to R 16-byte loads per thread before the wait (R = 8: about the 4-bit kernel's register ring
// at one row; 16, 32: deeper), the rest after, so the rows show what the boundary costs with a
// product's bytes around it, and what loads in flight across it buy. The values passed along are
// not checked (a kernel may overwrite one before every reader of it took it): only time counts.
// These kernels use few registers, so blocks of consecutive kernels can share an SM, which the
// 4-bit kernels (168 registers, three blocks per SM) cannot: read the flag rows with that in mind.
//
//   bench-boundary [MB ...]   (default: 0 and the 7B products' bytes: 8.4 o_proj, 22.6 down,
//                              26.0 q|k|v, 45.1 gate|up)
#include "bench_timer.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/launch.cuh"
#include "cuda/mem_ops.cuh"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace gptq;
using namespace gptq::cuda;
using namespace gptq::bench;

namespace {

constexpr int kThreads = 128;
constexpr uint32_t kNever = 0x9e3779b9u;

// Flags between kernels that run at once: the producer's thread adds with release semantics after
// a fence (its block's writes before it), the consumer spins with acquire loads. Safe here because
// every kernel lets the next launch at its start, so a spinning block's producers are all resident.
__device__ __forceinline__ void flag_add_release(unsigned *flag, unsigned v) {
    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(flag), "r"(v) : "memory");
}
__device__ __forceinline__ void flag_wait_nonzero(const unsigned *flag) {
    unsigned v = 0;
    do asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(flag) : "memory");
    while (v == 0);
}

enum Mode { kWait = 0, kFlagOne = 1, kFlagAll = 2 };

template <int kRing>
__global__ void __launch_bounds__(kThreads) chain_kernel(const uint4 *__restrict__ w, size_t per_thread16,
                                                         const unsigned *in, unsigned *out, const unsigned *flags_in,
                                                         unsigned *flags_out, int mode, uint32_t *sink) {
    const int G = gridDim.x, blk = blockIdx.x;
    const int src = int((size_t(blk) * 7 + 3) % size_t(G));
    // Block b's weights: per_thread16 uint4 per thread, thread-interleaved.
    const uint4 *wp = w + size_t(blk) * kThreads * per_thread16 + threadIdx.x;
    uint4 ring[kRing];
    const int pre = int(std::min<size_t>(kRing, per_thread16));
#pragma unroll
    for (int u = 0; u < kRing; ++u) ring[u] = u < pre ? ld_stream(wp + size_t(u) * kThreads) : make_uint4(0, 0, 0, 0);

    if (mode == kWait) {
        pdl_enter();
    } else {
        griddep_trigger();
        if (mode == kFlagOne) {
            if (threadIdx.x == 0) flag_wait_nonzero(flags_in + src);
        } else {
            for (int b = threadIdx.x; b < G; b += kThreads) flag_wait_nonzero(flags_in + b);
        }
        __syncthreads();
    }
    __shared__ unsigned v;
    if (threadIdx.x == 0) v = __ldcg(in + src);
    __syncthreads();

    uint32_t acc = v;
#pragma unroll
    for (int u = 0; u < kRing; ++u) acc ^= ring[u].x ^ ring[u].y ^ ring[u].z ^ ring[u].w;
    for (size_t i = pre; i < per_thread16; i += kRing) {
#pragma unroll
        for (int u = 0; u < kRing; ++u)
            ring[u] = i + u < per_thread16 ? ld_stream(wp + (i + u) * kThreads) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < kRing; ++u) acc ^= ring[u].x ^ ring[u].y ^ ring[u].z ^ ring[u].w;
    }
    if (acc == kNever) *sink = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        out[blk] = v + 1;
        if (mode != kWait) {
            __threadfence();
            flag_add_release(flags_out + blk, 1);
        }
    }
}

} // namespace

int main(int argc, char **argv) try {
    CUDA_CHECK(cudaSetDevice(0));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    const int sms = prop.multiProcessorCount;
    if (prop.major < 9) std::printf("note: no programmatic dependent launch below sm_90; the chains serialize\n");
    Timer timer;
    const double bw = copy_bandwidth(timer);
    std::printf("device: %s, %d SMs; device-to-device copy %.0f GB/s\n", prop.name, sms, bw / 1e9);
    std::vector<double> mbs;
    for (int a = 1; a < argc; ++a) mbs.push_back(std::atof(argv[a]));
    if (mbs.empty()) mbs = {0.0, 8.4, 22.6, 26.0, 45.1};

    const int G = 3 * sms, iters = 200;
    const RotatingPool pool(prop);
    unsigned *vals = dev_alloc<unsigned>(2 * size_t(G));
    CUDA_CHECK(cudaMemset(vals, 0, 2 * size_t(G) * sizeof(unsigned)));
    unsigned *flags = dev_alloc<unsigned>(size_t(iters + 1) * G);
    uint32_t *sink = dev_alloc<uint32_t>(1);
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));

    std::printf("%d kernels of %d blocks x %d threads per graph; us per kernel (median of 3 replays)\n", iters, G,
                kThreads);
    std::printf("%8s %9s | %9s %9s %9s | %9s %9s\n", "MB", "floor us", "wait", "flag one", "flag all", "wait R16",
                "wait R32");
    for (double mb : mbs) {
        const size_t per_thread16 = size_t(mb * 1e6 / 16 / (double(G) * kThreads));
        const size_t bytes = per_thread16 * 16 * size_t(G) * kThreads;
        double t[5];
        for (int c = 0; c < 5; ++c) {  // the three modes at R = 8, then the wait at R = 16, 32
            const int mode = c < 3 ? c : int(kWait);
            auto kernel = c < 3 ? chain_kernel<8> : c == 3 ? chain_kernel<16> : chain_kernel<32>;
            t[c] = timer.us_graph(
                [&](int i) {
                    if (i == 0) {  // every flag down, then the first kernel's sources up
                        CUDA_CHECK(cudaMemsetAsync(flags, 0, size_t(iters + 1) * G * sizeof(unsigned), s));
                        CUDA_CHECK(cudaMemsetAsync(flags, 1, size_t(G) * sizeof(unsigned), s));
                    }
                    const uint4 *w = reinterpret_cast<const uint4 *>(pool.at(bytes, i));
                    launch(kernel, dim3(G), dim3(kThreads), 0, s, w, per_thread16, vals + size_t(i % 2) * G,
                           vals + size_t((i + 1) % 2) * G, flags + size_t(i) * G, flags + size_t(i + 1) * G, mode,
                           sink);
                },
                iters, s);
        }
        std::printf("%8.1f %9.2f | %9.2f %9.2f %9.2f | %9.2f %9.2f\n", bytes / 1e6, bytes / bw * 1e6, t[0], t[1], t[2],
                    t[3], t[4]);
    }
    CUDA_CHECK(cudaFree(pool.base));
    CUDA_CHECK(cudaFree(vals));
    CUDA_CHECK(cudaFree(flags));
    CUDA_CHECK(cudaFree(sink));
    CUDA_CHECK(cudaStreamDestroy(s));
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "bench-boundary: %s\n", e.what());
    return 1;
}
