// model_args.cpp — see model_args.h.
#include "model_args.h"

#include "args.h"
#include "progress.h"
#include "util.h"

#include <cstdio>
#include <cstdlib>

namespace common {

void add_model_args(ArgParser &parser, ModelArgs *args, bool with_model_flag) {
    if (with_model_flag)
        parser.add_string("-m,--model", "DIR", "model directory (config.json, *.safetensors, tokenizer.model)",
                          &args->model_dir);
    parser.add_int("-t,--threads", "N", "CPU threads, 0 = all cores", &args->threads);
    parser.add("--backend", "NAME", "compute backend: cpu, cuda or auto (CUDA when available) (default: auto)",
               [args](const std::string &v) {
                   int32_t b;
                   if (!parse_backend(v, &b)) return "unknown backend '" + v + "' (use cpu, cuda or auto)";
                   args->backend = v;
                   return std::string();
               });
    parser.add("-v,--verbose", "", "print the library's log messages (twice: debug too)",
               [args](const std::string &) {
                   args->verbose++;
                   return std::string();
               });
}

bool parse_backend(const std::string &name, int32_t *out) {
    if (name == "auto") *out = GPTQ_BACKEND_AUTO;
    else if (name == "cpu") *out = GPTQ_BACKEND_CPU;
    else if (name == "cuda" || name == "gpu") *out = GPTQ_BACKEND_CUDA;
    else return false;
    return true;
}

const char *backend_name(int32_t backend) {
    switch (backend) {
    case GPTQ_BACKEND_CPU: return "cpu";
    case GPTQ_BACKEND_CUDA: return "cuda";
    default: return "auto";
    }
}

namespace {

void log_to_stderr(int32_t level, const char *message, void *user_data) {
    int32_t max_level = *static_cast<int32_t *>(user_data);
    if (level > max_level) return;
    static const char *names[] = {"error", "warning", "info", "debug"};
    const char *name = level >= 0 && level <= 3 ? names[level] : "log";
    std::fprintf(stderr, "gptq %s: %s\n", name, message);
}

int32_t g_log_level = GPTQ_LOG_WARN;

} // namespace

void install_log_handler(int32_t verbose) {
    g_log_level = verbose >= 2 ? GPTQ_LOG_DEBUG : verbose == 1 ? GPTQ_LOG_INFO : GPTQ_LOG_WARN;
    gptq_set_log_callback(log_to_stderr, &g_log_level);
}

void die(const std::string &program, const std::string &what, gptq_status status) {
    const char *msg = gptq_errmsg();
    std::fprintf(stderr, "%s: %s: %s (%s)\n", program.c_str(), what.c_str(), msg && *msg ? msg : "no details",
                 gptq_status_str(status));
    std::exit(1);
}

gptq_model *load_model_or_die(const std::string &program, const ModelArgs &args, ProgressBar *bar) {
    return load_model_or_die(program, args.model_dir, args, bar);
}

gptq_model *load_model_or_die(const std::string &program, const std::string &dir, const ModelArgs &args,
                              ProgressBar *bar) {
    if (dir.empty()) {
        std::fprintf(stderr, "%s: no model given (use -m DIR; see --help)\n", program.c_str());
        std::exit(1);
    }
    gptq_load_params lp = gptq_load_params_default();
    parse_backend(args.backend, &lp.backend);
    lp.n_threads = args.threads;
    lp.progress = progress_callback;
    lp.progress_user_data = bar;
    gptq_model *model = nullptr;
    gptq_status st = gptq_load(dir.c_str(), &lp, &model);
    if (bar) bar->finish();
    if (st != GPTQ_OK) die(program, "cannot load model '" + dir + "'", st);
    return model;
}

std::string describe_model(const gptq_model *model) {
    gptq_model_info info = {};
    info.struct_size = sizeof info;
    if (gptq_model_get_info(model, &info) != GPTQ_OK) return std::string("(no model info: ") + gptq_errmsg() + ")";
    char buf[512];
    std::string quant = "float";
    if (info.quant_bits > 0) {
        std::snprintf(buf, sizeof buf, "GPTQ w%d g%d %s%s", info.quant_bits, info.quant_group_size,
                      info.quant_sym ? "sym" : "asym", info.quant_desc_act ? " act-order" : "");
        quant = buf;
    }
    std::snprintf(buf, sizeof buf, "%s, %d layers, hidden %d, heads %d/%d, vocab %d, %.2fM params, %s, %s weights on %s",
                  info.architecture, info.n_layers, info.hidden_size, info.n_heads, info.n_kv_heads,
                  info.vocab_size, (double)info.n_params / 1e6, quant.c_str(),
                  format_bytes(info.weight_bytes).c_str(), backend_name(info.backend));
    return buf;
}

} // namespace common
