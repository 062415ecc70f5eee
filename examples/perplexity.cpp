// perplexity.cpp — gptq-perplexity: perplexity of a model on a text file.
//
//   gptq-perplexity -m DIR -f wiki.test.raw [--seq-len 1024] [--chunks N]
//
// The protocol is gptq_perplexity's (shared/reference/quality.md): the text is tokenized once
// without BOS and cut into consecutive chunks of seq-len - 1 tokens; each is scored from position
// 0 with a fresh cache as [BOS] + chunk. Progress (with the library's running figures and an ETA)
// goes to stderr; the result line "PPL = x over n tokens" to stdout.
#include "gptq.h"

#include "args.h"
#include "model_args.h"
#include "perplexity_run.h"
#include "progress.h"
#include "signals.h"
#include "util.h"

#include <cstdio>
#include <string>

int main(int argc, char **argv) {
    const char *program = "gptq-perplexity";
    common::ModelArgs model_args;
    std::string file;
    int32_t seq_len = 1024, chunks = 0, quiet = 0;
    common::ArgParser parser(program, "-m DIR -f FILE [--seq-len N] [--chunks N]",
                             "Measures the perplexity of a model on a UTF-8 text file.");
    common::add_model_args(parser, &model_args);
    parser.add_string("-f,--file", "FILE", "text to score, e.g. wiki.test.raw", &file);
    parser.add_int("--seq-len", "N", "tokens per scored window, BOS included (lowered to the model's positions unless given)",
                   &seq_len);
    parser.add_int("--chunks", "N", "windows to score, 0 = all", &chunks);
    parser.add_switch("-q,--quiet", "no progress bar", &quiet, 1);
    parser.parse_or_exit(argc, argv);

    if (model_args.model_dir.empty() || file.empty()) {
        std::fprintf(stderr, "%s: need -m DIR and -f FILE (see --help)\n", program);
        return 1;
    }
    if (seq_len < 2) {
        std::fprintf(stderr, "%s: --seq-len must be at least 2, got %d\n", program, seq_len);
        return 1;
    }
    std::string text, err;
    if (!common::read_file(file, &text, &err)) {
        std::fprintf(stderr, "%s: %s\n", program, err.c_str());
        return 1;
    }

    common::install_log_handler(model_args.verbose);
    common::install_interrupt_handler();
    common::ProgressBar bar(stderr);
    bar.set_enabled(!quiet);
    gptq_model *model = common::load_model_or_die(program, model_args, &bar);
    std::fprintf(stderr, "%s: %s\n", program, common::describe_model(model).c_str());
    gptq_model_info info = {};
    info.struct_size = sizeof info;
    gptq_status st = gptq_model_get_info(model, &info);
    if (st != GPTQ_OK) common::die(program, "model info", st);
    if (info.max_position_embeddings > 0 && seq_len > info.max_position_embeddings) {
        // Past its trained positions a model's perplexity says little: the default follows the model.
        if (parser.was_set("--seq-len")) {
            std::fprintf(stderr, "%s: warning: --seq-len %d is longer than the model's %d positions\n", program,
                         seq_len, info.max_position_embeddings);
        } else {
            seq_len = info.max_position_embeddings;
            std::fprintf(stderr, "%s: seq-len %d (the model's positions)\n", program, seq_len);
        }
    }

    common::PerplexityResult r;
    st = common::run_perplexity(model, text, seq_len, chunks, model_args.threads, &bar, &r);
    gptq_model_free(model);
    if (st == GPTQ_ERR_ABORTED && common::interrupted()) {
        std::fprintf(stderr, "%s: cancelled\n", program);
        return 130;
    }
    if (st != GPTQ_OK) {
        std::fprintf(stderr, "%s: perplexity on '%s': %s (%s)\n", program, file.c_str(), r.error.c_str(),
                     gptq_status_str(st));
        return 1;
    }
    std::fprintf(stderr, "%s: %.1f s, %.0f tokens/s\n", program, r.seconds,
                 r.seconds > 0 ? (double)r.n_tokens / r.seconds : 0.0);
    std::printf("PPL = %.4f over %lld tokens\n", r.ppl, (long long)r.n_tokens);
    return 0;
}
