/* shim.h — C helpers for the Go binding.
 *
 * They install the Go callbacks into the C parameter structs. The Go side passes a cgo.Handle as
 * an integer; only C turns it into the void* user_data, so Go never converts an integer into a
 * pointer. A handle of 0 means "no callback". */
#ifndef GPTQ_GO_SHIM_H
#define GPTQ_GO_SHIM_H

#include <stdint.h>
#include <stdlib.h>
#include "gptq.h"

gptq_status gptqgo_load(const char *dir, gptq_load_params *params, uintptr_t progress_handle,
                        gptq_model **out_model);
gptq_status gptqgo_generate_batch(gptq_context *ctx, const char *const *prompts, int32_t n_prompts,
                                  gptq_generate_params *params, uintptr_t token_handle, char *const *outs,
                                  const size_t *out_sizes, size_t *out_lens);
gptq_status gptqgo_perplexity(gptq_context *ctx, const char *text, size_t text_len, int32_t seq_len,
                              int32_t max_chunks, uintptr_t progress_handle, double *out_ppl,
                              int64_t *out_n_tokens);
gptq_status gptqgo_quantize(const char *model_dir, const char *out_dir, gptq_quantize_params *params,
                            uintptr_t progress_handle);
void gptqgo_set_log_callback(int enable);

#endif
