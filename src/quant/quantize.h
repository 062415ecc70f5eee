// quantize.h — the layer-by-layer GPTQ pipeline: calibration, per-layer Hessians and solves,
// recomputed layer outputs, and the checkpoint writer.
#pragma once

#include "gptq.h"

namespace gptq {

// Quantizes model_dir into out_dir as described by gptq_quantize() in gptq.h. Throws gptq::Error.
void quantize_model(const char *model_dir, const char *out_dir, const gptq_quantize_params &p);

} // namespace gptq
