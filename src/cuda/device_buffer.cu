// device_buffer.cu — DeviceBuffer's allocation and the device-memory accounting.
#include "device_buffer.cuh"

#include "cuda_backend.cuh"

#include <atomic>

namespace gptq {
namespace cuda {

namespace {

std::atomic<size_t> g_live{0}, g_peak{0};

} // namespace

void DeviceBuffer::alloc(size_t bytes) {
    release();
    if (bytes == 0) return;
    cudaError_t e = cudaMalloc(&p_, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        p_ = nullptr;
        fail(GPTQ_ERR_OOM, "CUDA: cannot allocate %.1f MiB of device memory (%s)", double(bytes) / (1 << 20),
             cudaGetErrorString(e));
    }
    bytes_ = bytes;
    size_t live = g_live += bytes;
    size_t peak = g_peak.load();
    while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {}
}
void DeviceBuffer::release() {
    if (p_) {
        cudaFree(p_);
        g_live -= bytes_;
    }
    p_ = nullptr;
    bytes_ = 0;
}

void PinnedBuffer::reserve(size_t bytes) {
    if (bytes <= bytes_) return;
    release();
    cudaError_t e = cudaMallocHost(&p_, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        p_ = nullptr;
        fail(GPTQ_ERR_OOM, "CUDA: cannot allocate %.1f MiB of page-locked host memory (%s)", double(bytes) / (1 << 20),
             cudaGetErrorString(e));
    }
    bytes_ = bytes;
}
void PinnedBuffer::release() {
    if (p_) cudaFreeHost(p_);
    p_ = nullptr;
    bytes_ = 0;
}

size_t device_bytes_live() { return g_live.load(); }
size_t device_bytes_peak() { return g_peak.load(); }

} // namespace cuda
} // namespace gptq
