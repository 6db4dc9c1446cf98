/* cli_spec.c - the --speculative / --spec-k / --draft-model options (cli.h). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/json_util.h"
#include "engine/speculative.h"

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

/* The tokenizer.json of dir parsed (NULL: none there, or not JSON: the
 * model's config ids are still compared). */
static cJSON *load_tokenizer_json(const char *dir) {
  char *path = preft_path_join(dir, "tokenizer.json");
  preft_error ignored;
  cJSON *j = NULL;
  if (preft_json_load(path, &j, &ignored) != 0) j = NULL;
  free(path);
  return j;
}

/* Whether objects a and b hold equal values under name (or neither has it). */
static bool same_item(const cJSON *a, const cJSON *b, const char *name) {
  const cJSON *pa = cJSON_GetObjectItemCaseSensitive(a, name),
              *pb = cJSON_GetObjectItemCaseSensitive(b, name);
  return (!pa && !pb) || (pa && pb && cJSON_Compare(pa, pb, true));
}

/* Whether the tokenizer.json files of two directories hold the same
 * vocabulary (model.type, model.vocab, model.merges, added_tokens); true
 * when either has none. Names the first part that differs in *what. */
static bool same_vocabulary(const char *dir_a, const char *dir_b, const char **what) {
  cJSON *a = load_tokenizer_json(dir_a), *b = load_tokenizer_json(dir_b);
  *what = NULL;
  if (a && b) {
    const cJSON *ma = cJSON_GetObjectItemCaseSensitive(a, "model");
    const cJSON *mb = cJSON_GetObjectItemCaseSensitive(b, "model");
    static const char *const model_parts[] = {"type", "vocab", "merges"};
    for (size_t i = 0; !*what && i < sizeof model_parts / sizeof model_parts[0]; i++)
      if (!same_item(ma, mb, model_parts[i])) *what = model_parts[i];
    if (!*what && !same_item(a, b, "added_tokens")) *what = "added_tokens";
  }
  cJSON_Delete(a);
  cJSON_Delete(b);
  return *what == NULL;
}

int cli_load_draft(const cli_spec_args *a, const char *model_dir, const preft_model *target,
                   preft_speculation *spec, preft_model **owned, preft_error *err) {
  *owned = NULL;
  if (spec->kind != PREFT_SPEC_DRAFT) return 0;
  if (preft_model_load(owned, a->draft_model, err) != 0) return preft_fail_prefix(err, "--draft-model");
  const char *what = NULL;
  if (preft_draft_model_fits(*owned, target, err) != 0) {
    preft_fail_prefix(err, "--draft-model %s does not use the tokenizer of the model %s", a->draft_model,
                      model_dir);
  } else if (!same_vocabulary(a->draft_model, model_dir, &what)) {
    preft_fail(err,
               "--draft-model %s does not use the tokenizer of the model %s: their tokenizer.json files "
               "differ in %s",
               a->draft_model, model_dir, what);
  } else {
    spec->draft_model = *owned;
    return 0;
  }
  preft_model_free(*owned);
  *owned = NULL;
  return -1;
}
