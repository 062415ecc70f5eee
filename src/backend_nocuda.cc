// backend_nocuda.cc — what a build without the CUDA backend links instead of gptq-cuda.cu.
// (Named .cc so the src/*.cpp glob leaves it out of CUDA builds.)
#include "backend.h"

namespace gptq {

int cuda_device_count() { return 0; }

std::unique_ptr<Backend> make_cuda_backend(const Model &, int) {
    fail(GPTQ_ERR_UNSUPPORTED, "this build of libgptq has no CUDA backend (configure with -DGPTQ_CUDA=ON)");
}

} // namespace gptq
