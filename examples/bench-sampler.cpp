// bench-sampler.cpp — the host sampler's time per generated token (gptq_generate calls it once per
// token and sequence, after the logits come back from the backend).
//
//   bench-sampler [-n DRAWS]
//
// For each vocabulary size (Llama 1/2 32000, Llama 3 128256, Qwen2 151936) and sampler setting,
// the mean time of one Sampler::sample over DRAWS draws (default 300) with a 512-token history.
// The logits are synthetic but shaped like a language model's: a normal bulk (standard deviation
// 2.5) under a head of 50 ids spread 5-15 above it, in a fixed random order.
// Second column: the host's part when the backend ranks the candidates (the CUDA backend with
// GPTQ_CUDA_RANK=1): the history's penalised ids for the query, then Sampler::sample_top on the
// top k (listed once here by top_candidates, the device's work); "-" where the setting needs every
// logit (top-k off).
#include "sampler.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace gptq;

namespace {

std::vector<float> lm_like_logits(int vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> bulk(0.0f, 2.5f);
    std::uniform_real_distribution<float> head(5.0f, 15.0f);
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    std::vector<float> x(static_cast<size_t>(vocab));
    for (float &v : x) v = bulk(rng);
    for (int i = 0; i < 50; ++i) x[size_t(pick(rng))] = head(rng);
    return x;
}

struct Setting {
    const char *name;
    SamplerParams p;
};

std::vector<Setting> settings() {
    std::vector<Setting> s;
    s.push_back({"default: T 0.8, top-k 40, top-p 0.95, min-p 0.05, penalty 1.1", SamplerParams()});
    SamplerParams greedy;
    greedy.temperature = 0.0f;
    s.push_back({"greedy, penalty 1.1", greedy});
    SamplerParams nucleus;
    nucleus.top_k = 0;
    nucleus.min_p = 0.0f;
    nucleus.temperature = 1.0f;
    s.push_back({"top-p 0.95 alone (top-k 0), T 1", nucleus});
    s.push_back({"T 1, no filter", unfiltered_sampling(1.0f)});
    return s;
}

} // namespace

int main(int argc, char **argv) {
    int draws = 300;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "-n") && i + 1 < argc) {
            draws = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [-n DRAWS]\n", argv[0]);
            return 1;
        }
    }
    if (draws < 1) draws = 1;
    std::printf("| vocab | setting | µs / token | µs / token, candidates ranked by the backend |\n|---:|---|---:|---:|\n");
    for (int vocab : {32000, 128256, 151936}) {
        const std::vector<float> logits = lm_like_logits(vocab, 1);
        std::mt19937 rng(2);
        std::vector<int> history(512);
        for (int &h : history) h = int(rng() % uint32_t(vocab));
        for (const Setting &s : settings()) {
            Sampler sampler(s.p);
            long checksum = 0;
            for (int i = 0; i < 3; ++i) checksum += sampler.sample(logits.data(), vocab, history);  // warm-up
            const auto t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < draws; ++i) checksum += sampler.sample(logits.data(), vocab, history);
            const double us =
                std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / draws;
            char ranked[32] = "-";
            const int k = sampler.candidates_needed();
            if (k > 0) {
                Sampler top(s.p);
                std::vector<int32_t> pen, ids(static_cast<size_t>(k));
                std::vector<float> values(static_cast<size_t>(k));
                top.penalised_ids(history, vocab, pen);
                const int usable = top_candidates(logits.data(), vocab, pen.data(), int(pen.size()),
                                                  top.repeat_penalty(), k, values.data(), ids.data());
                const auto t1 = std::chrono::steady_clock::now();
                for (int i = 0; i < draws; ++i) {
                    top.penalised_ids(history, vocab, pen);
                    checksum += top.sample_top(values.data(), ids.data(), k, usable, vocab) + long(pen.size());
                }
                const double us_top =
                    std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1).count() / draws;
                std::snprintf(ranked, sizeof ranked, "%.2f", us_top);
            }
            std::printf("| %d | %s | %.1f | %s |\n", vocab, s.name, us, ranked);
            if (checksum < 0) return 2;  // keeps the draws from being optimised away
        }
    }
    return 0;
}
