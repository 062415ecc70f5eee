// pipeline_common.cpp — options, format checks and layer writing shared by the CPU and GPU
// quantization pipelines (see pipeline_common.h).
#include "quant/pipeline_common.h"

#include "common.h"
#include "quant/pack.h"

#include <vector>

namespace gptq {

std::string unpackable_reason(const LinearWeights &w, const GptqOptions &o) {
    if (!packable(w.in, o.bits)) return strprintf("in_features %d is not a multiple of %d", w.in, pack_unit(o.bits));
    if (o.group_size > 0 && o.group_size < w.in && w.in % o.group_size != 0)
        return strprintf("group_size %d does not divide in_features %d", o.group_size, w.in);
    if ((int64_t(w.out) * o.bits) % 32 != 0) return strprintf("out_features %d cannot hold packed zeros", w.out);
    return "";
}

bool keep_unpackable_in_fp16(const LinearWeights &w, const GptqOptions &o) {
    const std::string why = unpackable_reason(w, o);
    if (why.empty()) return false;
    log_msg(GPTQ_LOG_WARN, "%s: %s, which the GPTQ format cannot pack at %d bits; kept unquantized in fp16",
            w.name.c_str(), why.c_str(), o.bits);
    return true;
}

GptqOptions layer_options(const GptqOptions &o, const LinearWeights &w) {
    GptqOptions opt = o;
    if (opt.group_size >= w.in) opt.group_size = -1;
    return opt;
}

void write_gptq_tensors(CheckpointWriter &out, const std::string &name, int K, int N, int G, int bits,
                        int format, const int32_t *qweight, const int32_t *zeros, const uint16_t *scales_f16,
                        const int32_t *g_idx) {
    if (format == 1 && !v1_zeros_representable(zeros, size_t(G) * N))
        fail(GPTQ_ERR_UNSUPPORTED, "%s has a zero point of 0, which checkpoint_format v1 cannot store; use v2 or AUTO",
             name.c_str());
    std::vector<int32_t> qzeros(size_t(G) * N * bits / 32);
    pack_qzeros(zeros, G, N, bits, format, qzeros.data());
    out.add(name + ".qweight", DType::I32, {int64_t(K) * bits / 32, N}, qweight, size_t(K) * bits / 32 * N * 4);
    out.add(name + ".qzeros", DType::I32, {G, int64_t(N) * bits / 32}, qzeros.data(), qzeros.size() * 4);
    out.add(name + ".scales", DType::F16, {G, N}, scales_f16, size_t(G) * N * 2);
    out.add(name + ".g_idx", DType::I32, {K}, g_idx, size_t(K) * 4);
}

} // namespace gptq
