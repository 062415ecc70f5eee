// test_gpu_support.cpp — which GPUs the CUDA backend takes, and what GPTQ_BACKEND_AUTO and an
// explicit GPTQ_BACKEND_CUDA do where none is usable. Runs everywhere: the rule needs no device,
// and the load checks take the branch this machine has.
#include <doctest/doctest.h>

#include "testutil.h"

#include "backend.h"
#include "gptq.h"

#include <string>

using gptq::compute_capability_unsupported;
using gptq::cuda_device_unsupported;

TEST_CASE("the CUDA backend takes Ampere (compute capability 8.0) and newer") {
    for (auto [major, minor] : {std::pair{6, 1}, {7, 0}, {7, 5}}) {
        CAPTURE(major);
        CAPTURE(minor);
        const std::string why = compute_capability_unsupported(major, minor);
        CHECK(why.find(std::to_string(major) + "." + std::to_string(minor)) != std::string::npos);
        CHECK(why.find("8.0 (Ampere)") != std::string::npos);
    }
    for (auto [major, minor] : {std::pair{8, 0}, {8, 6}, {8, 9}, {9, 0}, {10, 0}, {12, 0}}) {
        CAPTURE(major);
        CAPTURE(minor);
        CHECK(compute_capability_unsupported(major, minor).empty());
    }
}

TEST_CASE("a device that does not exist is never usable; gptq_cuda_available says what device 0 is") {
    CHECK_FALSE(cuda_device_unsupported(-1).empty());
    CHECK_FALSE(cuda_device_unsupported(1 << 20).empty());
    CHECK(gptq_cuda_available() == (cuda_device_unsupported(0).empty() ? 1 : 0));
}

TEST_CASE("GPTQ_BACKEND_AUTO takes the GPU where one is usable, else the CPU; GPTQ_BACKEND_CUDA without one is an error") {
    const bool gpu = gptq_cuda_available() != 0;
    const std::string dir = testutil::bundled_model_dir();
    gptq_load_params lp = gptq_load_params_default();
    gptq_model *m = nullptr;
    REQUIRE(gptq_load(dir.c_str(), &lp, &m) == GPTQ_OK);
    gptq_model_info info;
    info.struct_size = sizeof info;
    REQUIRE(gptq_model_get_info(m, &info) == GPTQ_OK);
    CHECK(info.backend == (gpu ? GPTQ_BACKEND_CUDA : GPTQ_BACKEND_CPU));
    gptq_model_free(m);
    if (gpu) return;  // an explicit GPTQ_BACKEND_CUDA on a GPU: test_cuda_backend_slow

    lp.backend = GPTQ_BACKEND_CUDA;
    m = reinterpret_cast<gptq_model *>(0x1);
    const gptq_status st = gptq_load(dir.c_str(), &lp, &m);
    INFO(gptq_status_str(st) << ": " << gptq_errmsg());
    CHECK((st == GPTQ_ERR_BACKEND || st == GPTQ_ERR_UNSUPPORTED));
    CHECK(m == nullptr);
    CHECK(std::string(gptq_errmsg()).find("CUDA") != std::string::npos);  // says what is missing
}
