/* cli_spec.c - the --speculative / --spec-k options (cli.h). */
#include <string.h>

#include "cli/cli.h"

int cli_speculation(const char *cmd, const cli_spec_args *a, preft_speculation *out) {
  memset(out, 0, sizeof *out);
  if (!a->kind || strcmp(a->kind, "off") == 0) {
    out->kind = PREFT_SPEC_OFF;
  } else if (strcmp(a->kind, "ngram") == 0) {
    out->kind = PREFT_SPEC_NGRAM;
  } else {
    fprintf(stderr, "preft %s: --speculative must be off or ngram, not '%s'\n", cmd, a->kind);
    return -1;
  }
  out->k = (int)a->k;
  return 0;
}
