// device_buffer.cuh — owning device allocations for the CUDA backend, counted so that the
// benchmarks can report the backend's peak device memory (cuda_backend.cuh device_bytes_peak).
#pragma once

#include "cuda_check.cuh"

#include <cstddef>
#include <vector>

namespace gptq {
namespace cuda {

// Owning device allocation; failure is Error(GPTQ_ERR_OOM) naming the size.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes) { alloc(bytes); }
    DeviceBuffer(const DeviceBuffer &) = delete;
    DeviceBuffer &operator=(const DeviceBuffer &) = delete;
    DeviceBuffer(DeviceBuffer &&o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; o.bytes_ = 0; }
    DeviceBuffer &operator=(DeviceBuffer &&o) noexcept {
        if (this != &o) {
            release();
            p_ = o.p_; bytes_ = o.bytes_;
            o.p_ = nullptr; o.bytes_ = 0;
        }
        return *this;
    }
    ~DeviceBuffer() { release(); }

    void alloc(size_t bytes);  // releases what it held first
    void reserve(size_t bytes) {  // at least `bytes`, the contents lost when it grows
        if (bytes > bytes_) alloc(bytes);
    }
    void release();
    template <class T> T *as() const { return static_cast<T *>(p_); }
    size_t bytes() const { return bytes_; }

private:
    void *p_ = nullptr;
    size_t bytes_ = 0;
};

// Owning page-locked host allocation (asynchronous copies to and from the device), grown on
// demand; failure is Error(GPTQ_ERR_OOM).
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    PinnedBuffer(const PinnedBuffer &) = delete;
    PinnedBuffer &operator=(const PinnedBuffer &) = delete;
    ~PinnedBuffer() { release(); }

    void reserve(size_t bytes);  // at least `bytes`, the contents lost when it grows
    void release();
    template <class T> T *as() const { return static_cast<T *>(p_); }
    size_t bytes() const { return bytes_; }

private:
    void *p_ = nullptr;
    size_t bytes_ = 0;
};

template <class T> DeviceBuffer upload(const T *host, size_t count) {
    DeviceBuffer b(count * sizeof(T));
    if (count) CUDA_CHECK(cudaMemcpy(b.as<void>(), host, count * sizeof(T), cudaMemcpyHostToDevice));
    return b;
}
template <class T> DeviceBuffer upload(const std::vector<T> &v) { return upload(v.data(), v.size()); }

} // namespace cuda
} // namespace gptq
