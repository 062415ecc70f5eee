// shim.c — forwards C callbacks to the exported Go functions of callbacks.go (see shim.h).
#include "shim.h"
#include "_cgo_export.h"

static int32_t progress_cb(const char *stage, int64_t done, int64_t total, const char *detail, void *user_data) {
    return gptqgoProgress((char *)stage, done, total, (char *)detail, (uintptr_t)user_data);
}

static int32_t token_cb(int32_t seq, int32_t token, const char *text, size_t text_len, void *user_data) {
    return gptqgoToken(seq, token, (char *)text, text_len, (uintptr_t)user_data);
}

static void log_cb(int32_t level, const char *message, void *user_data) {
    (void)user_data;
    gptqgoLog(level, (char *)message);
}

gptq_status gptqgo_load(const char *dir, gptq_load_params *params, uintptr_t progress_handle,
                        gptq_model **out_model) {
    if (progress_handle) {
        params->progress = progress_cb;
        params->progress_user_data = (void *)progress_handle;
    }
    return gptq_load(dir, params, out_model);
}

gptq_status gptqgo_generate_batch(gptq_context *ctx, const char *const *prompts, int32_t n_prompts,
                                  gptq_generate_params *params, uintptr_t token_handle, char *const *outs,
                                  const size_t *out_sizes, size_t *out_lens) {
    if (token_handle) {
        params->on_token = token_cb;
        params->user_data = (void *)token_handle;
    }
    return gptq_generate_batch(ctx, prompts, n_prompts, params, outs, out_sizes, out_lens);
}

gptq_status gptqgo_perplexity(gptq_context *ctx, const char *text, size_t text_len, int32_t seq_len,
                              int32_t max_chunks, uintptr_t progress_handle, double *out_ppl,
                              int64_t *out_n_tokens) {
    return gptq_perplexity(ctx, text, text_len, seq_len, max_chunks, progress_handle ? progress_cb : NULL,
                           (void *)progress_handle, out_ppl, out_n_tokens);
}

gptq_status gptqgo_quantize(const char *model_dir, const char *out_dir, gptq_quantize_params *params,
                            uintptr_t progress_handle) {
    if (progress_handle) {
        params->progress = progress_cb;
        params->progress_user_data = (void *)progress_handle;
    }
    return gptq_quantize(model_dir, out_dir, params);
}

void gptqgo_set_log_callback(int enable) {
    gptq_set_log_callback(enable ? log_cb : NULL, NULL);
}
