/*
 * gptq.h — the public C API of libgptq.
 *
 * libgptq loads Llama-family Hugging Face checkpoints (fp32/fp16/bf16 safetensors or GPTQ
 * checkpoints), quantizes them with GPTQ, and runs them on the CPU or an NVIDIA GPU.
 *
 * Conventions (see README.md):
 *   - Every fallible call returns a gptq_status. On failure a human-readable message naming the
 *     problem is left in the calling thread's gptq_errmsg().
 *   - Parameter structs are filled by gptq_*_params_default(); their first field is struct_size,
 *     fields are only ever appended, flags are int32_t (0/1), never bool.
 *   - Buffers the caller passes always come with their size; a buffer too small gives
 *     GPTQ_ERR_BUFFER_SMALL and the size needed in the *_needed / *n_out argument.
 *   - The library never aborts, exits, throws across this boundary, or prints (unless a log
 *     callback is set).
 *   - gptq_model is immutable after load and may be shared by threads; a gptq_context is used by
 *     one thread at a time. A context keeps its model alive: free them in either order.
 *
 * This header is C99.
 */
#ifndef GPTQ_H
#define GPTQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(GPTQ_SHARED)
#  ifdef GPTQ_BUILD
#    define GPTQ_API __declspec(dllexport)
#  else
#    define GPTQ_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define GPTQ_API __attribute__((visibility("default")))
#else
#  define GPTQ_API
#endif

#define GPTQ_VERSION_MAJOR 0
#define GPTQ_VERSION_MINOR 1
#define GPTQ_VERSION_PATCH 0
#define GPTQ_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- status codes (append only) */

typedef int32_t gptq_status;

#define GPTQ_OK                   0
#define GPTQ_ERR_INVALID_ARG      1  /* a NULL handle, a negative size, an out-of-range value */
#define GPTQ_ERR_IO               2  /* a file that cannot be opened, read or written */
#define GPTQ_ERR_FORMAT           3  /* a file that is malformed: truncated, lying JSON, bad shapes */
#define GPTQ_ERR_UNSUPPORTED      4  /* well-formed but not supported: architecture, dtype, bits */
#define GPTQ_ERR_OOM              5  /* host or device memory exhausted */
#define GPTQ_ERR_BACKEND          6  /* the compute backend failed (CUDA error, no device, ...) */
#define GPTQ_ERR_BUFFER_SMALL     7  /* a caller's buffer is too small; the size needed is returned */
#define GPTQ_ERR_CONTEXT_FULL     8  /* a position past the context's n_ctx */
#define GPTQ_ERR_ABORTED          9  /* a callback asked to stop */
#define GPTQ_ERR_NUMERIC         10  /* NaN/Inf met where finite numbers are required */
#define GPTQ_ERR_INTERNAL        11  /* a bug in libgptq; the message says where */

/* Static, never-NULL text for a status code. */
GPTQ_API const char *gptq_status_str(gptq_status status);

/* The message of the last failed call on this thread ("" if none). Valid until the next call
 * into libgptq on this thread. */
GPTQ_API const char *gptq_errmsg(void);

/* "0.1.0"; compare with GPTQ_VERSION_STRING to detect a header/library mismatch. */
GPTQ_API const char *gptq_version(void);

/* Which optional parts this build has, e.g. "cpu cuda openblas mimalloc". */
GPTQ_API const char *gptq_build_info(void);

/* ---------------------------------------------------------------- logging and progress */

#define GPTQ_LOG_ERROR 0
#define GPTQ_LOG_WARN  1
#define GPTQ_LOG_INFO  2
#define GPTQ_LOG_DEBUG 3

typedef void (*gptq_log_callback)(int32_t level, const char *message, void *user_data);

/* Process-wide; NULL (the default) silences the library. Messages carry no trailing newline. */
GPTQ_API void gptq_set_log_callback(gptq_log_callback callback, void *user_data);

/* Progress of long work. `done` of `total` units of `stage` ("load", "quantize", "perplexity",
 * ...); `detail` may be NULL or a short text ("layer 3/8 mlp.down_proj err 1.2e-3").
 * Return nonzero to cancel: the call then returns GPTQ_ERR_ABORTED. */
typedef int32_t (*gptq_progress_callback)(const char *stage, int64_t done, int64_t total,
                                          const char *detail, void *user_data);

/* ---------------------------------------------------------------- backends */

#define GPTQ_BACKEND_AUTO 0  /* CUDA when this build has it and the device is present and supported, else CPU */
#define GPTQ_BACKEND_CPU  1
#define GPTQ_BACKEND_CUDA 2

/* 1 if this build has the CUDA backend and CUDA device 0 runs it (compute capability 8.0, Ampere, or
 * newer); an older GPU is refused with GPTQ_ERR_UNSUPPORTED and GPTQ_BACKEND_AUTO takes the CPU. */
GPTQ_API int32_t gptq_cuda_available(void);

/* ---------------------------------------------------------------- model */

typedef struct gptq_model gptq_model;
typedef struct gptq_context gptq_context;

typedef struct gptq_load_params {
    size_t struct_size;
    int32_t backend;      /* GPTQ_BACKEND_* */
    int32_t device;       /* CUDA device ordinal */
    int32_t n_threads;    /* CPU threads; 0 = all cores */
    gptq_progress_callback progress;
    void *progress_user_data;
} gptq_load_params;

GPTQ_API gptq_load_params gptq_load_params_default(void);

/* Loads a model directory (config.json, *.safetensors, tokenizer.model or a Hugging Face BPE
 * tokenizer.json, byte-level or SentencePiece-style). params may be NULL. */
GPTQ_API gptq_status gptq_load(const char *model_dir, const gptq_load_params *params,
                               gptq_model **out_model);

/* Releases the caller's reference; contexts still using the model keep it alive. NULL is fine. */
GPTQ_API void gptq_model_free(gptq_model *model);

typedef struct gptq_model_info {
    size_t struct_size;
    char architecture[64];   /* "llama", "mistral", "qwen2" */
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t intermediate_size;
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t max_position_embeddings;
    int32_t bos_token;       /* -1 if none */
    int32_t eos_token;       /* -1 if none */
    int32_t add_bos;         /* whether prompts get BOS by default */
    int32_t tied_embeddings;
    float rope_theta;
    float rms_norm_eps;
    int64_t n_params;        /* parameters as in the unquantized model */
    int64_t weight_bytes;    /* bytes of weights as held by the backend */
    /* quantization of the loaded checkpoint; bits = 0 for a float model */
    int32_t quant_bits;
    int32_t quant_group_size;
    int32_t quant_sym;
    int32_t quant_desc_act;
    int32_t backend;         /* GPTQ_BACKEND_CPU or GPTQ_BACKEND_CUDA, as chosen at load */
} gptq_model_info;

/* info->struct_size must be set by the caller (sizeof(gptq_model_info)). */
GPTQ_API gptq_status gptq_model_get_info(const gptq_model *model, gptq_model_info *info);

/* ---------------------------------------------------------------- tokenizer */

/* Encodes UTF-8 text. add_bos: 1 yes, 0 no, -1 as the model's configs say.
 * Writes at most n_max ids; *n_out gets the count (or the count needed, with BUFFER_SMALL). */
GPTQ_API gptq_status gptq_tokenize(const gptq_model *model, const char *text, size_t text_len,
                                   int32_t add_bos, int32_t *tokens, size_t n_max, size_t *n_out);

/* Decodes ids to UTF-8 text as the model's tokenizer does: SentencePiece drops the leading-space
 * marker of the first piece; tokenizer.json follows its decoder (byte-level: each id's bytes
 * joined); special tokens are skipped and invalid UTF-8 becomes U+FFFD. Writes a NUL-terminated string; *n_out gets its length without the
 * NUL (or the buffer size needed including it, with BUFFER_SMALL). */
GPTQ_API gptq_status gptq_detokenize(const gptq_model *model, const int32_t *tokens, size_t n_tokens,
                                     char *text, size_t text_size, size_t *n_out);

/* The raw piece of one id, e.g. "▁the", "<0x0A>" or (tokenizer.json) "Ġthe". Same buffer contract
 * as gptq_detokenize. */
GPTQ_API gptq_status gptq_token_piece(const gptq_model *model, int32_t token, char *text,
                                      size_t text_size, size_t *n_out);

/* ---------------------------------------------------------------- context and evaluation */

typedef struct gptq_context_params {
    size_t struct_size;
    int32_t n_ctx;       /* positions per sequence; 0 = min(max_position_embeddings, 4096) */
    int32_t n_seq_max;   /* sequences the context holds at once (batching); default 1 */
    int32_t n_batch;     /* most tokens one eval computes at a time (larger batches are split); default 512 */
    int32_t n_threads;   /* 0 = the model's */
} gptq_context_params;

GPTQ_API gptq_context_params gptq_context_params_default(void);

GPTQ_API gptq_status gptq_context_init(gptq_model *model, const gptq_context_params *params,
                                       gptq_context **out_ctx);
GPTQ_API void gptq_context_free(gptq_context *ctx);

/* Forgets sequence seq_id (its KV cache), or every sequence when seq_id < 0. */
GPTQ_API gptq_status gptq_context_reset(gptq_context *ctx, int32_t seq_id);

/* One evaluation: n_tokens entries of (token, pos, seq_id). Each token attends to the cached
 * positions 0..pos of its own sequence, which must have been evaluated before or earlier in this
 * batch. logits: NULL = logits of the last token of each sequence in the batch only; otherwise one
 * flag per token (nonzero = keep its logits). */
typedef struct gptq_batch {
    int32_t n_tokens;
    const int32_t *tokens;
    const int32_t *pos;     /* NULL: each sequence continues where it stopped */
    const int32_t *seq_id;  /* NULL: all sequence 0 */
    const int8_t *logits;
} gptq_batch;

GPTQ_API gptq_status gptq_eval(gptq_context *ctx, const gptq_batch *batch);

/* Logits (vocab_size floats) of the i-th token of the last batch; NULL and an error message if
 * that token's logits were not kept. Valid until the next eval on this context. */
GPTQ_API const float *gptq_get_logits(gptq_context *ctx, int32_t i);

/* Number of positions sequence seq_id holds (the next position it continues at). */
GPTQ_API int32_t gptq_context_seq_len(const gptq_context *ctx, int32_t seq_id);

/* ---------------------------------------------------------------- generation */

/* Called with each new token and the UTF-8 text it completes (whole characters only; may be empty
 * while a character is split across tokens). seq is the prompt's index. Return nonzero to stop. */
typedef int32_t (*gptq_token_callback)(int32_t seq, int32_t token, const char *text, size_t text_len,
                                       void *user_data);

typedef struct gptq_generate_params {
    size_t struct_size;
    int32_t max_tokens;       /* new tokens at most; default 256 */
    float temperature;        /* 0 = greedy; default 0.8 */
    int32_t top_k;            /* 0 = off; default 40 */
    float top_p;              /* 1 = off; default 0.95 */
    float min_p;              /* 0 = off; default 0.05 */
    float repeat_penalty;     /* 1 = off; default 1.1 */
    int32_t repeat_last_n;    /* window for the penalty; default 64 */
    uint64_t seed;            /* default 0x5eed */
    int32_t add_bos;          /* -1 = as the model says */
    int32_t stop_at_eos;      /* default 1 */
    const char *const *stop_strings; /* generation stops once the output ends with one of these */
    int32_t n_stop_strings;
    gptq_token_callback on_token;
    void *user_data;
} gptq_generate_params;

GPTQ_API gptq_generate_params gptq_generate_params_default(void);

/* Generates a continuation of prompt (in sequence 0, after resetting it). The text (without the
 * prompt) is written NUL-terminated to out (out may be NULL with out_size 0 when a callback
 * consumes the stream); *out_len gets its length. A stop string ends the text before it.
 * Returns GPTQ_ERR_ABORTED if the callback stopped it (the text so far is still written). */
GPTQ_API gptq_status gptq_generate(gptq_context *ctx, const char *prompt,
                                   const gptq_generate_params *params, char *out, size_t out_size,
                                   size_t *out_len);

/* Generates for n_prompts prompts at once (sequence i serves prompt i; the context needs
 * n_seq_max >= n_prompts). Each result is written to outs[i] (size out_sizes[i]) if outs is not
 * NULL. Each sequence samples with its own generator seeded with seed + i. */
GPTQ_API gptq_status gptq_generate_batch(gptq_context *ctx, const char *const *prompts, int32_t n_prompts,
                                         const gptq_generate_params *params, char *const *outs,
                                         const size_t *out_sizes, size_t *out_lens);

/* ---------------------------------------------------------------- perplexity */

/* The protocol of shared/reference/quality.md: text encoded once without BOS, consecutive chunks
 * of seq_len-1 tokens, each fed as [BOS] + chunk[:-1] from position 0 with a fresh cache, all
 * seq_len-1 targets scored, trailing partial chunk dropped; accumulated in double.
 * max_chunks <= 0 scores every chunk. Chunks are evaluated min(n_seq_max, n_batch / (seq_len-1))
 * at a time, one per sequence (the context's sequences are reset); the result is the same. */
GPTQ_API gptq_status gptq_perplexity(gptq_context *ctx, const char *text, size_t text_len, int32_t seq_len,
                                     int32_t max_chunks, gptq_progress_callback progress,
                                     void *progress_user_data, double *out_ppl, int64_t *out_n_tokens);

/* ---------------------------------------------------------------- quantization */

#define GPTQ_FORMAT_AUTO 0  /* v1 ("gptq") unless an asymmetric zero would overflow, then v2 */
#define GPTQ_FORMAT_V1   1
#define GPTQ_FORMAT_V2   2

/* Clipping search: when a group's grid is set, shrink its range by p = 1, 0.99, ..., 0.21 and
 * keep the p with the least error over the group's weights. */
#define GPTQ_CLIP_NONE     0  /* full min/max range, as the reference GPTQ */
#define GPTQ_CLIP_MSE      1  /* least sum |w - q(w)|^2.4 (the reference's optional "mse" search); default */
#define GPTQ_CLIP_HESSIAN  2  /* least sum H[k,k] (w - q(w))^2: weighted by how active input k is */

typedef struct gptq_quantize_params {
    size_t struct_size;
    int32_t bits;             /* 2, 3, 4 or 8; default 4 */
    int32_t group_size;       /* -1 = per output column, or a divisor of every K; default 128 */
    int32_t sym;              /* default 1 */
    int32_t desc_act;         /* act-order; default 1 */
    int32_t static_groups;    /* default 1 */
    int32_t true_sequential;  /* default 1 */
    float damp_percent;       /* fraction of the mean Hessian diagonal; default 0.01 */
    float damp_auto_increment;/* added on each Cholesky failure; default 0.01 (0 = no retry) */
    int32_t block_size;       /* lazy-update block; default 128 */
    int32_t fp16_scales_in_solve; /* quantize with the fp16-rounded scale; default 1 */
    int32_t checkpoint_format;/* GPTQ_FORMAT_*; default AUTO */
    /* calibration: tokens file wins over text file; neither = self-generated text */
    const char *calib_tokens_path; /* int32 little-endian rows of calib_seq_len tokens */
    const char *calib_text_path;   /* UTF-8 text; random windows are sampled from it */
    int32_t calib_n_samples;  /* windows; default 128 */
    int32_t calib_seq_len;    /* tokens per window; default 512 */
    uint64_t seed;            /* sampling of windows / self-generated text; default 0 */
    int32_t backend;          /* GPTQ_BACKEND_*; default AUTO */
    int32_t n_threads;        /* 0 = all cores */
    int64_t max_shard_bytes;  /* 0 = one file; default 2 GiB */
    gptq_progress_callback progress;
    void *progress_user_data;
    int32_t clip_search;      /* GPTQ_CLIP_*; default GPTQ_CLIP_MSE */
} gptq_quantize_params;

GPTQ_API gptq_quantize_params gptq_quantize_params_default(void);

/* Quantizes the model in model_dir layer by layer and writes a GPTQ checkpoint to out_dir (created;
 * written to a temporary directory and renamed into place only when complete). */
GPTQ_API gptq_status gptq_quantize(const char *model_dir, const char *out_dir,
                                   const gptq_quantize_params *params);

#ifdef __cplusplus
}
#endif

#endif /* GPTQ_H */
