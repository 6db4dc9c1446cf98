/* fuzz_dockerfile.c - libFuzzer target: the Dockerfile subset of task
 * environments (src/tasks/dockerfile.c), and Docker's word processing
 * (quotes, escapes, ${...}) on every argument of what it accepts. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "tasks/dockerfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  preft_dockerfile df;
  preft_error err;
  if (preft_dockerfile_parse((const char *)data, size, "Dockerfile", &df, &err) != 0) return 0;
  preft_df_vars vars = {0};
  preft_df_vars_set(&vars, "A", "1");
  preft_df_vars_set(&vars, "EMPTY", "");
  for (int i = 0; i < df.n; i++)
    for (int k = 0; k < df.v[i].n_args; k++) {
      if (!df.v[i].args[k]) continue;
      char *s = preft_df_expand(df.v[i].args[k], &vars, &err);
      if (s && df.v[i].kind == PREFT_DF_ENV && k % 2 == 1) preft_df_vars_set(&vars, df.v[i].args[k - 1], s);
      free(s);
    }
  preft_df_vars_free(&vars);
  preft_dockerfile_free(&df);
  return 0;
}
