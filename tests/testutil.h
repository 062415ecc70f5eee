// testutil.h — helpers shared by the tests: where ../shared is, reading golden files, requirements.
#pragma once

#include <string>
#include <vector>

// Declares what a test executable needs, e.g. GPTQ_TEST_REQUIRES("shared") or ("shared cuda"):
// "shared" the ../shared folder, "cuda" a CUDA device, "cuda-build" the CUDA backend compiled in.
// When a requirement is missing the executable prints why and exits 77 (ctest: skipped).
#define GPTQ_TEST_REQUIRES(what) \
    extern "C" const char *gptq_test_requires(void) { return what; }

namespace testutil {

std::string shared_dir();                          // $GPTQ_SHARED_DIR or ../shared
std::string shared_path(const std::string &rel);   // shared_dir() + "/" + rel
std::string source_dir();                          // $GPTQ_SOURCE_DIR or "."
std::string bundled_model_dir();                   // source_dir() + "/models/docs-llama-8m"
std::string read_text(const std::string &path);    // whole file; throws std::runtime_error
std::vector<float> read_f32(const std::string &path);
std::string temp_dir(const std::string &tag);      // a fresh empty directory under /tmp

} // namespace testutil
