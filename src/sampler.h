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

// Every filter and the penalty off: plain softmax(logits / T) sampling.
inline SamplerParams unfiltered_sampling(float temperature) {
    SamplerParams p;
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    return p;
}

class Sampler {
public:
    explicit Sampler(const SamplerParams &p);
    // history: the ids so far (prompt and generated), for the repetition penalty.
    // logits is not modified. NaN logits count as -inf; when no logit is usable the call throws
    // Error(GPTQ_ERR_NUMERIC). The constructor throws INVALID_ARG for NaN parameters, a
    // repeat_penalty <= 0 or a negative top_k.
    int sample(const float *logits, int n_vocab, const std::vector<int> &history);

    // Sampling from a row's best candidates instead of its logits, for a backend that ranks them
    // where the logits are (the CUDA backend: on the device, so that k pairs cross to the host
    // instead of the vocabulary). The same draws as sample():
    //   candidates_needed(): how many the next draw needs: 1 when greedy, top_k when top_k > 0,
    //     0 when it needs every logit (top_k off);
    //   penalised_ids(): the distinct ids of the recent history inside [0, n_vocab), ascending:
    //     the ids whose logits the repetition penalty changes (none when it is off);
    //   sample_top(): draws from values / ids, the row's top n_listed >= candidates_needed()
    //     after ranking and penalty, as top_candidates() lists them, and its usable count.
    int candidates_needed() const;
    void penalised_ids(const std::vector<int> &history, int n_vocab, std::vector<int32_t> &out) const;
    int sample_top(const float *values, const int32_t *ids, int n_listed, int usable, int n_vocab);
    float repeat_penalty() const { return p_.repeat_penalty; }

private:
    SamplerParams p_;
    uint64_t state_;
    double next_uniform();     // [0, 1), xoshiro/splitmix-based, reproducible across platforms
    bool greedy() const { return p_.temperature <= 0.0f || p_.top_k == 1; }
    int draw();                // from cand_ (sorted): softmax at T, top-p, min-p, the draw
    // Scratch kept between calls: the bits of the logits as ranked (NaN, +inf and the penalty
    // applied), the (value, id) candidates, their unnormalised probabilities, the candidates' sort.
    std::vector<uint32_t> bits_;
    std::vector<std::pair<float, int>> cand_, sort_tmp_;
    std::vector<double> weights_;
    std::vector<uint32_t> keys_, keys_tmp_;
    std::vector<int32_t> recent_;
};

// The penalised ids of several rows, one row after another, as a backend's CandidateQuery takes
// them: row r's ids are ids()[offsets()[r] .. offsets()[r + 1]).
class PenalisedRows {
public:
    void clear() {
        ids_.clear();
        offsets_.assign(1, 0);
    }
    // Appends the next row: the ids s.penalised_ids gives for this history.
    void add(const Sampler &s, const std::vector<int> &history, int n_vocab);
    const int32_t *ids() const { return ids_.data(); }
    const int32_t *offsets() const { return offsets_.data(); }
    int rows() const { return int(offsets_.size()) - 1; }

private:
    std::vector<int32_t> ids_, offsets_ = {0}, row_;
};

// The top k candidates of one row of logits as the sampler ranks them: NaN as -inf, +inf as the
// largest float, the repetition penalty applied to the ids `penalised` (distinct, inside
// [0, n_vocab)), then (value descending, id ascending). Writes k values and ids (past the
// vocabulary: -inf and id -1) and returns how many values are not -inf (usable). The host's
// reference for backends that compute candidates elsewhere (the CUDA kernel is checked against it).
int top_candidates(const float *logits, int n_vocab, const int32_t *penalised, int n_penalised, float penalty,
                   int k, float *values, int32_t *ids);

// Index of the largest value, the first of equal maxima; NaN is never chosen (0 when all are
// NaN), -1 when n <= 0.
int argmax(const float *x, int n);

} // namespace gptq
