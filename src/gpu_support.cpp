// gpu_support.cpp — which GPUs this build's CUDA code runs on, as a rule without a device.
#include "backend.h"

#include "common.h"

namespace gptq {

std::string compute_capability_unsupported(int major, int minor) {
    // The kernels use what Ampere brought (cp.async, bf16 and the m16n8k16 fp16 mma, ldmatrix),
    // and the build carries sm_80 code (run by every 8.x GPU) with its PTX (compiled for newer
    // ones by the driver), plus sm_90a code for Hopper.
    if (major >= 8) return "";
    return strprintf("compute capability %d.%d; the CUDA backend needs 8.0 (Ampere) or newer", major, minor);
}

} // namespace gptq
