// gptq.cpp — the C ABI: argument checks, handles, status + thread-local message, and the
// exception firewall. Every exported function either returns a status or cannot fail; no C++
// exception crosses this file's boundary.
#include "gptq.h"

#include "src/backend.h"
#include "src/common.h"
#include "src/context.h"
#include "src/generate.h"
#include "src/perplexity.h"
#include "src/quant/quantize.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>

struct gptq_model {
    std::shared_ptr<gptq::Model> model;
};

struct gptq_context {
    std::shared_ptr<gptq::Model> model;  // keeps the model alive whatever order things are freed in
    std::unique_ptr<gptq::Context> ctx;
};

namespace {

thread_local std::string t_errmsg;

void set_error(const char *msg) { t_errmsg = msg ? msg : ""; }

// Runs f, turning every exception into a status and a message.
template <class F> gptq_status guarded(F &&f) {
    try {
        t_errmsg.clear();
        f();
        return GPTQ_OK;
    } catch (const gptq::Error &e) {
        set_error(e.what());
        return e.status();
    } catch (const std::bad_alloc &) {
        set_error("out of host memory");
        return GPTQ_ERR_OOM;
    } catch (const std::exception &e) {
        set_error((std::string("internal error: ") + e.what()).c_str());
        return GPTQ_ERR_INTERNAL;
    } catch (...) {
        set_error("internal error: unknown exception");
        return GPTQ_ERR_INTERNAL;
    }
}

// Checks that a caller's params struct is at least as large as the fields we read.
template <class P> void check_struct(const P *p, const char *what) {
    if (p && p->struct_size < sizeof(size_t))
        gptq::fail(GPTQ_ERR_INVALID_ARG, "%s: struct_size %zu is not set (use %s_default())", what, p->struct_size, what);
}

// Copies caller params of possibly older (smaller) layout over the defaults.
template <class P> P merge_params(const P *p, P defaults) {
    if (!p) return defaults;
    size_t n = p->struct_size < sizeof(P) ? p->struct_size : sizeof(P);
    std::memcpy(static_cast<void *>(&defaults), p, n);
    defaults.struct_size = sizeof(P);
    return defaults;
}

gptq_status write_string(const std::string &s, char *buf, size_t size, size_t *n_out) {
    if (s.size() + 1 > size || !buf) {
        if (n_out) *n_out = s.size() + 1;
        gptq::fail(GPTQ_ERR_BUFFER_SMALL, "buffer of %zu bytes is too small: %zu needed", size, s.size() + 1);
    }
    std::memcpy(buf, s.data(), s.size());
    buf[s.size()] = '\0';
    if (n_out) *n_out = s.size();
    return GPTQ_OK;
}

#define REQUIRE_ARG(cond, ...)                                                   \
    do {                                                                         \
        if (!(cond)) gptq::fail(GPTQ_ERR_INVALID_ARG, __VA_ARGS__);              \
    } while (0)

} // namespace

extern "C" {

const char *gptq_status_str(gptq_status s) {
    switch (s) {
    case GPTQ_OK: return "ok";
    case GPTQ_ERR_INVALID_ARG: return "invalid argument";
    case GPTQ_ERR_IO: return "I/O error";
    case GPTQ_ERR_FORMAT: return "malformed file";
    case GPTQ_ERR_UNSUPPORTED: return "unsupported";
    case GPTQ_ERR_OOM: return "out of memory";
    case GPTQ_ERR_BACKEND: return "backend error";
    case GPTQ_ERR_BUFFER_SMALL: return "buffer too small";
    case GPTQ_ERR_CONTEXT_FULL: return "context full";
    case GPTQ_ERR_ABORTED: return "aborted";
    case GPTQ_ERR_NUMERIC: return "non-finite numbers";
    case GPTQ_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

const char *gptq_errmsg(void) { return t_errmsg.c_str(); }
const char *gptq_version(void) { return GPTQ_VERSION_STRING; }

const char *gptq_build_info(void) {
    return "cpu openblas"
#ifdef GPTQ_USE_CUDA
           " cuda"
#endif
#ifdef GPTQ_USE_MIMALLOC
           " mimalloc"
#endif
        ;
}

void gptq_set_log_callback(gptq_log_callback cb, void *user) { gptq::set_log_callback(cb, user); }

int32_t gptq_cuda_available(void) {
    try {
        return gptq::cuda_device_usable(0) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

gptq_load_params gptq_load_params_default(void) {
    gptq_load_params p;
    std::memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.backend = GPTQ_BACKEND_AUTO;
    return p;
}

gptq_status gptq_load(const char *model_dir, const gptq_load_params *params, gptq_model **out_model) {
    return guarded([&] {
        REQUIRE_ARG(out_model, "gptq_load: out_model is NULL");
        *out_model = nullptr;
        REQUIRE_ARG(model_dir, "gptq_load: model_dir is NULL");
        check_struct(params, "gptq_load_params");
        const gptq_load_params p = merge_params(params, gptq_load_params_default());
        REQUIRE_ARG(p.backend >= GPTQ_BACKEND_AUTO && p.backend <= GPTQ_BACKEND_CUDA, "gptq_load: unknown backend %d", p.backend);
        if (p.progress && p.progress("load", 0, 1, model_dir, p.progress_user_data))
            gptq::fail(GPTQ_ERR_ABORTED, "loading cancelled");
        std::shared_ptr<gptq::Model> m = gptq::load_model(model_dir);
        m->n_threads = gptq::resolve_threads(p.n_threads);
        int backend = p.backend;
        if (backend == GPTQ_BACKEND_AUTO) {
            const std::string why = gptq::cuda_device_unsupported(p.device);
            if (!why.empty() && gptq::cuda_device_count() > 0)
                gptq::log_msg(GPTQ_LOG_INFO, "using the CPU backend: %s", why.c_str());
            backend = why.empty() ? GPTQ_BACKEND_CUDA : GPTQ_BACKEND_CPU;
        }
        if (backend == GPTQ_BACKEND_CUDA) {
            m->backend = gptq::make_cuda_backend(*m, p.device);
        } else {
            m->backend = gptq::make_cpu_backend(*m, m->n_threads);
        }
        m->backend_kind = backend;
        if (p.progress && p.progress("load", 1, 1, model_dir, p.progress_user_data))
            gptq::fail(GPTQ_ERR_ABORTED, "loading cancelled");
        gptq::log_msg(GPTQ_LOG_INFO, "loaded %s: %s, %d layers, hidden %d, %s backend", model_dir,
                      m->cfg.architecture.c_str(), m->cfg.n_layers, m->cfg.hidden_size, m->backend->name());
        *out_model = new gptq_model{std::move(m)};
    });
}

void gptq_model_free(gptq_model *model) { delete model; }

gptq_status gptq_model_get_info(const gptq_model *model, gptq_model_info *info) {
    return guarded([&] {
        REQUIRE_ARG(model && info, "gptq_model_get_info: NULL argument");
        REQUIRE_ARG(info->struct_size >= sizeof(size_t) && info->struct_size <= sizeof(gptq_model_info),
                    "gptq_model_get_info: info->struct_size %zu is not set to sizeof(gptq_model_info)", info->struct_size);
        const size_t caller_size = info->struct_size;
        gptq_model_info r;
        std::memset(&r, 0, sizeof r);
        const gptq::Model &m = *model->model;
        const gptq::ModelConfig &c = m.cfg;
        std::snprintf(r.architecture, sizeof r.architecture, "%s", c.architecture.c_str());
        r.vocab_size = c.vocab_size;
        r.hidden_size = c.hidden_size;
        r.intermediate_size = c.intermediate_size;
        r.n_layers = c.n_layers;
        r.n_heads = c.n_heads;
        r.n_kv_heads = c.n_kv_heads;
        r.head_dim = c.head_dim;
        r.max_position_embeddings = c.max_position_embeddings;
        r.bos_token = m.tok->bos();
        r.eos_token = m.tok->eos();
        r.add_bos = c.add_bos ? 1 : 0;
        r.tied_embeddings = c.tie_word_embeddings ? 1 : 0;
        r.rope_theta = float(c.rope_theta);
        r.rms_norm_eps = c.rms_norm_eps;
        r.n_params = m.n_params();
        r.weight_bytes = m.backend ? m.backend->weight_bytes() : 0;
        if (c.quant.present) {
            r.quant_bits = c.quant.bits;
            r.quant_group_size = c.quant.group_size;
            r.quant_sym = c.quant.sym;
            r.quant_desc_act = c.quant.desc_act;
        }
        r.backend = m.backend_kind;
        r.struct_size = caller_size;
        std::memcpy(info, &r, caller_size);
    });
}

gptq_status gptq_tokenize(const gptq_model *model, const char *text, size_t text_len, int32_t add_bos,
                          int32_t *tokens, size_t n_max, size_t *n_out) {
    return guarded([&] {
        REQUIRE_ARG(model, "gptq_tokenize: model is NULL");
        REQUIRE_ARG(text || text_len == 0, "gptq_tokenize: text is NULL");
        REQUIRE_ARG(tokens || n_max == 0, "gptq_tokenize: tokens is NULL");
        const gptq::Model &m = *model->model;
        const bool bos = add_bos < 0 ? m.cfg.add_bos : add_bos != 0;
        std::vector<int> ids = m.tok->encode(std::string_view(text ? text : "", text_len), bos);
        if (n_out) *n_out = ids.size();
        if (ids.size() > n_max)
            gptq::fail(GPTQ_ERR_BUFFER_SMALL, "gptq_tokenize: %zu tokens do not fit in %zu", ids.size(), n_max);
        for (size_t i = 0; i < ids.size(); i++) tokens[i] = ids[i];
    });
}

gptq_status gptq_detokenize(const gptq_model *model, const int32_t *tokens, size_t n_tokens, char *text,
                            size_t text_size, size_t *n_out) {
    return guarded([&] {
        REQUIRE_ARG(model, "gptq_detokenize: model is NULL");
        REQUIRE_ARG(tokens || n_tokens == 0, "gptq_detokenize: tokens is NULL");
        const gptq::Model &m = *model->model;
        std::vector<int> ids(tokens, tokens + n_tokens);
        write_string(m.tok->decode(ids), text, text_size, n_out);
    });
}

gptq_status gptq_token_piece(const gptq_model *model, int32_t token, char *text, size_t text_size, size_t *n_out) {
    return guarded([&] {
        REQUIRE_ARG(model, "gptq_token_piece: model is NULL");
        write_string(model->model->tok->piece(token), text, text_size, n_out);
    });
}

gptq_context_params gptq_context_params_default(void) {
    gptq_context_params p;
    std::memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.n_ctx = 0;
    p.n_seq_max = 1;
    p.n_batch = 512;
    return p;
}

gptq_status gptq_context_init(gptq_model *model, const gptq_context_params *params, gptq_context **out_ctx) {
    return guarded([&] {
        REQUIRE_ARG(out_ctx, "gptq_context_init: out_ctx is NULL");
        *out_ctx = nullptr;
        REQUIRE_ARG(model, "gptq_context_init: model is NULL");
        check_struct(params, "gptq_context_params");
        gptq_context_params p = merge_params(params, gptq_context_params_default());
        const gptq::ModelConfig &c = model->model->cfg;
        if (p.n_ctx == 0) p.n_ctx = c.max_position_embeddings < 4096 ? c.max_position_embeddings : 4096;
        REQUIRE_ARG(p.n_ctx > 0 && p.n_ctx <= (1 << 20), "gptq_context_init: n_ctx %d out of range", p.n_ctx);
        REQUIRE_ARG(p.n_seq_max > 0 && p.n_seq_max <= 4096, "gptq_context_init: n_seq_max %d out of range", p.n_seq_max);
        REQUIRE_ARG(p.n_batch > 0 && p.n_batch <= (1 << 16), "gptq_context_init: n_batch %d out of range", p.n_batch);
        auto ctx = std::make_unique<gptq_context>();
        ctx->model = model->model;
        ctx->ctx = std::make_unique<gptq::Context>(model->model, p.n_ctx, p.n_seq_max, p.n_batch);
        *out_ctx = ctx.release();
    });
}

void gptq_context_free(gptq_context *ctx) { delete ctx; }

gptq_status gptq_context_reset(gptq_context *ctx, int32_t seq_id) {
    return guarded([&] {
        REQUIRE_ARG(ctx, "gptq_context_reset: ctx is NULL");
        ctx->ctx->reset(seq_id);
    });
}

int32_t gptq_context_seq_len(const gptq_context *ctx, int32_t seq_id) {
    if (!ctx || seq_id < 0 || seq_id >= ctx->ctx->n_seq()) return -1;
    return ctx->ctx->seq_len(seq_id);
}

gptq_status gptq_eval(gptq_context *ctx, const gptq_batch *batch) {
    return guarded([&] {
        REQUIRE_ARG(ctx && batch, "gptq_eval: NULL argument");
        REQUIRE_ARG(batch->n_tokens > 0 && batch->tokens, "gptq_eval: empty batch");
        const int n = batch->n_tokens;
        std::vector<gptq::EvalToken> toks(static_cast<size_t>(n));
        std::vector<int> next(static_cast<size_t>(ctx->ctx->n_seq()));
        for (int s = 0; s < ctx->ctx->n_seq(); s++) next[size_t(s)] = ctx->ctx->seq_len(s);
        for (int i = 0; i < n; i++) {
            const int seq = batch->seq_id ? batch->seq_id[i] : 0;
            REQUIRE_ARG(seq >= 0 && seq < ctx->ctx->n_seq(), "gptq_eval: token %d: sequence %d outside [0, %d)", i, seq,
                        ctx->ctx->n_seq());
            const int pos = batch->pos ? batch->pos[i] : next[size_t(seq)];
            next[size_t(seq)] = pos + 1;
            toks[size_t(i)] = {batch->tokens[i], pos, seq};
        }
        ctx->ctx->eval(toks.data(), n, batch->logits);
    });
}

const float *gptq_get_logits(gptq_context *ctx, int32_t i) {
    const float *out = nullptr;
    gptq_status st = guarded([&] {
        REQUIRE_ARG(ctx, "gptq_get_logits: ctx is NULL");
        out = ctx->ctx->logits(i);
    });
    return st == GPTQ_OK ? out : nullptr;
}

gptq_generate_params gptq_generate_params_default(void) {
    gptq_generate_params p;
    std::memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.max_tokens = 256;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = 64;
    p.seed = 0x5eed;
    p.add_bos = -1;
    p.stop_at_eos = 1;
    return p;
}

static gptq::GenerateOptions to_options(const gptq_generate_params &p) {
    REQUIRE_ARG(p.max_tokens >= 0, "max_tokens %d is negative", p.max_tokens);
    REQUIRE_ARG(p.top_p > 0 && p.top_p <= 1, "top_p %g outside (0, 1]", double(p.top_p));
    REQUIRE_ARG(p.min_p >= 0 && p.min_p <= 1, "min_p %g outside [0, 1]", double(p.min_p));
    REQUIRE_ARG(p.repeat_penalty > 0, "repeat_penalty %g must be positive", double(p.repeat_penalty));
    REQUIRE_ARG(p.n_stop_strings >= 0 && (p.n_stop_strings == 0 || p.stop_strings), "stop_strings is NULL");
    gptq::GenerateOptions o;
    o.sampler.temperature = p.temperature;
    o.sampler.top_k = p.top_k;
    o.sampler.top_p = p.top_p;
    o.sampler.min_p = p.min_p;
    o.sampler.repeat_penalty = p.repeat_penalty;
    o.sampler.repeat_last_n = p.repeat_last_n;
    o.sampler.seed = p.seed;
    o.max_tokens = p.max_tokens;
    o.add_bos = p.add_bos;
    o.stop_at_eos = p.stop_at_eos != 0;
    for (int i = 0; i < p.n_stop_strings; i++) {
        REQUIRE_ARG(p.stop_strings[i], "stop_strings[%d] is NULL", i);
        o.stop_strings.emplace_back(p.stop_strings[i]);
    }
    o.on_token = p.on_token;
    o.user_data = p.user_data;
    return o;
}

gptq_status gptq_generate_batch(gptq_context *ctx, const char *const *prompts, int32_t n_prompts,
                                const gptq_generate_params *params, char *const *outs, const size_t *out_sizes,
                                size_t *out_lens) {
    bool aborted = false;
    gptq_status st = guarded([&] {
        REQUIRE_ARG(ctx, "gptq_generate: ctx is NULL");
        REQUIRE_ARG(prompts && n_prompts > 0, "gptq_generate: no prompts");
        REQUIRE_ARG(!outs || out_sizes, "gptq_generate: outs given without out_sizes");
        check_struct(params, "gptq_generate_params");
        const gptq_generate_params p = merge_params(params, gptq_generate_params_default());
        std::vector<std::string> ps;
        for (int i = 0; i < n_prompts; i++) {
            REQUIRE_ARG(prompts[i], "gptq_generate: prompt %d is NULL", i);
            ps.emplace_back(prompts[i]);
        }
        gptq::GenerateResult r = gptq::generate(*ctx->ctx, ps, to_options(p));
        aborted = r.aborted;
        bool small = false;
        size_t need = 0;
        for (int i = 0; i < n_prompts; i++) {
            const std::string &t = r.texts[size_t(i)];
            if (out_lens) out_lens[i] = t.size();
            if (outs && outs[i]) {
                const size_t cap = out_sizes[i];
                if (cap == 0) { small = true; need = std::max(need, t.size() + 1); continue; }
                const size_t n = std::min(cap - 1, t.size());
                std::memcpy(outs[i], t.data(), n);
                outs[i][n] = '\0';
                if (n < t.size()) { small = true; need = std::max(need, t.size() + 1); }
            }
        }
        if (small)
            gptq::fail(GPTQ_ERR_BUFFER_SMALL, "gptq_generate: output truncated; %zu bytes needed", need);
    });
    if (st == GPTQ_OK && aborted) {
        set_error("generation stopped by the token callback");
        return GPTQ_ERR_ABORTED;
    }
    return st;
}

gptq_status gptq_generate(gptq_context *ctx, const char *prompt, const gptq_generate_params *params, char *out,
                          size_t out_size, size_t *out_len) {
    char *outs[1] = {out};
    size_t sizes[1] = {out_size};
    return gptq_generate_batch(ctx, &prompt, 1, params, out ? outs : nullptr, out ? sizes : nullptr, out_len);
}

gptq_status gptq_perplexity(gptq_context *ctx, const char *text, size_t text_len, int32_t seq_len, int32_t max_chunks,
                            gptq_progress_callback progress, void *progress_user_data, double *out_ppl,
                            int64_t *out_n_tokens) {
    return guarded([&] {
        REQUIRE_ARG(ctx && text && out_ppl, "gptq_perplexity: NULL argument");
        gptq::PerplexityResult r = gptq::perplexity(*ctx->ctx, std::string_view(text, text_len), seq_len, max_chunks,
                                                    progress, progress_user_data);
        *out_ppl = r.ppl;
        if (out_n_tokens) *out_n_tokens = r.n_tokens;
    });
}

gptq_quantize_params gptq_quantize_params_default(void) {
    gptq_quantize_params p;
    std::memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.bits = 4;
    p.group_size = 128;
    p.sym = 1;
    p.desc_act = 1;
    p.static_groups = 1;
    p.true_sequential = 1;
    p.damp_percent = 0.01f;
    p.damp_auto_increment = 0.01f;
    p.block_size = 128;
    p.fp16_scales_in_solve = 1;
    p.clip_search = GPTQ_CLIP_MSE;
    p.checkpoint_format = GPTQ_FORMAT_AUTO;
    p.calib_n_samples = 128;
    p.calib_seq_len = 512;
    p.seed = 0;
    p.backend = GPTQ_BACKEND_AUTO;
    p.max_shard_bytes = int64_t(2) << 30;
    return p;
}

gptq_status gptq_quantize(const char *model_dir, const char *out_dir, const gptq_quantize_params *params) {
    return guarded([&] {
        REQUIRE_ARG(model_dir && out_dir, "gptq_quantize: model_dir and out_dir are required");
        check_struct(params, "gptq_quantize_params");
        const gptq_quantize_params p = merge_params(params, gptq_quantize_params_default());
        gptq::quantize_model(model_dir, out_dir, p);
    });
}

} // extern "C"
