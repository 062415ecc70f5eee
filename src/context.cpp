// context.cpp — see context.h.
#include "context.h"

#include <algorithm>

namespace gptq {

Context::Context(std::shared_ptr<Model> model, int n_ctx, int n_seq, int n_batch)
    : model_(std::move(model)), n_ctx_(n_ctx), n_seq_(n_seq), n_batch_(n_batch) {
    bctx_ = model_->backend->create_context(n_ctx, n_seq, n_batch);
    seq_len_.assign(size_t(n_seq), 0);
}

void Context::reset(int seq) {
    if (seq >= n_seq_) fail(GPTQ_ERR_INVALID_ARG, "sequence %d out of range (context holds %d)", seq, n_seq_);
    bctx_->reset(seq);
    if (seq < 0)
        std::fill(seq_len_.begin(), seq_len_.end(), 0);
    else
        seq_len_[size_t(seq)] = 0;
}

void BackendContext::eval_candidates(const EvalToken *, int, const int8_t *, const CandidateQuery &, float *,
                                     int32_t *, int32_t *) {
    fail(GPTQ_ERR_INVALID_ARG, "this backend does not rank candidates (max_candidates() is 0)");
}

std::vector<int8_t> Context::keep_rows(const EvalToken *toks, int n, const int8_t *want, std::vector<int> &new_len) {
    if (n <= 0) fail(GPTQ_ERR_INVALID_ARG, "empty batch");
    const int vocab = model_->cfg.vocab_size;
    new_len = seq_len_;
    for (int i = 0; i < n; i++) {
        const EvalToken &t = toks[i];
        if (t.token < 0 || t.token >= vocab)
            fail(GPTQ_ERR_INVALID_ARG, "batch token %d: id %d outside the vocabulary [0, %d)", i, t.token, vocab);
        if (t.seq < 0 || t.seq >= n_seq_)
            fail(GPTQ_ERR_INVALID_ARG, "batch token %d: sequence %d outside [0, %d)", i, t.seq, n_seq_);
        if (t.pos < 0) fail(GPTQ_ERR_INVALID_ARG, "batch token %d: negative position %d", i, t.pos);
        if (t.pos >= n_ctx_)
            fail(GPTQ_ERR_CONTEXT_FULL, "batch token %d: position %d is past the context size %d", i, t.pos, n_ctx_);
        // Attention reads positions 0..pos: they must exist (evaluated before, or in this batch).
        if (t.pos > new_len[size_t(t.seq)])
            fail(GPTQ_ERR_INVALID_ARG, "batch token %d: position %d of sequence %d leaves a gap (sequence holds %d positions)",
                 i, t.pos, t.seq, new_len[size_t(t.seq)]);
        new_len[size_t(t.seq)] = std::max(new_len[size_t(t.seq)], t.pos + 1);
    }
    std::vector<int8_t> keep(size_t(n), 0);
    if (want) {
        for (int i = 0; i < n; i++) keep[size_t(i)] = want[i] ? 1 : 0;
    } else {
        std::vector<int> last(size_t(n_seq_), -1);
        for (int i = 0; i < n; i++) last[size_t(toks[i].seq)] = i;
        for (int s : last)
            if (s >= 0) keep[size_t(s)] = 1;
    }
    return keep;
}

int Context::first_kept_row(int start, int m) const {
    for (int i = start; i < start + m; i++)
        if (logit_row_[size_t(i)] >= 0) return logit_row_[size_t(i)];
    return -1;
}

int Context::number_rows(const std::vector<int8_t> &keep) {
    int rows = 0;
    logit_row_.assign(keep.size(), -1);
    for (size_t i = 0; i < keep.size(); i++)
        if (keep[i]) logit_row_[i] = rows++;
    return rows;
}

void Context::eval(const EvalToken *toks, int n, const int8_t *want) {
    std::vector<int> new_len;
    const std::vector<int8_t> keep = keep_rows(toks, n, want, new_len);
    const size_t vocab = size_t(model_->cfg.vocab_size);
    cand_k_ = 0;
    const size_t floats = size_t(number_rows(keep)) * vocab;
    logits_ = bctx_->logits_storage(floats);
    if (!logits_) {
        logits_own_.resize(floats);
        logits_ = logits_own_.data();
    }
    for (int start = 0; start < n; start += n_batch_) {
        const int m = std::min(n_batch_, n - start);
        const int row0 = first_kept_row(start, m);
        float *out = row0 >= 0 ? logits_ + size_t(row0) * vocab : nullptr;
        bctx_->eval(toks + start, m, keep.data() + start, out);
    }
    seq_len_ = new_len;
}

int Context::max_candidates() const { return bctx_->max_candidates(); }

void Context::eval_candidates(const EvalToken *toks, int n, const int8_t *want, const CandidateQuery &q) {
    if (q.k < 1 || q.k > bctx_->max_candidates())
        fail(GPTQ_ERR_INVALID_ARG, "%d candidates per row asked; the backend ranks 1 to %d", q.k,
             bctx_->max_candidates());
    std::vector<int> new_len;
    const std::vector<int8_t> keep = keep_rows(toks, n, want, new_len);
    const int rows = number_rows(keep);
    const int vocab = model_->cfg.vocab_size;
    if (!q.offsets || (q.offsets[rows] > q.offsets[0] && !q.penalised) || !(q.penalty > 0.0f))
        fail(GPTQ_ERR_INVALID_ARG, "candidate query: no offsets, no penalised ids, or a penalty not positive");
    for (int r = 0; r < rows; r++)
        if (q.offsets[r + 1] < q.offsets[r]) fail(GPTQ_ERR_INVALID_ARG, "candidate query: offsets decrease at row %d", r);
    for (int j = q.offsets[0]; j < q.offsets[rows]; j++)
        if (q.penalised[j] < 0 || q.penalised[j] >= vocab)
            fail(GPTQ_ERR_INVALID_ARG, "candidate query: penalised id %d outside the vocabulary", q.penalised[j]);
    cand_k_ = q.k;
    logits_ = nullptr;
    cand_values_.resize(size_t(rows) * size_t(q.k));
    cand_ids_.resize(size_t(rows) * size_t(q.k));
    cand_usable_.resize(size_t(rows));
    for (int start = 0; start < n; start += n_batch_) {
        const int m = std::min(n_batch_, n - start);
        const int row0 = std::max(0, first_kept_row(start, m));  // none kept in the piece: nothing written
        CandidateQuery piece = q;
        piece.offsets = q.offsets + row0;
        const size_t at = size_t(row0) * size_t(q.k);
        bctx_->eval_candidates(toks + start, m, keep.data() + start, piece, cand_values_.data() + at,
                               cand_ids_.data() + at, cand_usable_.data() + row0);
    }
    seq_len_ = new_len;
}

CandidateList Context::candidates(int i) const {
    if (cand_k_ == 0 || i < 0 || size_t(i) >= logit_row_.size() || logit_row_[size_t(i)] < 0)
        fail(GPTQ_ERR_INVALID_ARG, "no candidates kept for token %d of the last batch", i);
    const size_t r = size_t(logit_row_[size_t(i)]);
    return {cand_values_.data() + r * size_t(cand_k_), cand_ids_.data() + r * size_t(cand_k_), cand_k_,
            cand_usable_[r]};
}

const float *Context::logits(int i) const {
    if (cand_k_ != 0 || i < 0 || size_t(i) >= logit_row_.size() || logit_row_[size_t(i)] < 0)
        fail(GPTQ_ERR_INVALID_ARG, "no logits kept for token %d of the last batch", i);
    return logits_ + size_t(logit_row_[size_t(i)]) * size_t(model_->cfg.vocab_size);
}

} // namespace gptq
