// docs-llama-8m (single file) and docs-llama-30m (3 shards): the CPU backend against Hugging Face
// transformers' fp32 golden outputs, and held-out perplexity against shared/reference/quality.md.
#include "golden.h"
#include "testutil.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

GPTQ_TEST_REQUIRES("shared")

static void check_against_golden(const std::string &dir) {
    const auto g = nlohmann::json::parse(testutil::read_text(dir + "/golden/golden.json"));
    const std::vector<int32_t> prompt_ids = g["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> greedy_ids = g["greedy_ids"].get<std::vector<int32_t>>();
    const std::vector<int> positions = g["logits_positions"].get<std::vector<int>>();
    const std::vector<float> ref = testutil::read_f32(dir + "/golden/golden_logits.f32");
    golden::Session s(dir);
    const int vocab = s.info().vocab_size;
    REQUIRE(ref.size() == positions.size() * size_t(vocab));

    SUBCASE("the prompt tokenizes to the golden ids") {
        CHECK(s.tokenize(g["prompt"].get<std::string>(), 1) == prompt_ids);
    }
    SUBCASE("logits at the listed positions within 1e-3 of the golden range") {
        std::vector<int32_t> ids = prompt_ids;
        ids.insert(ids.end(), greedy_ids.begin(), greedy_ids.end());
        ids.resize(size_t(positions.back() + 1));
        auto got = s.eval_all(ids);
        for (size_t i = 0; i < positions.size(); i++) {
            const float *r = ref.data() + i * size_t(vocab);
            const float *o = got[size_t(positions[i])].data();
            const auto [mn, mx] = std::minmax_element(r, r + vocab);
            double worst = 0;
            for (int v = 0; v < vocab; v++) worst = std::max(worst, double(std::fabs(o[v] - r[v])));
            INFO("position " << positions[i] << " max |diff| " << worst << " range " << (*mx - *mn));
            CHECK(worst <= 1e-3 * (*mx - *mn));
        }
    }
    SUBCASE("greedy generation reproduces the 64 golden ids") {
        std::vector<int32_t> ids;
        s.greedy(g["prompt"].get<std::string>(), int(greedy_ids.size()), 1, &ids);
        CHECK(ids == greedy_ids);
    }
}

TEST_CASE("docs-llama-8m matches transformers") { check_against_golden(testutil::shared_path("models/docs-llama-8m")); }
TEST_CASE("docs-llama-30m (sharded) matches transformers") {
    check_against_golden(testutil::shared_path("models/docs-llama-30m"));
}

static void check_heldout(const std::string &model, double expected) {
    golden::Session s(testutil::shared_path("models/" + model), 1024);
    const double ppl = golden::perplexity_of_file(s, testutil::shared_path("data/docs-heldout.txt"), 1024, 0);
    INFO(model << " held-out ppl " << ppl << ", reference " << expected);
    CHECK(std::fabs(ppl / expected - 1) < 0.001);
}

TEST_CASE("docs-llama-8m held-out perplexity 15.2900 within 0.1%") { check_heldout("docs-llama-8m", 15.2900); }
TEST_CASE("docs-llama-30m held-out perplexity 13.6554 within 0.1%") { check_heldout("docs-llama-30m", 13.6554); }
