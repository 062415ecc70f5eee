// pipeline_common.cpp — options, format checks and layer writing shared by the CPU and GPU
// quantization pipelines (see pipeline_common.h).
#include "quant/pipeline_common.h"

#include "common.h"
#include "quant/pack.h"

#include <vector>

namespace gptq {

PipelineOptions pipeline_options(const gptq_quantize_params &p) {
    if (p.bits != 2 && p.bits != 3 && p.bits != 4 && p.bits != 8)
        fail(GPTQ_ERR_INVALID_ARG, "bits %d: GPTQ checkpoints hold 2, 3, 4 or 8 bits", p.bits);
    if (p.group_size == 0 || p.group_size < -1)
        fail(GPTQ_ERR_INVALID_ARG, "group_size %d: use -1 (per column) or a positive divisor of the layers' inputs", p.group_size);
    if (!(p.damp_percent > 0 && p.damp_percent < 1))
        fail(GPTQ_ERR_INVALID_ARG, "damp_percent %g outside (0, 1)", double(p.damp_percent));
    if (p.block_size <= 0) fail(GPTQ_ERR_INVALID_ARG, "block_size %d must be positive", p.block_size);
    if (p.checkpoint_format < GPTQ_FORMAT_AUTO || p.checkpoint_format > GPTQ_FORMAT_V2)
        fail(GPTQ_ERR_INVALID_ARG, "unknown checkpoint_format %d", p.checkpoint_format);
    if (p.clip_search < GPTQ_CLIP_NONE || p.clip_search > GPTQ_CLIP_HESSIAN)
        fail(GPTQ_ERR_INVALID_ARG, "unknown clip_search %d", p.clip_search);
    PipelineOptions o;
    o.n_threads = resolve_threads(p.n_threads);
    o.gptq.bits = p.bits;
    o.gptq.group_size = p.group_size;
    o.gptq.sym = p.sym != 0;
    o.gptq.desc_act = p.desc_act != 0;
    o.gptq.static_groups = p.static_groups != 0;
    o.gptq.damp_percent = p.damp_percent;
    o.gptq.damp_auto_increment = p.damp_auto_increment;
    o.gptq.block_size = p.block_size;
    o.gptq.fp16_scales = p.fp16_scales_in_solve != 0;
    o.gptq.mse_clip = p.clip_search != GPTQ_CLIP_NONE;
    o.gptq.mse_h_weighted = p.clip_search == GPTQ_CLIP_HESSIAN;
    o.gptq.mse_norm = o.gptq.mse_h_weighted ? 2.f : 2.4f;
    o.gptq.n_threads = o.n_threads;
    o.format_request = p.checkpoint_format;
    o.format = o.format_request == GPTQ_FORMAT_V2 || (o.format_request == GPTQ_FORMAT_AUTO && !o.gptq.sym) ? 2 : 1;
    o.qc.present = true;
    o.qc.bits = p.bits;
    o.qc.group_size = p.group_size;
    o.qc.sym = o.gptq.sym;
    o.qc.desc_act = o.gptq.desc_act;
    o.qc.static_groups = o.gptq.static_groups;
    o.qc.true_sequential = p.true_sequential != 0;
    o.qc.damp_percent = p.damp_percent;
    o.qc.format = o.format;
    o.progress = p.progress;
    o.user = p.progress_user_data;
    return o;
}

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
