// bench_timer.cuh — what the CUDA benchmark programs time with: device allocation, CUDA-event
// timing of back-to-back calls (eager, or captured as one CUDA graph), and the device-to-device copy
// bandwidth that their memory floors divide by.
#pragma once

#include "cuda/cuda_check.cuh"

#include <algorithm>
#include <functional>

namespace gptq {
namespace bench {

template <class T> T *dev_alloc(size_t n) {
    T *p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
    return p;
}

struct Timer {
    cudaEvent_t a, b;
    Timer() {
        CUDA_CHECK(cudaEventCreate(&a));
        CUDA_CHECK(cudaEventCreate(&b));
    }
    ~Timer() {
        cudaEventDestroy(a);
        cudaEventDestroy(b);
    }
    // Mean microseconds per call over iters back-to-back calls; median of 3 such runs.
    double us(const std::function<void(int)> &fn, int iters) {
        for (int i = 0; i < 3; ++i) fn(i);
        CUDA_CHECK(cudaDeviceSynchronize());
        double r[3];
        for (int rep = 0; rep < 3; ++rep) {
            CUDA_CHECK(cudaEventRecord(a));
            for (int i = 0; i < iters; ++i) fn(i);
            CUDA_CHECK(cudaEventRecord(b));
            CUDA_CHECK(cudaEventSynchronize(b));
            float ms = 0;
            CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
            r[rep] = 1000.0 * ms / iters;
        }
        std::sort(r, r + 3);
        return r[1];
    }
    // The same with the iters calls captured as one CUDA graph (as the backend's decode step runs
    // them: no host launch cost, programmatic dependent launch between neighbours); fn launches
    // on stream s. Median of 3 replays after one warm-up replay.
    double us_graph(const std::function<void(int)> &fn, int iters, cudaStream_t s) {
        cudaGraph_t g = nullptr;
        CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < iters; ++i) fn(i);
        CUDA_CHECK(cudaStreamEndCapture(s, &g));
        cudaGraphExec_t ge = nullptr;
        CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
        CUDA_CHECK(cudaGraphDestroy(g));
        CUDA_CHECK(cudaGraphLaunch(ge, s));
        CUDA_CHECK(cudaStreamSynchronize(s));
        double r[3];
        for (int rep = 0; rep < 3; ++rep) {
            CUDA_CHECK(cudaEventRecord(a, s));
            CUDA_CHECK(cudaGraphLaunch(ge, s));
            CUDA_CHECK(cudaEventRecord(b, s));
            CUDA_CHECK(cudaEventSynchronize(b));
            float ms = 0;
            CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
            r[rep] = 1000.0 * ms / iters;
        }
        CUDA_CHECK(cudaGraphExecDestroy(ge));
        std::sort(r, r + 3);
        return r[1];
    }
};

inline double copy_bandwidth(Timer &t) {
    const size_t bytes = size_t(1) << 30;
    char *src = dev_alloc<char>(bytes), *dst = dev_alloc<char>(bytes);
    CUDA_CHECK(cudaMemset(src, 1, bytes));
    double us = t.us([&](int) { CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); }, 10);
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));
    return 2.0 * bytes / (us * 1e-6);  // bytes read + written per second
}

// Rotating copies of a benchmark's bytes: a pool of at least four L2 sizes (and 512 MB) that
// back-to-back calls slide over, call i reading copy i mod copies(n) of its n bytes (each copy on a
// 4 KB boundary), so that no call finds its bytes in L2. The caller frees `base`.
struct RotatingPool {
    char *base = nullptr;
    size_t bytes = 0;
    explicit RotatingPool(const cudaDeviceProp &prop)
        : bytes(std::max<size_t>(size_t(4 * prop.l2CacheSize), size_t(512) << 20)) {
        base = dev_alloc<char>(bytes);
        CUDA_CHECK(cudaMemset(base, 0x5a, bytes));
    }
    size_t slot(size_t n) const { return (std::max<size_t>(n, 1) + 4095) / 4096 * 4096; }
    int copies(size_t n) const { return int(std::max<size_t>(1, bytes / slot(n))); }
    char *at(size_t n, int i) const { return base + size_t(i % copies(n)) * slot(n); }
};

} // namespace bench
} // namespace gptq
