/* cli_spec.c - the --speculative / --spec-k / --draft-model options (cli.h). */
#include <string.h>

#include "cli/cli.h"

int cli_speculation(const char *cmd, const cli_spec_args *a, preft_speculation *out) {
  memset(out, 0, sizeof *out);
  if (!a->kind) {
    out->kind = a->draft_model ? PREFT_SPEC_DRAFT : PREFT_SPEC_OFF;
  } else if (strcmp(a->kind, "off") == 0) {
    out->kind = PREFT_SPEC_OFF;
  } else if (strcmp(a->kind, "ngram") == 0) {
    out->kind = PREFT_SPEC_NGRAM;
  } else if (strcmp(a->kind, "draft") == 0) {
    out->kind = PREFT_SPEC_DRAFT;
  } else {
    fprintf(stderr, "preft %s: --speculative must be off, ngram or draft, not '%s'\n", cmd, a->kind);
    return -1;
  }
  if (out->kind == PREFT_SPEC_DRAFT && !a->draft_model) {
    fprintf(stderr, "preft %s: --speculative draft needs --draft-model DIR\n", cmd);
    return -1;
  }
  if (out->kind != PREFT_SPEC_DRAFT && a->draft_model) {
    fprintf(stderr, "preft %s: --draft-model goes with --speculative draft, not %s\n", cmd, a->kind);
    return -1;
  }
  out->k = (int)a->k;
  return 0;
}

int cli_load_draft(const cli_spec_args *a, preft_speculation *spec, preft_model **owned, preft_error *err) {
  *owned = NULL;
  if (spec->kind != PREFT_SPEC_DRAFT) return 0;
  if (preft_model_load(owned, a->draft_model, err) != 0) return preft_fail_prefix(err, "--draft-model");
  spec->draft_model = *owned;
  return 0;
}
