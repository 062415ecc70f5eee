// bench.cpp — gptq-bench: prompt-evaluation and decoding speed of a model.
//
//   gptq-bench -m DIR [-p 128] [-n 64] [-b 1,4,8] [-r 3]
//
// Rows of the table:
//   ppP     one gptq_eval of P prompt tokens (BOS + random ids) from an empty cache
//   tgN     N single-token gptq_eval calls continuing after the prompt (greedy argmax feeds the
//           next step): the decode loop without the sampler
//   genN bB gptq_generate_batch of B copies of a P-token prompt, N new tokens each (greedy, EOS
//           ignored); the prompt phase ends at the first streamed token, and decoding is timed from
//           there: B*(N-1) tokens over the rest
// Each row is run -r times after one warm-up; t/s is the mean ± standard deviation.
#include "gptq.h"

#include "args.h"
#include "model_args.h"
#include "util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char *kProgram = "gptq-bench";

struct Stats {
    double mean = 0, stddev = 0;
};

Stats stats(const std::vector<double> &v) {
    Stats s;
    if (v.empty()) return s;
    for (double x : v) s.mean += x;
    s.mean /= (double)v.size();
    if (v.size() > 1) {
        double ss = 0;
        for (double x : v) ss += (x - s.mean) * (x - s.mean);
        s.stddev = std::sqrt(ss / (double)(v.size() - 1));
    }
    return s;
}

void print_row(const std::string &test, int64_t tokens, const std::vector<double> &seconds,
               const std::vector<double> &tps) {
    Stats t = stats(seconds), r = stats(tps);
    std::printf("| %-14s | %8lld | %9.4f | %10.1f ± %-8.1f |\n", test.c_str(), (long long)tokens, t.mean, r.mean,
                r.stddev);
    std::fflush(stdout);
}

[[noreturn]] void fail(const std::string &what, gptq_status st) { common::die(kProgram, what, st); }

int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

// Random ids that are neither BOS nor EOS, after a BOS when the model has one.
std::vector<int32_t> make_prompt(const gptq_model_info &info, int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int32_t> pick(0, info.vocab_size - 1);
    std::vector<int32_t> ids;
    if (info.bos_token >= 0) ids.push_back(info.bos_token);
    while ((int)ids.size() < n) {
        int32_t id = pick(rng);
        if (id != info.bos_token && id != info.eos_token) ids.push_back(id);
    }
    return ids;
}

// One pp + tg measurement with gptq_eval. Returns (prompt seconds, decode seconds).
std::pair<double, double> eval_run(gptq_context *ctx, const gptq_model_info &info, const std::vector<int32_t> &prompt,
                                   int n_gen) {
    gptq_status st = gptq_context_reset(ctx, -1);
    if (st != GPTQ_OK) fail("context reset", st);
    gptq_batch b = {};
    b.n_tokens = (int32_t)prompt.size();
    b.tokens = prompt.data();
    double t0 = common::now_seconds();
    st = gptq_eval(ctx, &b);
    if (st != GPTQ_OK) fail("prompt eval", st);
    const float *logits = gptq_get_logits(ctx, b.n_tokens - 1);
    if (!logits) fail("logits of the prompt", GPTQ_ERR_INTERNAL);
    double t1 = common::now_seconds();
    int32_t tok = argmax(logits, info.vocab_size);
    for (int i = 0; i < n_gen; i++) {
        gptq_batch one = {};
        one.n_tokens = 1;
        one.tokens = &tok;
        st = gptq_eval(ctx, &one);
        if (st != GPTQ_OK) fail("decode eval", st);
        logits = gptq_get_logits(ctx, 0);
        if (!logits) fail("logits of a decode step", GPTQ_ERR_INTERNAL);
        tok = argmax(logits, info.vocab_size);
    }
    return {t1 - t0, common::now_seconds() - t1};
}

struct GenTiming {
    double t_first = -1, t_last = -1;
    int64_t n_tokens = 0;
};

int32_t on_token(int32_t seq, int32_t token, const char *text, size_t len, void *user_data) {
    auto *g = static_cast<GenTiming *>(user_data);
    double now = common::now_seconds();
    if (g->t_first < 0) g->t_first = now;
    g->t_last = now;
    g->n_tokens++;
    return 0;
}

std::vector<int> parse_list(const std::string &text, std::string *err) {
    std::vector<int> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        int64_t v = 0;
        std::string e = common::parse_int64(item, &v);
        if (!e.empty() || v < 1 || v > 4096) {
            *err = "expected a list of batch sizes 1..4096 such as 1,4,8; got '" + text + "'";
            return {};
        }
        out.push_back((int)v);
    }
    if (out.empty()) *err = "empty batch list";
    return out;
}

} // namespace

int main(int argc, char **argv) {
    common::ModelArgs margs;
    int32_t n_prompt = 128, n_gen = 64, reps = 3;
    std::vector<int> batches = {1};
    common::ArgParser parser(kProgram, "-m DIR [-p N] [-n N] [-b B[,B...]] [-r N]",
                             "Measures prompt-evaluation and decoding speed (tokens/s) of a model.");
    common::add_model_args(parser, &margs);
    parser.add_int("-p,--n-prompt", "N", "prompt tokens", &n_prompt);
    parser.add_int("-n,--n-gen", "N", "generated tokens", &n_gen);
    parser.add("-b,--batch", "B", "prompts generated at once with gptq_generate_batch; a list runs each (default: 1)",
               [&batches](const std::string &v) {
                   std::string err;
                   batches = parse_list(v, &err);
                   return err;
               });
    parser.add_int("-r,--repetitions", "N", "timed runs per row", &reps);
    parser.parse_or_exit(argc, argv);
    if (n_prompt < 1 || n_gen < 1 || reps < 1) {
        std::fprintf(stderr, "%s: -p, -n and -r must be at least 1\n", kProgram);
        return 1;
    }

    common::install_log_handler(margs.verbose);
    gptq_model *model = common::load_model_or_die(kProgram, margs, nullptr);
    gptq_model_info info = {};
    info.struct_size = sizeof info;
    gptq_status st = gptq_model_get_info(model, &info);
    if (st != GPTQ_OK) fail("model info", st);

    std::printf("model:   %s (%s)\n", common::base_name(margs.model_dir).c_str(), common::describe_model(model).c_str());
    std::printf("library: %s, build: %s, threads: %d\n\n", gptq_version(), gptq_build_info(), margs.threads);
    std::printf("| %-14s | %8s | %9s | %-21s |\n", "test", "tokens", "seconds", "tokens/s");
    std::printf("|%s|%s|%s|%s|\n", std::string(16, '-').c_str(), std::string(10, '-').c_str(),
                std::string(11, '-').c_str(), std::string(23, '-').c_str());

    // --- pp / tg through gptq_eval
    {
        gptq_context_params cp = gptq_context_params_default();
        cp.n_ctx = n_prompt + n_gen + 1;
        cp.n_batch = n_prompt;
        cp.n_threads = margs.threads;
        gptq_context *ctx = nullptr;
        st = gptq_context_init(model, &cp, &ctx);
        if (st != GPTQ_OK) fail("context for " + std::to_string(cp.n_ctx) + " positions", st);
        std::vector<int32_t> prompt = make_prompt(info, n_prompt, 1234);
        eval_run(ctx, info, prompt, std::min(n_gen, 4));  // warm-up: caches, allocations, GPU clocks
        std::vector<double> pp_s, pp_tps, tg_s, tg_tps;
        for (int r = 0; r < reps; r++) {
            auto t = eval_run(ctx, info, prompt, n_gen);
            pp_s.push_back(t.first);
            pp_tps.push_back(n_prompt / t.first);
            tg_s.push_back(t.second);
            tg_tps.push_back(n_gen / t.second);
        }
        print_row("pp" + std::to_string(n_prompt), n_prompt, pp_s, pp_tps);
        print_row("tg" + std::to_string(n_gen), n_gen, tg_s, tg_tps);
        gptq_context_free(ctx);
    }

    // --- batched generation through gptq_generate_batch
    std::vector<int32_t> prompt_ids = make_prompt(info, n_prompt, 1234);
    std::vector<char> text(16 * (size_t)n_prompt + 64);
    size_t text_len = 0;
    // The prompt's text; re-tokenized inside the library it is about n_prompt tokens.
    st = gptq_detokenize(model, prompt_ids.data(), prompt_ids.size(), text.data(), text.size(), &text_len);
    if (st == GPTQ_ERR_BUFFER_SMALL) {
        text.resize(text_len);
        st = gptq_detokenize(model, prompt_ids.data(), prompt_ids.size(), text.data(), text.size(), &text_len);
    }
    if (st != GPTQ_OK) fail("detokenize", st);
    std::string prompt_text(text.data(), text_len);
    for (int b : batches) {
        gptq_context_params cp = gptq_context_params_default();
        cp.n_ctx = 2 * n_prompt + n_gen + 16;  // re-tokenizing may make the prompt a little longer
        cp.n_seq_max = b;
        cp.n_threads = margs.threads;
        gptq_context *ctx = nullptr;
        st = gptq_context_init(model, &cp, &ctx);
        if (st != GPTQ_OK) fail("context for batch " + std::to_string(b), st);
        std::vector<const char *> prompts(b, prompt_text.c_str());
        gptq_generate_params gp = gptq_generate_params_default();
        gp.temperature = 0;
        gp.stop_at_eos = 0;
        gp.on_token = on_token;
        std::vector<double> prompt_s, prompt_tps, gen_s, gen_tps;
        for (int r = -1; r < reps; r++) {  // r = -1: warm-up
            GenTiming g;
            gp.user_data = &g;
            gp.max_tokens = r < 0 ? std::min(n_gen, 4) : n_gen;
            double t0 = common::now_seconds();
            st = gptq_generate_batch(ctx, prompts.data(), b, &gp, nullptr, nullptr, nullptr);
            if (st != GPTQ_OK) fail("generate batch of " + std::to_string(b), st);
            if (r < 0) continue;
            double decode_s = g.t_last - g.t_first;
            int64_t decoded = g.n_tokens - b;  // the first token of each sequence closes the prompt phase
            gen_s.push_back(decode_s);
            gen_tps.push_back(decode_s > 0 && decoded > 0 ? decoded / decode_s : 0.0);
            prompt_s.push_back(g.t_first - t0);
            prompt_tps.push_back(b * (double)n_prompt / (g.t_first - t0));
        }
        std::string name = "gen" + std::to_string(n_gen) + " b" + std::to_string(b);
        print_row(name, (int64_t)b * (n_gen - 1), gen_s, gen_tps);
        print_row("  prompt b" + std::to_string(b), (int64_t)b * n_prompt, prompt_s, prompt_tps);
        gptq_context_free(ctx);
    }
    gptq_model_free(model);
    return 0;
}
