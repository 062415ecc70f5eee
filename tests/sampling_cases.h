// sampling_cases.h — the sampler settings the generation tests run through (greedy, the default
// chain, hot and cold, every filter, penalties that lower and raise, top-k off), as options.
#pragma once

#include "generate.h"

#include <vector>

namespace testutil {

struct SamplingCase {
    float temperature;
    int top_k;
    float top_p, min_p, penalty;
    int last_n;
};

inline const std::vector<SamplingCase> &sampling_cases() {
    static const std::vector<SamplingCase> cases = {
        {0.0f, 40, 1.0f, 0.0f, 1.0f, 64},    // greedy, no penalty: the first case
        {0.8f, 40, 0.95f, 0.05f, 1.1f, 64},  // the default chain
        {1.5f, 64, 1.0f, 0.0f, 0.8f, -1},    // hot, a penalty that raises, the whole history
        {1.0f, 1, 1.0f, 0.0f, 1.3f, 16},     // top-k 1: greedy after the penalty
        {2.0f, 20, 0.9f, 0.0f, 1.0f, 0},
        {1.0f, 0, 0.9f, 0.0f, 1.1f, 64},     // top-k off: every logit needed
        {0.0f, 40, 1.0f, 0.0f, 5.0f, -1},    // greedy, every id seen penalised hard
    };
    return cases;
}

inline gptq::GenerateOptions options_for(const SamplingCase &c, uint64_t seed, int max_tokens) {
    gptq::GenerateOptions opt;
    opt.sampler.temperature = c.temperature;
    opt.sampler.top_k = c.top_k;
    opt.sampler.top_p = c.top_p;
    opt.sampler.min_p = c.min_p;
    opt.sampler.repeat_penalty = c.penalty;
    opt.sampler.repeat_last_n = c.last_n;
    opt.sampler.seed = seed;
    opt.max_tokens = max_tokens;
    return opt;
}

} // namespace testutil
