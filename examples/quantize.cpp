// quantize.cpp — gptq-quantize: a float model directory in, a GPTQ checkpoint directory out.
//
//   gptq-quantize IN OUT [options]            (or -m IN -o OUT)
//   gptq-quantize models/docs-llama-8m out/q4 --calib-text c4.txt --ppl wiki.test.raw --ppl-chunks 20
//
// Every field of gptq_quantize_params is a flag; the defaults are the library's. Progress (with an
// ETA) goes to stderr; Ctrl-C cancels cleanly (the library writes into a temporary directory and
// only renames it into place when complete, so a cancelled run leaves no partial OUT). The
// summary compares the directories' sizes and, with --ppl, the perplexity before and after.
#include "gptq.h"

#include "args.h"
#include "model_args.h"
#include "perplexity_run.h"
#include "progress.h"
#include "signals.h"
#include "util.h"

#include <cstdio>
#include <string>

namespace {

const char *kProgram = "gptq-quantize";

struct Options {
    common::ModelArgs model;
    std::string out_dir;
    std::string calib_tokens, calib_text;
    std::string ppl_file;
    int32_t ppl_seq_len = 512;
    int32_t ppl_chunks = 0;
    int32_t quiet = 0;
    int32_t force = 0;
    gptq_quantize_params q = gptq_quantize_params_default();
};

std::string settings_text(const gptq_quantize_params &q) {
    const char *fmt = q.checkpoint_format == GPTQ_FORMAT_V1 ? "v1" : q.checkpoint_format == GPTQ_FORMAT_V2 ? "v2" : "auto";
    char buf[256];
    const char *clip = q.clip_search == GPTQ_CLIP_MSE ? "mse" : q.clip_search == GPTQ_CLIP_HESSIAN ? "hessian" : "none";
    std::snprintf(buf, sizeof buf, "w%d g%d %s%s%s%s, damp %g, block %d, clip %s, format %s", q.bits, q.group_size,
                  q.sym ? "sym" : "asym", q.desc_act ? " act-order" : "", q.static_groups ? " static-groups" : "",
                  q.true_sequential ? " true-sequential" : "", q.damp_percent, q.block_size, clip, fmt);
    return buf;
}

std::string calibration_text(const Options &o) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " (%d x %d tokens)", o.q.calib_n_samples, o.q.calib_seq_len);
    if (!o.calib_tokens.empty()) return "tokens from " + o.calib_tokens + buf;
    if (!o.calib_text.empty()) return "windows of " + o.calib_text + buf;
    return std::string("self-generated text") + buf;
}

void add_quantize_args(common::ArgParser &p, Options *o) {
    gptq_quantize_params &q = o->q;
    p.add_int("--bits", "B", "bits per weight: 2, 3, 4 or 8", &q.bits);
    p.add_int("--group-size", "G", "weights sharing a scale, -1 = one group per output column", &q.group_size);
    p.add_switch("--sym", std::string("symmetric quantization (zero at the midpoint)") + (q.sym ? " (default)" : ""),
                 &q.sym, 1);
    p.add_switch("--asym", std::string("asymmetric quantization (a zero point per group)") + (q.sym ? "" : " (default)"),
                 &q.sym, 0);
    p.add_toggle("act-order", "quantize columns by decreasing Hessian diagonal (desc_act)", &q.desc_act);
    p.add_toggle("static-groups", "fix the groups' scales before the act-order pass", &q.static_groups);
    p.add_toggle("true-sequential", "quantize a layer's projections one after another", &q.true_sequential);
    p.add_float("--damp", "F", "dampening, as a fraction of the mean Hessian diagonal", &q.damp_percent);
    p.add_float("--damp-auto-increment", "F", "added to --damp on each Cholesky failure, 0 = no retry",
                &q.damp_auto_increment);
    p.add_int("--block-size", "N", "columns per lazy-update block", &q.block_size);
    p.add_toggle("fp16-scales", "solve with the fp16-rounded scales the checkpoint stores", &q.fp16_scales_in_solve);
    p.add("--clip", "C",
          "clipping search per group: none (the reference's min/max range), mse (least |w-q|^2.4) or hessian "
          "(least error weighted by diag H) (default: mse)",
          [&q](const std::string &v) {
              if (v == "none") q.clip_search = GPTQ_CLIP_NONE;
              else if (v == "mse") q.clip_search = GPTQ_CLIP_MSE;
              else if (v == "hessian") q.clip_search = GPTQ_CLIP_HESSIAN;
              else return "unknown clipping search '" + v + "' (use none, mse or hessian)";
              return std::string();
          });
    p.add("--format", "F",
          "checkpoint format: auto (v1 unless an asymmetric zero overflows), v1 or v2 (default: auto)",
          [&q](const std::string &v) {
              if (v == "auto") q.checkpoint_format = GPTQ_FORMAT_AUTO;
              else if (v == "v1") q.checkpoint_format = GPTQ_FORMAT_V1;
              else if (v == "v2") q.checkpoint_format = GPTQ_FORMAT_V2;
              else return "unknown format '" + v + "' (use auto, v1 or v2)";
              return std::string();
          });
    p.add_string("--calib-tokens", "FILE", "calibration rows: int32 little-endian, --calib-seq-len tokens each",
                 &o->calib_tokens);
    p.add_string("--calib-text", "FILE", "calibration text: random windows are sampled from it", &o->calib_text);
    p.add_int("--calib-samples", "N", "calibration windows", &q.calib_n_samples);
    p.add_int("--calib-seq-len", "N", "tokens per calibration window", &q.calib_seq_len);
    p.add_uint64("--seed", "N", "seed for window sampling / self-generated text", &q.seed);
    p.add("--shard-size", "SIZE", "largest safetensors shard, e.g. 2G or 500M; 0 = one file (default: 2G)",
          [&q](const std::string &v) { return common::parse_size(v, &q.max_shard_bytes); });
    p.add_string("--ppl", "FILE", "also measure perplexity on FILE before and after", &o->ppl_file);
    p.add_int("--ppl-seq-len", "N", "perplexity window length", &o->ppl_seq_len);
    p.add_int("--ppl-chunks", "N", "perplexity windows to score, 0 = all", &o->ppl_chunks);
    p.add_switch("-q,--quiet", "no progress bar", &o->quiet, 1);
    p.add_switch("-f,--force", "replace OUT even when it is a directory that is not a GPTQ checkpoint", &o->force, 1);
}

// Perplexity of the model in dir on the --ppl text; exits 1 (or 130 on Ctrl-C) on failure.
common::PerplexityResult measure_ppl(const Options &o, const std::string &dir, const std::string &text,
                                     common::ProgressBar *bar) {
    gptq_model *model = common::load_model_or_die(kProgram, dir, o.model, bar);
    common::PerplexityResult r;
    gptq_status st = common::run_perplexity(model, text, o.ppl_seq_len, o.ppl_chunks, o.model.threads, bar, &r);
    gptq_model_free(model);
    if (st == GPTQ_ERR_ABORTED && common::interrupted()) {
        std::fprintf(stderr, "%s: cancelled\n", kProgram);
        std::exit(130);
    }
    if (st != GPTQ_OK) {
        std::fprintf(stderr, "%s: perplexity of '%s' on '%s': %s (%s)\n", kProgram, dir.c_str(), o.ppl_file.c_str(),
                     r.error.c_str(), gptq_status_str(st));
        std::exit(1);
    }
    std::fprintf(stderr, "%s: perplexity of %s: %.4f over %lld tokens (%.1f s)\n", kProgram, dir.c_str(), r.ppl,
                 (long long)r.n_tokens, r.seconds);
    return r;
}

} // namespace

int main(int argc, char **argv) {
    Options o;
    std::string in_pos, out_pos;
    common::ArgParser parser(kProgram, "IN OUT [options]   (or -m IN -o OUT)",
                             "Quantizes the float Llama-family model in directory IN with GPTQ and writes a GPTQ\n"
                             "checkpoint to directory OUT. Without --calib-tokens/--calib-text the model\n"
                             "calibrates on text it generates itself.");
    parser.add_positional("IN", "model directory to quantize", &in_pos, false);
    parser.add_positional("OUT", "output directory (created)", &out_pos, false);
    common::add_model_args(parser, &o.model);
    parser.add_string("-o,--output", "DIR", "output directory", &o.out_dir);
    add_quantize_args(parser, &o);
    parser.set_epilog("Defaults are the library's: 4 bits, groups of 128, symmetric, act-order with static\n"
                      "groups, true-sequential. An existing checkpoint in OUT is replaced once the new one is\n"
                      "complete; Ctrl-C cancels without touching OUT.");
    parser.parse_or_exit(argc, argv);

    if (!in_pos.empty() && !o.model.model_dir.empty()) {
        std::fprintf(stderr, "%s: give the input either as IN or with -m, not both\n", kProgram);
        return 1;
    }
    if (!out_pos.empty() && !o.out_dir.empty()) {
        std::fprintf(stderr, "%s: give the output either as OUT or with -o, not both\n", kProgram);
        return 1;
    }
    if (!in_pos.empty()) o.model.model_dir = in_pos;
    if (!out_pos.empty()) o.out_dir = out_pos;
    if (o.model.model_dir.empty() || o.out_dir.empty()) {
        std::fprintf(stderr, "%s: need an input and an output directory (see --help)\n", kProgram);
        return 1;
    }
    if (common::same_path(o.model.model_dir, o.out_dir)) {
        std::fprintf(stderr, "%s: the output directory must differ from the input\n", kProgram);
        return 1;
    }
    // gptq_quantize replaces an existing OUT wholesale. An earlier checkpoint may go; any other
    // non-empty directory (a typo, a home folder) is only replaced when asked for.
    if (!o.force && common::dir_size_bytes(o.out_dir) >= 0 && !common::dir_is_empty(o.out_dir) &&
        !common::file_exists(o.out_dir + "/quantize_config.json")) {
        std::fprintf(stderr,
                     "%s: '%s' exists and is not a GPTQ checkpoint; refusing to replace it (use --force)\n",
                     kProgram, o.out_dir.c_str());
        return 1;
    }
    common::parse_backend(o.model.backend, &o.q.backend);
    o.q.n_threads = o.model.threads;
    o.q.calib_tokens_path = o.calib_tokens.empty() ? nullptr : o.calib_tokens.c_str();
    o.q.calib_text_path = o.calib_text.empty() ? nullptr : o.calib_text.c_str();

    std::string ppl_text;
    if (!o.ppl_file.empty()) {
        std::string err;
        if (!common::read_file(o.ppl_file, &ppl_text, &err)) {
            std::fprintf(stderr, "%s: --ppl: %s\n", kProgram, err.c_str());
            return 1;
        }
    }

    common::install_log_handler(o.model.verbose);
    common::install_interrupt_handler();
    common::ProgressBar bar(stderr);
    bar.set_enabled(!o.quiet);

    common::PerplexityResult before;
    if (!ppl_text.empty()) before = measure_ppl(o, o.model.model_dir, ppl_text, &bar);

    std::fprintf(stderr, "%s: %s -> %s\n  settings: %s\n  calibration: %s\n", kProgram, o.model.model_dir.c_str(),
                 o.out_dir.c_str(), settings_text(o.q).c_str(), calibration_text(o).c_str());
    o.q.progress = common::progress_callback;
    o.q.progress_user_data = &bar;
    double t0 = common::now_seconds();
    gptq_status st = gptq_quantize(o.model.model_dir.c_str(), o.out_dir.c_str(), &o.q);
    double seconds = common::now_seconds() - t0;
    bar.finish();
    if (st == GPTQ_ERR_ABORTED && common::interrupted()) {
        std::fprintf(stderr, "%s: cancelled after %.1f s; '%s' was not changed\n", kProgram, seconds,
                     o.out_dir.c_str());
        return 130;
    }
    if (st != GPTQ_OK) common::die(kProgram, "quantizing '" + o.model.model_dir + "'", st);

    int64_t size_in = common::dir_size_bytes(o.model.model_dir);
    int64_t size_out = common::dir_size_bytes(o.out_dir);
    std::printf("quantized %s -> %s in %.1f s\n", o.model.model_dir.c_str(), o.out_dir.c_str(), seconds);
    std::printf("  settings:    %s\n", settings_text(o.q).c_str());
    std::printf("  calibration: %s\n", calibration_text(o).c_str());
    std::printf("  size:        %s -> %s", common::format_bytes(size_in).c_str(),
                common::format_bytes(size_out).c_str());
    if (size_in > 0 && size_out > 0) std::printf(" (%.2fx smaller)", (double)size_in / (double)size_out);
    std::printf("\n");
    std::fflush(stdout);

    if (!ppl_text.empty()) {
        common::PerplexityResult after = measure_ppl(o, o.out_dir, ppl_text, &bar);
        std::printf("  perplexity:  %.4f -> %.4f (%+.2f%%) on %s, %lld tokens, seq-len %d\n", before.ppl, after.ppl,
                    100.0 * (after.ppl / before.ppl - 1.0), common::base_name(o.ppl_file).c_str(),
                    (long long)after.n_tokens, o.ppl_seq_len);
    }
    return 0;
}
