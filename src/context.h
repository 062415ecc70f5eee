// context.h — an evaluation context: a backend context (KV cache) plus the bookkeeping the API
// needs — the length of each sequence, batch validation and splitting, kept logits.
#pragma once

#include "backend.h"

#include <memory>
#include <vector>

namespace gptq {

class Context {
public:
    Context(std::shared_ptr<Model> model, int n_ctx, int n_seq, int n_batch);

    // Validates the batch (token ids, positions, sequence ids), evaluates it in pieces of at most
    // n_batch tokens, and keeps the logits of the tokens with want[i] != 0 (want may be null: the
    // last token of each sequence present in the batch).
    void eval(const EvalToken *toks, int n, const int8_t *want);
    // Logits of token i of the last batch; throws INVALID_ARG if they were not kept.
    const float *logits(int i) const;
    void reset(int seq);  // seq < 0: all

    const Model &model() const { return *model_; }
    int n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    int n_batch() const { return n_batch_; }
    int seq_len(int seq) const { return seq_len_[size_t(seq)]; }

private:
    std::shared_ptr<Model> model_;
    std::unique_ptr<BackendContext> bctx_;
    int n_ctx_, n_seq_, n_batch_;
    std::vector<int> seq_len_;
    std::vector<float> logits_;      // kept rows, vocab_size each
    std::vector<int> logit_row_;     // per token of the last batch: row in logits_, or -1
};

} // namespace gptq
