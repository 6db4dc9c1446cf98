/* cli_eval_loss.c - `preft eval-loss`: the mean cross-entropy per completion
 * token of a JSONL set under a model and optional adapter, with the
 * trainer's data rules (src/train/data.h) and loss definition, computed by
 * preft_eval_loss (src/train/eval_loss.h) with the serving forward pass. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "cli/cli.h"
#include "train/data.h"
#include "train/eval_loss.h"

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
          "  --threads N          worker threads (default: all cores)\n" CLI_MATMUL_HELP CLI_QUANTIZE_HELP
              CLI_LORA_DTYPE_HELP);
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
      CLI_QUANTIZE_OPTION,
      CLI_LORA_DTYPE_OPTION,
      {NULL},
  };
  int pr = cli_parse("eval-loss", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir || !data) {
    fprintf(stderr, "preft eval-loss: -m and --data are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_bad_line_policy on_bad;
  if (cli_parse_bad_line("eval-loss", bad, &on_bad) != 0) return CLI_EXIT_USAGE;
  preft_error err;
  cli_model cm = {0};
  preft_dataset ds = {0};
  preft_pool *pool = NULL;
  int rc = CLI_EXIT_ERROR;
  cli_model_args ma = {.model_dir = model_dir,
                       .tokenizer = CLI_TOK_IF_PRESENT,
                       .adapter_dir = adapter_dir,
                       .adapter_mode = mode_arg};
  if (cli_model_load(&cm, &ma, &err) != 0) goto fail;
  const preft_model_config *c = &cm.model->cfg;
  if (seq == 0) seq = c->max_pos < 1024 ? c->max_pos : 1024;
  preft_data_opts dopt = cli_data_opts(cm.tok, c, (int)seq, on_bad);
  if (preft_dataset_load_jsonl(&ds, data, &dopt, &err) != 0) goto fail;
  pool = preft_pool_create((int)threads);
  double total;
  int64_t count;
  if (preft_eval_loss(cm.model, pool, cm.adapter, cm.mode, &ds, &total, &count, &err) != 0) goto fail;
  double loss = count ? total / (double)count : NAN;
  printf("eval loss %.6f over %lld tokens in %d examples (perplexity %.4f)%s%s\n", loss, (long long)count,
         ds.n, exp(loss), cm.adapter ? ", adapter mode " : "",
         cm.adapter ? preft_adapter_mode_name(cm.mode) : "");
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "eval_loss", loss);
    cJSON_AddNumberToObject(j, "tokens", (double)count);
    cJSON_AddNumberToObject(j, "examples", ds.n);
    int wrc = cli_write_json(json, j, &err);
    cJSON_Delete(j);
    if (wrc != 0) goto fail;
  }
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft eval-loss: %s\n", err.msg);
  rc = CLI_EXIT_ERROR;
done:
  preft_pool_free(pool);
  preft_dataset_free(&ds);
  cli_model_free(&cm);
  return rc;
}
