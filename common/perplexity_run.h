// perplexity_run.h — perplexity of a loaded model on a text file, as the tools report it.
#pragma once

#include "gptq.h"

#include <cstdint>
#include <string>

namespace common {

class ProgressBar;

struct PerplexityResult {
    double ppl = 0;
    int64_t n_tokens = 0;   // tokens scored
    double seconds = 0;
    std::string error;      // gptq_errmsg() of the failed call, kept past later calls
};

// Creates a context of seq_len positions on model and runs gptq_perplexity over text
// (max_chunks <= 0: all chunks), drawing progress on bar (may be NULL; Ctrl-C cancels).
// On failure out->error holds the library's message.
gptq_status run_perplexity(gptq_model *model, const std::string &text, int32_t seq_len, int32_t max_chunks,
                           int32_t n_threads, ProgressBar *bar, PerplexityResult *out);

} // namespace common
