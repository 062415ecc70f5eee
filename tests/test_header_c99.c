/* gptq.h must compile as strict C99 and link against libgptq. */
#include "gptq.h"

#include <stdio.h>
#include <string.h>

int main(void) {
    gptq_load_params lp = gptq_load_params_default();
    gptq_context_params cp = gptq_context_params_default();
    gptq_generate_params gp = gptq_generate_params_default();
    gptq_quantize_params qp = gptq_quantize_params_default();
    if (lp.struct_size != sizeof lp || cp.struct_size != sizeof cp || gp.struct_size != sizeof gp ||
        qp.struct_size != sizeof qp) {
        fprintf(stderr, "struct_size not set by the defaults\n");
        return 1;
    }
    if (strcmp(gptq_version(), GPTQ_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", GPTQ_VERSION_STRING, gptq_version());
        return 1;
    }
    if (strcmp(gptq_status_str(GPTQ_ERR_FORMAT), gptq_status_str(GPTQ_OK)) == 0) return 1;
    printf("C99 header ok, library %s (%s)\n", gptq_version(), gptq_build_info());
    return 0;
}
