// launch.cuh — kernel launches with programmatic dependent launch (PDL) on Hopper.
//
// A kernel launched through launch() may start while the kernel before it in the stream is still
// finishing. Every such kernel calls griddep_wait() before it touches memory the previous kernel
// writes or reads (so a kernel may only do independent work first: the 4-bit kernel streams its
// constant weights), and griddep_trigger() to let the next kernel start early in turn. On GPUs
// before sm_90 both are no-ops and launches are ordinary. GPTQ_CUDA_PDL=0 switches PDL off.
// (Exposed to host-only code through cuda_backend.cuh's set_pdl.)
#pragma once

#include "cuda_check.cuh"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace gptq {
namespace cuda {

__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void griddep_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Waits for the previous kernel, then lets the next one start.
__device__ __forceinline__ void pdl_enter() {
    griddep_wait();
    griddep_trigger();
}

// PDL on or off for this process (GPTQ_CUDA_PDL=0 starts it off; benchmarks switch it).
inline std::atomic<int> &pdl_switch() {
    static std::atomic<int> on{[] {
        const char *e = std::getenv("GPTQ_CUDA_PDL");
        return (e && std::strcmp(e, "0") == 0) ? 0 : 1;
    }()};
    return on;
}
inline void set_pdl(bool on) { pdl_switch() = on ? 1 : 0; }

// A value of the current device computed once per (device, key): attributes, probes, opt-ins,
// occupancy — properties of a device the launchers consult at every call. Each call site (each
// lambda type) has its own table, so `key` only tells apart the values of one site. `none` when
// there is no current device. compute() runs outside the lock: threads that race both compute the
// same value and the first stores it.
template <typename T, typename F> T once_per_device(uintptr_t key, T none, F &&compute) {
    static std::mutex mu;
    static std::map<std::pair<int, uintptr_t>, T> cache;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
        cudaGetLastError();
        return none;
    }
    const auto k = std::make_pair(dev, key);
    {
        std::lock_guard<std::mutex> lock(mu);
        const auto it = cache.find(k);
        if (it != cache.end()) return it->second;
    }
    const T v = compute(dev);
    std::lock_guard<std::mutex> lock(mu);
    return cache.emplace(k, v).first->second;
}

// An attribute of the current device; `fallback` when there is no device or the query fails.
inline int device_attribute(cudaDeviceAttr attr, int fallback) {
    return once_per_device<int>(uintptr_t(attr), fallback, [&](int dev) {
        int v = 0;
        if (cudaDeviceGetAttribute(&v, attr, dev) != cudaSuccess) {
            cudaGetLastError();
            return fallback;
        }
        return v;
    });
}

// Lets `kernel` launch with `bytes` of dynamic shared memory on the current device. A block whose
// static and dynamic shared memory together pass 48 KB must opt in, per kernel and device: done
// once, up to all the block may have (the device's limit less the kernel's static shared memory;
// the opt-in only permits, a launch's occupancy follows the bytes it asks for). More than that is
// an error status, not a failed launch.
template <typename... KArgs> void allow_dynamic_smem(void (*kernel)(KArgs...), size_t bytes) {
    if (bytes == 0) return;
    const uintptr_t key = reinterpret_cast<uintptr_t>(kernel);
    const int static_bytes = once_per_device<int>(key, 0, [&](int) {
        cudaFuncAttributes fa = {};
        CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
        return int(fa.sharedSizeBytes);
    });
    if (bytes + size_t(static_bytes) <= 48 * 1024) return;
    const int limit = once_per_device<int>(key, 0, [&](int) {
        const int cap = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024) - static_bytes;
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, cap));
        return cap;
    });
    if (bytes > size_t(limit))
        fail(GPTQ_ERR_BACKEND, "a kernel needs %zu bytes of shared memory; the GPU gives it at most %d", bytes, limit);
}

// Whether the current device takes PDL launches (compute capability >= 9, switched on).
inline bool pdl_enabled() {
    if (!pdl_switch().load(std::memory_order_relaxed)) return false;
    return device_attribute(cudaDevAttrComputeCapabilityMajor, 0) >= 9;
}

// Launches `kernel` with PDL where enabled and, when `cluster` has more than one block, with its
// blocks grouped into thread-block clusters of that shape (sm_90; the grid must be a multiple).
template <typename... KArgs, typename... Args>
void launch_clustered(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, dim3 cluster,
                      Args &&...args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[2];
    unsigned n = 0;
    if (pdl_enabled()) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n].val.programmaticStreamSerializationAllowed = 1;
        ++n;
    }
    if (cluster.x * cluster.y * cluster.z > 1) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n].val.clusterDim.x = cluster.x;
        attr[n].val.clusterDim.y = cluster.y;
        attr[n].val.clusterDim.z = cluster.z;
        ++n;
    }
    cfg.attrs = attr;
    cfg.numAttrs = n;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args &&...args) {
    launch_clustered(kernel, grid, block, smem, stream, dim3(1, 1, 1), std::forward<Args>(args)...);
}

} // namespace cuda
} // namespace gptq
