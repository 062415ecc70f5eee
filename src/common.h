// common.h — internal error type, logging and small helpers shared by every module.
//
// Inside the library, failures are C++ exceptions of type gptq::Error carrying a gptq_status and a
// message that names the problem. gptq.cpp catches them (and everything else) at the C boundary.
#pragma once

#include "gptq.h"

#include <cstdarg>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace gptq {

class Error : public std::runtime_error {
public:
    Error(gptq_status status, std::string message)
        : std::runtime_error(std::move(message)), status_(status) {}
    gptq_status status() const { return status_; }

private:
    gptq_status status_;
};

// printf-style formatting into a std::string.
std::string strprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Throws Error(status, formatted message).
[[noreturn]] void fail(gptq_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Logs through the callback set by gptq_set_log_callback (silent when none).
void set_log_callback(gptq_log_callback cb, void *user);
void log_msg(int32_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Reads a whole file; throws Error(GPTQ_ERR_IO) naming the path.
std::string read_file(const std::string &path);
bool file_exists(const std::string &path);
std::string path_join(const std::string &dir, const std::string &name);

// fp16 / bf16 <-> fp32 conversions (round to nearest even).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
uint16_t f32_to_bf16(float f);

// Number of worker threads to use for n_threads (0 = hardware concurrency).
int resolve_threads(int n_threads);

// The integer in environment variable name, or dflt when it is unset or empty (measurement switches).
int env_int(const char *name, int dflt);

} // namespace gptq
