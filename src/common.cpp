// common.cpp — error formatting, logging, file helpers, float conversions, host allocation.
#include "common.h"
#include "buffer.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <vector>

#ifdef GPTQ_USE_MIMALLOC
#include <mimalloc.h>
#endif

namespace gptq {

static std::string vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = std::vsnprintf(nullptr, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return fmt;
    std::string s(size_t(n) + 1, '\0');
    std::vsnprintf(&s[0], s.size(), fmt, ap);
    s.resize(size_t(n));
    return s;
}

std::string strprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

void fail(gptq_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vformat(fmt, ap);
    va_end(ap);
    throw Error(status, std::move(s));
}

// The log callback is process-wide; a mutex keeps (callback, user_data) consistent.
static std::mutex g_log_mutex;
static gptq_log_callback g_log_cb = nullptr;
static void *g_log_user = nullptr;

void set_log_callback(gptq_log_callback cb, void *user) {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    g_log_cb = cb;
    g_log_user = user;
}

void log_msg(int32_t level, const char *fmt, ...) {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    if (!g_log_cb) return;
    va_list ap;
    va_start(ap, fmt);
    std::string s = vformat(fmt, ap);
    va_end(ap);
    g_log_cb(level, s.c_str(), g_log_user);
}

std::string read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(GPTQ_ERR_IO, "cannot open %s: %s", path.c_str(), std::strerror(errno));
    std::stringstream ss;
    ss << f.rdbuf();
    if (f.bad()) fail(GPTQ_ERR_IO, "cannot read %s", path.c_str());
    return ss.str();
}

bool file_exists(const std::string &path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0;
}

std::string path_join(const std::string &dir, const std::string &name) {
    if (dir.empty()) return name;
    if (dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            man &= 0x3ff;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000u) return uint16_t(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));  // inf/nan
    if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to >= 65520: inf
    if (absx < 0x38800000u) {  // subnormal or zero in half
        if (absx < 0x33000000u) return uint16_t(sign);  // < 2^-25 rounds to 0
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7fffff) | 0x800000;
        int shift = 126 - int(e);  // 113 <= e < 113: shift in [14, 24]
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return uint16_t(sign | r);
    }
    uint32_t r = (absx - 0x38000000u) >> 13;  // rebias exponent
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return uint16_t(sign | r);
}

uint16_t f32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet NaN
    uint32_t rounding = 0x7fff + ((x >> 16) & 1);
    return uint16_t((x + rounding) >> 16);
}

int resolve_threads(int n_threads) {
    if (n_threads > 0) return n_threads;
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? int(hc) : 1;
}

int env_int(const char *name, int dflt) {
    const char *e = std::getenv(name);
    return e && *e ? std::atoi(e) : dflt;
}

void *host_alloc(size_t bytes) {
    if (bytes == 0) return nullptr;
#ifdef GPTQ_USE_MIMALLOC
    void *p = mi_malloc_aligned(bytes, 64);
#else
    void *p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
#endif
    if (!p) fail(GPTQ_ERR_OOM, "out of host memory allocating %zu bytes", bytes);
    return p;
}

void host_free(void *p) {
    if (!p) return;
#ifdef GPTQ_USE_MIMALLOC
    mi_free(p);
#else
    std::free(p);
#endif
}

} // namespace gptq
