// Interoperability: a checkpoint the project writes, dequantized by an independent implementation
// written from FORMAT.md alone (scripts/gptq_dequant.py, standard-library Python), gives the same
// weights as the project's own runtime reads from it.
#include "golden.h"
#include "testutil.h"

#include "src/cpu/cpu_linear.h"
#include "src/model.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

GPTQ_TEST_REQUIRES("shared")

namespace fs = std::filesystem;

static void check_with_python(int bits, int group, int sym, int act, int stat) {
    const std::string out = testutil::temp_dir("interop");
    gptq_quantize_params p = golden::wiki_calibration_params(4, 128, 0);
    p.bits = bits;
    p.group_size = group;
    p.sym = sym;
    p.desc_act = act;
    p.static_groups = stat;
    const std::string ckpt = out + "/ckpt", ref = out + "/ref";
    REQUIRE_OK(gptq_quantize(testutil::bundled_model_dir().c_str(), ckpt.c_str(), &p));
    fs::create_directories(ref);
    auto model = gptq::load_model(ckpt);
    std::string modules;
    for (int l : {0, 5}) {
        const gptq::LayerWeights &L = model->layers[size_t(l)];
        for (const gptq::LinearWeights *w : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) {
            REQUIRE(w->quantized);
            std::vector<float> W(size_t(w->in) * size_t(w->out));
            gptq::CpuLinear(*w).dequantize(W.data(), 2);
            std::ofstream(ref + "/" + w->name + ".f32", std::ios::binary)
                .write(reinterpret_cast<const char *>(W.data()), std::streamsize(W.size() * 4));
            modules += " " + w->name;
        }
    }
    const std::string cmd = "python3 " + testutil::source_dir() + "/scripts/gptq_dequant.py " + ckpt + " " + ref + modules;
    INFO(cmd);
    CHECK(std::system(cmd.c_str()) == 0);
    fs::remove_all(out);
}

TEST_CASE("4-bit symmetric act-order (v1, shuffled g_idx)") { check_with_python(4, 128, 1, 1, 0); }
TEST_CASE("3-bit asymmetric (v2, straddling words)") { check_with_python(3, 128, 0, 0, 0); }
TEST_CASE("2-bit asymmetric group 64 (v2) and 8-bit") {
    check_with_python(2, 64, 0, 0, 0);
    check_with_python(8, 128, 1, 0, 0);
}
