// context.h — an evaluation context: a backend context (KV cache) plus the bookkeeping the API
// needs — the length of each sequence, batch validation and splitting, kept logits.
#pragma once

#include "backend.h"

#include <memory>
#include <vector>

namespace gptq {

// One kept row's candidates (Context::eval_candidates).
struct CandidateList {
    const float *values;
    const int32_t *ids;
    int k;       // listed
    int usable;  // values of the row that are not -inf
};

class Context {
public:
    Context(std::shared_ptr<Model> model, int n_ctx, int n_seq, int n_batch);

    // Validates the batch (token ids, positions, sequence ids), evaluates it in pieces of at most
    // n_batch tokens, and keeps the logits of the tokens with want[i] != 0 (want may be null: the
    // last token of each sequence present in the batch).
    void eval(const EvalToken *toks, int n, const int8_t *want);
    // Logits of token i of the last batch; throws INVALID_ARG if they were not kept.
    const float *logits(int i) const;
    // As eval, but keeps each kept row's top candidates (q: CandidateQuery, backend.h; its
    // offsets count the kept rows of the whole batch) instead of its logits, ranked by the backend
    // where its logits are. max_candidates(): the most per row, 0 when the backend cannot.
    int max_candidates() const;
    void eval_candidates(const EvalToken *toks, int n, const int8_t *want, const CandidateQuery &q);
    CandidateList candidates(int i) const;  // throws INVALID_ARG if token i's were not kept
    void reset(int seq);  // seq < 0: all

    const Model &model() const { return *model_; }
    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int n_batch() const { return n_batch_; }
    int seq_len(int seq) const { return seq_len_[size_t(seq)]; }

private:
    // Validates a batch; returns which tokens keep their results, and the sequences' new lengths.
    std::vector<int8_t> keep_rows(const EvalToken *toks, int n, const int8_t *want, std::vector<int> &new_len);
    int number_rows(const std::vector<int8_t> &keep);  // fills logit_row_; returns the rows kept
    int first_kept_row(int start, int m) const;  // of tokens start .. start + m - 1; -1 if none

    std::shared_ptr<Model> model_;
    std::unique_ptr<BackendContext> bctx_;
    int n_ctx_, n_seq_, n_batch_;
    std::vector<int> seq_len_;
    float *logits_ = nullptr;        // kept rows, vocab_size each: the backend's storage or logits_own_
    std::vector<float> logits_own_;
    std::vector<int> logit_row_;     // per token of the last batch: its kept row, or -1
    int cand_k_ = 0;                 // candidates per kept row (0: the last batch kept logits)
    std::vector<float> cand_values_;
    std::vector<int32_t> cand_ids_, cand_usable_;
};

} // namespace gptq
