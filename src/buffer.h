// buffer.h — owning, 64-byte aligned host arrays for large data (weights, activations, caches).
//
// Large host buffers come from mimalloc (GPTQ_USE_MIMALLOC); sanitizer builds switch it off so
// ASan sees every allocation. Allocation failure throws Error(GPTQ_ERR_OOM), never std::bad_alloc.
#pragma once

#include "common.h"

#include <cstddef>
#include <cstring>
#include <utility>

namespace gptq {

void *host_alloc(size_t bytes);  // 64-byte aligned; throws Error(GPTQ_ERR_OOM)
void host_free(void *p);

template <class T> class Buffer {
public:
    Buffer() = default;
    explicit Buffer(size_t n) { resize(n); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    Buffer(Buffer &&o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
    Buffer &operator=(Buffer &&o) noexcept {
        if (this != &o) { host_free(p_); p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
        return *this;
    }
    ~Buffer() { host_free(p_); }

    // Discards the contents; new elements are zeroed.
    void resize(size_t n) {
        if (n == n_) return;
        host_free(p_);
        p_ = nullptr; n_ = 0;
        if (n) {
            p_ = static_cast<T *>(host_alloc(n * sizeof(T)));
            std::memset(static_cast<void *>(p_), 0, n * sizeof(T));
            n_ = n;
        }
    }
    T *data() { return p_; }
    const T *data() const { return p_; }
    size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    T &operator[](size_t i) { return p_[i]; }
    const T &operator[](size_t i) const { return p_[i]; }
    T *begin() { return p_; }
    T *end() { return p_ + n_; }
    const T *begin() const { return p_; }
    const T *end() const { return p_ + n_; }

private:
    T *p_ = nullptr;
    size_t n_ = 0;
};

} // namespace gptq
