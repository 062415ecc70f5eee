#include "golden.h"
#include "testutil.h"

#include <cctype>
#include <cstdlib>

namespace golden {

Session::Session(const std::string &dir, int n_ctx, int n_seq, int backend) {
    gptq_load_params lp = gptq_load_params_default();
    lp.backend = backend;
    REQUIRE_OK(gptq_load(dir.c_str(), &lp, &model));
    gptq_context_params cp = gptq_context_params_default();
    cp.n_ctx = n_ctx;
    cp.n_seq_max = n_seq;
    cp.n_batch = 1024;
    REQUIRE_OK(gptq_context_init(model, &cp, &ctx));
}

Session::~Session() {
    gptq_context_free(ctx);
    gptq_model_free(model);
}

gptq_model_info Session::info() const {
    gptq_model_info i;
    i.struct_size = sizeof i;
    REQUIRE_OK(gptq_model_get_info(model, &i));
    return i;
}

std::vector<int32_t> Session::tokenize(const std::string &text, int add_bos) const {
    size_t n = 0;
    gptq_tokenize(model, text.data(), text.size(), add_bos, nullptr, 0, &n);
    std::vector<int32_t> ids(n);
    REQUIRE_OK(gptq_tokenize(model, text.data(), text.size(), add_bos, ids.data(), ids.size(), &n));
    return ids;
}

std::vector<std::vector<float>> Session::eval_all(const std::vector<int32_t> &ids, int seq) {
    const int n = int(ids.size());
    std::vector<int32_t> pos(n), seqs(n, seq);
    std::vector<int8_t> want(n, 1);
    for (int i = 0; i < n; i++) pos[i] = i;
    REQUIRE_OK(gptq_context_reset(ctx, seq));
    gptq_batch b{n, ids.data(), pos.data(), seqs.data(), want.data()};
    REQUIRE_OK(gptq_eval(ctx, &b));
    const int vocab = info().vocab_size;
    std::vector<std::vector<float>> out;
    for (int i = 0; i < n; i++) {
        const float *l = gptq_get_logits(ctx, i);
        REQUIRE(l != nullptr);
        out.emplace_back(l, l + vocab);
    }
    return out;
}

namespace {
struct Collect {
    std::vector<int32_t> ids;
};
int32_t collect_token(int32_t, int32_t token, const char *, size_t, void *user) {
    if (token >= 0) static_cast<Collect *>(user)->ids.push_back(token);
    return 0;
}
} // namespace

std::string Session::greedy(const std::string &prompt, int n, int add_bos, std::vector<int32_t> *ids) {
    gptq_generate_params gp = gptq_generate_params_default();
    gp.temperature = 0;
    gp.repeat_penalty = 1;
    gp.max_tokens = n;
    gp.add_bos = add_bos;
    gp.stop_at_eos = 0;
    Collect c;
    gp.on_token = collect_token;
    gp.user_data = &c;
    std::string out(1 << 16, '\0');
    size_t len = 0;
    REQUIRE_OK(gptq_generate(ctx, prompt.c_str(), &gp, &out[0], out.size(), &len));
    out.resize(len);
    if (ids) *ids = c.ids;
    return out;
}

std::vector<int> parse_ints(const std::string &s) {
    std::vector<int> v;
    const char *p = s.c_str();
    while (*p) {
        if (std::isdigit(static_cast<unsigned char>(*p)) || (*p == '-' && std::isdigit(static_cast<unsigned char>(p[1])))) {
            char *end;
            v.push_back(int(std::strtol(p, &end, 10)));
            p = end;
        } else {
            p++;
        }
    }
    return v;
}

double perplexity_of_file(Session &s, const std::string &path, int seq_len, int max_chunks) {
    std::string text = testutil::read_text(path);
    double ppl = 0;
    int64_t n = 0;
    REQUIRE_OK(gptq_perplexity(s.ctx, text.data(), text.size(), seq_len, max_chunks, nullptr, nullptr, &ppl, &n));
    return ppl;
}

gptq_quantize_params wiki_calibration_params(int n_samples, int seq_len, uint64_t seed) {
    static const std::string calib = testutil::shared_path("data/wikitext2/wiki.test.raw");  // outlives p
    gptq_quantize_params p = gptq_quantize_params_default();
    p.calib_text_path = calib.c_str();
    p.calib_n_samples = n_samples;
    p.calib_seq_len = seq_len;
    p.seed = seed;
    return p;
}

double heldout_perplexity(const std::string &model_dir, int max_chunks) {
    Session s(model_dir, 1024);
    return perplexity_of_file(s, testutil::shared_path("data/docs-heldout.txt"), 1024, max_chunks);
}

} // namespace golden
