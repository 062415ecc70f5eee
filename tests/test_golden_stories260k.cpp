// stories260k (fp32, GQA, hidden 172): the CPU backend against llama2.c's own golden outputs.
#include "golden.h"
#include "testutil.h"

#include <cmath>
#include <sstream>

GPTQ_TEST_REQUIRES("shared")

static std::string model_dir() { return testutil::shared_path("models/stories260k"); }

TEST_CASE("stories260k: logits at positions 0..2 match llama2.c within 1e-4") {
    golden::Session s(model_dir());
    std::istringstream in(testutil::read_text(model_dir() + "/golden/logits_pos0-2.txt"));
    std::vector<std::vector<float>> ref(3);
    for (int line = 0; line < 3; line++) {
        int pos;
        in >> pos;
        REQUIRE(pos == line);
        ref[line].resize(512);
        for (float &x : ref[line]) in >> x;
    }
    auto got = s.eval_all({1, 403, 407});
    for (int p = 0; p < 3; p++) {
        double worst = 0;
        for (int v = 0; v < 512; v++) worst = std::max(worst, double(std::fabs(got[p][v] - ref[p][v])));
        INFO("position " << p << " max |diff| " << worst);
        CHECK(worst < 1e-4);
    }
}

TEST_CASE("stories260k: greedy generation of 200 tokens from BOS equals llama2.c's text byte for byte") {
    golden::Session s(model_dir());
    const std::string expected = testutil::read_text(model_dir() + "/golden/expected_greedy_n200.txt");
    std::vector<int32_t> ids;
    const std::string text = s.greedy("", 200, 1, &ids);
    // The golden id file lists (pos, input, next) for each of the 200 steps.
    std::vector<int> table = golden::parse_ints(testutil::read_text(model_dir() + "/golden/greedy_n200_token_ids.txt"));
    REQUIRE(table.size() == 600);
    REQUIRE(ids.size() == 200);
    for (int i = 0; i < 200; i++) {
        INFO("step " << i);
        REQUIRE(ids[i] == table[3 * i + 2]);
    }
    CHECK(text == expected);
}

TEST_CASE("stories260k: WikiText-2 perplexity of the first 20 chunks is 104.8427") {
    golden::Session s(model_dir(), 512);
    const double ppl = golden::perplexity_of_file(s, testutil::shared_path("data/wikitext2/wiki.test.raw"), 512, 20);
    INFO("ppl " << ppl);
    CHECK(std::fabs(ppl - 104.8427) < 0.001);
}

TEST_CASE("stories260k: perplexity with several chunks per eval (one per sequence) is the same 104.8427") {
    golden::Session s(model_dir(), 512, 3);  // n_batch 1024: two chunks of 511 per eval
    const double ppl = golden::perplexity_of_file(s, testutil::shared_path("data/wikitext2/wiki.test.raw"), 512, 20);
    INFO("ppl " << ppl);
    CHECK(std::fabs(ppl - 104.8427) < 0.001);
}

TEST_CASE("batching: three prompts evaluated together match each evaluated alone within 1e-4") {
    golden::Session together(model_dir(), 0, 3);
    golden::Session alone(model_dir(), 0, 1);
    const std::vector<std::vector<int32_t>> prompts = {
        together.tokenize("Once upon a time, there was a little girl", 1),
        together.tokenize("The dog ran", 1),
        together.tokenize("Lily and Ben went to the park to play with a big red ball and", 1)};
    // One batch: all tokens of all three prompts, interleaved, every logit kept.
    std::vector<int32_t> toks, pos, seq;
    std::vector<int8_t> want;
    size_t longest = 0;
    for (auto &p : prompts) longest = std::max(longest, p.size());
    for (size_t i = 0; i < longest; i++)
        for (int s = 0; s < 3; s++)
            if (i < prompts[s].size()) {
                toks.push_back(prompts[s][i]);
                pos.push_back(int32_t(i));
                seq.push_back(s);
                want.push_back(1);
            }
    gptq_batch b{int32_t(toks.size()), toks.data(), pos.data(), seq.data(), want.data()};
    REQUIRE_OK(gptq_eval(together.ctx, &b));
    std::vector<std::vector<std::vector<float>>> joint(3);
    for (size_t j = 0; j < toks.size(); j++) {
        const float *l = gptq_get_logits(together.ctx, int32_t(j));
        REQUIRE(l);
        joint[seq[j]].emplace_back(l, l + 512);
    }
    for (int s = 0; s < 3; s++) {
        auto single = alone.eval_all(prompts[s]);
        REQUIRE(single.size() == joint[s].size());
        double worst = 0;
        for (size_t i = 0; i < single.size(); i++)
            for (int v = 0; v < 512; v++) worst = std::max(worst, double(std::fabs(single[i][v] - joint[s][i][v])));
        INFO("prompt " << s << " max |diff| " << worst);
        CHECK(worst < 1e-4);
    }
}

TEST_CASE("batched sampled generation: each prompt's text equals its text generated alone (seed + i)") {
    // In a batch the sequences are sampled on several threads; each draw may depend only on its
    // own sequence's sampler and generator (seeded seed + i), as when generating alone.
    golden::Session s(model_dir(), 0, 4);
    const char *prompts[4] = {"Once upon a time", "The cat", "Tom had a", "Lily saw"};
    gptq_generate_params gp = gptq_generate_params_default();
    gp.temperature = 1.0f;
    gp.top_k = 0;  // every candidate: the heaviest sampling path
    gp.top_p = 0.95f;
    gp.max_tokens = 40;
    gp.stop_at_eos = 0;
    gp.seed = 1234;
    std::vector<std::string> bufs(4, std::string(4096, '\0'));
    char *outs[4] = {&bufs[0][0], &bufs[1][0], &bufs[2][0], &bufs[3][0]};
    size_t sizes[4] = {4096, 4096, 4096, 4096}, lens[4] = {0, 0, 0, 0};
    REQUIRE_OK(gptq_generate_batch(s.ctx, prompts, 4, &gp, outs, sizes, lens));
    golden::Session one(model_dir());
    int differs_from_greedy = 0;
    for (int i = 0; i < 4; i++) {
        gptq_generate_params g1 = gp;
        g1.seed = gp.seed + uint64_t(i);
        std::string alone(4096, '\0');
        size_t len = 0;
        REQUIRE_OK(gptq_generate(one.ctx, prompts[i], &g1, &alone[0], alone.size(), &len));
        alone.resize(len);
        CHECK(std::string(outs[i], lens[i]) == alone);
        differs_from_greedy += alone != one.greedy(prompts[i], 40, -1);
    }
    CHECK(differs_from_greedy > 0);  // the texts were sampled, not argmax
}

TEST_CASE("batched generation: each prompt's greedy text equals its text generated alone") {
    golden::Session s(model_dir(), 0, 3);
    const char *prompts[3] = {"Once upon a time", "The cat", "Tom had a"};
    gptq_generate_params gp = gptq_generate_params_default();
    gp.temperature = 0;
    gp.repeat_penalty = 1;
    gp.max_tokens = 40;
    std::vector<std::string> bufs(3, std::string(4096, '\0'));
    char *outs[3] = {&bufs[0][0], &bufs[1][0], &bufs[2][0]};
    size_t sizes[3] = {4096, 4096, 4096}, lens[3] = {0, 0, 0};
    REQUIRE_OK(gptq_generate_batch(s.ctx, prompts, 3, &gp, outs, sizes, lens));
    golden::Session one(model_dir());
    for (int i = 0; i < 3; i++) {
        std::string alone = one.greedy(prompts[i], 40, -1);
        CHECK(std::string(outs[i], lens[i]) == alone);
    }
}
