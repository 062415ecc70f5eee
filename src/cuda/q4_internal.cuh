// q4_internal.cuh — what the 4-bit sources (q4_plan.cu, q4_fused.cu, q4_matmul.cu) share beyond
// q4_gemm.cuh. Plain C++ header; not for the backend.
#pragma once

#include "q4_gemm.cuh"

#include <cstddef>

namespace gptq {
namespace cuda {

// Shared memory of the current device: per SM, and what one block may opt in to (capped at
// kQ4SmemMaxBytes).
struct DeviceSmem {
    size_t per_sm, per_block;
};
DeviceSmem q4_device_smem();

// Resident blocks per SM of the fused kernel of one q4_fused_kind on the current device
// (q4_fused.cu: it names the kernels).
int q4_fused_occupancy(int kind);

// Whether uniform-zero layers take the folded zero point (q4_fused_math.cuh Acc): GPTQ_Q4_FOLD=0/1,
// read at every launch and plan (the tests run both).
bool q4_fold_enabled();

// Whether a call may read its activations directly (Q4Plan::x_direct): the 16-token kernel only, x
// as given, and whole tile pairs of K in x (no zero fill past K).
bool q4_x_direct_allowed(int M, const Q4Dev &w, int prologue);

// Whether split calls add their shares with atomics (q4_set_atomic_accumulate).
bool q4_atomic_enabled();

} // namespace cuda
} // namespace gptq
