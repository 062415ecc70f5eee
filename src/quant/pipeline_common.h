// pipeline_common.h — what the CPU pipeline (quantize.cpp) and the GPU pipeline
// (src/cuda/quant_pipeline.cu) share: the options one run is made with, the check that a layer
// fits the file format, and the writing of one quantized layer's tensors.
#pragma once

#include "checkpoint_writer.h"
#include "solver.h"
#include "../model.h"

#include <cstdint>
#include <string>

namespace gptq {

struct PipelineOptions {
    GptqOptions gptq;
    QuantConfig qc;
    int format_request = GPTQ_FORMAT_AUTO;  // GPTQ_FORMAT_*
    int format = 1;                         // what is written: 1 (gptq) or 2 (gptq_v2)
    int n_threads = 1;
    gptq_progress_callback progress = nullptr;
    void *user = nullptr;
};

// The run's options from the public parameters (checked: bits, group_size, damp_percent, block_size,
// checkpoint_format, clip_search; INVALID_ARG with a message otherwise). The format decision is
// made here, before any layer is solved: v1 unless v2 is asked for, or AUTO with asymmetric
// quantization (v1 cannot store a zero point of 0, common at low bits).
PipelineOptions pipeline_options(const gptq_quantize_params &p);

// Why the format cannot hold this layer at these options ("" when it can): K packs into whole
// words, groups divide K, and N holds whole words of packed zeros (FORMAT.md).
std::string unpackable_reason(const LinearWeights &w, const GptqOptions &o);

// The options one layer is solved with: a group as large as the layer's input is one group per
// column (G = 1), as the peers read it.
// True (after a warning naming the layer and the reason) when the format cannot pack w at o.bits,
// so the pipeline keeps the layer in fp16.
bool keep_unpackable_in_fp16(const LinearWeights &w, const GptqOptions &o);

GptqOptions layer_options(const GptqOptions &o, const LinearWeights &w);

// Writes name.qweight / .qzeros / .scales / .g_idx from the solved layer. zeros are true zero
// points [G, N]; refused (UNSUPPORTED) when format 1 cannot store one of them.
void write_gptq_tensors(CheckpointWriter &out, const std::string &name, int K, int N, int G, int bits,
                        int format, const int32_t *qweight, const int32_t *zeros, const uint16_t *scales_f16,
                        const int32_t *g_idx);

} // namespace gptq
