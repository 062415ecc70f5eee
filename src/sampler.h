// sampler.h — turning logits into the next token: repetition penalty, temperature, top-k, top-p,
// min-p, seeded random choice. Greedy when temperature <= 0 (ties go to the lowest id).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace gptq {

struct SamplerParams {
    float temperature = 0.8f;
    int top_k = 40;            // 0 = off
    float top_p = 0.95f;       // 1 = off
    float min_p = 0.05f;       // 0 = off
    float repeat_penalty = 1.1f;  // 1 = off (as llama.cpp / HF: logit>0 divided, <0 multiplied)
    int repeat_last_n = 64;    // 0 = off, < 0 = the whole history
    uint64_t seed = 0x5eed;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams &p);
    // history: the ids so far (prompt and generated), for the repetition penalty.
    // logits is not modified. NaN logits count as -inf; when no logit is usable the call throws
    // Error(GPTQ_ERR_NUMERIC). The constructor throws INVALID_ARG for NaN parameters, a
    // repeat_penalty <= 0 or a negative top_k.
    int sample(const float *logits, int n_vocab, const std::vector<int> &history);

private:
    SamplerParams p_;
    uint64_t state_;
    double next_uniform();     // [0, 1), xoshiro/splitmix-based, reproducible across platforms
    // Scratch kept between calls: the bits of the logits as ranked (NaN, +inf and the penalty
    // applied), the (value, id) candidates, their unnormalised probabilities, the candidates' sort.
    std::vector<uint32_t> bits_;
    std::vector<std::pair<float, int>> cand_, sort_tmp_;
    std::vector<double> weights_;
    std::vector<uint32_t> keys_, keys_tmp_;
};

// Index of the largest value, the first of equal maxima; NaN is never chosen (0 when all are
// NaN), -1 when n <= 0.
int argmax(const float *x, int n);

} // namespace gptq
