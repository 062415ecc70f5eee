// attention_decode.cuh — the range kernel behind attention_split for the common head sizes
// (attention_decode.cu). Plain C++ header.
#pragma once

#include "attention.cuh"

namespace gptq {
namespace cuda {

// attention_split's job (same arguments, same results within fp32 rounding) when head_dim is 64
// or 128; returns false, having launched nothing, for other shapes or when GPTQ_CUDA_ATTN_CHUNKED=1
// asks for the 32-position chunk kernel. Each token's positions 0..pos are cut into at most
// min(n_chunks, 32) ranges, sized from pos itself (GPTQ_CUDA_ATTN_SPLITS=k forces k).
bool attention_decode(const __half *q, int ldq, const int32_t *pos, const int32_t *seq, int n, int Hq,
                      const KVLayer &kv, float scale, int n_chunks, float *scratch, __half *out, int ldo,
                      cudaStream_t stream, const AttnSplitFusion &fuse);

// Whether attention_decode runs for head_dim D (it is the only kernel that takes fuse.merge_used).
bool attention_decode_available(int D);

} // namespace cuda
} // namespace gptq
