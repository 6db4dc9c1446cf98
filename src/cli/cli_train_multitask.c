/* cli_train_multitask.c - `preft train multitask`: fine-tunes a BERT
 * encoder on sentiment (SST), paraphrase (Quora) and similarity (STS-B)
 * with the options of issue 16 (sampling, LoRA, SMART, Bregman, bi-encoder,
 * early-exit heads); writes the model directory, metrics.json and the loss
 * and metric plots. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/svg_plot.h"
#include "cli/cli.h"
#include "cli/cli_multitask.h"
#include "io/json_util.h"
#include "train/multitask_train.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft train multitask -m DIR -o OUT [--data DIR] [options]\n\n"
          "Fine-tunes a BERT encoder (any checkpoint preft encode loads; heads it lacks\n"
          "start fresh) on SST-5 sentiment, Quora paraphrase and STS-B similarity.\n"
          "Writes OUT/{config.json, model.safetensors, preft_heads.json, vocabulary} (with\n"
          "--lora-rank a PEFT directory instead, see there),\n"
          "OUT/metrics.json, OUT/loss.svg, OUT/metrics.svg, OUT/checkpoint.bin.\n\n"
          "  -m, --model DIR        the encoder (and tokenizer) to start from (a LoRA directory\n"
          "                         of an earlier run: its base with the LoRA merged)\n"
          "  -o, --output DIR       where the fine-tuned model goes\n"
          "  --data DIR             data directory (default data/multitask)\n"
          "  --tasks LIST           sst,para,sts (default all three)\n"
          "  --steps N              optimizer steps (default 600)\n"
          "  --batch N              examples per step (default 32)\n"
          "  --lr X                 peak learning rate (default 1e-4)\n"
          "  --warmup X             warmup fraction of the steps (default 0.1)\n"
          "  --weight-decay X       AdamW weight decay (default 0.01)\n"
          "  --clip X               gradient norm clip (default 1; 0 off)\n"
          "  --dropout X            hidden and attention dropout (default 0.1)\n"
          "  --sampling S           round-robin (default) or proportional\n"
          "  --max-len N            tokens per input (default 128)\n"
          "  --train-limit N        use the first N training rows of each file\n"
          "  --dev-limit N          evaluate on the first N dev rows of each file\n"
          "  --arch A               cross (default: [CLS] a [SEP] b [SEP]) or siamese\n"
          "  --pooling P            bi-encoder sentence vector: cls (pooler) or mean\n"
          "  --lora-rank R          train LoRA of rank R on every linear layer with the base\n"
          "                         frozen; OUT is then a PEFT LoRA directory on -m\n"
          "                         (adapter_config.json, adapter_model.safetensors) with\n"
          "                         preft_heads.{json,safetensors}: load it with -m OUT, or\n"
          "                         -m BASE -a OUT; 0 (default): full fine-tuning\n"
          "  --lora-alpha X         LoRA alpha (default 2·rank)\n"
          "  --smart-lambda X       SMART weight lambda_s (default 0: off)\n"
          "  --smart-sigma X        initial noise (default 1e-5)\n"
          "  --smart-eta X          ascent step (default 1e-3)\n"
          "  --smart-eps X          projection radius (default 1e-5)\n"
          "  --smart-steps K        ascent steps (default 1)\n"
          "  --bregman-mu X         Bregman proximal weight mu (default 0: off)\n"
          "  --bregman-beta X       momentum teacher beta (default 0.99)\n"
          "  --early-exit MODE      joint (an exit head after every layer, trained with the\n"
          "                         rest) or stage2 (exit heads only, on a frozen fine-tuned\n"
          "                         model)\n"
          "  --eval-every N         evaluate on dev every N steps (default: at the end)\n"
          "  --checkpoint-every N   write OUT/checkpoint.bin every N steps (default 100; 0: only\n"
          "                         when cut by --stop-after); atomically, so a crash leaves\n"
          "                         the previous one\n"
          "  --resume               continue from OUT/checkpoint.bin (same data, options, seed,\n"
          "                         steps, threads): the weights and losses of an uncut run,\n"
          "                         bit for bit\n"
          "  --stop-after N         stop after N steps of this call, checkpointed, as a cut run\n"
          "                         (the model is written only when all steps are done)\n"
          "  --seed N               (default 16)\n"
          "  --threads N            worker threads (default: all cores)\n"
          "  --quiet                no progress bar\n\n"
          "Exit status: 0 trained and written, 1 error, 2 usage.\n");
}

static int write_plots(const char *dir, const preft_mt_history *h, preft_error *err) {
  int n = h->n_steps;
  double *x = malloc(sizeof(double) * (size_t)(n ? n : 1)), *y[PREFT_BT_N_TASKS];
  int cnt[PREFT_BT_N_TASKS] = {0};
  double *xs[PREFT_BT_N_TASKS];
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) {
    y[t] = malloc(sizeof(double) * (size_t)(n ? n : 1));
    xs[t] = malloc(sizeof(double) * (size_t)(n ? n : 1));
  }
  for (int i = 0; i < n; i++) {
    int t = h->step_task[i];
    xs[t][cnt[t]] = i + 1;
    y[t][cnt[t]++] = h->step_loss[i];
  }
  (void)x;
  preft_plot_series s[PREFT_BT_N_TASKS];
  int ns = 0;
  for (int t = 0; t < PREFT_BT_N_TASKS; t++)
    if (cnt[t]) s[ns++] = (preft_plot_series){preft_bt_task_names[t], xs[t], y[t], cnt[t], false};
  preft_plot p = {.title = "multitask training loss",
                  .x_label = "step",
                  .y_label = "loss",
                  .series = s,
                  .n_series = ns,
                  .y_from_zero = true};
  char *path = preft_path_join(dir, "loss.svg");
  int rc = preft_plot_write_svg(&p, path, err);
  free(path);
  double *mv[4];
  for (int k = 0; k < 4; k++) mv[k] = malloc(sizeof(double) * (size_t)(h->n_evals ? h->n_evals : 1));
  for (int e = 0; e < h->n_evals; e++) {
    for (int t = 0; t < 3; t++) mv[t][e] = isnan(h->evals[e].metric[t]) ? 0 : h->evals[e].metric[t];
    mv[3][e] = h->evals[e].score;
  }
  const char *names[4] = {"sst accuracy", "para accuracy", "sts pearson", "score"};
  preft_plot_series ms[4];
  for (int k = 0; k < 4; k++) ms[k] = (preft_plot_series){names[k], h->eval_step, mv[k], h->n_evals, k == 3};
  preft_plot mp = {.title = "dev metrics",
                   .x_label = "step",
                   .y_label = "metric",
                   .series = ms,
                   .n_series = 4,
                   .y_from_zero = true};
  path = preft_path_join(dir, "metrics.svg");
  if (rc == 0 && h->n_evals > 0) rc = preft_plot_write_svg(&mp, path, err);
  free(path);
  for (int k = 0; k < 4; k++) free(mv[k]);
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) free(y[t]), free(xs[t]);
  free(x);
  return rc;
}

int cli_train_multitask(int argc, char **argv) {
  const char *model_dir = NULL, *out_dir = NULL, *data_dir = "data/multitask", *sampling = "round-robin",
             *arch = "cross", *pooling = "cls", *early = NULL, *tasks = "sst,para,sts";
  long steps = 600, batch = 32, max_len = 128, train_limit = 0, dev_limit = 0, lora_rank = 0, smart_steps = 1,
       eval_every = 0, seed = 16, threads = 0, ckpt_every = 100, stop_after = 0;
  double lr = 1e-4, warmup = 0.1, wd = 0.01, clip = 1.0, dropout = 0.1, lora_alpha = 0, smart_lambda = 0,
         smart_sigma = 1e-5, smart_eta = 1e-3, smart_eps = 1e-5, mu = 0, beta = 0.99;
  bool quiet = false, resume = false;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--output", "-o", CLI_STR, &out_dir},
      {"--data", NULL, CLI_STR, &data_dir},
      {"--tasks", NULL, CLI_STR, &tasks},
      {"--steps", NULL, CLI_INT, &steps, 1, 1e9},
      {"--batch", NULL, CLI_INT, &batch, 1, 4096},
      {"--lr", NULL, CLI_FLOAT, &lr, 0, 1},
      {"--warmup", NULL, CLI_FLOAT, &warmup, 0, 1},
      {"--weight-decay", NULL, CLI_FLOAT, &wd, 0, 1},
      {"--clip", NULL, CLI_FLOAT, &clip, 0, 1e9},
      {"--dropout", NULL, CLI_FLOAT, &dropout, 0, 0.9},
      {"--sampling", NULL, CLI_STR, &sampling},
      {"--max-len", NULL, CLI_INT, &max_len, 4, 4096},
      {"--train-limit", NULL, CLI_INT, &train_limit, 0, 1e9},
      {"--dev-limit", NULL, CLI_INT, &dev_limit, 0, 1e9},
      {"--arch", NULL, CLI_STR, &arch},
      {"--pooling", NULL, CLI_STR, &pooling},
      {"--lora-rank", NULL, CLI_INT, &lora_rank, 0, 1024},
      {"--lora-alpha", NULL, CLI_FLOAT, &lora_alpha, 0, 1e6},
      {"--smart-lambda", NULL, CLI_FLOAT, &smart_lambda, 0, 1e6},
      {"--smart-sigma", NULL, CLI_FLOAT, &smart_sigma, 0, 10},
      {"--smart-eta", NULL, CLI_FLOAT, &smart_eta, 0, 10},
      {"--smart-eps", NULL, CLI_FLOAT, &smart_eps, 0, 10},
      {"--smart-steps", NULL, CLI_INT, &smart_steps, 0, 100},
      {"--bregman-mu", NULL, CLI_FLOAT, &mu, 0, 1e6},
      {"--bregman-beta", NULL, CLI_FLOAT, &beta, 0, 1},
      {"--early-exit", NULL, CLI_STR, &early},
      {"--eval-every", NULL, CLI_INT, &eval_every, 0, 1e9},
      {"--checkpoint-every", NULL, CLI_INT, &ckpt_every, 0, 1e9},
      {"--resume", NULL, CLI_FLAG, &resume},
      {"--stop-after", NULL, CLI_INT, &stop_after, 0, 1e9},
      {"--seed", NULL, CLI_INT, &seed, 0, 1e18},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {"--quiet", NULL, CLI_FLAG, &quiet},
      {NULL},
  };
  int rc = cli_parse("train multitask", argc, argv, opts, usage);
  if (rc != 0) return cli_parse_exit(rc);
  bool want[PREFT_BT_N_TASKS];
  const char *problem =
      !model_dir || !out_dir ? "-m and -o are required"
      : strcmp(sampling, "round-robin") && strcmp(sampling, "proportional")
          ? "--sampling is round-robin or proportional"
      : strcmp(arch, "cross") && strcmp(arch, "siamese")           ? "--arch is cross or siamese"
      : strcmp(pooling, "cls") && strcmp(pooling, "mean")          ? "--pooling is cls or mean"
      : early && strcmp(early, "joint") && strcmp(early, "stage2") ? "--early-exit is joint or stage2"
      : early && !strcmp(arch, "siamese")                          ? "--early-exit needs --arch cross"
      : cli_mt_parse_tasks(tasks, want) != 0 ? "--tasks lists sst, para, sts separated by commas"
                                             : NULL;
  if (problem) {
    fprintf(stderr, "preft train multitask: %s (see --help)\n", problem);
    return CLI_EXIT_USAGE;
  }
  preft_bt_opts bo = {.tasks = true,
                      .arch = strcmp(arch, "siamese") ? PREFT_BT_CROSS : PREFT_BT_SIAMESE,
                      .pooling = strcmp(pooling, "mean") ? PREFT_BT_POOL_CLS : PREFT_BT_POOL_MEAN,
                      .exits = early != NULL,
                      .lora_rank = (int)lora_rank,
                      .lora_alpha = lora_alpha > 0 ? lora_alpha : 2.0 * lora_rank,
                      .dropout = dropout};
  preft_error err;
  preft_bt_model m;
  preft_tokenizer *tok = NULL;
  preft_mt_set train[PREFT_BT_N_TASKS] = {{0}}, dev[PREFT_BT_N_TASKS] = {{0}};
  preft_mt_history h = {0};
  preft_pool *pool = NULL;
  char *ckpt = NULL;
  rc = CLI_EXIT_ERROR;
  char *acfg = preft_path_join(model_dir, "adapter_config.json"),
       *mcfg = preft_path_join(model_dir, "config.json");
  bool on_adapter = preft_file_exists(acfg) && !preft_file_exists(mcfg);
  free(acfg);
  free(mcfg);
  if (lora_rank > 0 && on_adapter) {
    fprintf(stderr,
            "preft train multitask: --lora-rank trains an adapter of a full model; %s is itself an "
            "adapter (train on its base, or without --lora-rank)\n",
            model_dir);
    return CLI_EXIT_USAGE;
  }
  if (preft_bt_model_load(&m, model_dir, &bo, (uint64_t)seed, &err) != 0) {
    fprintf(stderr, "preft train multitask: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  if (max_len > m.cfg.max_pos) max_len = m.cfg.max_pos; /* inputs are cut to the model's positions */
  if (preft_tokenizer_load(&tok, model_dir, &err) != 0 ||
      cli_mt_load_sets(data_dir, tok, (int)max_len, want, (int)train_limit, (int)dev_limit, train, dev,
                       &err) != 0) {
    fprintf(stderr, "preft train multitask: %s\n", err.msg);
    goto out;
  }
  for (int t = 0; t < PREFT_BT_N_TASKS; t++)
    if (want[t] && !quiet)
      fprintf(stderr, "preft train multitask: %s: %d training, %d dev examples\n", preft_bt_task_names[t],
              train[t].n, dev[t].n);
  if (preft_mkdir_p(out_dir, &err) != 0) {
    fprintf(stderr, "preft train multitask: %s\n", err.msg);
    goto out;
  }
  ckpt = preft_path_join(out_dir, "checkpoint.bin");
  pool = preft_pool_create((int)threads);
  preft_mt_train_opts to = {.steps = (int)steps,
                            .batch = (int)batch,
                            .lr = lr,
                            .warmup_frac = warmup,
                            .weight_decay = wd,
                            .clip = clip,
                            .min_lr_frac = 0.0,
                            .proportional = !strcmp(sampling, "proportional"),
                            .seed = (uint64_t)seed,
                            .step = {.lambda_s = smart_lambda,
                                     .sigma = smart_sigma,
                                     .eta = smart_eta,
                                     .eps = smart_eps,
                                     .steps = (int)smart_steps,
                                     .mu = mu,
                                     .exits = !early                    ? PREFT_BT_EXITS_OFF
                                              : !strcmp(early, "joint") ? PREFT_BT_EXITS_JOINT
                                                                        : PREFT_BT_EXITS_ONLY},
                            .bregman_beta = beta,
                            .eval_every = (int)eval_every,
                            .ckpt_every = (int)ckpt_every,
                            .ckpt_path = ckpt,
                            .resume = resume,
                            .stop_after = (int)stop_after,
                            .quiet = quiet};
  if (preft_mt_train(&m, pool, train, dev, &to, &h, &err) != 0) {
    fprintf(stderr, "preft train multitask: %s\n", err.msg);
    goto out;
  }
  if (h.n_steps < steps) {
    printf("stopped after step %d of %ld; %s holds the run: continue it with --resume\n", h.n_steps, steps,
           ckpt);
    rc = CLI_EXIT_OK;
    goto out;
  }
  if ((lora_rank > 0 ? preft_bt_model_save_lora(&m, out_dir, model_dir, &err)
                     : preft_bt_model_save(&m, out_dir, &err)) != 0 ||
      cli_mt_copy_tokenizer(model_dir, out_dir, &err) != 0 || write_plots(out_dir, &h, &err) != 0) {
    fprintf(stderr, "preft train multitask: %s\n", err.msg);
    goto out;
  }
  const preft_mt_eval *ev = &h.evals[h.n_evals - 1];
  cJSON *j = cJSON_CreateObject();
  cli_mt_eval_json(j, "dev", ev);
  cJSON_AddNumberToObject(j, "steps", (double)steps);
  cJSON_AddNumberToObject(j, "train_seconds", h.seconds);
  cJSON_AddNumberToObject(j, "resumed_from_step", (double)h.resumed_from);
  cJSON *o = cJSON_AddObjectToObject(j, "options");
  cJSON_AddStringToObject(o, "model", model_dir);
  cJSON_AddStringToObject(o, "arch", arch);
  cJSON_AddStringToObject(o, "pooling", pooling);
  cJSON_AddStringToObject(o, "sampling", sampling);
  cJSON_AddNumberToObject(o, "batch", (double)batch);
  cJSON_AddNumberToObject(o, "lr", lr);
  cJSON_AddNumberToObject(o, "lora_rank", (double)lora_rank);
  cJSON_AddNumberToObject(o, "smart_lambda", smart_lambda);
  cJSON_AddNumberToObject(o, "bregman_mu", mu);
  cJSON_AddStringToObject(o, "early_exit", early ? early : "off");
  cJSON *hist = cJSON_AddArrayToObject(j, "evals");
  for (int e = 0; e < h.n_evals; e++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "step", h.eval_step[e]);
    cli_mt_eval_json(x, "dev", &h.evals[e]);
    cJSON_AddItemToArray(hist, x);
  }
  char *path = preft_path_join(out_dir, "metrics.json");
  int wrc = preft_json_save(path, j, &err);
  free(path);
  cJSON_Delete(j);
  if (wrc != 0) {
    fprintf(stderr, "preft train multitask: %s\n", err.msg);
    goto out;
  }
  printf("dev: sst acc %.4f  para acc %.4f  sts pearson %.4f  score %.4f  (%ld steps, %.0f s)\n",
         ev->metric[0], ev->metric[1], ev->metric[2], ev->score, steps, h.seconds);
  rc = CLI_EXIT_OK;
out:
  preft_mt_history_free(&h);
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) preft_mt_free(&train[t]), preft_mt_free(&dev[t]);
  preft_tokenizer_free(tok);
  preft_pool_free(pool);
  preft_bt_model_free(&m);
  free(ckpt);
  return rc;
}
