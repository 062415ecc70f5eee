// Generation from candidates a backend ranks (Context::eval_candidates, Sampler::sample_top), run
// here without a GPU: a wrapper around the CPU backend ranks each kept row on the host with
// top_candidates, as the CUDA backend does on the device. Every token must be the one sampling
// the logits gives, through batches cut into pieces and sequences that stop early.
#include <doctest/doctest.h>

#include "testutil.h"

GPTQ_TEST_REQUIRES("shared")

#include "backend.h"
#include "common.h"
#include "context.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "sampling_cases.h"

#include <memory>
#include <string>
#include <vector>

using namespace gptq;

namespace {

class RankingContext final : public BackendContext {
public:
    RankingContext(std::unique_ptr<BackendContext> inner, int vocab, bool rank, int *ranked_rows)
        : inner_(std::move(inner)), vocab_(vocab), rank_(rank), ranked_rows_(ranked_rows) {}
    void eval(const EvalToken *t, int n, const int8_t *want, float *logits) override { inner_->eval(t, n, want, logits); }
    void reset(int seq) override { inner_->reset(seq); }
    int max_candidates() const override { return rank_ ? 64 : 0; }
    void eval_candidates(const EvalToken *t, int n, const int8_t *want, const CandidateQuery &q, float *values,
                         int32_t *ids, int32_t *usable) override {
        REQUIRE(q.k >= 1);
        REQUIRE(q.k <= max_candidates());
        int m = 0;
        for (int i = 0; i < n; ++i) m += want[i] != 0;
        std::vector<float> logits(size_t(m) * size_t(vocab_));
        inner_->eval(t, n, want, logits.data());
        for (int r = 0; r < m; ++r) {
            const int32_t *pen = q.penalised ? q.penalised + q.offsets[r] : nullptr;
            usable[r] = top_candidates(&logits[size_t(r) * vocab_], vocab_, pen, q.offsets[r + 1] - q.offsets[r],
                                       q.penalty, q.k, values + size_t(r) * q.k, ids + size_t(r) * q.k);
        }
        *ranked_rows_ += m;
    }

private:
    std::unique_ptr<BackendContext> inner_;
    int vocab_;
    bool rank_;
    int *ranked_rows_;
};

class RankingBackend final : public Backend {
public:
    RankingBackend(std::unique_ptr<Backend> inner, int vocab) : inner_(std::move(inner)), vocab_(vocab) {}
    std::unique_ptr<BackendContext> create_context(int n_ctx, int n_seq, int n_batch) override {
        return std::make_unique<RankingContext>(inner_->create_context(n_ctx, n_seq, n_batch), vocab_, rank,
                                                &ranked_rows);
    }
    int64_t weight_bytes() const override { return inner_->weight_bytes(); }
    const char *name() const override { return "cpu+ranking"; }
    bool rank = false;     // whether the next context ranks candidates
    int ranked_rows = 0;   // rows ranked by all its contexts

private:
    std::unique_ptr<Backend> inner_;
    int vocab_;
};

struct Setup {
    std::shared_ptr<Model> model;
    RankingBackend *backend = nullptr;
    Setup() : model(load_model(testutil::shared_path("models/stories260k"))) {
        auto b = std::make_unique<RankingBackend>(make_cpu_backend(*model, 2), model->cfg.vocab_size);
        backend = b.get();
        model->backend = std::move(b);
    }
    Context context(bool rank, int n_batch) {
        backend->rank = rank;
        return Context(model, 256, 3, n_batch);
    }
};

} // namespace

TEST_CASE("generation from backend-ranked candidates gives the tokens sampling the logits gives") {
    Setup s;
    const std::vector<std::string> prompts = {"Once upon a time, there was a little girl named Lily", "The dog ran",
                                              "Tom had a"};
    std::vector<std::vector<int>> greedy;
    int sampled_differs = 0;
    for (int n_batch : {64, 4})  // 4: the prompts' first eval cut into pieces
        for (const testutil::SamplingCase &c : testutil::sampling_cases()) {
            GenerateOptions opt = testutil::options_for(c, 7, 40);
            opt.stop_strings = {"."};  // sequences stop at different steps
            CAPTURE(n_batch);
            CAPTURE(c.temperature);
            CAPTURE(c.top_k);
            Context plain = s.context(false, n_batch), ranked = s.context(true, n_batch);
            const int before = s.backend->ranked_rows;
            const GenerateResult a = generate(plain, prompts, opt), b = generate(ranked, prompts, opt);
            // top-k off (0) needs every logit: the ranked context is not asked to rank.
            CHECK((s.backend->ranked_rows > before) == (c.top_k != 0));
            for (size_t i = 0; i < prompts.size(); ++i) {
                CAPTURE(i);
                CHECK(a.tokens[i] == b.tokens[i]);
                CHECK(a.texts[i] == b.texts[i]);
                CHECK(!a.tokens[i].empty());
            }
            if (greedy.empty()) greedy = a.tokens;
            else sampled_differs += a.tokens != greedy;
        }
    INFO("differ from greedy: " << sampled_differs);
    CHECK(sampled_differs >= 7);  // 8 of the 13 (short texts: they stop at the first period)
}

TEST_CASE("a context keeps logits or candidates, and says which it does not hold") {
    Setup s;
    Context plain = s.context(false, 16), ranked = s.context(true, 16);
    const EvalToken toks[2] = {{1, 0, 0}, {403, 1, 0}};
    const int32_t pen[2] = {403, 1}, offsets[3] = {0, 1, 2};
    CandidateQuery q;
    q.k = 8;
    q.penalty = 1.5f;
    q.penalised = pen;
    q.offsets = offsets;
    const int8_t both[2] = {1, 1};
    CHECK_THROWS_AS(plain.eval_candidates(toks, 2, both, q), Error);  // this context cannot rank
    ranked.eval_candidates(toks, 2, both, q);
    const CandidateList c = ranked.candidates(1);
    CHECK(c.k == 8);
    CHECK(c.usable == 512);
    CHECK_THROWS_AS(ranked.logits(1), Error);  // candidates were kept, not logits
    // The list is the logits' top 8 after the penalty of row 1's ids (id 1).
    plain.eval(toks, 2, both);
    std::vector<float> v(8);
    std::vector<int32_t> id(8);
    CHECK(top_candidates(plain.logits(1), 512, pen + 1, 1, 1.5f, 8, v.data(), id.data()) == 512);
    for (int j = 0; j < 8; ++j) {
        CHECK(c.ids[j] == id[size_t(j)]);
        CHECK(c.values[j] == v[size_t(j)]);
    }
    CHECK_THROWS_AS(plain.candidates(1), Error);
    q.k = 65;  // past the backend's maximum
    CHECK_THROWS_AS(ranked.eval_candidates(toks, 2, both, q), Error);
    q.k = 8;
    const int32_t bad[2] = {0, 512};
    q.penalised = bad;
    CHECK_THROWS_AS(ranked.eval_candidates(toks, 2, both, q), Error);  // an id outside the vocabulary
}
