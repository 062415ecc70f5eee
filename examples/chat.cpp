// chat.cpp — gptq-chat: interactive chat, or one-shot generation for scripts.
//
//   gptq-chat -m DIR                      interactive; /reset clears the conversation, /quit leaves
//   gptq-chat -m DIR -p "Once upon"       prints the continuation and exits
//   echo "Once upon" | gptq-chat -m DIR   the same, prompt read from stdin (when it is not a tty)
//
// The conversation is kept the simple way: every turn re-renders the whole history with the chat
// template and gptq_generate evaluates it again from position 0. That costs a prompt evaluation
// per turn but needs nothing beyond gptq_generate; when the history no longer fits the context,
// the oldest turns are dropped.
#include "gptq.h"

#include "args.h"
#include "chat_template.h"
#include "model_args.h"
#include "signals.h"
#include "stream_printer.h"
#include "util.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

const char *kProgram = "gptq-chat";

struct Options {
    common::ModelArgs model;
    std::string prompt;
    std::string template_name = "auto";
    std::string system;
    std::vector<std::string> stops;
    int32_t n_ctx = 0;
    int32_t add_bos = -1;
    int32_t ignore_eos = 0;
    gptq_generate_params gen = gptq_generate_params_default();
};

// The token callback's state: the printer cutting at stop strings, and a token count.
struct StreamState {
    common::StreamPrinter *printer;
    int32_t n_tokens = 0;
};

int32_t on_token(int32_t seq, int32_t token, const char *text, size_t len, void *user_data) {
    auto *st = static_cast<StreamState *>(user_data);
    st->n_tokens++;
    bool stop = st->printer->push(text, len);
    return stop || common::interrupted() ? 1 : 0;
}

class Chat {
public:
    Chat(const Options &opt, gptq_model *model, gptq_context *ctx, common::ChatTemplate tmpl, int32_t n_ctx)
        : opt_(opt), model_(model), ctx_(ctx), tmpl_(tmpl), n_ctx_(n_ctx) {
        stops_ = common::stop_strings(tmpl);
        stops_.insert(stops_.end(), opt.stops.begin(), opt.stops.end());
        reset();
    }

    void reset() {
        history_.clear();
        if (!opt_.system.empty()) history_.push_back({"system", opt_.system});
    }

    // Sends one user message, streams the reply to stdout. Returns the status of gptq_generate
    // (GPTQ_OK also when a stop string or Ctrl-C ended the reply).
    gptq_status turn(const std::string &user_text, bool *was_interrupted) {
        history_.push_back({"user", user_text});
        std::string prompt;
        int32_t max_tokens = opt_.gen.max_tokens;
        gptq_status st = fit_history(&prompt, &max_tokens);
        if (st != GPTQ_OK) {
            history_.pop_back();
            return st;
        }

        common::StreamPrinter printer(stdout, stops_);
        StreamState state{&printer};
        std::vector<const char *> stop_ptrs;
        for (auto &s : stops_) stop_ptrs.push_back(s.c_str());

        gptq_generate_params gp = opt_.gen;
        gp.max_tokens = max_tokens;
        gp.add_bos = opt_.add_bos;
        gp.stop_at_eos = opt_.ignore_eos ? 0 : 1;
        gp.stop_strings = stop_ptrs.empty() ? nullptr : stop_ptrs.data();
        gp.n_stop_strings = (int32_t)stop_ptrs.size();
        gp.on_token = on_token;
        gp.user_data = &state;

        double t0 = common::now_seconds();
        size_t out_len = 0;
        st = gptq_generate(ctx_, prompt.c_str(), &gp, nullptr, 0, &out_len);
        double dt = common::now_seconds() - t0;
        *was_interrupted = common::interrupted();
        // ABORTED is what our own callback asked for (a stop string we cut, or Ctrl-C).
        if (st == GPTQ_ERR_ABORTED && (printer.stopped() || *was_interrupted)) st = GPTQ_OK;
        if (!printer.stopped()) printer.finish();
        if (st != GPTQ_OK) {
            history_.pop_back();
            return st;
        }
        history_.push_back({"assistant", printer.text()});
        if (opt_.model.verbose)
            std::fprintf(stderr, "\n[%d tokens in %.2f s, %.1f tokens/s, prompt %s]\n", state.n_tokens, dt,
                         dt > 0 ? state.n_tokens / dt : 0.0, common::template_name(tmpl_));
        return GPTQ_OK;
    }

private:
    // Renders the history; drops the oldest exchanges while prompt + reply would overflow the
    // context, and shortens the reply budget when even the last message alone leaves too little.
    gptq_status fit_history(std::string *prompt, int32_t *max_tokens) {
        for (;;) {
            common::SpecialTexts special;
            special.bos.clear();  // gptq_generate adds the real BOS id; see chat_template.h
            special.eos.clear();
            *prompt = common::render_chat(tmpl_, history_, true, special);
            size_t n = 0;
            gptq_status st = count_tokens(*prompt, &n);
            if (st != GPTQ_OK) return st;
            int64_t room = (int64_t)n_ctx_ - (int64_t)n;
            if (room >= *max_tokens) return GPTQ_OK;
            size_t first = (!history_.empty() && history_[0].role == "system") ? 1 : 0;
            if (history_.size() - first > 1) {
                // Drop the oldest user message and its reply.
                history_.erase(history_.begin() + first,
                               history_.begin() + std::min(first + 2, history_.size() - 1));
                std::fprintf(stderr, "[context full: dropped the oldest turn]\n");
                continue;
            }
            if (room < 1) {
                std::fprintf(stderr, "%s: the prompt is %zu tokens, the context holds %d\n", kProgram, n, n_ctx_);
                return GPTQ_ERR_CONTEXT_FULL;
            }
            std::fprintf(stderr, "[reply limited to %lld tokens by the context size]\n", (long long)room);
            *max_tokens = (int32_t)room;
            return GPTQ_OK;
        }
    }

    gptq_status count_tokens(const std::string &text, size_t *n) {
        // One token per byte plus BOS and a dummy-prefix piece is the most SentencePiece makes;
        // BUFFER_SMALL (with the size needed) covers any other tokenizer.
        std::vector<int32_t> ids(text.size() + 16);
        gptq_status st = gptq_tokenize(model_, text.data(), text.size(), opt_.add_bos, ids.data(), ids.size(), n);
        if (st == GPTQ_ERR_BUFFER_SMALL) {
            ids.resize(*n);
            st = gptq_tokenize(model_, text.data(), text.size(), opt_.add_bos, ids.data(), ids.size(), n);
        }
        return st;
    }

    const Options &opt_;
    gptq_model *model_;
    gptq_context *ctx_;
    common::ChatTemplate tmpl_;
    int32_t n_ctx_;
    std::vector<std::string> stops_;
    std::vector<common::ChatMessage> history_;
};

// Reads one message from the terminal; a line ending in '\' continues on the next line.
// Returns false at end of input or on Ctrl-C.
bool read_message(std::string *msg) {
    msg->clear();
    std::string line;
    std::fputs("> ", stdout);
    std::fflush(stdout);
    for (;;) {
        if (!std::getline(std::cin, line)) return false;
        if (!line.empty() && line.back() == '\\') {
            line.pop_back();
            *msg += line + "\n";
            std::fputs(". ", stdout);
            std::fflush(stdout);
            continue;
        }
        *msg += line;
        return true;
    }
}

void add_sampling_args(common::ArgParser &p, Options *o) {
    p.add_int("-n,--n-predict", "N", "new tokens at most per reply", &o->gen.max_tokens);
    p.add_float("--temp", "T", "temperature, 0 = greedy", &o->gen.temperature);
    p.add_int("--top-k", "K", "sample among the K most likely tokens, 0 = off", &o->gen.top_k);
    p.add_float("--top-p", "P", "nucleus sampling mass, 1 = off", &o->gen.top_p);
    p.add_float("--min-p", "P", "drop tokens below P x the top probability, 0 = off", &o->gen.min_p);
    p.add_float("--repeat-penalty", "X", "penalty for recently seen tokens, 1 = off", &o->gen.repeat_penalty);
    p.add_int("--repeat-last-n", "N", "window of the repeat penalty", &o->gen.repeat_last_n);
    p.add_uint64("--seed", "N", "sampling seed", &o->gen.seed);
}

} // namespace

int main(int argc, char **argv) {
    Options opt;
    common::ArgParser parser(kProgram, "-m DIR [-p PROMPT] [options]",
                             "Chat with a model, streaming its replies; or, with -p or a prompt on stdin,\n"
                             "print one continuation and exit.");
    common::add_model_args(parser, &opt.model);
    parser.add_string("-p,--prompt", "TEXT", "one-shot: print the continuation of TEXT and exit", &opt.prompt);
    parser.add_string("--template", "NAME",
                      "chat template: auto (from the model's tokenizer_config.json), plain, llama2, chatml, zephyr",
                      &opt.template_name);
    parser.add_string("-s,--system", "TEXT", "system prompt", &opt.system);
    add_sampling_args(parser, &opt);
    parser.add_int("-c,--ctx-size", "N", "context positions, 0 = the model's (at most 4096)", &opt.n_ctx);
    parser.add("--stop", "TEXT", "also stop a reply at TEXT (repeatable)", [&opt](const std::string &v) {
        opt.stops.push_back(v);
        return std::string();
    });
    parser.add_switch("--bos", "always start the prompt with BOS", &opt.add_bos, 1);
    parser.add_switch("--no-bos", "never start the prompt with BOS (default: as the model says)", &opt.add_bos, 0);
    parser.add_switch("--ignore-eos", "keep generating past the end-of-sequence token", &opt.ignore_eos, 1);
    parser.set_epilog("In a chat: /reset forgets the conversation, /quit (or Ctrl-D) leaves, Ctrl-C stops a reply.\n"
                      "Without a chat_template in tokenizer_config.json the plain template is used: the\n"
                      "conversation is one growing text, which suits base (not chat-tuned) models.");
    parser.parse_or_exit(argc, argv);

    bool one_shot = parser.was_set("-p");
    if (!one_shot && !isatty(STDIN_FILENO)) {
        // Scripts: the whole of stdin is the prompt (one trailing newline dropped, as $(...) does).
        std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
        if (!all.empty() && all.back() == '\n') all.pop_back();
        opt.prompt = all;
        one_shot = true;
    }

    common::ChatTemplate tmpl = common::ChatTemplate::Plain;
    std::string why = "--template";
    if (opt.template_name == "auto") {
        if (!opt.model.model_dir.empty()) tmpl = common::detect_template_for_model(opt.model.model_dir, &why);
    } else if (!common::parse_template_name(opt.template_name, &tmpl)) {
        std::fprintf(stderr, "%s: unknown template '%s' (use auto, plain, llama2, chatml or zephyr)\n", kProgram,
                     opt.template_name.c_str());
        return 1;
    }

    common::install_log_handler(opt.model.verbose);
    common::install_interrupt_handler();
    gptq_model *model = common::load_model_or_die(kProgram, opt.model, nullptr);
    gptq_model_info info = {};
    info.struct_size = sizeof info;
    gptq_status st = gptq_model_get_info(model, &info);
    if (st != GPTQ_OK) common::die(kProgram, "model info", st);

    gptq_context_params cp = gptq_context_params_default();
    cp.n_ctx = opt.n_ctx;
    cp.n_threads = opt.model.threads;
    gptq_context *ctx = nullptr;
    st = gptq_context_init(model, &cp, &ctx);
    if (st != GPTQ_OK) common::die(kProgram, "cannot create a context", st);
    int32_t n_ctx = opt.n_ctx > 0 ? opt.n_ctx
                                  : std::min<int32_t>(info.max_position_embeddings > 0 ? info.max_position_embeddings
                                                                                      : 4096,
                                                      4096);

    Chat chat(opt, model, ctx, tmpl, n_ctx);
    int rc = 0;
    if (one_shot) {
        bool intr = false;
        st = chat.turn(opt.prompt, &intr);
        std::fputc('\n', stdout);
        if (st != GPTQ_OK) {
            std::fprintf(stderr, "%s: generation failed: %s (%s)\n", kProgram, gptq_errmsg(), gptq_status_str(st));
            rc = 1;
        } else if (intr) {
            rc = 130;
        }
    } else {
        std::fprintf(stderr, "%s: %s\n", kProgram, common::describe_model(model).c_str());
        std::fprintf(stderr, "template: %s (%s)\n", common::template_name(tmpl), why.c_str());
        std::fprintf(stderr, "/reset forgets the conversation, /quit leaves, Ctrl-C stops a reply.\n");
        std::string msg;
        while (read_message(&msg)) {
            if (msg == "/quit" || msg == "/exit") break;
            if (msg == "/reset") {
                chat.reset();
                std::fprintf(stderr, "[conversation cleared]\n");
                continue;
            }
            if (msg.empty()) continue;
            bool intr = false;
            st = chat.turn(msg, &intr);
            std::fputc('\n', stdout);
            if (intr) {
                std::fprintf(stderr, "[reply stopped]\n");
                common::clear_interrupted();
            }
            if (st != GPTQ_OK)
                std::fprintf(stderr, "%s: %s (%s)\n", kProgram, gptq_errmsg(), gptq_status_str(st));
        }
        if (common::interrupted()) std::fputc('\n', stdout);
    }
    gptq_context_free(ctx);
    gptq_model_free(model);
    return rc;
}
