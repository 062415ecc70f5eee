// block_stamps.cuh — per-block phase times for the benchmark's stamps (bench-e2e --stamps): the
// clock, and the record a stamping kernel other than the 4-bit product's appends to
// (q4_stamp_sink). Device code.
#pragma once

#include "q4_gemm.cuh"

#include <cstdint>

namespace gptq {
namespace cuda {

// %globaltimer: ns, the same clock on every SM (the stamps of different kernels compare).
__device__ __forceinline__ uint64_t globaltimer() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// Appends one block's stamps (entry, waited, staged as t; its end now) to the sink's record. The
// end is read before the cursor's atomic: its round trip (~1 µs while the memory streams) is the
// instrument's, not the kernel's.
__device__ __forceinline__ void record_block_stamp(const StampSink &sink, uint32_t K, uint32_t N,
                                                   const uint64_t (&t)[3]) {
    const uint64_t end = globaltimer();
    if (!sink.buf) return;
    const unsigned i = atomicAdd(sink.cursor, 1u);
    if (i >= sink.capacity) return;
    uint32_t sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    sink.buf[i] = Q4Stamp{K, N, blockIdx.x + gridDim.x * blockIdx.y, sm, t[0], t[1], t[2], end};
}

} // namespace cuda
} // namespace gptq
