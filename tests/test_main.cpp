// The doctest main shared by every test executable. Before running, it checks the executable's
// declared requirements (GPTQ_TEST_REQUIRES) and exits 77, which ctest reports as skipped, when
// one is missing — saying which and why.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "backend.h"
#include "gptq.h"
#include "testutil.h"

#include <cstdio>
#include <cstring>
#include <sys/stat.h>

extern "C" __attribute__((weak)) const char *gptq_test_requires(void) { return ""; }

// Whether the space-separated list `req` names `word`.
static bool requires_word(const char *req, const char *word) {
    const size_t n = std::strlen(word);
    for (const char *p = req; (p = std::strstr(p, word)) != nullptr; p += n)
        if ((p == req || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) return true;
    return false;
}

int main(int argc, char **argv) {
    const char *req = gptq_test_requires();
    if (requires_word(req, "shared")) {
        struct stat st;
        std::string models = testutil::shared_path("models");
        if (stat(models.c_str(), &st) != 0) {
            std::printf("SKIPPED: %s not found (set GPTQ_SHARED_DIR to the shared data folder)\n", models.c_str());
            return 77;
        }
    }
    if (requires_word(req, "cuda") && !gptq_cuda_available()) {
        std::printf("SKIPPED: no usable CUDA device: %s\n", gptq::cuda_device_unsupported(0).c_str());
        return 77;
    }
#ifndef GPTQ_USE_CUDA
    if (requires_word(req, "cuda-build")) {  // host code of the CUDA backend; no device needed
        std::printf("SKIPPED: this build has no CUDA backend\n");
        return 77;
    }
#endif
    doctest::Context ctx;
    ctx.applyCommandLine(argc, argv);
    return ctx.run();
}
