// backend_nocuda.cc — what a build without the CUDA backend links instead of gptq-cuda.cu.
// (Named .cc so the src/*.cpp glob leaves it out of CUDA builds.)
#include "backend.h"
#include "cuda/quant_pipeline.h"

namespace gptq {

int cuda_device_count() { return 0; }

std::string cuda_device_unsupported(int) { return "this build of libgptq has no CUDA backend"; }

std::unique_ptr<Backend> make_cuda_backend(const Model &, int) {
    fail(GPTQ_ERR_UNSUPPORTED, "this build of libgptq has no CUDA backend (configure with -DGPTQ_CUDA=ON)");
}

// The GPU quantizer (src/cuda/quant_pipeline.cu, quant_solver.cu).
std::string cuda_quantize_unsupported_reason(const PipelineOptions &) {
    return "a build without CUDA";
}

void quantize_model_cuda(Model &, const CalibrationSet &, const PipelineOptions &, CheckpointWriter &,
                         const GpuQuantOptions &, GpuQuantStats *) {
    fail(GPTQ_ERR_UNSUPPORTED, "this build of libgptq has no CUDA backend: GPU quantization is unavailable");
}

GptqResult gptq_quantize_layer_cuda(const float *, int, int, const float *, const GptqOptions &, const char *) {
    fail(GPTQ_ERR_UNSUPPORTED, "this build of libgptq has no CUDA backend: GPU quantization is unavailable");
}

void pack_qweight_cuda(const uint8_t *, const int32_t *, int, int, int, int32_t *) {
    fail(GPTQ_ERR_UNSUPPORTED, "this build of libgptq has no CUDA backend: GPU quantization is unavailable");
}

} // namespace gptq
