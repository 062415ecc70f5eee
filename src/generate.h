// generate.h — text generation over a Context: prefill, sampling, streaming, stop conditions.
#pragma once

#include "context.h"
#include "sampler.h"

#include <string>
#include <vector>

namespace gptq {

struct GenerateOptions {
    SamplerParams sampler;
    int max_tokens = 256;
    int add_bos = -1;           // -1: as the model says
    bool stop_at_eos = true;
    std::vector<std::string> stop_strings;
    gptq_token_callback on_token = nullptr;
    void *user_data = nullptr;
};

struct GenerateResult {
    std::vector<std::string> texts;  // one per prompt, without the prompt
    std::vector<std::vector<int>> tokens;  // generated ids per prompt
    bool aborted = false;            // the callback asked to stop
};

// Sequence i of ctx serves prompt i (each is reset first). All prompts advance together, one
// batched eval per step.
GenerateResult generate(Context &ctx, const std::vector<std::string> &prompts, const GenerateOptions &opt);

} // namespace gptq
