// quantize.cpp — placeholder until the pipeline lands.
#include "quantize.h"
#include "../common.h"

namespace gptq {

void quantize_model(const char *, const char *, const gptq_quantize_params &) {
    fail(GPTQ_ERR_UNSUPPORTED, "gptq_quantize is not implemented yet");
}

} // namespace gptq
