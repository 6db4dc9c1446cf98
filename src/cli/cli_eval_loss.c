/* cli_eval_loss.c - `preft eval-loss`: the mean cross-entropy per completion
 * token of a JSONL set under a model and optional adapter, with the
 * trainer's data rules (src/train/data.h) and loss definition, computed by
 * the serving forward pass (preft_model_forward with the engine's per-row
 * adapt flags), so any adapter, trained here or elsewhere, is scored the
 * same way. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "cli/cli.h"
#include "model/adapter.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "text/tokenizer.h"
#include "train/data.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft eval-loss -m BASE_DIR [-a ADAPTER_DIR] [--adapter-mode all|prefill]\n"
          "                       --data EVAL.jsonl [--seq T] [--json FILE]\n\n"
          "Prints the mean cross-entropy (natural log) per completion token: the same\n"
          "definition, data formats and truncation as `preft train sft` (see its --help),\n"
          "computed with the serving forward pass; the adapter runs in its configured\n"
          "mode unless --adapter-mode says otherwise.\n\n"
          "  -m, --model DIR      base model directory\n"
          "  -a, --adapter DIR    LoRA (PEFT) or ReFT adapter directory\n"
          "  --adapter-mode M     all | prefill\n"
          "  --data FILE          JSONL examples\n"
          "  --seq T              longest example (default min(1024, context))\n"
          "  --on-bad-line A      stop | skip (default stop)\n"
          "  --json FILE          also write {\"eval_loss\", \"tokens\", \"examples\"}\n"
          "  --threads N          worker threads (default: all cores)\n" CLI_MATMUL_HELP);
}

/* Sum of the cross-entropies of example e's counted predictions. */
static int score_example(const preft_model *m, const preft_adapter *a, preft_adapter_mode mode,
                         preft_pool *pool, preft_kv_cache *kv, preft_workspace *ws, const preft_example *e,
                         double *sum, int *count, preft_error *err) {
  int rows = e->n - 1, V = m->cfg.vocab, nl = 0;
  int *pos = preft_xmalloc(sizeof(int) * (size_t)rows), *seq = preft_xcalloc((size_t)rows, sizeof(int));
  int *lr = preft_xmalloc(sizeof(int) * (size_t)rows);
  const preft_adapter **ads = preft_xmalloc(sizeof(void *) * (size_t)rows);
  uint8_t *fl = preft_xmalloc((size_t)rows);
  for (int t = 0; t < rows; t++) {
    pos[t] = t;
    ads[t] = a;
    fl[t] = a ? (uint8_t)preft_adapter_row_flag(a, mode, t, e->prompt_len) : 0;
    if (e->loss[t + 1]) lr[nl++] = t;
  }
  float *logits = preft_xmalloc(sizeof(float) * (size_t)(nl ? nl : 1) * (size_t)V);
  preft_batch b = {.n = rows,
                   .token = e->ids,
                   .pos = pos,
                   .seq = seq,
                   .logit_rows = lr,
                   .n_logits = nl,
                   .adapter = a ? ads : NULL,
                   .adapt = a ? fl : NULL};
  int rc = preft_kv_reserve(kv, 0, rows, err);
  if (rc == 0) rc = preft_model_forward(m, pool, kv, &b, ws, logits, err);
  preft_kv_release(kv, 0);
  double s = 0;
  for (int i = 0; rc == 0 && i < nl; i++) {
    const float *l = logits + (size_t)i * V;
    float mx = l[0];
    for (int c = 1; c < V; c++) mx = l[c] > mx ? l[c] : mx;
    double z = 0;
    for (int c = 0; c < V; c++) z += exp((double)l[c] - mx);
    s += mx + log(z) - l[e->ids[lr[i] + 1]];
  }
  *sum = s;
  *count = nl;
  free(pos);
  free(seq);
  free(lr);
  free(ads);
  free(fl);
  free(logits);
  return rc;
}

int cli_eval_loss(int argc, char **argv) {
  const char *model_dir = NULL, *adapter_dir = NULL, *data = NULL, *json = NULL, *bad = "stop";
  int mode_arg = -1;
  long seq = 0, threads = 0;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--adapter", "-a", CLI_STR, &adapter_dir},
      {"--adapter-mode", NULL, CLI_MODE, &mode_arg},
      {"--data", NULL, CLI_STR, &data},
      {"--seq", NULL, CLI_INT, &seq, 2, 1 << 20},
      {"--on-bad-line", NULL, CLI_STR, &bad},
      {"--json", NULL, CLI_STR, &json},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      {NULL},
  };
  int pr = cli_parse("eval-loss", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir || !data) {
    fprintf(stderr, "preft eval-loss: -m and --data are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (strcmp(bad, "stop") && strcmp(bad, "skip")) {
    fprintf(stderr, "preft eval-loss: --on-bad-line expects stop or skip\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_model *m = NULL;
  preft_adapter *a = NULL;
  preft_tokenizer *tok = NULL;
  preft_dataset ds = {0};
  preft_pool *pool = NULL;
  preft_kv_cache kv = {0};
  preft_workspace ws = {0};
  bool kv_ok = false;
  int rc = CLI_EXIT_ERROR;
  if (preft_model_load(&m, model_dir, &err) != 0) goto fail;
  char *tj = preft_path_join(model_dir, "tokenizer.json");
  bool have_tok = preft_file_exists(tj);
  free(tj);
  if (have_tok && preft_tokenizer_load(&tok, model_dir, &err) != 0) goto fail;
  if (adapter_dir && preft_adapter_load(&a, adapter_dir, NULL, &m->cfg, &err) != 0) goto fail;
  preft_adapter_mode mode = mode_arg >= 0 ? (preft_adapter_mode)mode_arg
                            : a           ? a->default_mode
                                          : PREFT_MODE_ALL;
  if (seq == 0) seq = m->cfg.max_pos < 1024 ? m->cfg.max_pos : 1024;
  const int32_t *eos;
  int n_eos = tok ? preft_tokenizer_eos_ids(tok, &eos) : 0;
  preft_data_opts dopt = {tok, n_eos ? eos[0] : (m->cfg.n_eos ? m->cfg.eos_ids[0] : -1), (int)seq,
                          m->cfg.vocab, strcmp(bad, "skip") ? PREFT_BAD_LINE_STOP : PREFT_BAD_LINE_SKIP};
  if (preft_dataset_load_jsonl(&ds, data, &dopt, &err) != 0) goto fail;
  if (preft_kv_init(&kv, m->cfg.n_layers, m->cfg.n_kv_heads * m->cfg.head_dim, 16, (int)(seq + 15) / 16 + 1,
                    1, (int)seq, &err) != 0)
    goto fail;
  kv_ok = true;
  pool = preft_pool_create((int)threads);
  double total = 0;
  int64_t count = 0;
  for (int i = 0; i < ds.n; i++) {
    double s;
    int c;
    if (ds.ex[i].n < 2) continue;
    if (score_example(m, a, mode, pool, &kv, &ws, &ds.ex[i], &s, &c, &err) != 0) goto fail;
    total += s;
    count += c;
  }
  double loss = count ? total / (double)count : NAN;
  printf("eval loss %.6f over %lld tokens in %d examples (perplexity %.4f)%s%s\n", loss, (long long)count,
         ds.n, exp(loss), a ? ", adapter mode " : "", a ? preft_adapter_mode_name(mode) : "");
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "eval_loss", loss);
    cJSON_AddNumberToObject(j, "tokens", (double)count);
    cJSON_AddNumberToObject(j, "examples", ds.n);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    int wrc = preft_write_atomic(json, text, strlen(text), &err);
    cJSON_free(text);
    if (wrc != 0) goto fail;
  }
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft eval-loss: %s\n", err.msg);
  rc = CLI_EXIT_ERROR;
done:
  preft_workspace_free(&ws);
  if (kv_ok) preft_kv_free(&kv);
  preft_pool_free(pool);
  preft_dataset_free(&ds);
  preft_adapter_free(a);
  preft_tokenizer_free(tok);
  preft_model_free(m);
  return rc;
}
