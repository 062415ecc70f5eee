// perplexity.cpp — see perplexity.h.
#include "perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gptq {

PerplexityResult perplexity(Context &ctx, std::string_view text, int seq_len, int max_chunks,
                            gptq_progress_callback progress, void *user_data) {
    const Model &m = ctx.model();
    if (seq_len < 2) fail(GPTQ_ERR_INVALID_ARG, "seq_len %d: need at least 2", seq_len);
    if (seq_len > ctx.n_ctx())
        fail(GPTQ_ERR_CONTEXT_FULL, "seq_len %d is larger than the context size %d", seq_len, ctx.n_ctx());
    const int bos = m.tok->bos() >= 0 ? m.tok->bos() : m.cfg.bos_token;
    if (bos < 0) fail(GPTQ_ERR_UNSUPPORTED, "the model has no BOS token, which this perplexity protocol needs");
    const std::vector<int> ids = m.tok->encode(text, false);
    const int chunk = seq_len - 1;
    int n_chunks = int(ids.size() / size_t(chunk));
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    if (n_chunks == 0)
        fail(GPTQ_ERR_INVALID_ARG, "text has %zu tokens, fewer than one chunk of %d", ids.size(), chunk);

    // Chunks are independent: as many as the context has sequences (and its batch holds) go
    // through one eval, each in its own sequence — the same math, fewer and larger batches.
    const int vocab = m.cfg.vocab_size;
    const int per_eval = std::max(1, std::min(ctx.n_seq(), ctx.n_batch() / chunk));
    std::vector<EvalToken> batch(size_t(per_eval) * size_t(chunk));
    std::vector<int8_t> want(batch.size(), 1);
    std::vector<double> row_nll(static_cast<size_t>(chunk));
    std::vector<const float *> rows(static_cast<size_t>(chunk));
    double nll = 0;
    int64_t count = 0;
    for (int c0 = 0; c0 < n_chunks; c0 += per_eval) {
        const int nc = std::min(per_eval, n_chunks - c0);
        for (int s = 0; s < nc; s++) {
            const int *tgt = ids.data() + size_t(c0 + s) * size_t(chunk);
            for (int p = 0; p < chunk; p++) batch[size_t(s) * chunk + p] = {p == 0 ? bos : tgt[p - 1], p, s};
        }
        ctx.reset(-1);
        ctx.eval(batch.data(), nc * chunk, want.data());
        for (int s = 0; s < nc; s++) {
            const int c = c0 + s;
            const int *tgt = ids.data() + size_t(c) * size_t(chunk);
            // Each row's log-sum-exp over the vocabulary is independent: rows in parallel (the
            // host side of a GPU evaluation was bound by this loop), summed in row order below so
            // the result does not depend on the thread count.
            for (int p = 0; p < chunk; p++) rows[size_t(p)] = ctx.logits(s * chunk + p);  // may throw: not in the loop
#pragma omp parallel for schedule(static) num_threads(std::max(1, m.n_threads))
            for (int p = 0; p < chunk; p++) {
                const float *lg = rows[size_t(p)];
                double mx = lg[0];
                for (int v = 1; v < vocab; v++) mx = std::max(mx, double(lg[v]));
                double sum = 0;
                for (int v = 0; v < vocab; v++) sum += std::exp(double(lg[v]) - mx);
                row_nll[size_t(p)] = (std::log(sum) + mx) - double(lg[tgt[p]]);
            }
            for (int p = 0; p < chunk; p++) nll += row_nll[size_t(p)];
            count += chunk;
            if (!std::isfinite(nll))
                fail(GPTQ_ERR_NUMERIC, "perplexity: non-finite log-likelihood in chunk %d (NaN/Inf logits)", c);
            if (progress) {
                std::string detail = strprintf("ppl %.4f", std::exp(nll / double(count)));
                if (progress("perplexity", c + 1, n_chunks, detail.c_str(), user_data))
                    fail(GPTQ_ERR_ABORTED, "perplexity cancelled after %d of %d chunks", c + 1, n_chunks);
            }
        }
    }
    return {std::exp(nll / double(count)), count, n_chunks};
}

} // namespace gptq
