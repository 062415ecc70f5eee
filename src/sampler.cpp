// sampler.cpp — logits to the next token id.
//
// Order of operations (as llama.cpp's default chain, minus what we do not offer):
//   repetition penalty -> greedy (temperature <= 0) or: temperature, top-k, softmax, top-p, min-p,
//   renormalise, draw.
// Candidates are ordered by (logit descending, id ascending) so that ties never depend on the
// standard library's sort, and the draw uses splitmix64, whose sequence is the same everywhere.
#include "sampler.h"
#include "common.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gptq {

static constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int argmax(const float *x, int n) {
    if (!x || n <= 0) return -1;
    int best = 0;
    float best_v = kNegInf;
    bool found = false;
    for (int i = 0; i < n; ++i) {
        const float v = x[i];
        if (std::isnan(v)) continue;
        if (!found || v > best_v) {  // strict: the first of equal maxima wins
            best = i;
            best_v = v;
            found = true;
        }
    }
    return best;  // 0 when every value is NaN
}

Sampler::Sampler(const SamplerParams &p) : p_(p), state_(p.seed) {
    if (std::isnan(p.temperature) || std::isnan(p.top_p) || std::isnan(p.min_p))
        fail(GPTQ_ERR_INVALID_ARG, "sampler: temperature, top_p and min_p must be numbers (got %g, %g, %g)",
             double(p.temperature), double(p.top_p), double(p.min_p));
    if (!(p.repeat_penalty > 0.0f) || std::isinf(p.repeat_penalty))
        fail(GPTQ_ERR_INVALID_ARG, "sampler: repeat_penalty must be a positive number (got %g; 1 = off)",
             double(p.repeat_penalty));
    if (p.top_k < 0) fail(GPTQ_ERR_INVALID_ARG, "sampler: top_k must be >= 0 (got %d; 0 = off)", p.top_k);
}

// splitmix64: a 64-bit state advanced by a constant, then mixed. Uniform double from its top 53 bits.
double Sampler::next_uniform() {
    state_ += 0x9e3779b97f4a7c15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return double(z >> 11) * (1.0 / 9007199254740992.0);  // 2^-53
}

// Higher logit first; equal logits: lower id first.
static bool before(const std::pair<float, int> &a, const std::pair<float, int> &b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
}

int Sampler::sample(const float *logits, int n_vocab, const std::vector<int> &history) {
    if (!logits || n_vocab <= 0)
        fail(GPTQ_ERR_INVALID_ARG, "sampler: no logits (n_vocab = %d)", n_vocab);

    // NaN counts as impossible; +inf as the largest float so differences stay finite.
    cand_.resize(size_t(n_vocab));
    for (int i = 0; i < n_vocab; ++i) {
        float v = logits[i];
        if (std::isnan(v)) v = kNegInf;
        else if (v == std::numeric_limits<float>::infinity()) v = std::numeric_limits<float>::max();
        cand_[size_t(i)] = {v, i};
    }

    // Repetition penalty: each distinct id of the recent history once.
    if (p_.repeat_penalty != 1.0f && p_.repeat_last_n != 0 && !history.empty()) {
        const size_t n = p_.repeat_last_n < 0 ? history.size()
                                              : std::min(history.size(), size_t(p_.repeat_last_n));
        std::vector<int> recent(history.end() - std::ptrdiff_t(n), history.end());
        std::sort(recent.begin(), recent.end());
        recent.erase(std::unique(recent.begin(), recent.end()), recent.end());
        for (int id : recent) {
            if (id < 0 || id >= n_vocab) continue;
            float &v = cand_[size_t(id)].first;
            v = v > 0.0f ? v / p_.repeat_penalty : v * p_.repeat_penalty;
        }
    }

    // Greedy: the highest logit, the lowest id among equals.
    size_t best = 0;
    for (size_t i = 1; i < cand_.size(); ++i)
        if (before(cand_[i], cand_[best])) best = i;
    if (cand_[best].first == kNegInf)
        fail(GPTQ_ERR_NUMERIC, "sampler: all %d logits are NaN or -inf (the model produced no usable scores)",
             n_vocab);
    if (p_.temperature <= 0.0f || p_.top_k == 1) return cand_[best].second;

    // Drop the impossible, then top-k, then sort what is left.
    cand_.erase(std::remove_if(cand_.begin(), cand_.end(),
                               [](const std::pair<float, int> &c) { return c.first == kNegInf; }),
                cand_.end());
    if (p_.top_k > 0 && size_t(p_.top_k) < cand_.size()) {
        std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), before);
        cand_.resize(size_t(p_.top_k));
    } else {
        std::sort(cand_.begin(), cand_.end(), before);
    }

    // Softmax at temperature T; weights relative to the best, so the first is exactly 1.
    const double top = cand_[0].first;
    std::vector<double> &w = weights_;
    w.resize(cand_.size());
    double sum = 0.0;
    for (size_t i = 0; i < cand_.size(); ++i) {
        w[i] = std::exp((double(cand_[i].first) - top) / double(p_.temperature));
        sum += w[i];
    }
    size_t keep = cand_.size();

    // Top-p: the smallest head whose probability reaches top_p (at least one candidate).
    if (p_.top_p < 1.0f) {
        const double target = double(p_.top_p) * sum;
        double cum = 0.0;
        size_t i = 0;
        while (i < keep) {
            cum += w[i++];
            if (cum >= target) break;
        }
        keep = std::max<size_t>(i, 1);
    }
    // Min-p: drop candidates less likely than min_p times the most likely (whose weight is 1).
    if (p_.min_p > 0.0f) {
        size_t i = 1;
        while (i < keep && w[i] >= double(p_.min_p)) ++i;
        keep = i;
    }

    // Draw from what is left, renormalised.
    double total = 0.0;
    for (size_t i = 0; i < keep; ++i) total += w[i];
    const double u = next_uniform() * total;
    double cum = 0.0;
    for (size_t i = 0; i < keep; ++i) {
        cum += w[i];
        if (u < cum) return cand_[i].second;
    }
    return cand_[keep - 1].second;  // rounding left u at the very top
}

} // namespace gptq
