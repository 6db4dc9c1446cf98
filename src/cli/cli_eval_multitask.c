/* cli_eval_multitask.c - `preft eval multitask`: the dev metrics of a
 * multitask BERT (SST accuracy, paraphrase accuracy, STS Pearson, the
 * overall score), through the training model's forward (--layer: an exit
 * head) or the inference path with early exit (--early-exit). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "cli/cli_multitask.h"
#include "io/json_util.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft eval multitask -m DIR [-a DIR] [--data DIR] [--json FILE] [options]\n\n"
          "Dev metrics of a model written by `preft train multitask`: SST-5 accuracy,\n"
          "Quora paraphrase accuracy, STS-B Pearson correlation and the overall score\n"
          "(sst + para + (sts + 1) / 2) / 3.\n\n"
          "  -m, --model DIR      the model directory, or with -a the base model; a LoRA\n"
          "                       directory written by --lora-rank also works alone (its\n"
          "                       base_model_name_or_path is the base)\n"
          "  -a, --adapter DIR    a PEFT LoRA directory on the base (with preft's heads)\n"
          "  --data DIR           data directory (default data/multitask): its dev files\n"
          "  --json FILE          write the metrics as JSON (atomically)\n"
          "  --tasks LIST         sst,para,sts (default all three)\n"
          "  --dev-limit N        the first N dev rows of each file\n"
          "  --max-len N          tokens per input (default 128)\n"
          "  --batch N            examples per forward pass (default 32)\n"
          "  --layer L            use the exit head after layer L (0-based; needs exit heads)\n"
          "  --early-exit RULE    entropy:T (exit when the prediction's entropy < T, DeeBERT)\n"
          "                       or patience:P[:TOL] (exit when P consecutive layers agree,\n"
          "                       PABEE; sts: within TOL, default 0.1); reports the mean\n"
          "                       layers used and the time against the full model\n"
          "  --threads N          worker threads (default: all cores)\n\n"
          "Exit status: 0 evaluated, 1 error, 2 usage.\n");
}

int cli_eval_multitask(int argc, char **argv) {
  const char *model_dir = NULL, *adapter_dir = NULL, *data_dir = "data/multitask", *json_path = NULL,
             *tasks = "sst,para,sts", *early = NULL;
  long dev_limit = 0, max_len = 128, batch = 32, layer = -1, threads = 0;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--adapter", "-a", CLI_STR, &adapter_dir},
      {"--data", NULL, CLI_STR, &data_dir},
      {"--json", NULL, CLI_STR, &json_path},
      {"--tasks", NULL, CLI_STR, &tasks},
      {"--dev-limit", NULL, CLI_INT, &dev_limit, 0, 1e9},
      {"--max-len", NULL, CLI_INT, &max_len, 4, 4096},
      {"--batch", NULL, CLI_INT, &batch, 1, 4096},
      {"--layer", NULL, CLI_INT, &layer, 0, 1000},
      {"--early-exit", NULL, CLI_STR, &early},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {NULL},
  };
  int rc = cli_parse("eval multitask", argc, argv, opts, usage);
  if (rc != 0) return cli_parse_exit(rc);
  bool want[PREFT_BT_N_TASKS];
  preft_bert_exit_rule rule = {0};
  preft_error err;
  const char *problem = !model_dir ? "-m is required"
                        : cli_mt_parse_tasks(tasks, want) != 0
                            ? "--tasks lists sst, para, sts separated by commas"
                        : early && layer >= 0 ? "give --layer or --early-exit, not both"
                                              : NULL;
  if (!problem && early && preft_bert_exit_rule_parse(early, &rule, &err) != 0) {
    fprintf(stderr, "preft eval multitask: --early-exit: %s\n", err.msg);
    return CLI_EXIT_USAGE;
  }
  if (problem) {
    fprintf(stderr, "preft eval multitask: %s (see --help)\n", problem);
    return CLI_EXIT_USAGE;
  }
  preft_bt_opts bo;
  preft_bt_model m = {0};
  preft_tokenizer *tok = NULL;
  preft_mt_set dev[PREFT_BT_N_TASKS] = {{0}};
  preft_pool *pool = NULL;
  preft_bert_classifier *cl = NULL;
  cJSON *j = NULL;
  preft_bert_source src = {0};
  rc = CLI_EXIT_ERROR;
  preft_bert_config bc;
  if (preft_bert_source_resolve(&src, model_dir, adapter_dir, &err) != 0 ||
      preft_bt_heads_config_load(&bo, src.heads, &err) != 0 ||
      preft_bert_config_load(&bc, src.base, &err) != 0)
    goto fail;
  if (max_len > bc.max_pos) max_len = bc.max_pos; /* inputs are cut to the model's positions */
  if (preft_tokenizer_load(&tok, model_dir, &err) != 0 ||
      cli_mt_load_sets(data_dir, tok, (int)max_len, want, 0, (int)dev_limit, NULL, dev, &err) != 0)
    goto fail;
  pool = preft_pool_create((int)threads);
  preft_mt_eval ev;
  j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "model", src.base);
  if (src.adapter) cJSON_AddStringToObject(j, "adapter", src.adapter);
  if (!early) {
    if (preft_bt_model_load_source(&m, &src, &bo, 0, &err) != 0) goto fail;
    if (layer >= m.cfg.n_layers || (layer >= 0 && layer < m.cfg.n_layers - 1 && !m.exit_pooler)) {
      preft_fail(&err, "--layer %ld: the model has %d layers%s", layer, m.cfg.n_layers,
                 m.exit_pooler ? "" : " and no exit heads");
      goto fail;
    }
    if (preft_mt_evaluate(&m, pool, dev, (int)batch, (int)layer, &ev, &err) != 0) goto fail;
    cli_mt_eval_json(j, "dev", &ev);
    cJSON_AddNumberToObject(j, "layer", layer < 0 ? m.cfg.n_layers - 1 : layer);
    printf("dev: sst acc %.4f  para acc %.4f  sts pearson %.4f  score %.4f\n", ev.metric[0], ev.metric[1],
           ev.metric[2], ev.score);
  } else {
    if (preft_bert_classifier_load(&cl, src.base, src.adapter, &err) != 0) goto fail;
    preft_mt_eval full;
    double layers[PREFT_BT_N_TASKS], t_full = 0, t_exit = 0, mean_layers = 0;
    int n_all = 0;
    preft_bert_exit_rule none = {.kind = PREFT_EXIT_NONE};
    if (preft_mt_evaluate_exit(cl, pool, dev, (int)batch, &none, &full, NULL, &err) != 0 ||
        preft_mt_evaluate_exit(cl, pool, dev, (int)batch, &rule, &ev, layers, &err) != 0)
      goto fail;
    t_full = full.seconds, t_exit = ev.seconds;
    cli_mt_eval_json(j, "dev", &ev);
    cli_mt_eval_json(j, "dev_full_model", &full);
    cJSON *ml = cJSON_AddObjectToObject(j, "mean_layers");
    for (int t = 0; t < PREFT_BT_N_TASKS; t++) {
      if (!dev[t].n) continue;
      cJSON_AddNumberToObject(ml, preft_bt_task_names[t], layers[t]);
      mean_layers += layers[t] * dev[t].n;
      n_all += dev[t].n;
    }
    mean_layers /= n_all ? n_all : 1;
    cJSON_AddStringToObject(j, "early_exit", early);
    cJSON_AddNumberToObject(j, "mean_layers_all", mean_layers);
    cJSON_AddNumberToObject(j, "layers", cl->bert->cfg.n_layers);
    cJSON_AddNumberToObject(j, "seconds_full", t_full);
    cJSON_AddNumberToObject(j, "seconds_early_exit", t_exit);
    cJSON_AddNumberToObject(j, "speedup", t_exit > 0 ? t_full / t_exit : 0);
    printf("full model: sst acc %.4f  para acc %.4f  sts pearson %.4f  score %.4f  (%.2f s)\n",
           full.metric[0], full.metric[1], full.metric[2], full.score, t_full);
    printf("early exit %s: sst acc %.4f  para acc %.4f  sts pearson %.4f  score %.4f  (%.2f s)\n", early,
           ev.metric[0], ev.metric[1], ev.metric[2], ev.score, t_exit);
    printf("mean layers %.2f of %d, speedup %.2fx\n", mean_layers, cl->bert->cfg.n_layers,
           t_exit > 0 ? t_full / t_exit : 0);
  }
  if (json_path && preft_json_save(json_path, j, &err) != 0) goto fail;
  rc = CLI_EXIT_OK;
  goto out;
fail:
  fprintf(stderr, "preft eval multitask: %s\n", err.msg);
out:
  cJSON_Delete(j);
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) preft_mt_free(&dev[t]);
  preft_bert_classifier_free(cl);
  preft_tokenizer_free(tok);
  preft_pool_free(pool);
  preft_bt_model_free(&m);
  preft_bert_source_free(&src);
  return rc;
}
