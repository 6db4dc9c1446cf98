/* cli_common.c - what the commands that run a model share: loading the
 * model, tokenizer and adapter, and writing JSON results (see cli.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "io/gguf.h"
#include "io/json_util.h"

/* Whether dir holds a tokenizer (tokenizer.json or vocab.txt), or is a GGUF
 * file with a vocabulary. */
bool cli_has_tokenizer(const char *dir) {
  if (preft_gguf_is_file(dir)) {
    preft_gguf_file f;
    preft_error e;
    if (preft_gguf_open(&f, dir, &e) != 0) return false;
    const char *model = NULL;
    bool yes = preft_gguf_get_str(&f, "tokenizer.ggml.model", &model, &e) == 0 && strcmp(model, "none") &&
               strcmp(model, "no_vocab");
    preft_gguf_close(&f);
    return yes;
  }
  char *a = preft_path_join(dir, "tokenizer.json"), *b = preft_path_join(dir, "vocab.txt");
  bool yes = preft_file_exists(a) || preft_file_exists(b);
  free(a);
  free(b);
  return yes;
}

int cli_quantize = -1;
const char *cli_lora_dtype = NULL;

int cli_apply_quantize(preft_model *m, preft_error *err) {
  if (cli_quantize < 0) return 0;
  preft_pool *pool = preft_pool_create(0);
  int rc = preft_model_quantize(m, (preft_dtype)cli_quantize, pool, err);
  preft_pool_free(pool);
  return rc;
}

int cli_model_load(cli_model *out, const cli_model_args *args, preft_error *err) {
  memset(out, 0, sizeof *out);
  const char *tok_path = args->tok_path;
  if (!tok_path && (args->tokenizer == CLI_TOK_REQUIRED ||
                    (args->tokenizer == CLI_TOK_IF_PRESENT && cli_has_tokenizer(args->model_dir))))
    tok_path = args->model_dir;
  if ((tok_path && preft_tokenizer_load(&out->tok, tok_path, err) != 0) ||
      preft_model_load(&out->model, args->model_dir, err) != 0 || cli_apply_quantize(out->model, err) != 0 ||
      (args->adapter_dir &&
       preft_adapter_load(&out->adapter, args->adapter_dir, NULL, &out->model->cfg, err) != 0)) {
    cli_model_free(out);
    return -1;
  }
  const int held_as = preft_lora_dtype_parse(cli_lora_dtype);
  if (out->adapter && held_as >= 0) preft_lora_store_as(out->adapter, &out->model->cfg, (preft_dtype)held_as);
  out->mode = args->adapter_mode >= 0 ? (preft_adapter_mode)args->adapter_mode
              : out->adapter          ? out->adapter->default_mode
                                      : PREFT_MODE_ALL;
  return 0;
}

void cli_model_free(cli_model *cm) {
  preft_adapter_free(cm->adapter);
  preft_tokenizer_free(cm->tok);
  preft_model_free(cm->model);
  memset(cm, 0, sizeof *cm);
}

preft_data_opts cli_data_opts(const preft_tokenizer *tok, const preft_model_config *cfg, int max_tokens,
                              preft_bad_line_policy on_bad_line) {
  const int32_t *eos;
  int n_eos = tok ? preft_tokenizer_eos_ids(tok, &eos) : 0;
  return (preft_data_opts){.tok = tok,
                           .eos_id = n_eos        ? eos[0]
                                     : cfg->n_eos ? cfg->eos_ids[0]
                                                  : -1,
                           .max_tokens = max_tokens,
                           .vocab = cfg->vocab,
                           .on_bad_line = on_bad_line};
}

int cli_parse_bad_line(const char *cmd, const char *s, preft_bad_line_policy *out) {
  if (!strcmp(s, "stop") || !strcmp(s, "skip")) {
    *out = !strcmp(s, "stop") ? PREFT_BAD_LINE_STOP : PREFT_BAD_LINE_SKIP;
    return 0;
  }
  fprintf(stderr, "preft %s: --on-bad-line expects stop or skip, got '%s'\n", cmd, s);
  return -1;
}

int cli_write_json(const char *path, const struct cJSON *j, preft_error *err) {
  return preft_json_save(path, j, err);
}
