/*
 * simple.c — the smallest complete libgptq program, in C99 with gptq.h only.
 *
 *   gptq-simple MODEL_DIR [PROMPT] [N_TOKENS]
 *
 * Loads a model directory, prints what it is, and streams a greedy continuation of PROMPT to
 * stdout. Every call's status is checked; on failure the library's message is printed and the
 * program exits 1.
 */
#include "gptq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints what failed, the library's explanation and the status name; returns 1 for main. */
static int report(const char *what, gptq_status status) {
    fprintf(stderr, "gptq-simple: %s: %s (%s)\n", what, gptq_errmsg(), gptq_status_str(status));
    return 1;
}

/* Called by gptq_generate with each new token's text: print it as it comes. */
static int32_t print_token(int32_t seq, int32_t token, const char *text, size_t text_len, void *user_data) {
    (void)seq;
    (void)token;
    (void)user_data;
    fwrite(text, 1, text_len, stdout);
    fflush(stdout);
    return 0; /* keep going */
}

static void usage(void) {
    printf("usage: gptq-simple MODEL_DIR [PROMPT] [N_TOKENS]\n\n"
           "Loads MODEL_DIR (a Llama-family Hugging Face or GPTQ checkpoint) and prints a greedy\n"
           "continuation of PROMPT (default \"Once upon a time\") of at most N_TOKENS tokens (default 64).\n");
}

int main(int argc, char **argv) {
    const char *model_dir;
    const char *prompt = "Once upon a time";
    int n_tokens = 64;
    gptq_model *model = NULL;
    gptq_context *ctx = NULL;
    gptq_model_info info;
    gptq_context_params cparams;
    gptq_generate_params gparams;
    gptq_status st;
    size_t out_len = 0;
    int rc = 1;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage();
        return argc < 2 ? 1 : 0;
    }
    model_dir = argv[1];
    if (argc > 2) prompt = argv[2];
    if (argc > 3) {
        char *end = NULL;
        long n = strtol(argv[3], &end, 10);
        if (*end != '\0' || n < 1 || n > 1000000) {
            fprintf(stderr, "gptq-simple: N_TOKENS must be a positive integer, got '%s'\n", argv[3]);
            return 1;
        }
        n_tokens = (int)n;
    }

    /* A header compiled against a different library version would misread the structs. */
    if (strcmp(gptq_version(), GPTQ_VERSION_STRING) != 0) {
        fprintf(stderr, "gptq-simple: header is %s but the library is %s\n", GPTQ_VERSION_STRING, gptq_version());
        return 1;
    }

    /* NULL params: default backend (CUDA when available), all cores. */
    st = gptq_load(model_dir, NULL, &model);
    if (st != GPTQ_OK) {
        fprintf(stderr, "gptq-simple: cannot load model '%s': %s (%s)\n", model_dir, gptq_errmsg(),
                gptq_status_str(st));
        return 1;
    }

    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    st = gptq_model_get_info(model, &info);
    if (st != GPTQ_OK) {
        rc = report("model info", st);
        goto done;
    }
    fprintf(stderr, "model: %s, %d layers, hidden %d, vocab %d, %.2fM params, %s, backend %s\n",
            info.architecture, info.n_layers, info.hidden_size, info.vocab_size, (double)info.n_params / 1e6,
            info.quant_bits ? "GPTQ" : "float", info.backend == GPTQ_BACKEND_CUDA ? "cuda" : "cpu");

    cparams = gptq_context_params_default();
    st = gptq_context_init(model, &cparams, &ctx);
    if (st != GPTQ_OK) {
        rc = report("context", st);
        goto done;
    }

    gparams = gptq_generate_params_default();
    gparams.max_tokens = n_tokens;
    gparams.temperature = 0.0f; /* greedy: the same output every run */
    gparams.on_token = print_token;

    printf("%s", prompt);
    fflush(stdout);
    /* The callback consumes the stream, so no output buffer is needed. */
    st = gptq_generate(ctx, prompt, &gparams, NULL, 0, &out_len);
    printf("\n");
    if (st != GPTQ_OK) {
        rc = report("generate", st);
        goto done;
    }
    rc = 0;

done:
    /* A context keeps its model alive: the order of these two does not matter. */
    gptq_context_free(ctx);
    gptq_model_free(model);
    return rc;
}
