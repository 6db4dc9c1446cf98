/* cli_train_rl.c - `preft train rl` (GRPO on an adapter with verifiable
 * rewards; the loop is src/rl/grpo.c) and `preft eval rl` (greedy accuracy
 * of a model or adapter on fresh prompts of a task). The adapter flags are
 * those of `train sft` (cli_adapter_args.c), and so are the files made. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/svg_plot.h"
#include "cli/cli.h"
#include "rl/grpo.h"
#include "rl/rl_task.h"
#include "train/train_model.h"

static void task_names(FILE *out) { fputs(preft_rl_task_help(), out); }

#define TASK_HELP                                                                             \
  "  --task NAME           a built-in task (prompts and verifier; see below)\n"               \
  "  --task-file F         JSONL, one {\"prompt\", \"answer\", \"match\"} a line; match is\n" \
  "                        exact | contains | regex | number (the completion's last\n"        \
  "                        number equals the answer) | first_line | first_number |\n"         \
  "                        digits (partial credit, as --partial-credit)\n"                    \
  "  --reward-cmd CMD      rewards from a program instead of the verifier: it reads one\n"    \
  "                        {\"prompt\", \"completion\", \"answer\"} line per completion on\n" \
  "                        stdin and writes one number a line on stdout\n"                    \
  "  --reward-timeout S    seconds to wait for each reward (default 10)\n"                    \
  "  --partial-credit      score `addition` digit by digit (the share of right places)\n"     \
  "                        instead of 0 or 1; accuracy counts exact answers either way\n"     \
  "  --stop-newline        a completion ends with its first line (default with --task,\n"     \
  "                        whose verifiers read the first line; --no-stop-newline: off)\n"

static void train_usage(FILE *out) {
  fprintf(out,
          "usage: preft train rl -m MODEL (--task NAME | --task-file F) [--reward-cmd CMD]\n"
          "                      --method lora|loreft|direft [--mode all|prefill] [--rank R]\n"
          "                      [--group G] [--prompts-per-step P] [--steps N] [--lr X]\n"
          "                      [--seed S] -o OUT [--json METRICS] [--plot reward.svg]\n\n"
          "Trains an adapter on a frozen model with GRPO: each step samples G completions\n"
          "of P prompts through the serving engine (the adapter loaded from its files, in\n"
          "the mode it will be served), scores them, normalises the rewards within each\n"
          "group (groups whose rewards are all equal teach nothing and are skipped) and\n"
          "takes --epochs AdamW steps on the clipped policy-gradient loss of the\n"
          "completion tokens, with an optional KL penalty to the adapter-free model.\n"
          "OUT receives the adapter (as `train sft` writes it; `preft serve` and\n"
          "`preft eval rl` load it), checkpoint.bin (--resume continues exactly),\n"
          "rl_log.csv and reward.svg. Details: docs/TRAINING.md.\n"
          "Under `mpirun -np N` each rank rolls out and scores its share of the step's\n"
          "prompts (the first P mod N ranks one more) and the gradients are summed over\n"
          "the ranks: the same run as one process; rank 0 writes OUT.\n\n"
          "  -m, --model DIR       base model with its tokenizer\n" TASK_HELP CLI_ADAPTER_HELP
          "  -o, --out DIR         output directory\n"
          "  --steps N             RL steps (default 30)\n"
          "  --prompts-per-step P  prompts per step (default 16)\n"
          "  --group G             samples per prompt (default 8)\n"
          "  --epochs E            optimizer steps per batch of rollouts (default 1)\n"
          "  --lr X                learning rate (default 2e-3 LoRA, 4e-3 ReFT)\n"
          "  --min-lr-frac F       cosine decay to F x lr (default 1: constant)\n"
          "  --warmup N            linear warmup in optimizer steps (default 0)\n"
          "  --weight-decay W      AdamW decay on matrices (default 0)\n"
          "  --clip C              global gradient-norm clip, 0 = off (default 1)\n"
          "  --clip-eps E          ratio clip range 1 +- E (default 0.2)\n"
          "  --kl-coef B           weight of the k3 KL to the base model (default 0)\n"
          "  --temperature T       rollout sampling temperature (default 1)\n"
          "  --top-p P             rollout nucleus (default 1: off)\n"
          "  --max-new-tokens N    longest completion (default 24)\n"
          "  --micro-batch M       completions per forward/backward pass (default 16)\n"
          "  --seed S              adapter init, prompts and sampling (default 0)\n"
          "  --eval-every K        greedy accuracy on --eval-n held-out prompts (seed\n"
          "                        1000000 + S) every K steps and at the end\n"
          "  --eval-n N            (default 64)\n"
          "  --save-every K        checkpoint every K steps (default: at the end)\n"
          "  --resume              continue from OUT/checkpoint.bin if present\n"
          "  --stop-after N        stop after step N as if interrupted (tests)\n"
          "  --json FILE           per-step metrics: {\"world_size\", \"steps\": [{\"step\",\n"
          "                        \"reward_mean\", \"reward_std\", \"kl\", \"rollout_tokens_per_s\",\n"
          "                        \"update_tokens_per_s\", ...}]}\n"
          "  --plot FILE           mean reward against step as SVG\n"
          "  --kv-cache-mb N       rollout engine KV cache (default 1024)\n"
          "  --threads N           worker threads (default: all cores)\n"
          "  -q, --quiet           no progress lines\n\n"
          "Built-in tasks (--task NAME or NAME:LEVEL):\n");
  task_names(out);
}

static void eval_usage(FILE *out) {
  fprintf(out,
          "usage: preft eval rl -m MODEL [-a ADAPTER [--adapter-mode M]] (--task NAME | --task-file F)\n"
          "                     [--reward-cmd CMD] [--n N] [--seed S] [--json FILE]\n\n"
          "Greedy completions of the first N prompts of the task's stream seeded by --seed\n"
          "(built-in tasks: seeds from 1000000 up draw only held-out problems, which\n"
          "training with seeds below it never sees), scored by the verifier or\n"
          "--reward-cmd. Prints and writes {\"accuracy\", \"n\", \"mean_reward\"}; a\n"
          "completion is accurate when its reward is at least 1.\n\n"
          "  -m, --model DIR       base model with its tokenizer\n"
          "  -a, --adapter DIR     adapter (default: the base model)\n"
          "  --adapter-mode M      all | prefill (default: the adapter's own)\n" TASK_HELP
          "  --n N                 prompts (default 200)\n"
          "  --seed S              prompt stream (default 1000000: held out)\n"
          "  --max-new-tokens N    longest completion (default 24)\n"
          "  --json FILE           write the result as JSON\n"
          "  --threads N           worker threads (default: all cores)\n\n"
          "Built-in tasks (--task NAME or NAME:LEVEL):\n");
  task_names(out);
}

/* The task and rewarder the flags name. Prints and returns -1 (usage) or
 * fails with err (1). */
typedef struct {
  const char *task, *task_file, *reward_cmd;
  double reward_timeout;
  bool stop_newline, no_stop_newline, partial_credit;
} task_args;

/* --stop-newline, --no-stop-newline, else on for built-in tasks. */
static bool stop_at_newline(const task_args *t) {
  return t->stop_newline || (!t->no_stop_newline && t->task != NULL);
}

#define TASK_OPTIONS(t)                                                                 \
  {"--task", NULL, CLI_STR, &(t).task}, {"--task-file", NULL, CLI_STR, &(t).task_file}, \
      {"--reward-cmd", NULL, CLI_STR, &(t).reward_cmd},                                 \
      {"--reward-timeout", NULL, CLI_FLOAT, &(t).reward_timeout, 0.001, 86400},         \
      {"--stop-newline", NULL, CLI_FLAG, &(t).stop_newline},                            \
      {"--no-stop-newline", NULL, CLI_FLAG, &(t).no_stop_newline}, {                    \
    "--partial-credit", NULL, CLI_FLAG, &(t).partial_credit                             \
  }

static int open_task(const char *cmd, const task_args *t, preft_rl_task **task, preft_rl_rewarder **rw,
                     preft_error *err) {
  if (!!t->task + !!t->task_file != 1) {
    fprintf(stderr, "preft %s: give one of --task NAME or --task-file F (prompts%s)\n", cmd,
            t->reward_cmd ? " for --reward-cmd" : "");
    return -1;
  }
  if (preft_rl_task_open(t->task, t->task_file, task, err) != 0) return 1;
  preft_rl_task_set_partial(*task, t->partial_credit);
  if (preft_rl_rewarder_open(t->reward_cmd, t->reward_timeout, rw, err) != 0) {
    preft_rl_task_free(*task);
    *task = NULL;
    return 1;
  }
  return 0;
}

static void add_num(cJSON *o, const char *k, double v) {
  if (isfinite(v))
    cJSON_AddNumberToObject(o, k, v);
  else
    cJSON_AddNullToObject(o, k);
}

static int write_metrics(const char *path, const preft_grpo_result *r, const char *method, const char *mode,
                         int world_size, preft_error *err) {
  cJSON *j = cJSON_CreateObject(), *steps = cJSON_AddArrayToObject(j, "steps");
  cJSON_AddNumberToObject(j, "world_size", world_size);
  for (int64_t i = 0; i < r->n_hist; i++) {
    const double *h = r->hist + (size_t)i * PREFT_RL_COLS;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "step", h[PREFT_RL_STEP]);
    add_num(s, "reward_mean", h[PREFT_RL_REWARD_MEAN]);
    add_num(s, "reward_std", h[PREFT_RL_REWARD_STD]);
    add_num(s, "kl", h[PREFT_RL_KL]);
    add_num(s, "rollout_tokens_per_s", h[PREFT_RL_ROLLOUT_TPS]);
    add_num(s, "update_tokens_per_s", h[PREFT_RL_UPDATE_TPS]);
    add_num(s, "loss", h[PREFT_RL_LOSS]);
    add_num(s, "grad_norm", h[PREFT_RL_GRAD_NORM]);
    add_num(s, "equal_groups", h[PREFT_RL_EQUAL_GROUPS]);
    add_num(s, "clip_frac", h[PREFT_RL_CLIP_FRAC]);
    add_num(s, "completion_tokens", h[PREFT_RL_COMPLETION_TOKENS]);
    add_num(s, "rollout_s", h[PREFT_RL_ROLLOUT_S]);
    add_num(s, "reward_s", h[PREFT_RL_REWARD_S]);
    add_num(s, "update_s", h[PREFT_RL_UPDATE_S]);
    add_num(s, "eval_accuracy", h[PREFT_RL_EVAL_ACCURACY]);
    add_num(s, "logp_gap", h[PREFT_RL_LOGP_GAP]);
    add_num(s, "rollout_cpu_s", h[PREFT_RL_ROLLOUT_CPU_S]);
    add_num(s, "update_cpu_s", h[PREFT_RL_UPDATE_CPU_S]);
    add_num(s, "elapsed_s", h[PREFT_RL_ELAPSED_S]);
    cJSON_AddItemToArray(steps, s);
  }
  cJSON_AddStringToObject(j, "method", method);
  cJSON_AddStringToObject(j, "mode", mode);
  cJSON_AddNumberToObject(j, "seconds", r->seconds);
  int rc = cli_write_json(path, j, err);
  cJSON_Delete(j);
  return rc;
}

static int write_plot(const char *path, const preft_grpo_result *r, preft_error *err) {
  double *x = preft_xmalloc(sizeof(double) * (size_t)(r->n_hist + 1) * 2), *y = x + r->n_hist + 1;
  for (int64_t i = 0; i < r->n_hist; i++) {
    x[i] = r->hist[(size_t)i * PREFT_RL_COLS + PREFT_RL_STEP];
    y[i] = r->hist[(size_t)i * PREFT_RL_COLS + PREFT_RL_REWARD_MEAN];
  }
  preft_plot_series s = {.label = "mean reward", .x = x, .y = y, .n = (int)r->n_hist};
  preft_plot p = {.title = "GRPO",
                  .x_label = "step",
                  .y_label = "mean reward",
                  .y_from_zero = true,
                  .series = &s,
                  .n_series = 1};
  int rc = preft_plot_write_svg(&p, path, err);
  free(x);
  return rc;
}

int cli_train_rl(int argc, char **argv, const cli_dist *d) {
  const char *model_dir = NULL, *out = NULL, *json = NULL, *plot = NULL;
  task_args ta = {.reward_timeout = 10};
  cli_adapter_args aa = CLI_ADAPTER_ARGS_INIT;
  preft_grpo_opts o;
  preft_grpo_opts_default(&o);
  long steps = o.steps, P = o.prompts_per_step, G = o.group, epochs = o.epochs, micro = o.micro_batch,
       max_new = o.max_new_tokens, seed = 0, warmup = 0, save_every = 0, eval_every = 0, eval_n = o.eval_n,
       stop_after = 0, threads = 0, kv_mb = 0;
  double lr = -1, min_lr = 1, wd = 0, clip = 1, clip_eps = 0.2, kl = 0, temp = 1, top_p = 1;
  bool resume = false, quiet = false;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      TASK_OPTIONS(ta),
      CLI_ADAPTER_OPTIONS(aa),
      {"--out", "-o", CLI_STR, &out},
      {"--steps", NULL, CLI_INT, &steps, 1, 1L << 30},
      {"--prompts-per-step", NULL, CLI_INT, &P, 1, 1 << 16},
      {"--group", NULL, CLI_INT, &G, 2, 1 << 12},
      {"--epochs", NULL, CLI_INT, &epochs, 1, 1000},
      {"--lr", NULL, CLI_FLOAT, &lr, 0, 10},
      {"--min-lr-frac", NULL, CLI_FLOAT, &min_lr, 0, 1},
      {"--warmup", NULL, CLI_INT, &warmup, 0, 1L << 30},
      {"--weight-decay", NULL, CLI_FLOAT, &wd, 0, 10},
      {"--clip", NULL, CLI_FLOAT, &clip, 0, 1e9},
      {"--clip-eps", NULL, CLI_FLOAT, &clip_eps, 0, 10},
      {"--kl-coef", NULL, CLI_FLOAT, &kl, 0, 1e6},
      {"--temperature", NULL, CLI_FLOAT, &temp, 0, 100},
      {"--top-p", NULL, CLI_FLOAT, &top_p, 1e-6, 1},
      {"--max-new-tokens", NULL, CLI_INT, &max_new, 1, 1 << 20},
      {"--micro-batch", NULL, CLI_INT, &micro, 1, 1 << 16},
      {"--seed", NULL, CLI_INT, &seed, 0, 0x7fffffffffffL},
      {"--eval-every", NULL, CLI_INT, &eval_every, 0, 1L << 30},
      {"--eval-n", NULL, CLI_INT, &eval_n, 1, 1 << 20},
      {"--save-every", NULL, CLI_INT, &save_every, 0, 1L << 30},
      {"--resume", NULL, CLI_FLAG, &resume},
      {"--stop-after", NULL, CLI_INT, &stop_after, 0, 1L << 30},
      {"--json", NULL, CLI_STR, &json},
      {"--plot", NULL, CLI_STR, &plot},
      {"--kv-cache-mb", NULL, CLI_INT, &kv_mb, 1, 1 << 20},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {"--quiet", "-q", CLI_FLAG, &quiet},
      {NULL},
  };
  int pr = cli_parse("train rl", argc, argv, opts, train_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir || !aa.method || !out) {
    fprintf(stderr, "preft train rl: -m, --method, -o and a task are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (cli_adapter_check("train rl", &aa) != 0) return CLI_EXIT_USAGE;
  bool lora = !strcmp(aa.method, "lora");
  o.steps = steps;
  o.prompts_per_step = (int)P;
  o.group = (int)G;
  o.epochs = (int)epochs;
  o.micro_batch = (int)micro;
  o.max_new_tokens = (int)max_new;
  o.lr = lr >= 0 ? lr : lora ? 2e-3 : 4e-3;
  o.min_lr_frac = min_lr;
  o.warmup = warmup;
  o.weight_decay = wd;
  o.clip = clip;
  o.loss.clip_eps = clip_eps;
  o.loss.kl_coef = kl;
  o.temperature = (float)temp;
  o.top_p = (float)top_p;
  o.seed = (uint64_t)seed;
  o.threads = cli_dist_threads(d, (int)threads);
  o.comm = d->size > 1 ? &d->comm : NULL; /* under mpirun: data-parallel over the ranks */
  o.kv_cache_mb = (size_t)kv_mb;
  o.save_every = save_every;
  o.eval_every = eval_every;
  o.eval_n = (int)eval_n;
  o.stop_after = stop_after;
  o.resume = resume;
  o.quiet = quiet;
  o.stop_newline = stop_at_newline(&ta);
  o.out_dir = out;
  const char *slash = strrchr(model_dir, '/');
  o.base_name = slash && slash[1] ? slash + 1 : model_dir;

  preft_error err;
  preft_rl_task *task = NULL;
  preft_rl_rewarder *rw = NULL;
  int t = open_task("train rl", &ta, &task, &rw, &err);
  if (t < 0) return CLI_EXIT_USAGE;
  int rc = CLI_EXIT_ERROR;
  cli_model cm = {0};
  preft_train_model tm = {0};
  preft_train_adapter ad = {0};
  bool *layers = NULL, have_tm = false;
  preft_grpo_result res = {0};
  if (t > 0) goto fail;
  cli_model_args ma = {.model_dir = model_dir, .tokenizer = CLI_TOK_REQUIRED};
  if (cli_model_load(&cm, &ma, &err) != 0) goto fail;
  preft_train_adapter_opts ao;
  if (cli_adapter_opts("train rl", &aa, &cm.model->cfg, o.seed, &ao, &layers) != 0) {
    rc = CLI_EXIT_USAGE;
    goto done;
  }
  preft_train_model_from(&tm, cm.model, false);
  have_tm = true;
  if (!preft_train_model_borrows(&tm)) { /* training and rollouts use tm's FP32 copy */
    preft_model_free(cm.model);
    cm.model = NULL;
  } /* else tm uses the quantized base's matrices in place; cli_model_free frees it after tm */
  if (preft_train_adapter_init(&ad, &tm.cfg, &ao, &err) != 0) goto fail;
  if (!quiet && d->rank == 0)
    fprintf(stderr, "preft train rl: %s %s rank %ld, %d prompts x %d samples per step, %lld steps, lr %g\n",
            aa.method, preft_adapter_mode_name(ad.mode), aa.rank, o.prompts_per_step, o.group,
            (long long)o.steps, o.lr);
  if (preft_grpo_train(&tm, &ad, cm.tok, task, rw, &o, &res, &err) != 0) goto fail;
  if (d->rank != 0) { /* rank 0 reports */
    rc = CLI_EXIT_OK;
    goto done;
  }
  if (res.n_hist > 0) {
    const double *last = res.hist + (size_t)(res.n_hist - 1) * PREFT_RL_COLS;
    printf("trained %lld RL steps in %.1f s; last step mean reward %.3f\nsaved to %s\n", (long long)res.steps,
           res.seconds, last[PREFT_RL_REWARD_MEAN], out);
  }
  if (json && write_metrics(json, &res, aa.method, preft_adapter_mode_name(ad.mode), d->size, &err) != 0)
    goto fail;
  if (plot && write_plot(plot, &res, &err) != 0) goto fail;
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft train rl: %s\n", err.msg);
  rc = CLI_EXIT_ERROR;
done:
  free(res.hist);
  free(layers);
  preft_train_adapter_free(&ad);
  if (have_tm) preft_train_model_free(&tm);
  cli_model_free(&cm);
  preft_rl_rewarder_free(rw);
  preft_rl_task_free(task);
  return rc;
}

static int eval_rl(int argc, char **argv) {
  const char *model_dir = NULL, *adapter = NULL, *json = NULL;
  task_args ta = {.reward_timeout = 10};
  int mode = -1;
  long n = 200, seed = PREFT_RL_HELDOUT_SEED, max_new = 24, threads = 0;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--adapter", "-a", CLI_STR, &adapter},
      {"--adapter-mode", NULL, CLI_MODE, &mode},
      TASK_OPTIONS(ta),
      {"--n", NULL, CLI_INT, &n, 1, 1 << 20},
      {"--seed", NULL, CLI_INT, &seed, 0, 0x7fffffffffffL},
      {"--max-new-tokens", NULL, CLI_INT, &max_new, 1, 1 << 20},
      {"--json", NULL, CLI_STR, &json},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {NULL},
  };
  int pr = cli_parse("eval rl", argc, argv, opts, eval_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir) {
    fprintf(stderr, "preft eval rl: -m and a task are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_rl_task *task = NULL;
  preft_rl_rewarder *rw = NULL;
  int t = open_task("eval rl", &ta, &task, &rw, &err);
  if (t < 0) return CLI_EXIT_USAGE;
  int rc = CLI_EXIT_ERROR;
  cli_model cm = {0};
  preft_engine *e = NULL;
  if (t > 0) goto fail;
  cli_model_args ma = {.model_dir = model_dir, .tokenizer = CLI_TOK_REQUIRED};
  if (cli_model_load(&cm, &ma, &err) != 0) goto fail;
  preft_engine_config ec = {.threads = (int)threads, .max_queue = (int)n + 16};
  if (preft_engine_create(&e, cm.model, &ec, &err) != 0) goto fail;
  cm.model = NULL; /* the engine owns it */
  if (adapter && preft_engine_load_adapter(e, "eval", adapter, &err) != 0) goto fail;
  double acc, mean;
  if (preft_grpo_evaluate(e, cm.tok, task, rw, adapter ? "eval" : NULL, adapter ? mode : -1, (uint64_t)seed,
                          (int)n, (int)max_new, stop_at_newline(&ta), &acc, &mean, &err) != 0)
    goto fail;
  printf("accuracy %.4f (%ld prompts, greedy), mean reward %.4f\n", acc, n, mean);
  if (json) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "accuracy", acc);
    cJSON_AddNumberToObject(j, "n", (double)n);
    cJSON_AddNumberToObject(j, "mean_reward", mean);
    int w = cli_write_json(json, j, &err);
    cJSON_Delete(j);
    if (w != 0) goto fail;
  }
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft eval rl: %s\n", err.msg);
  rc = CLI_EXIT_ERROR;
done:
  if (e) preft_engine_free(e);
  cli_model_free(&cm);
  preft_rl_rewarder_free(rw);
  preft_rl_task_free(task);
  return rc;
}

int cli_eval(int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf(
        f,
        "usage: preft eval rl ...          accuracy of a model or adapter on a task (preft eval rl --help)\n"
        "       preft eval multitask ...   dev metrics of a BERT multitask model (--help)\n");
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  if (!strcmp(argv[1], "rl")) return eval_rl(argc - 1, argv + 1);
  if (!strcmp(argv[1], "multitask")) return cli_eval_multitask(argc - 1, argv + 1);
  fprintf(stderr, "preft eval: unknown subcommand '%s' (rl or multitask)\n", argv[1]);
  return CLI_EXIT_USAGE;
}
