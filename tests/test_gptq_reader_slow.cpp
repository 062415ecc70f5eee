// Reading what others wrote: docs-llama-8m-gptq-w4g128 is a v1 GPTQ checkpoint written
// independently of the project (shared/models/docs-llama-8m-gptq-w4g128/SOURCES.md).
#include "golden.h"
#include "testutil.h"

#include <cmath>

GPTQ_TEST_REQUIRES("shared")

TEST_CASE("docs-llama-8m-gptq-w4g128 loads as a 4-bit GPTQ model and gives the published perplexities") {
    golden::Session s(testutil::shared_path("models/docs-llama-8m-gptq-w4g128"), 1024);
    const gptq_model_info info = s.info();
    CHECK(info.quant_bits == 4);
    CHECK(info.quant_group_size == 128);
    CHECK(info.quant_sym == 1);
    const double heldout = golden::perplexity_of_file(s, testutil::shared_path("data/docs-heldout.txt"), 1024, 0);
    INFO("held-out ppl " << heldout);
    CHECK(std::fabs(heldout - 15.7744) < 0.01);
    const double wiki = golden::perplexity_of_file(s, testutil::shared_path("data/wikitext2/wiki.test.raw"), 1024, 0);
    INFO("WikiText-2 ppl " << wiki);
    CHECK(std::fabs(wiki - 142.670) < 0.05);
}
