// golden.h — small helpers for tests that drive the C API against golden outputs.
#pragma once

#include "gptq.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

// REQUIREs a call to return GPTQ_OK, printing the library's message otherwise.
#define REQUIRE_OK(call)                                                       \
    do {                                                                       \
        gptq_status st_ = (call);                                              \
        INFO(#call << " -> " << gptq_status_str(st_) << ": " << gptq_errmsg()); \
        REQUIRE(st_ == GPTQ_OK);                                               \
    } while (0)

namespace golden {

// A loaded model + context on the CPU backend, freed on scope exit.
struct Session {
    gptq_model *model = nullptr;
    gptq_context *ctx = nullptr;
    explicit Session(const std::string &dir, int n_ctx = 0, int n_seq = 1, int backend = GPTQ_BACKEND_CPU);
    ~Session();
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;
    gptq_model_info info() const;
    std::vector<int32_t> tokenize(const std::string &text, int add_bos) const;
    // Evaluates ids at positions 0.. of sequence seq (after resetting it), keeping every logit row.
    std::vector<std::vector<float>> eval_all(const std::vector<int32_t> &ids, int seq = 0);
    // Greedy generation of n tokens after the prompt; returns text, ids through *ids.
    std::string greedy(const std::string &prompt, int n, int add_bos, std::vector<int32_t> *ids = nullptr);
};

std::vector<int> parse_ints(const std::string &s);  // all integers in s, in order
double perplexity_of_file(Session &s, const std::string &path, int seq_len, int max_chunks);
// Quantization parameters (library defaults otherwise) calibrating on n_samples windows of seq_len
// tokens sampled (seed) from shared/data/wikitext2/wiki.test.raw.
gptq_quantize_params wiki_calibration_params(int n_samples, int seq_len, uint64_t seed);
// Perplexity of shared/data/docs-heldout.txt in windows of 1024 on the CPU backend (0 = all chunks).
double heldout_perplexity(const std::string &model_dir, int max_chunks);

} // namespace golden
