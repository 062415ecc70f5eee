// perplexity_run.cpp — see perplexity_run.h.
#include "perplexity_run.h"

#include "progress.h"
#include "util.h"

#include <algorithm>

namespace common {

gptq_status run_perplexity(gptq_model *model, const std::string &text, int32_t seq_len, int32_t max_chunks,
                           int32_t n_threads, ProgressBar *bar, PerplexityResult *out) {
    gptq_context_params cp = gptq_context_params_default();
    cp.n_ctx = seq_len;
    // Several chunks per eval, one per sequence (a GPU needs large batches to be busy), as many as
    // keep the batch near 8192 tokens and its logits under 256 MiB.
    gptq_model_info info;
    info.struct_size = sizeof info;
    const int32_t vocab = gptq_model_get_info(model, &info) == GPTQ_OK ? std::max(info.vocab_size, 1) : 32000;
    const int64_t tokens = std::min<int64_t>(8192, (int64_t(256) << 20) / 4 / vocab);
    cp.n_seq_max = int32_t(std::max<int64_t>(1, tokens / std::max(seq_len, 1)));
    cp.n_batch = seq_len * cp.n_seq_max;
    cp.n_threads = n_threads;
    gptq_context *ctx = nullptr;
    gptq_status st = gptq_context_init(model, &cp, &ctx);
    if (st != GPTQ_OK) {
        out->error = gptq_errmsg();
        return st;
    }
    double t0 = now_seconds();
    st = gptq_perplexity(ctx, text.data(), text.size(), seq_len, max_chunks, progress_callback, bar, &out->ppl,
                         &out->n_tokens);
    out->seconds = now_seconds() - t0;
    if (st != GPTQ_OK) out->error = gptq_errmsg();  // before gptq_context_free resets it
    if (bar) bar->finish();
    gptq_context_free(ctx);
    return st;
}

} // namespace common
