// quant_pipeline.h — GPTQ quantization on the GPU (plain C++ header; implemented in
// quant_pipeline.cu and quant_solver.cu, stubbed in backend_nocuda.cc for builds without CUDA).
//
// The GPU pipeline follows the CPU one (quantize.cpp) step by step — true-sequential groups
// k,v,q | o | up,gate | down, Hessians from the outputs of the already-quantized sublayers, the
// layer's output recomputed through the quantized layer — with the same options and the same
// writer. Two precisions for the calibration forward: the precise mode computes it in fp32
// throughout (cuBLAS SGEMM, no TF32), as the CPU does; the fast mode feeds fp16 to the tensor
// cores like the CUDA backend (the residual stream stays fp32; Hessian sums in fp32 from the fp16
// inputs, whose products are exact in fp32). quantize_model() runs the fast mode unless
// GPTQ_CUDA_FORWARD=fp32 (see the measurements there).
#pragma once

#include "quant/calibration.h"
#include "quant/pipeline_common.h"
#include "quant/solver.h"

#include <cstddef>

namespace gptq {

struct GpuQuantStats {
    double t_upload = 0;    // host weights -> device (fp16 forward copies, fp32 solve copies)
    double t_forward = 0;   // embeddings, norms, projections, attention
    double t_hessian = 0;   // Σ x xᵀ
    double t_solve = 0;     // factorization + column sweep
    double t_pack = 0;      // packing, dequantizing, copies back
    double t_write = 0;     // time the pipeline waited on the writer (the rest overlaps)
    double t_total = 0;
    size_t peak_bytes = 0;  // the pipeline's own device allocations at their peak
    size_t peak_device_used = 0;  // total - free device memory at its sampled peak (cuBLAS etc. included)
    double total_error = 0;
    int n_fp16_layers = 0;
};

struct GpuQuantOptions {
    // The precise mode: the calibration forward in fp32 throughout (SGEMM, no TF32), as the CPU
    // pipeline computes it. The fast mode (false) feeds fp16 to tensor cores, as the CUDA backend.
    bool forward_fp32 = false;
    bool hessian_fp32 = false;  // fast mode: fp32 SGEMM Hessians of the fp16 inputs (instead of tensor cores)
    int chunk_rows = 8192;      // calibration rows per forward chunk (whole windows; at least one)
    int device = 0;
};

// Why this configuration cannot run on the GPU quantizer ("" when it can).
std::string cuda_quantize_unsupported_reason(const PipelineOptions &o);

// Quantizes m (weights in host memory, e.g. memory-mapped) into `out` on the GPU: every tensor the
// CPU pipeline writes, in the same order. Does not call out.finish(). Throws Error.
void quantize_model_cuda(Model &m, const CalibrationSet &calib, const PipelineOptions &o, CheckpointWriter &out,
                         const GpuQuantOptions &g, GpuQuantStats *stats);

// One layer on the GPU, for tests: the same contract as gptq_quantize_layer() (solver.h).
GptqResult gptq_quantize_layer_cuda(const float *W, int N, int K, const float *H, const GptqOptions &opt,
                                    const char *name);

// The GPU packing kernel on its own, for tests: codes [K, N] (original input order, k-major) held
// in the solver's permuted layout (position j = input perm[j]), packed into qweight [K*bits/32, N].
void pack_qweight_cuda(const uint8_t *codes, const int32_t *perm, int K, int N, int bits, int32_t *qweight);

} // namespace gptq
