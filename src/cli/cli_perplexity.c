/* cli_perplexity.c - `preft perplexity`: per-token log-likelihood of a text
 * file under a model (optionally with an adapter), with a sliding window
 * when the text is longer than the context, as in Hugging Face's perplexity
 * guide: windows of --ctx tokens advance by --stride, and each window scores
 * only the tokens no earlier window scored, so every token after the first
 * is scored once with up to ctx-stride tokens of left context.
 * --halves scores as llama.cpp's llama-perplexity does by default, so the
 * two agree on the same GGUF: whole, non-overlapping windows of --ctx
 * tokens (a last partial one dropped), the first token of each replaced by
 * BOS when the tokenizer adds one, and only tokens ctx/2+1 .. ctx-1 of each
 * window scored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "engine/generate.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft perplexity -m DIR -f FILE [--ctx N] [--stride S] [-a ADAPTER_DIR\n"
          "                        [--adapter-mode all|prefill]] [--threads N] [--json OUT]\n\n"
          "Encodes FILE with the model's tokenizer (special tokens as the tokenizer adds\n"
          "them) and prints the mean negative log-likelihood per token (natural log),\n"
          "the perplexity exp(NLL) and the number of tokens scored.\n\n"
          "  --ctx N       window length in tokens (default min(1024, model context))\n"
          "  --stride S    window step (default ctx/2); 1 <= S <= ctx\n"
          "  --halves      score as llama-perplexity does by default: whole windows of --ctx\n"
          "                tokens side by side, each starting with BOS when the tokenizer adds\n"
          "                one, only their second halves scored (tokens ctx/2+1 .. ctx-1)\n"
          "  --tokenizer PATH  tokenizer (default: the model directory's)\n"
          "  --json OUT    also write {\"tokens\", \"bytes\", \"nll\", \"perplexity\", \"bits_per_byte\"}\n"
          "                (nll: mean per scored token, natural log; bits_per_byte: the summed NLL\n"
          "                in bits over the file's bytes)\n" CLI_MATMUL_HELP CLI_QUANTIZE_HELP
              CLI_LORA_DTYPE_HELP);
}

/* Writes the scores of `file` as JSON to path (atomically). bits per byte
 * divides the summed NLL, in bits, by the bytes of the whole file: a
 * tokenizer that adds no BOS leaves the first token unscored, and its
 * bytes still count. */
static int write_scores_json(const char *path, long tokens, size_t bytes, double nll_sum, preft_error *err) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "tokens", (double)tokens);
  cJSON_AddNumberToObject(j, "bytes", (double)bytes);
  cJSON_AddNumberToObject(j, "nll", nll_sum / (double)tokens);
  cJSON_AddNumberToObject(j, "perplexity", exp(nll_sum / (double)tokens));
  cJSON_AddNumberToObject(j, "bits_per_byte", nll_sum / M_LN2 / (double)bytes);
  int rc = cli_write_json(path, j, err);
  cJSON_Delete(j);
  return rc;
}

int cli_perplexity(int argc, char **argv) {
  const char *model_dir = NULL, *file = NULL, *adapter_dir = NULL, *tok_path = NULL, *json_path = NULL;
  long ctx = 0, stride = 0, threads = 0;
  int mode_arg = -1;
  bool halves = false;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--file", "-f", CLI_STR, &file},
      {"--tokenizer", NULL, CLI_STR, &tok_path},
      {"--adapter", "-a", CLI_STR, &adapter_dir},
      {"--adapter-mode", NULL, CLI_MODE, &mode_arg},
      {"--ctx", NULL, CLI_INT, &ctx, 2, 1 << 24},
      {"--stride", NULL, CLI_INT, &stride, 1, 1 << 24},
      {"--halves", NULL, CLI_FLAG, &halves},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {"--json", NULL, CLI_STR, &json_path},
      CLI_MATMUL_OPTION,
      CLI_QUANTIZE_OPTION,
      CLI_LORA_DTYPE_OPTION,
      {NULL},
  };
  int pr = cli_parse("perplexity", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir || !file) {
    fprintf(stderr, "preft perplexity: -m and -f are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  cli_model cm = {0};
  preft_pool *pool = NULL;
  char *text = NULL;
  int32_t *tids = NULL;
  int *ids = NULL, rc = CLI_EXIT_ERROR;
  size_t text_len, n = 0;
  cli_model_args ma = {.model_dir = model_dir,
                       .tok_path = tok_path,
                       .tokenizer = CLI_TOK_REQUIRED,
                       .adapter_dir = adapter_dir,
                       .adapter_mode = mode_arg};
  if (cli_model_load(&cm, &ma, &err) != 0 || preft_read_file(file, &text, &text_len, &err) != 0 ||
      preft_tokenizer_encode(cm.tok, text, text_len, true, &tids, &n, &err) != 0)
    goto fail;
  const preft_model *m = cm.model;
  if (n < 2) {
    preft_fail(&err, "%s: encodes to %zu tokens, at least 2 are needed", file, n);
    goto fail;
  }
  if (ctx == 0) ctx = m->cfg.max_pos < 1024 ? m->cfg.max_pos : 1024;
  if (ctx > m->cfg.max_pos) {
    preft_fail(&err, "--ctx %ld exceeds the model's context of %d", ctx, m->cfg.max_pos);
    goto fail;
  }
  if (halves && stride != 0) {
    fprintf(stderr, "preft perplexity: --halves takes no --stride (its windows are side by side)\n");
    rc = CLI_EXIT_USAGE;
    goto done;
  }
  if (halves && n < (size_t)ctx) {
    preft_fail(&err, "%s: encodes to %zu tokens, --halves needs a whole window of %ld", file, n, ctx);
    goto fail;
  }
  if (stride == 0) stride = halves ? ctx : ctx / 2 > 0 ? ctx / 2 : 1;
  if (stride > ctx) {
    fprintf(stderr, "preft perplexity: --stride must not exceed --ctx\n");
    rc = CLI_EXIT_USAGE;
    goto done;
  }
  ids = preft_xmalloc(sizeof(int) * n);
  for (size_t i = 0; i < n; i++) ids[i] = tids[i];
  pool = preft_pool_create((int)threads);
  double nll = 0, t0 = preft_now();
  long count = 0, prev_end = 0;
  long n_windows = halves ? (long)n / ctx : n <= (size_t)ctx ? 1 : 1 + ((long)n - ctx + stride - 1) / stride;
  int32_t bos = preft_tokenizer_bos_id(cm.tok);
  bool adds_bos = bos >= 0 && tids[0] == bos; /* the encoder added it (special tokens on) */
  for (long w = 0, begin = 0; halves ? w < n_windows : prev_end < (long)n; w++, begin += stride) {
    long end = begin + ctx < (long)n ? begin + ctx : (long)n;
    /* score tokens [prev_end, end) of this window, relative to its start
     * (--halves: its second half) */
    int from = halves ? (int)(ctx / 2 + 1) : (int)(prev_end > begin ? prev_end - begin : 1);
    if (halves && adds_bos) ids[begin] = bos;
    if (preft_score_tokens(m, pool, ids + begin, (int)(end - begin), from, cm.adapter, cm.mode, &nll, &count,
                           &err) != 0)
      goto fail;
    prev_end = end;
    fprintf(stderr, "\rpreft perplexity: window %ld/%ld, %ld tokens, ppl %.4f, %.0f tokens/s   ", w + 1,
            n_windows, count, exp(nll / count), count / (preft_now() - t0));
  }
  fprintf(stderr, "\n");
  printf("tokens %ld\nnll %.6f\nperplexity %.4f\n", count, nll / count, exp(nll / count));
  if (json_path && write_scores_json(json_path, count, text_len, nll, &err) != 0) goto fail;
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft perplexity: %s\n", err.msg);
done:
  preft_pool_free(pool);
  cli_model_free(&cm);
  free(text);
  free(tids);
  free(ids);
  return rc;
}
