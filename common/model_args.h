// model_args.h — the flags every tool shares (-m/--model, -t/--threads, --backend, -v) and the
// load-or-explain helpers built on gptq.h.
//
// Error policy of the tools: every failed library call prints "<tool>: <what>: <gptq_errmsg()>"
// to stderr and the tool exits 1.
#pragma once

#include "gptq.h"

#include <cstdint>
#include <string>

namespace common {

class ArgParser;
class ProgressBar;

struct ModelArgs {
    std::string model_dir;
    int32_t threads = 0;          // 0 = all cores
    std::string backend = "auto"; // cpu | cuda | auto
    int32_t verbose = 0;
};

// Adds -m/--model (unless with_model_flag is false: the tool takes the model another way),
// -t/--threads, --backend and -v/--verbose.
void add_model_args(ArgParser &parser, ModelArgs *args, bool with_model_flag = true);

// "auto" | "cpu" | "cuda" -> GPTQ_BACKEND_*; false for anything else.
bool parse_backend(const std::string &name, int32_t *out);
const char *backend_name(int32_t backend);

// Routes the library's log messages to stderr: warnings and errors, plus info when verbose
// (debug too when verbose >= 2).
void install_log_handler(int32_t verbose);

// Prints "<program>: <what>: <errmsg> (<status name>)" to stderr and exits 1.
[[noreturn]] void die(const std::string &program, const std::string &what, gptq_status status);

// Loads args.model_dir on args.backend with args.threads, drawing load progress on bar (may be
// NULL). On failure: die() with a message naming the directory.
gptq_model *load_model_or_die(const std::string &program, const ModelArgs &args, ProgressBar *bar);

// Same, for a directory other than args.model_dir (e.g. the quantized output).
gptq_model *load_model_or_die(const std::string &program, const std::string &dir, const ModelArgs &args,
                              ProgressBar *bar);

// One line describing a loaded model: "llama, 6 layers, hidden 256, vocab 8192, 6.8M params,
// bf16->cpu 13.6 MB" (quantization shown when present).
std::string describe_model(const gptq_model *model);

} // namespace common
