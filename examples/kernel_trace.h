// kernel_trace.h — the GPU's kernel timeline over a stretch of work, through CUPTI's activity API
// (benchmarks only: where the time between and inside kernels goes, graph-launched kernels
// included, without serializing them). Built when CMake finds CUPTI; else trace_begin says no.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptq {
namespace bench {

struct KernelSpan {
    std::string name;     // demangled, namespaces stripped, then the grid: "kernel<...> [gx x gy]"
    uint64_t start, end;  // ns, GPU clock
};

// Starts recording kernel activity; false (with the reason in *why) when CUPTI is not available.
bool trace_begin(std::string *why);
// Stops recording (after the caller synchronized the device) and returns the kernels in start order.
std::vector<KernelSpan> trace_end();

} // namespace bench
} // namespace gptq
