// perplexity.h — perplexity by the protocol of shared/reference/quality.md.
#pragma once

#include "context.h"

#include <string_view>

namespace gptq {

struct PerplexityResult {
    double ppl = 0;
    int64_t n_tokens = 0;  // targets scored
    int n_chunks = 0;
};

// Text encoded once without BOS; chunks of seq_len-1 tokens; each fed as [BOS] + chunk[:-1] from
// position 0 of sequence 0 with a fresh cache; every target scored; partial chunk dropped.
PerplexityResult perplexity(Context &ctx, std::string_view text, int seq_len, int max_chunks,
                            gptq_progress_callback progress, void *user_data);

} // namespace gptq
