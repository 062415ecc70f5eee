// sampler.cpp — logits to the next token id.
//
// Order of operations (as llama.cpp's default chain, minus what we do not offer):
//   repetition penalty -> greedy (temperature <= 0) or: temperature, top-k, softmax, top-p, min-p,
//   renormalise, draw.
// Candidates are ordered by (logit descending, id ascending) so that ties never depend on the
// standard library's sort, and the draw uses splitmix64, whose sequence is the same everywhere.
#include "sampler.h"
#include "common.h"
#include "float_rank.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

static inline float f32(uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}
static inline uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

// Sorts candidates (ranked values: no -0) listed in ascending id order into `before` order. Many
// of them: a stable LSD radix sort on the values' order (4 passes of 8 bits; equal values keep
// their id order), ~6x faster than std::sort on 32000 and on 128256 normally distributed values
// (dev box, the same order out); few: std::sort.
static void sort_candidates(std::vector<std::pair<float, int>> &c, std::vector<std::pair<float, int>> &tmp,
                            std::vector<uint32_t> &keys, std::vector<uint32_t> &tmp_keys) {
    const size_t n = c.size();
    if (n < 1024) {
        std::sort(c.begin(), c.end(), before);
        return;
    }
    keys.resize(n);
    tmp_keys.resize(n);
    tmp.resize(n);
    for (size_t i = 0; i < n; ++i) keys[i] = descending_key(bits_of(c[i].first));
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {};
        for (size_t i = 0; i < n; ++i) ++count[((keys[i] >> shift) & 0xFF) + 1];
        for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
        for (size_t i = 0; i < n; ++i) {
            const size_t to = count[(keys[i] >> shift) & 0xFF]++;
            tmp[to] = c[i];
            tmp_keys[to] = keys[i];
        }
        c.swap(tmp);
        keys.swap(tmp_keys);
    }
}

// The repetition penalty of one (ranked) logit: positive values divided, others multiplied; + 0:
// an underflow to -0 ties with +0.
static inline float penalise(float v, float penalty) {
    const float penalised = v > 0.0f ? v / penalty : v * penalty;
    return penalised + 0.0f;
}

// Whether a usable value v weighs anything next to the best: exp((v - best) / T) >= 2^-53 would
// change no sum that starts at the best's weight 1 (exp(-40) < 2^-53).
static inline bool weighs(float v, float best_v, float temperature) {
    return v != kNegInf && (double(v) - double(best_v)) / double(temperature) >= -40.0;
}

int Sampler::candidates_needed() const { return greedy() ? 1 : p_.top_k; }

void Sampler::penalised_ids(const std::vector<int> &history, int n_vocab, std::vector<int32_t> &out) const {
    out.clear();
    if (p_.repeat_penalty == 1.0f || p_.repeat_last_n == 0 || history.empty()) return;
    const size_t h = p_.repeat_last_n < 0 ? history.size() : std::min(history.size(), size_t(p_.repeat_last_n));
    out.assign(history.end() - std::ptrdiff_t(h), history.end());
    out.erase(std::remove_if(out.begin(), out.end(), [&](int32_t id) { return id < 0 || id >= n_vocab; }), out.end());
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
}

void PenalisedRows::add(const Sampler &s, const std::vector<int> &history, int n_vocab) {
    s.penalised_ids(history, n_vocab, row_);
    ids_.insert(ids_.end(), row_.begin(), row_.end());
    offsets_.push_back(int32_t(ids_.size()));
}

int Sampler::sample_top(const float *values, const int32_t *ids, int n_listed, int usable, int n_vocab) {
    if (!values || !ids || n_listed < 1 || usable < 0 || usable > n_vocab)
        fail(GPTQ_ERR_INVALID_ARG, "sampler: bad candidate list (%d listed, %d usable of %d)", n_listed, usable, n_vocab);
    if (usable == 0)
        fail(GPTQ_ERR_NUMERIC, "sampler: all %d logits are NaN or -inf (the model produced no usable scores)",
             n_vocab);
    if (greedy()) return ids[0];
    // The candidates sample() would sort: the top k when fewer than the usable, else every usable
    // one that weighs anything (all of them are listed then, best first).
    const bool top_k = p_.top_k > 0 && p_.top_k < usable;
    const int need = top_k ? p_.top_k : usable;
    if (n_listed < need)
        fail(GPTQ_ERR_INVALID_ARG, "sampler: %d candidates listed, %d needed (top_k %d, %d usable)", n_listed, need,
             p_.top_k, usable);
    cand_.clear();
    for (int i = 0; i < need; ++i)
        if (top_k || weighs(values[i], values[0], p_.temperature)) cand_.emplace_back(values[i], ids[i]);
    return draw();
}

int top_candidates(const float *logits, int n_vocab, const int32_t *penalised, int n_penalised, float penalty,
                   int k, float *values, int32_t *ids) {
    if (!logits || n_vocab <= 0 || k < 0 || n_penalised < 0 || (n_penalised > 0 && !penalised))
        fail(GPTQ_ERR_INVALID_ARG, "top_candidates: bad arguments (n_vocab %d, k %d)", n_vocab, k);
    std::vector<std::pair<float, int>> c(static_cast<size_t>(n_vocab));
    for (int i = 0; i < n_vocab; ++i) c[size_t(i)] = {f32(rank_bits(bits_of(logits[i]))), i};
    for (int j = 0; j < n_penalised; ++j) {
        const int32_t id = penalised[j];
        if (id < 0 || id >= n_vocab) fail(GPTQ_ERR_INVALID_ARG, "top_candidates: penalised id %d out of range", id);
        c[size_t(id)].first = penalise(c[size_t(id)].first, penalty);
    }
    int usable = 0;
    for (const auto &x : c) usable += x.first != kNegInf;
    const size_t head = std::min(size_t(k), c.size());
    std::partial_sort(c.begin(), c.begin() + std::ptrdiff_t(head), c.end(), before);
    for (int i = 0; i < k; ++i) {
        values[i] = size_t(i) < head ? c[size_t(i)].first : kNegInf;
        ids[i] = size_t(i) < head ? c[size_t(i)].second : -1;
    }
    return usable;
}

int Sampler::sample(const float *logits, int n_vocab, const std::vector<int> &history) {
    if (!logits || n_vocab <= 0)
        fail(GPTQ_ERR_INVALID_ARG, "sampler: no logits (n_vocab = %d)", n_vocab);
    const size_t n = size_t(n_vocab);
    bits_.resize(n);
    uint32_t *bits = bits_.data();  // the ranked values' bits
    for (size_t i = 0; i < n; ++i) bits[i] = rank_bits(bits_of(logits[i]));

    // Repetition penalty: each distinct id of the recent history once.
    penalised_ids(history, n_vocab, recent_);
    for (int32_t id : recent_) bits[size_t(id)] = bits_of(penalise(f32(bits[size_t(id)]), p_.repeat_penalty));

    // Greedy: the highest value, the lowest id among equals: the maximum (integer order,
    // vectorised), then the first id that holds it, 64 ids at a time.
    int32_t max_key = std::numeric_limits<int32_t>::min();
    uint32_t usable = 0;  // 32-bit: 4 lanes per vector (n_vocab is an int)
    for (size_t i = 0; i < n; ++i) {
        max_key = std::max(max_key, float_order(bits[i]));
        usable += bits[i] != kNegInfBits;
    }
    size_t best = n;
    for (size_t b = 0; best == n; b += 64) {
        const size_t e = std::min(n, b + 64);
        uint32_t hit = 0;
        for (size_t i = b; i < e; ++i) hit |= uint32_t(float_order(bits[i]) == max_key);
        if (hit)
            for (size_t i = b; i < e; ++i)
                if (float_order(bits[i]) == max_key) {
                    best = i;
                    break;
                }
    }
    const float best_v = f32(bits[best]);
    if (best_v == kNegInf)
        fail(GPTQ_ERR_NUMERIC, "sampler: all %d logits are NaN or -inf (the model produced no usable scores)",
             n_vocab);
    if (greedy()) return int(best);

    // The candidates, sorted: the top k (one pass keeping the k best so far in a heap whose front
    // is the worst of them), or every usable id but those whose weight below would be under 2^-53
    // (exp(-40) < 2^-53): added, in descending order, to a sum that is at least 1 (the best's
    // weight), they leave it unchanged, so the sums, the top-p and min-p cuts and the draw are
    // those of all candidates (save a uniform number that rounds to the total itself).
    cand_.clear();
    if (p_.top_k > 0 && size_t(p_.top_k) < usable) {
        const size_t k = size_t(p_.top_k);
        for (size_t b = 0; b < n; b += 64) {
            const size_t e = std::min(n, b + 64);
            if (cand_.size() == k) {  // most blocks hold nothing that reaches the worst kept: one test
                const int32_t worst = float_order(bits_of(cand_.front().first));
                uint32_t hit = 0;
                for (size_t i = b; i < e; ++i) hit |= uint32_t(float_order(bits[i]) >= worst);
                if (!hit) continue;
            }
            for (size_t i = b; i < e; ++i) {
                const std::pair<float, int> c(f32(bits[i]), int(i));
                if (c.first == kNegInf) continue;
                if (cand_.size() < k) {
                    cand_.push_back(c);
                    std::push_heap(cand_.begin(), cand_.end(), before);
                } else if (before(c, cand_.front())) {
                    std::pop_heap(cand_.begin(), cand_.end(), before);
                    cand_.back() = c;
                    std::push_heap(cand_.begin(), cand_.end(), before);
                }
            }
        }
        std::sort(cand_.begin(), cand_.end(), before);
    } else {
        // A float compare first (the threshold less a margin for rounding), then the exact test.
        const double floor_v = double(best_v) - 40.0 * double(p_.temperature);
        const float prefilter = floor_v > -3.0e38 ? float(floor_v - 1e-6 * (std::fabs(floor_v) + 1.0)) : kNegInf;
        for (size_t i = 0; i < n; ++i) {
            const float v = f32(bits[i]);
            // emplace_back: GCC 12 built push_back({v, i})'s pair on the stack and read it back
            // as one 8-byte word after two 4-byte stores (a failed store forward: this loop
            // took 1.4x as long, bench-sampler top-p alone).
            if (v >= prefilter && weighs(v, best_v, p_.temperature)) cand_.emplace_back(v, int(i));
        }
        sort_candidates(cand_, sort_tmp_, keys_, keys_tmp_);
    }
    return draw();
}

int Sampler::draw() {
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
