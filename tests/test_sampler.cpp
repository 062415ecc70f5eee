// Sampler: greedy, reproducibility, the distribution it draws from, and each filter's effect.
#include <doctest/doctest.h>

#include "common.h"
#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <vector>

using gptq::Sampler;
using gptq::SamplerParams;

namespace {

// Every filter off: plain softmax(logits / T) sampling.
SamplerParams plain(float temperature, uint64_t seed = 1) {
    SamplerParams p = gptq::unfiltered_sampling(temperature);
    p.seed = seed;
    return p;
}

std::vector<double> softmax(const std::vector<float> &logits, double t) {
    double mx = -1e300, sum = 0;
    for (float v : logits) mx = std::max(mx, double(v));
    std::vector<double> p(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp((logits[i] - mx) / t);
    for (double &x : p) x /= sum;
    return p;
}

std::vector<int> draw(Sampler &s, const std::vector<float> &logits, int n, const std::vector<int> &hist = {}) {
    std::vector<int> out;
    for (int i = 0; i < n; ++i) out.push_back(s.sample(logits.data(), int(logits.size()), hist));
    return out;
}

std::vector<int> counts(const std::vector<int> &ids, size_t n_vocab) {
    std::vector<int> c(n_vocab, 0);
    for (int id : ids) {
        REQUIRE(id >= 0);
        REQUIRE(size_t(id) < n_vocab);
        c[size_t(id)]++;
    }
    return c;
}

const std::vector<float> kLogits = {1.0f, 2.5f, -0.5f, 2.0f, 0.0f, 1.5f, -3.0f, 0.7f};

// The sampler as first written, kept as the reference the faster one must agree with draw for
// draw: every candidate built and sorted (partially for top-k), every weight summed in order.
class ReferenceSampler {
public:
    explicit ReferenceSampler(const SamplerParams &p) : p_(p), state_(p.seed) {}
    int sample(const float *logits, int n_vocab, const std::vector<int> &history) {
        const float ninf = -std::numeric_limits<float>::infinity();
        std::vector<std::pair<float, int>> cand(static_cast<size_t>(n_vocab));
        for (int i = 0; i < n_vocab; ++i) {
            float v = logits[i];
            if (std::isnan(v)) v = ninf;
            else if (v == std::numeric_limits<float>::infinity()) v = std::numeric_limits<float>::max();
            cand[size_t(i)] = {v, i};
        }
        if (p_.repeat_penalty != 1.0f && p_.repeat_last_n != 0 && !history.empty()) {
            const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min(history.size(), size_t(p_.repeat_last_n));
            std::vector<int> recent(history.end() - std::ptrdiff_t(n), history.end());
            std::sort(recent.begin(), recent.end());
            recent.erase(std::unique(recent.begin(), recent.end()), recent.end());
            for (int id : recent) {
                if (id < 0 || id >= n_vocab) continue;
                float &v = cand[size_t(id)].first;
                v = v > 0.0f ? v / p_.repeat_penalty : v * p_.repeat_penalty;
            }
        }
        auto before = [](const std::pair<float, int> &a, const std::pair<float, int> &b) {
            return a.first > b.first || (a.first == b.first && a.second < b.second);
        };
        size_t best = 0;
        for (size_t i = 1; i < cand.size(); ++i)
            if (before(cand[i], cand[best])) best = i;
        if (p_.temperature <= 0.0f || p_.top_k == 1) return cand[best].second;
        auto unusable = [&](const std::pair<float, int> &c) { return c.first == ninf; };
        cand.erase(std::remove_if(cand.begin(), cand.end(), unusable), cand.end());
        if (p_.top_k > 0 && size_t(p_.top_k) < cand.size()) {
            std::partial_sort(cand.begin(), cand.begin() + p_.top_k, cand.end(), before);
            cand.resize(size_t(p_.top_k));
        } else {
            std::sort(cand.begin(), cand.end(), before);
        }
        const double top = cand[0].first;
        std::vector<double> w(cand.size());
        double sum = 0.0;
        for (size_t i = 0; i < cand.size(); ++i)
            sum += w[i] = std::exp((double(cand[i].first) - top) / double(p_.temperature));
        size_t keep = cand.size();
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
        if (p_.min_p > 0.0f) {
            size_t i = 1;
            while (i < keep && w[i] >= double(p_.min_p)) ++i;
            keep = i;
        }
        double total = 0.0;
        for (size_t i = 0; i < keep; ++i) total += w[i];
        state_ += 0x9e3779b97f4a7c15ull;  // splitmix64, as Sampler
        uint64_t z = state_;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        const double u = double(z >> 11) * (1.0 / 9007199254740992.0) * total;
        double cum = 0.0;
        for (size_t i = 0; i < keep; ++i) {
            cum += w[i];
            if (u < cum) return cand[i].second;
        }
        return cand[keep - 1].second;
    }

private:
    SamplerParams p_;
    uint64_t state_;
};

// One random sampling case: logits normal or on a coarse grid (many ties), variants >= 2 with
// NaN, infinities and -0; a history with ids out of range; parameters drawn from `ks` (top-k) and
// the lists below.
struct RandomCase {
    std::vector<float> logits;
    std::vector<int> hist;
    SamplerParams p;
};

RandomCase random_case(std::mt19937 &rng, int V, float spread, int variant, const std::vector<int> &ks,
                       const std::vector<float> &temps) {
    const float top_ps[] = {1.0f, 0.9f, 0.5f};
    const float min_ps[] = {0.0f, 0.05f, 1e-30f};
    RandomCase c;
    std::normal_distribution<float> nd(0.0f, spread);
    c.logits.resize(static_cast<size_t>(V));
    for (float &x : c.logits) x = variant % 2 ? std::round(nd(rng) * 2.0f) / 2.0f : nd(rng);
    if (variant >= 2 && V > 4) {
        std::uniform_int_distribution<int> pick(0, V - 1);
        c.logits[size_t(pick(rng))] = std::numeric_limits<float>::quiet_NaN();
        c.logits[size_t(pick(rng))] = -std::numeric_limits<float>::infinity();
        c.logits[size_t(pick(rng))] = -0.0f;
        if (variant == 5) c.logits[size_t(pick(rng))] = std::numeric_limits<float>::infinity();
    }
    c.hist.resize(64);
    for (int &h : c.hist) h = int(rng() % uint32_t(V + 3)) - 1;  // some out of range
    c.p.temperature = temps[rng() % temps.size()];
    c.p.top_k = ks[rng() % ks.size()];
    c.p.top_p = top_ps[rng() % 3];
    c.p.min_p = min_ps[rng() % 3];
    c.p.repeat_penalty = rng() % 2 ? 1.0f : 1.3f;
    const int lasts[] = {0, 16, -1};
    c.p.repeat_last_n = lasts[rng() % 3];
    c.p.seed = rng();
    return c;
}

const int kVocabs[] = {1, 2, 7, 100, 1500, 5000, 40000};
const float kSpreads[] = {0.3f, 3.0f, 25.0f};

} // namespace

TEST_CASE("the sampler draws what sorting every candidate draws (the reference), draw for draw") {
    std::mt19937 rng(77);
    int configs = 0, draws = 0, distinct = 0;
    for (int V : kVocabs)
        for (float spread : kSpreads)
            for (int variant = 0; variant < 6; ++variant) {
                const RandomCase c = random_case(rng, V, spread, variant, {0, 1, 5, 40, V, V + 3},
                                                 {0.05f, 0.7f, 1.0f, 1.5f, 100.0f});
                CAPTURE(V);
                CAPTURE(spread);
                CAPTURE(variant);
                CAPTURE(c.p.temperature);
                CAPTURE(c.p.top_k);
                CAPTURE(c.p.top_p);
                CAPTURE(c.p.min_p);
                Sampler fast(c.p);
                ReferenceSampler ref(c.p);
                std::set<int> seen;
                for (int i = 0; i < 40; ++i) {
                    const int a = fast.sample(c.logits.data(), V, c.hist), b = ref.sample(c.logits.data(), V, c.hist);
                    REQUIRE(a == b);
                    seen.insert(a);
                    ++draws;
                }
                distinct += int(seen.size());
                ++configs;
            }
    CHECK(configs == 126);
    CHECK(draws == 126 * 40);
    CHECK(distinct > 2 * configs);  // the draws do vary: not a comparison of two constant answers
}

TEST_CASE("sampling from top_candidates' list draws what sampling the logits draws, draw for draw") {
    // The path of a backend that ranks candidates where the logits are: the host then sees only
    // the top candidates_needed() (or, with top-k off, a list as long as the vocabulary).
    std::mt19937 rng(78);
    int configs = 0, listed_short = 0, distinct = 0;
    for (int V : kVocabs)
        for (float spread : kSpreads)
            for (int variant = 0; variant < 6; ++variant) {
                const RandomCase c =
                    random_case(rng, V, spread, variant, {0, 1, 2, 40, 64, V, V + 3}, {0.0f, 0.05f, 0.7f, 1.0f, 100.0f});
                CAPTURE(V);
                CAPTURE(variant);
                CAPTURE(c.p.temperature);
                CAPTURE(c.p.top_k);
                Sampler whole(c.p), top(c.p);
                const int need = top.candidates_needed();
                CHECK(need == (c.p.temperature <= 0.0f ? 1 : c.p.top_k));
                const int k = need > 0 ? need : V;  // top-k off: every logit listed
                listed_short += k < V;
                std::vector<int32_t> pen;
                top.penalised_ids(c.hist, V, pen);
                CHECK(std::is_sorted(pen.begin(), pen.end()));
                CHECK(std::adjacent_find(pen.begin(), pen.end()) == pen.end());
                std::vector<float> values(size_t(k) + 3);
                std::vector<int32_t> ids(size_t(k) + 3);
                const int usable = gptq::top_candidates(c.logits.data(), V, pen.data(), int(pen.size()),
                                                        top.repeat_penalty(), k + 3, values.data(), ids.data());
                std::set<int> seen;
                for (int i = 0; i < 20; ++i) {
                    const int a = whole.sample(c.logits.data(), V, c.hist);
                    const int b = top.sample_top(values.data(), ids.data(), k, usable, V);
                    REQUIRE(a == b);
                    seen.insert(a);
                }
                distinct += int(seen.size());
                ++configs;
            }
    CHECK(configs == 126);
    CHECK(listed_short > 40);       // many cases see fewer candidates than the vocabulary (56)
    CHECK(distinct > 3 * configs / 2);  // and the draws vary
}

TEST_CASE("top_candidates ranks as the sampler does: NaN last, +inf first, the penalty applied, ties by id") {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const std::vector<float> logits = {1.0f, nan, 2.0f, inf, -inf, 2.0f, -0.0f, 0.0f, -2.0f};
    const int32_t pen[] = {2, 8};  // 2.0 / 2 = 1.0 (ties with id 0, after it), -2 * 2 = -4
    float v[12];
    int32_t id[12];
    const int usable = gptq::top_candidates(logits.data(), 9, pen, 2, 2.0f, 12, v, id);
    CHECK(usable == 7);  // NaN and -inf are not usable
    const int32_t want_ids[12] = {3, 5, 0, 2, 6, 7, 8, 1, 4, -1, -1, -1};
    const float want_v[12] = {std::numeric_limits<float>::max(), 2.0f, 1.0f, 1.0f, 0.0f, 0.0f, -4.0f,
                              -inf, -inf, -inf, -inf, -inf};
    for (int i = 0; i < 12; ++i) {
        CAPTURE(i);
        CHECK(id[i] == want_ids[i]);
        CHECK(v[i] == want_v[i]);
    }
    CHECK_FALSE(std::signbit(v[4]));  // -0 ranks as +0
    // A list shorter than the draw needs, or a wrong usable count, is refused, not misread.
    SamplerParams p;
    p.top_k = 5;
    Sampler s(p);
    CHECK_THROWS_AS(s.sample_top(v, id, 4, usable, 9), gptq::Error);
    CHECK_THROWS_AS(s.sample_top(v, id, 5, 10, 9), gptq::Error);
    CHECK_THROWS_AS(s.sample_top(v, id, 5, 0, 9), gptq::Error);
}

TEST_CASE("PenalisedRows lays out each row's penalised ids one after another, as CandidateQuery reads them") {
    SamplerParams on = plain(1.0f), off = plain(1.0f);
    on.repeat_penalty = 1.3f;
    on.repeat_last_n = 4;
    const Sampler pen(on), none(off);
    const std::vector<int> h1 = {9, 2, 7, 2, 5, 9}, h2 = {3, 3, 3, 40, 1};  // vocabulary 32: 40 is outside
    gptq::PenalisedRows rows;
    rows.add(pen, h1, 32);   // the last 4: 7, 2, 5, 9
    rows.add(none, h1, 32);  // penalty off: nothing
    rows.add(pen, h2, 32);   // the last 4: 3, 3, 40, 1 -> 1, 3
    REQUIRE(rows.rows() == 3);
    const std::vector<int32_t> offsets(rows.offsets(), rows.offsets() + 4), ids(rows.ids(), rows.ids() + 6);
    CHECK(offsets == std::vector<int32_t>{0, 4, 4, 6});
    CHECK(ids == std::vector<int32_t>{2, 5, 7, 9, 1, 3});
    rows.clear();
    CHECK(rows.rows() == 0);
    CHECK(rows.offsets()[0] == 0);
    rows.add(pen, h2, 32);
    CHECK(rows.rows() == 1);
    CHECK(rows.offsets()[1] == 2);
    CHECK(rows.ids()[0] == 1);
}

TEST_CASE("argmax: first of equal maxima, NaN never wins") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> a = {1, 3, 2, 3};
    CHECK(gptq::argmax(a.data(), 4) == 1);
    std::vector<float> b = {nan, -1, nan, 5, nan};
    CHECK(gptq::argmax(b.data(), 5) == 3);
    CHECK(gptq::argmax(b.data(), 0) == -1);
}

TEST_CASE("greedy picks the argmax, ties to the lowest id") {
    Sampler s(plain(0.0f));
    CHECK(s.sample(kLogits.data(), int(kLogits.size()), {}) == 1);
    std::vector<float> tie = {0.5f, 4.0f, 1.0f, 4.0f, 4.0f};
    for (int i = 0; i < 10; ++i) CHECK(s.sample(tie.data(), 5, {}) == 1);
    SamplerParams neg = plain(-1.0f);  // any temperature <= 0 is greedy
    Sampler s2(neg);
    CHECK(s2.sample(tie.data(), 5, {}) == 1);
}

TEST_CASE("top-k = 1 equals greedy at any temperature") {
    for (float t : {0.1f, 1.0f, 5.0f, 100.0f}) {
        SamplerParams p = plain(t, 77);
        p.top_k = 1;
        Sampler s(p);
        for (int id : draw(s, kLogits, 200)) CHECK(id == 1);
    }
}

TEST_CASE("same seed gives the same sequence, another seed another") {
    Sampler a(plain(1.0f, 42)), b(plain(1.0f, 42)), c(plain(1.0f, 43));
    const auto sa = draw(a, kLogits, 300), sb = draw(b, kLogits, 300), sc = draw(c, kLogits, 300);
    CHECK(sa == sb);
    CHECK(sa != sc);
    // Several distinct ids do come out (a sampler stuck on one id would pass the checks above).
    CHECK(std::set<int>(sa.begin(), sa.end()).size() >= 5);
}

TEST_CASE("the PRNG sequence is fixed (splitmix64), so runs reproduce across platforms") {
    // A uniform distribution over 1024 ids turns the draws into the generator's top 10 bits.
    std::vector<float> flat(1024, 0.0f);
    Sampler s(plain(1.0f, 0));
    // splitmix64 from state 0: first outputs 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f
    CHECK(s.sample(flat.data(), 1024, {}) == int(0xe220a8397b1dcdafull >> 54));
    CHECK(s.sample(flat.data(), 1024, {}) == int(0x6e789e6aa1b965f4ull >> 54));
    CHECK(s.sample(flat.data(), 1024, {}) == int(0x06c45d188009454full >> 54));
}

TEST_CASE("empirical frequencies match softmax(logits / T)") {
    for (float t : {0.7f, 1.0f, 1.6f}) {
        CAPTURE(t);
        Sampler s(plain(t, 1234));
        const int n = 100000;
        const auto c = counts(draw(s, kLogits, n), kLogits.size());
        const auto p = softmax(kLogits, t);
        // Pearson chi-square with 7 degrees of freedom: P(chi2 > 35) is about 1e-5.
        double chi2 = 0;
        for (size_t i = 0; i < p.size(); ++i) {
            const double e = p[i] * n;
            chi2 += (c[i] - e) * (c[i] - e) / e;
        }
        CHECK(chi2 < 35.0);
    }
}

TEST_CASE("top-k keeps only the k best") {
    SamplerParams p = plain(2.0f, 5);
    p.top_k = 3;  // ids 1 (2.5), 3 (2.0), 5 (1.5)
    Sampler s(p);
    const auto c = counts(draw(s, kLogits, 20000), kLogits.size());
    for (size_t i = 0; i < c.size(); ++i) {
        CAPTURE(i);
        if (i == 1 || i == 3 || i == 5) CHECK(c[i] > 0);
        else CHECK(c[i] == 0);
    }
    // Among the kept ones the proportions are the renormalised softmax.
    std::vector<float> kept = {2.5f, 2.0f, 1.5f};
    const auto q = softmax(kept, 2.0);
    CHECK(std::fabs(c[1] / 20000.0 - q[0]) < 0.02);
    CHECK(std::fabs(c[3] / 20000.0 - q[1]) < 0.02);
    CHECK(std::fabs(c[5] / 20000.0 - q[2]) < 0.02);
}

TEST_CASE("top-p keeps the smallest head reaching p") {
    // probabilities at T = 1: 0.5, 0.25, 0.125, 0.0625, 0.0625 (logits are log2-spaced)
    const float l2 = std::log(2.0f);
    std::vector<float> logits = {4 * l2, 3 * l2, 2 * l2, 1 * l2, 1 * l2};
    SUBCASE("p = 0.7 keeps {0, 1}") {
        SamplerParams p = plain(1.0f, 9);
        p.top_p = 0.7f;
        Sampler s(p);
        const auto c = counts(draw(s, logits, 20000), logits.size());
        CHECK(c[0] > 0);
        CHECK(c[1] > 0);
        CHECK(c[2] == 0);
        CHECK(c[3] == 0);
        CHECK(c[4] == 0);
        CHECK(std::fabs(c[0] / 20000.0 - 2.0 / 3.0) < 0.02);  // renormalised 0.5 / 0.75
    }
    SUBCASE("p = 0.8 keeps {0, 1, 2}") {
        SamplerParams p = plain(1.0f, 9);
        p.top_p = 0.8f;
        Sampler s(p);
        const auto c = counts(draw(s, logits, 20000), logits.size());
        CHECK(c[2] > 0);
        CHECK(c[3] == 0);
        CHECK(c[4] == 0);
    }
    SUBCASE("a tiny p keeps at least the best one") {
        SamplerParams p = plain(1.0f, 9);
        p.top_p = 0.0f;
        Sampler s(p);
        for (int id : draw(s, logits, 500)) CHECK(id == 0);
    }
}

TEST_CASE("min-p drops what is less likely than min_p times the best") {
    const float l2 = std::log(2.0f);
    std::vector<float> logits = {4 * l2, 3 * l2, 2 * l2, 1 * l2, 0.0f};  // p ∝ 16, 8, 4, 2, 1
    SamplerParams p = plain(1.0f, 11);
    p.min_p = 0.2f;  // keeps p >= 0.2 * p_max: 16, 8, 4 (4/16 = 0.25) but not 2 (0.125)
    Sampler s(p);
    const auto c = counts(draw(s, logits, 20000), logits.size());
    CHECK(c[0] > 0);
    CHECK(c[1] > 0);
    CHECK(c[2] > 0);
    CHECK(c[3] == 0);
    CHECK(c[4] == 0);
    CHECK(std::fabs(c[0] / 20000.0 - 16.0 / 28.0) < 0.02);
}

TEST_CASE("repetition penalty: positive logits divided, negative multiplied, each id once") {
    SUBCASE("a tie between positive logits goes to the one not seen recently") {
        std::vector<float> logits = {2.0f, 0.1f, 2.0f};  // greedy alone picks 0
        SamplerParams p = plain(0.0f);
        p.repeat_penalty = 1.5f;
        Sampler s(p);
        CHECK(s.sample(logits.data(), 3, {}) == 0);
        CHECK(s.sample(logits.data(), 3, {0}) == 2);
        CHECK(s.sample(logits.data(), 3, {2, 1}) == 0);
    }
    SUBCASE("a negative logit is pushed further down, not up") {
        std::vector<float> logits = {-1.0f, -1.2f};  // dividing -1 would make it -0.67 and keep it first
        SamplerParams p = plain(0.0f);
        p.repeat_penalty = 1.5f;
        Sampler s(p);
        CHECK(s.sample(logits.data(), 2, {0}) == 1);  // -1.5 < -1.2
    }
    SUBCASE("an id repeated in the window is penalised once") {
        std::vector<float> logits = {3.0f, 1.9f};
        SamplerParams p = plain(0.0f);
        p.repeat_penalty = 1.5f;  // once: 2.0 > 1.9; twice would be 1.33 < 1.9
        Sampler s(p);
        CHECK(s.sample(logits.data(), 2, {0, 0, 0}) == 0);
    }
    SUBCASE("only the last repeat_last_n ids count") {
        std::vector<float> logits = {2.0f, 0.1f, 2.0f};
        SamplerParams p = plain(0.0f);
        p.repeat_penalty = 1.5f;
        p.repeat_last_n = 2;
        Sampler s(p);
        CHECK(s.sample(logits.data(), 3, {0, 1, 1}) == 0);  // the 0 is outside the window
        CHECK(s.sample(logits.data(), 3, {1, 0}) == 2);
    }
    SUBCASE("history ids outside the vocabulary are ignored") {
        std::vector<float> logits = {1.0f, 2.0f};
        SamplerParams p = plain(0.0f);
        p.repeat_penalty = 1.5f;
        Sampler s(p);
        CHECK(s.sample(logits.data(), 2, {-5, 7, 1000000}) == 1);
    }
}

TEST_CASE("NaN logits are never sampled; all unusable logits are NUMERIC") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> logits = {nan, 1.0f, nan, 0.5f, nan};
    Sampler s(plain(1.5f, 3));
    const auto c = counts(draw(s, logits, 5000), logits.size());
    CHECK(c[0] == 0);
    CHECK(c[2] == 0);
    CHECK(c[4] == 0);
    CHECK(c[1] + c[3] == 5000);

    Sampler g(plain(0.0f));
    CHECK(g.sample(logits.data(), 5, {}) == 1);

    std::vector<float> bad = {nan, -inf, nan};
    for (float t : {0.0f, 1.0f}) {
        Sampler b(plain(t));
        try {
            b.sample(bad.data(), 3, {});
            FAIL("expected an error");
        } catch (const gptq::Error &e) {
            CHECK(e.status() == GPTQ_ERR_NUMERIC);
        }
    }
}

TEST_CASE("+inf logits win without producing NaN probabilities") {
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> logits = {0.0f, inf, 3.0f};
    Sampler s(plain(1.0f, 8));
    for (int id : draw(s, logits, 200)) CHECK(id == 1);
}

TEST_CASE("bad parameters and arguments are INVALID_ARG") {
    auto status_of = [](auto &&fn) {
        try {
            fn();
        } catch (const gptq::Error &e) {
            return int(e.status());
        }
        return int(GPTQ_OK);
    };
    SamplerParams p = plain(1.0f);
    p.temperature = std::numeric_limits<float>::quiet_NaN();
    CHECK(status_of([&] { Sampler s(p); }) == GPTQ_ERR_INVALID_ARG);
    p = plain(1.0f);
    p.repeat_penalty = 0.0f;
    CHECK(status_of([&] { Sampler s(p); }) == GPTQ_ERR_INVALID_ARG);
    p = plain(1.0f);
    p.top_k = -1;
    CHECK(status_of([&] { Sampler s(p); }) == GPTQ_ERR_INVALID_ARG);
    Sampler s(plain(1.0f));
    CHECK(status_of([&] { s.sample(nullptr, 4, {}); }) == GPTQ_ERR_INVALID_ARG);
    CHECK(status_of([&] { s.sample(kLogits.data(), 0, {}); }) == GPTQ_ERR_INVALID_ARG);
}

TEST_CASE("the default parameters sample sensibly from a large vocabulary") {
    // A peaked distribution over 32000 ids: defaults (T 0.8, top-k 40, top-p 0.95, min-p 0.05)
    // must only ever return ids from the head.
    std::vector<float> logits(32000);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = -0.001f * float(i);
    for (int i = 0; i < 5; ++i) logits[size_t(100 + i)] = 10.0f - float(i);
    Sampler s{SamplerParams{}};
    std::vector<int> hist;
    for (int i = 0; i < 300; ++i) {
        const int id = s.sample(logits.data(), int(logits.size()), hist);
        CHECK(id >= 100);
        CHECK(id < 105);
        hist.push_back(id);
    }
}
