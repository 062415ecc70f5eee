// generate.cpp — see generate.h.
#include "generate.h"

#include <algorithm>
#include <exception>

namespace gptq {

namespace {

// One prompt's generation state. Text is released to the caller only when it cannot be the
// beginning of a stop string, so a stop string never leaks into the stream.
struct Stream {
    std::vector<int> history;    // prompt + generated ids (for the repetition penalty)
    std::vector<int> generated;
    StreamDecoder decoder;
    Sampler sampler;
    std::string text;            // released text
    std::string held;            // decoded but not yet released (possible stop-string prefix)
    bool done = false;

    Stream(const Tokenizer &tok, std::vector<int> prompt, const SamplerParams &sp)
        : history(prompt), decoder(tok, std::move(prompt)), sampler(sp) {}
};

// Length of the longest suffix of s that is a proper prefix of some stop string.
size_t stop_prefix_len(const std::string &s, const std::vector<std::string> &stops) {
    size_t best = 0;
    for (const std::string &stop : stops)
        for (size_t k = std::min(s.size(), stop.size() - 1); k > best; k--)
            if (s.compare(s.size() - k, k, stop, 0, k) == 0) { best = k; break; }
    return best;
}

} // namespace

GenerateResult generate(Context &ctx, const std::vector<std::string> &prompts, const GenerateOptions &opt) {
    const Model &m = ctx.model();
    const int n = int(prompts.size());
    if (n <= 0) fail(GPTQ_ERR_INVALID_ARG, "no prompts");
    if (n > ctx.n_seq())
        fail(GPTQ_ERR_INVALID_ARG, "%d prompts but the context holds %d sequences (raise n_seq_max)", n, ctx.n_seq());
    for (const std::string &s : opt.stop_strings)
        if (s.empty()) fail(GPTQ_ERR_INVALID_ARG, "empty stop string");
    const bool add_bos = opt.add_bos < 0 ? m.cfg.add_bos : opt.add_bos != 0;

    std::vector<Stream> streams;
    streams.reserve(size_t(n));
    std::vector<EvalToken> batch;
    for (int i = 0; i < n; i++) {
        std::vector<int> ids = m.tok->encode(prompts[size_t(i)], add_bos);
        if (ids.empty())
            fail(GPTQ_ERR_INVALID_ARG, "prompt %d is empty and no BOS is added: nothing to continue from", i);
        if (int(ids.size()) >= ctx.n_ctx())
            fail(GPTQ_ERR_CONTEXT_FULL, "prompt %d has %zu tokens; the context holds %d", i, ids.size(), ctx.n_ctx());
        ctx.reset(i);
        for (size_t p = 0; p < ids.size(); p++) batch.push_back({ids[p], int(p), i});
        SamplerParams sp = opt.sampler;
        sp.seed += uint64_t(i);
        streams.emplace_back(*m.tok, std::move(ids), sp);
    }

    GenerateResult res;
    res.texts.resize(size_t(n));
    res.tokens.resize(size_t(n));
    if (opt.max_tokens <= 0) return res;
    // Ids past the tokenizer's vocabulary (an embedding padded to a round size, as Qwen2's 152064
    // rows for 151665 ids) have no text: sampling sees only the tokenizer's ids.
    const int vocab = std::min(m.cfg.vocab_size, m.tok->vocab_size());

    // Where the next tokens' candidates are ranked: by the backend, where the logits are, when it
    // ranks as many as the samplers need (the CUDA backend: k pairs per sequence cross to the
    // host instead of the vocabulary); else on the host from the logits. The same draws either
    // way (Sampler::sample_top). Every stream's sampler has the same parameters but the seed.
    const int need = streams[0].sampler.candidates_needed();
    // (A backend ranks the whole embedding's rows, so a padded one samples on the host.)
    const bool ranked_by_backend = need > 0 && need <= ctx.max_candidates() && vocab == m.cfg.vocab_size;
    std::vector<int8_t> keep;
    PenalisedRows penalised;
    // Evaluates a batch, keeping the results of each sequence's last token.
    auto evaluate = [&](const std::vector<EvalToken> &b) {
        if (!ranked_by_backend) {
            ctx.eval(b.data(), int(b.size()), nullptr);
            return;
        }
        std::vector<int> last(size_t(n), -1);
        for (size_t j = 0; j < b.size(); j++) last[size_t(b[j].seq)] = int(j);
        keep.assign(b.size(), 0);
        for (int j : last)
            if (j >= 0) keep[size_t(j)] = 1;
        penalised.clear();
        for (size_t j = 0; j < b.size(); j++)
            if (keep[j]) {
                const Stream &s = streams[size_t(b[j].seq)];
                penalised.add(s.sampler, s.history, vocab);
            }
        CandidateQuery q;
        q.k = need;
        q.penalty = streams[0].sampler.repeat_penalty();
        q.penalised = penalised.ids();
        q.offsets = penalised.offsets();
        ctx.eval_candidates(b.data(), int(b.size()), keep.data(), q);
    };
    evaluate(batch);
    // Index in the last batch of each active sequence's last token.
    std::vector<int> last_index(static_cast<size_t>(n));
    {
        std::vector<int> last(size_t(n), -1);
        for (size_t j = 0; j < batch.size(); j++) last[size_t(batch[j].seq)] = int(j);
        last_index = last;
    }
    const int eos = m.tok->eos();
    auto is_eos = [&](int id) {
        if (id == eos) return true;
        return std::find(m.cfg.eos_tokens.begin(), m.cfg.eos_tokens.end(), id) != m.cfg.eos_tokens.end();
    };

    std::vector<int> active, drawn(size_t(n), -1);
    std::vector<std::exception_ptr> failed(static_cast<size_t>(n));
    for (int step = 0; step < opt.max_tokens; step++) {
        // The next token of every active sequence, sampled in parallel: each sequence has its own
        // sampler and generator, so the draws do not depend on the threads (a batch of 16 at a
        // 128K vocabulary is 16 x ~0.13 ms of one core, bench-sampler). An error is raised at its
        // sequence's turn below, as when sampling in order.
        active.clear();
        for (int i = 0; i < n; i++)
            if (!streams[size_t(i)].done) active.push_back(i);
        const int n_active = int(active.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, std::min(m.n_threads, n_active))) \
    if (n_active > 1)
        for (int a = 0; a < n_active; a++) {
            const size_t i = size_t(active[size_t(a)]);
            try {
                if (ranked_by_backend) {
                    const CandidateList c = ctx.candidates(last_index[i]);
                    drawn[i] = streams[i].sampler.sample_top(c.values, c.ids, c.k, c.usable, vocab);
                } else {
                    drawn[i] = streams[i].sampler.sample(ctx.logits(last_index[i]), vocab, streams[i].history);
                }
            } catch (...) {
                failed[i] = std::current_exception();
            }
        }
        std::vector<EvalToken> next;
        std::vector<int> next_seq;
        for (int i = 0; i < n; i++) {
            Stream &s = streams[size_t(i)];
            if (s.done) continue;
            if (failed[size_t(i)]) std::rethrow_exception(failed[size_t(i)]);
            const int id = drawn[size_t(i)];
            if (opt.stop_at_eos && is_eos(id)) { s.done = true; continue; }
            s.history.push_back(id);
            s.generated.push_back(id);
            s.held += s.decoder.push(id);
            // Stop strings: cut at the first full match; hold back a possible partial match.
            size_t cut = std::string::npos;
            for (const std::string &stop : opt.stop_strings) {
                size_t at = s.held.find(stop);
                if (at != std::string::npos) cut = std::min(cut, at);
            }
            std::string release;
            if (cut != std::string::npos) {
                release = s.held.substr(0, cut);
                s.held.clear();
                s.done = true;
            } else {
                size_t keep = stop_prefix_len(s.held, opt.stop_strings);
                release = s.held.substr(0, s.held.size() - keep);
                s.held.erase(0, s.held.size() - keep);
            }
            s.text += release;
            if (opt.on_token && opt.on_token(i, id, release.data(), release.size(), opt.user_data)) {
                res.aborted = true;
                s.done = true;
            }
            if (res.aborted) break;
            const int pos = ctx.seq_len(i);
            if (!s.done && step + 1 < opt.max_tokens) {
                if (pos >= ctx.n_ctx()) {
                    log_msg(GPTQ_LOG_WARN, "sequence %d reached the context size %d; generation stops", i, ctx.n_ctx());
                    s.done = true;
                    continue;
                }
                next.push_back({id, pos, i});
                next_seq.push_back(i);
            }
        }
        if (res.aborted || next.empty()) break;
        evaluate(next);
        for (size_t j = 0; j < next.size(); j++) last_index[size_t(next_seq[j])] = int(j);
    }
    for (int i = 0; i < n; i++) {
        Stream &s = streams[size_t(i)];
        if (!s.done || !s.held.empty()) {
            // Generation ended by the token budget: what was held for a stop string is released.
            std::string rest = s.held + s.decoder.flush();
            s.held.clear();
            if (!rest.empty() && !res.aborted) {
                s.text += rest;
                if (opt.on_token) opt.on_token(i, -1, rest.data(), rest.size(), opt.user_data);
            }
        }
        res.texts[size_t(i)] = std::move(s.text);
        res.tokens[size_t(i)] = std::move(s.generated);
    }
    return res;
}

} // namespace gptq
