/* grpo.c - the GRPO loop (see grpo.h): rollouts through the serving engine,
 * rewards, the update, the log, checkpoints and resume. */
#include "rl/grpo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/svg_plot.h"
#include "base/timer.h"
#include "train/checkpoint.h"
#include "train/optim.h"

void preft_grpo_opts_default(preft_grpo_opts *o) {
  memset(o, 0, sizeof *o);
  o->steps = 30;
  o->prompts_per_step = 16;
  o->group = 8;
  o->epochs = 1;
  o->micro_batch = 16;
  o->max_new_tokens = 24;
  o->lr = 1e-3;
  o->min_lr_frac = 1.0;
  o->clip = 1.0;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->loss.clip_eps = 0.2;
  o->loss.kl_coef = 0.0;
  o->temperature = 1.0f;
  o->top_p = 1.0f;
  o->eval_n = 64;
}

/* ---- evaluation ------------------------------------------------------------------ */

/* Rollouts of the n prompts pr (whose ownership moves into b->prompts,
 * also on failure). */
static int rollout_prompts(preft_engine *e, const preft_tokenizer *tok, preft_rl_prompt *pr, int n,
                           const preft_grpo_rollout_opts *ro, preft_grpo_batch *b, preft_error *err) {
  int **ids = NULL, *lens = NULL;
  int rc = preft_grpo_encode_prompts(tok, pr, n, &ids, &lens, err);
  if (rc == 0) rc = preft_grpo_rollout(e, tok, ids, lens, n, ro, b, err);
  if (rc != 0) memset(b, 0, sizeof *b);
  b->prompts = pr;
  b->n_prompts = n;
  for (int p = 0; p < n && ids; p++) free(ids[p]);
  free(ids);
  free(lens);
  return rc;
}

int preft_grpo_evaluate(preft_engine *e, const preft_tokenizer *tok, const preft_rl_task *task,
                        preft_rl_rewarder *rw, const char *adapter, int adapter_mode, uint64_t seed, int n,
                        int max_new_tokens, bool stop_newline, double *accuracy, double *mean_reward,
                        preft_error *err) {
  preft_rl_prompt *pr = preft_xcalloc((size_t)n, sizeof *pr);
  for (int i = 0; i < n; i++) preft_rl_task_draw(task, seed, i, &pr[i]);
  int *nl = NULL, n_nl = stop_newline ? preft_grpo_newline_ids(tok, &nl) : 0;
  preft_grpo_rollout_opts ro = {.group = 1,
                                .max_new_tokens = max_new_tokens,
                                .temperature = 0.0f,
                                .top_p = 1.0f,
                                .seed = seed,
                                .adapter = adapter,
                                .adapter_mode = adapter_mode,
                                .stop_ids = nl,
                                .n_stop_ids = n_nl};
  preft_grpo_batch b;
  int rc = rollout_prompts(e, tok, pr, n, &ro, &b, err);
  double *r = preft_xcalloc((size_t)n, sizeof *r);
  const char **texts = preft_xcalloc((size_t)n, sizeof *texts);
  if (rc == 0) {
    for (int i = 0; i < n; i++) texts[i] = b.s[i].text;
    rc = preft_rl_rewarder_score(rw, b.prompts, texts, n, r, err);
  }
  if (rc == 0) {
    int ok = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
      ok += r[i] >= 1.0;
      sum += r[i];
    }
    *accuracy = n ? (double)ok / n : 0;
    *mean_reward = n ? sum / n : 0;
  }
  preft_grpo_batch_free(&b);
  free(nl);
  free(r);
  free(texts);
  return rc;
}

/* ---- history, log, plot ------------------------------------------------------------ */

typedef struct {
  double *rows; /* [n][PREFT_RL_COLS] */
  int64_t n, cap;
} history;

static void hist_add(history *h, const double *row) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 64;
    h->rows = preft_xrealloc(h->rows, sizeof(double) * PREFT_RL_COLS * (size_t)h->cap);
  }
  memcpy(h->rows + (size_t)h->n++ * PREFT_RL_COLS, row, sizeof(double) * PREFT_RL_COLS);
}

static const char *const COL_NAMES[PREFT_RL_COLS] = {"step",
                                                     "reward_mean",
                                                     "reward_std",
                                                     "kl",
                                                     "loss",
                                                     "grad_norm",
                                                     "equal_groups",
                                                     "clip_frac",
                                                     "completion_tokens",
                                                     "rollout_tokens_per_s",
                                                     "update_tokens_per_s",
                                                     "rollout_s",
                                                     "reward_s",
                                                     "update_s",
                                                     "eval_accuracy",
                                                     "logp_gap",
                                                     "rollout_cpu_s",
                                                     "update_cpu_s",
                                                     "elapsed_s"};

/* OUT/rl_log.csv and OUT/reward.svg */
static int write_log(const history *h, const char *dir, preft_error *err) {
  size_t cap = 512 + (size_t)h->n * 400, len = 0;
  char *buf = preft_xmalloc(cap);
  for (int c = 0; c < PREFT_RL_COLS; c++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%s", c ? "," : "", COL_NAMES[c]);
  len += (size_t)snprintf(buf + len, cap - len, "\n");
  for (int64_t i = 0; i < h->n; i++) {
    const double *r = h->rows + (size_t)i * PREFT_RL_COLS;
    for (int c = 0; c < PREFT_RL_COLS; c++) {
      if (isnan(r[c]))
        len += (size_t)snprintf(buf + len, cap - len, "%s", c ? "," : "");
      else
        len += (size_t)snprintf(buf + len, cap - len, "%s%.6g", c ? "," : "", r[c]);
    }
    len += (size_t)snprintf(buf + len, cap - len, "\n");
  }
  char *path = preft_path_join(dir, "rl_log.csv");
  int rc = preft_write_atomic(path, buf, len, err);
  free(path);
  free(buf);
  if (rc != 0 || h->n == 0) return rc;
  double *xs = preft_xmalloc(sizeof(double) * (size_t)h->n * 4), *ys = xs + h->n, *ex = ys + h->n,
         *ey = ex + h->n;
  int ne = 0;
  for (int64_t i = 0; i < h->n; i++) {
    const double *r = h->rows + (size_t)i * PREFT_RL_COLS;
    xs[i] = r[PREFT_RL_STEP];
    ys[i] = r[PREFT_RL_REWARD_MEAN];
    if (!isnan(r[PREFT_RL_EVAL_ACCURACY])) {
      ex[ne] = r[PREFT_RL_STEP];
      ey[ne++] = r[PREFT_RL_EVAL_ACCURACY];
    }
  }
  preft_plot_series s[2] = {{.label = "mean reward (rollouts)", .x = xs, .y = ys, .n = (int)h->n},
                            {.label = "held-out accuracy (greedy)", .x = ex, .y = ey, .n = ne}};
  preft_plot p = {.title = "GRPO",
                  .x_label = "step",
                  .y_label = "reward",
                  .y_from_zero = true,
                  .series = s,
                  .n_series = ne ? 2 : 1};
  path = preft_path_join(dir, "reward.svg");
  rc = preft_plot_write_svg(&p, path, err);
  free(path);
  free(xs);
  return rc;
}

/* ---- the run ---------------------------------------------------------------------------- */

typedef struct {
  preft_train_model *tm;
  preft_train_adapter *ad;
  const preft_tokenizer *tok;
  const preft_rl_task *task;
  preft_rl_rewarder *rw;
  const preft_grpo_opts *o;
  preft_model *view; /* the engine's model: tm's FP32 weights */
  preft_engine *engine;
  preft_pool *pool;
  preft_grpo_updater up;
  preft_adamw opt;
  history hist;
  int64_t step, tokens, last_ckpt;
  double elapsed0;
  char *ckpt, *policy_dir;
  int *newline_ids, n_newline_ids; /* stop ids with --stop-newline */
  char policy_name[64];            /* the engine's name of the current rollout adapter ("" none) */
} run;

static int64_t config_key(const preft_grpo_opts *o) {
  return (int64_t)o->prompts_per_step * 1000000 + (int64_t)o->group * 1000 + o->epochs;
}

static int save_checkpoint(run *R, double elapsed, preft_error *err) {
  const preft_grpo_opts *o = R->o;
  preft_ckpt_state st = {.step = R->step,
                         .adam_t = R->opt.t,
                         .tokens = R->tokens,
                         .elapsed = R->elapsed0 + elapsed,
                         .seed = o->seed,
                         .n_params = R->ad->ps.n,
                         .n_hist = R->hist.n,
                         .n_train = config_key(o),
                         .hist_cols = PREFT_RL_COLS};
  int rc = preft_train_adapter_save(R->ad, o->out_dir, o->base_name, err);
  if (rc == 0) rc = write_log(&R->hist, o->out_dir, err);
  if (rc == 0) rc = preft_checkpoint_save(R->ckpt, &st, R->ad->ps.mem, R->opt.m, R->opt.v, R->hist.rows, err);
  if (rc == 0) R->last_ckpt = R->step;
  return rc;
}

static int resume(run *R, preft_error *err) {
  if (!R->o->resume || !preft_file_exists(R->ckpt)) return 0;
  preft_ckpt_state st;
  double *h = NULL;
  if (preft_checkpoint_load(R->ckpt, &st, R->ad->ps.mem, R->opt.m, R->opt.v, R->ad->ps.n, &h, err) != 0)
    return -1;
  if (st.hist_cols != PREFT_RL_COLS || st.n_train != config_key(R->o) || st.seed != R->o->seed) {
    free(h);
    return preft_fail(err,
                      "%s: was written by another run (not `preft train rl`, or other --prompts-per-step, "
                      "--group, --epochs or --seed)",
                      R->ckpt);
  }
  R->step = R->last_ckpt = st.step;
  R->opt.t = st.adam_t;
  R->tokens = st.tokens;
  R->elapsed0 = st.elapsed;
  for (int64_t i = 0; i < st.n_hist; i++) hist_add(&R->hist, h + (size_t)i * PREFT_RL_COLS);
  free(h);
  if (!R->o->quiet && preft_dist_lead(R->o->comm))
    fprintf(stderr, "preft train rl: resuming from %s at step %lld\n", R->ckpt, (long long)R->step);
  return 0;
}

/* Removes the rollout adapter's files and directory. */
static void remove_policy_dir(const char *dir) {
  static const char *files[] = {"adapter_config.json", "adapter_model.safetensors", "reft_config.json",
                                "reft_model.safetensors"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char *p = preft_path_join(dir, files[i]);
    unlink(p);
    free(p);
  }
  rmdir(dir);
}

/* Saves the adapter as it is now and loads it into the engine under a new
 * name (so no prefix-cache entry of an older policy is reused), dropping
 * the previous one. */
static int publish_policy(run *R, preft_error *err) {
  if (preft_train_adapter_save(R->ad, R->policy_dir, R->o->base_name, err) != 0) return -1;
  char name[64];
  snprintf(name, sizeof name, "policy-%lld", (long long)R->step);
  if (R->policy_name[0]) {
    preft_error e2;
    preft_engine_remove_adapter(R->engine, R->policy_name, &e2);
  }
  if (preft_engine_load_adapter(R->engine, name, R->policy_dir, err) != 0) return -1;
  snprintf(R->policy_name, sizeof R->policy_name, "%s", name);
  return 0;
}

/* Prefixes err's message with "step N: " and what. */
static int prefix_step(preft_error *err, int64_t step, const char *what) {
  preft_error e = *err;
  return preft_fail(err, "step %lld: %s%s", (long long)step, what, e.msg);
}

/* Sums v[n] over the ranks (nothing in one process). */
static int sum_ranks(const preft_grpo_opts *o, double *v, size_t n, preft_error *err) {
  return o->comm ? o->comm->sum_f64(o->comm->ctx, v, n, err) : 0;
}

/* The reward mean and population std of every rank's samples, and the
 * groups whose rewards are all equal, counted over the ranks. */
static int reward_stats(const preft_grpo_opts *o, preft_grpo_batch *b, double *mean, double *std, int *equal,
                        preft_error *err) {
  *equal = b->n ? preft_grpo_advantages(b, mean, std) : 0;
  if (!o->comm) return 0;
  double s[4] = {0, 0, (double)b->n, (double)*equal}; /* Σr, Σr², samples, equal groups */
  for (int i = 0; i < b->n; i++) s[0] += b->s[i].reward, s[1] += b->s[i].reward * b->s[i].reward;
  if (sum_ranks(o, s, 4, err) != 0) return -1;
  *mean = s[2] > 0 ? s[0] / s[2] : 0;
  double var = s[2] > 0 ? s[1] / s[2] - *mean * *mean : 0;
  *std = var > 0 ? sqrt(var) : 0;
  *equal = (int)s[3];
  return 0;
}

/* Data-parallel: S of the loss over every rank's counted samples. */
static int count_samples(const preft_grpo_opts *o, run *R, const preft_grpo_batch *b, preft_error *err) {
  if (!o->comm) return 0;
  double k = 0;
  for (int i = 0; i < b->n; i++) k += b->s[i].n > b->s[i].prompt_len && preft_grpo_sample_counts(b, i);
  if (sum_ranks(o, &k, 1, err) != 0) return -1;
  R->up.counted_total = k > 0 ? (int)k : -1; /* -1: none anywhere (no rank's pass runs) */
  return 0;
}

/* Data-parallel: the gradient and the statistics of one epoch summed over
 * the ranks (the largest log-probability gap: the largest of the ranks'). */
static int reduce_update(const preft_grpo_opts *o, run *R, preft_grpo_update_stats *st, preft_error *err) {
  const preft_train_comm *c = o->comm;
  if (!c) return 0;
  if (c->sum_f32(c->ctx, R->ad->ps.grad, R->ad->ps.n, err) != 0) return -1;
  int n = 6 + c->size;
  double *v = preft_xcalloc((size_t)n, sizeof *v);
  v[0] = st->loss;
  v[1] = isnan(st->kl) ? 0 : st->kl * (double)st->tokens;
  v[2] = st->clip_frac * (double)st->tokens;
  v[3] = (double)st->rows;
  v[4] = (double)st->tokens;
  v[5] = st->samples;
  v[6 + c->rank] = st->logp_gap;
  int rc = sum_ranks(o, v, (size_t)n, err);
  if (rc == 0) {
    st->loss = v[0];
    st->tokens = (int64_t)v[4];
    st->kl = v[4] > 0 ? v[1] / v[4] : NAN;
    st->clip_frac = v[4] > 0 ? v[2] / v[4] : 0;
    st->rows = (int64_t)v[3];
    st->samples = (int)v[5];
    st->logp_gap = 0;
    for (int r = 0; r < c->size; r++)
      if (v[6 + r] > st->logp_gap) st->logp_gap = v[6 + r];
  }
  free(v);
  return rc;
}

/* One RL step: rollout, reward, update. Fills row. */
static int rl_step(run *R, double *row, preft_error *err) {
  const preft_grpo_opts *o = R->o;
  int P = o->prompts_per_step, lo = 0, hi = P; /* this rank's prompts of the step */
  if (o->comm) preft_dist_share(P, o->comm->rank, o->comm->size, &lo, &hi);
  if (publish_policy(R, err) != 0) return -1;
  double t0 = preft_now(), c0 = preft_cpu_now();
  preft_rl_prompt *pr = preft_xcalloc((size_t)P, sizeof *pr);
  for (int i = lo; i < hi; i++) preft_rl_task_draw(R->task, o->seed, R->step * P + i, &pr[i - lo]);
  preft_grpo_rollout_opts ro = {.group = o->group,
                                .max_new_tokens = o->max_new_tokens,
                                .temperature = o->temperature,
                                .top_p = o->top_p,
                                .seed = o->seed,
                                .step = R->step,
                                .first_sample = lo * o->group,
                                .adapter = R->policy_name,
                                .adapter_mode = (int)R->ad->mode,
                                .stop_ids = R->newline_ids,
                                .n_stop_ids = R->n_newline_ids};
  preft_grpo_batch b = {0};
  int rc = 0;
  if (hi > lo)
    rc = rollout_prompts(R->engine, R->tok, pr, hi - lo, &ro, &b, err);
  else
    b = (preft_grpo_batch){.group = o->group, .prompts = pr}; /* more ranks than prompts */
  if (rc != 0) {
    preft_grpo_batch_free(&b);
    return prefix_step(err, R->step + 1, "");
  }
  double t1 = preft_now(), c1 = preft_cpu_now();
  int64_t gen = 0;
  for (int i = 0; i < b.n; i++) gen += b.s[i].n - b.s[i].prompt_len;
  /* rewards: one prompt struct per sample */
  preft_rl_prompt *sp = preft_xmalloc(sizeof *sp * (size_t)b.n);
  const char **texts = preft_xmalloc(sizeof *texts * (size_t)b.n);
  double *rewards = preft_xmalloc(sizeof *rewards * (size_t)b.n);
  for (int i = 0; i < b.n; i++) {
    sp[i] = b.prompts[i / b.group];
    texts[i] = b.s[i].text;
  }
  rc = b.n ? preft_rl_rewarder_score(R->rw, sp, texts, b.n, rewards, err) : 0;
  for (int i = 0; i < b.n && rc == 0; i++) b.s[i].reward = rewards[i];
  free(sp);
  free(texts);
  free(rewards);
  if (rc != 0) {
    preft_grpo_batch_free(&b);
    return prefix_step(err, R->step + 1, "reward: ");
  }
  double t2 = preft_now(), c2 = preft_cpu_now();
  double mean = 0, std = 0;
  int equal;
  preft_grpo_update_stats st = {0}, first = {0};
  double norm = 0;
  int64_t rows = 0;
  rc = reward_stats(o, &b, &mean, &std, &equal, err);
  if (rc == 0) rc = count_samples(o, R, &b, err);
  if (rc == 0) rc = preft_grpo_ref_logprobs(&R->up, &b, err);
  int64_t total_opt = o->steps * o->epochs;
  for (int ep = 0; ep < o->epochs && rc == 0; ep++) {
    rc = preft_grpo_gradient(&R->up, &b, &o->loss, ep == 0, &st, err);
    if (rc == 0) rc = reduce_update(o, R, &st, err);
    if (rc != 0) break;
    if (ep == 0) first = st;
    rows += st.rows;
    if (st.samples == 0) break; /* every group equal: nothing to learn from */
    norm = preft_clip_grad_norm(&R->ad->ps, o->clip);
    if (!isfinite(st.loss) || !isfinite(norm)) {
      rc = preft_fail(err,
                      "step %lld: the %s is %s; stopped (the last good checkpoint, step %lld, is kept in %s)",
                      (long long)R->step + 1, isfinite(st.loss) ? "gradient norm" : "loss",
                      isnan(isfinite(st.loss) ? norm : st.loss) ? "NaN" : "infinite", (long long)R->last_ckpt,
                      o->out_dir);
      break;
    }
    double lr = preft_lr_at(R->step * o->epochs + ep, total_opt, o->warmup, o->lr, o->min_lr_frac);
    preft_adamw_step(&R->opt, &R->ad->ps, lr);
    preft_train_adapter_orthonormalize(R->ad);
  }
  double t3 = preft_now(), c3 = preft_cpu_now();
  double counts[2] = {(double)b.n, (double)gen}; /* every rank's samples and generated tokens */
  preft_grpo_batch_free(&b);
  if (rc != 0 || sum_ranks(o, counts, 2, err) != 0) return -1;
  int64_t n_samples = (int64_t)counts[0];
  gen = (int64_t)counts[1];
  R->tokens += gen;
  double nan = NAN;
  double vals[PREFT_RL_COLS] = {
      [PREFT_RL_STEP] = (double)R->step + 1,
      [PREFT_RL_REWARD_MEAN] = mean,
      [PREFT_RL_REWARD_STD] = std,
      [PREFT_RL_KL] = first.samples ? first.kl : nan,
      [PREFT_RL_LOSS] = first.samples ? first.loss : nan,
      [PREFT_RL_GRAD_NORM] = norm,
      [PREFT_RL_EQUAL_GROUPS] = equal,
      [PREFT_RL_CLIP_FRAC] = st.clip_frac,
      [PREFT_RL_COMPLETION_TOKENS] = n_samples ? (double)gen / (double)n_samples : 0,
      [PREFT_RL_ROLLOUT_TPS] = t1 > t0 ? (double)gen / (t1 - t0) : 0,
      [PREFT_RL_UPDATE_TPS] = t3 > t2 ? (double)rows / (t3 - t2) : 0,
      [PREFT_RL_ROLLOUT_S] = t1 - t0,
      [PREFT_RL_REWARD_S] = t2 - t1,
      [PREFT_RL_UPDATE_S] = t3 - t2,
      [PREFT_RL_EVAL_ACCURACY] = nan,
      [PREFT_RL_LOGP_GAP] = first.samples ? first.logp_gap : nan,
      [PREFT_RL_ROLLOUT_CPU_S] = c1 - c0,
      [PREFT_RL_UPDATE_CPU_S] = c3 - c2,
  };
  memcpy(row, vals, sizeof vals);
  return 0;
}

static int run_open(run *R, preft_train_model *tm, preft_train_adapter *ad, const preft_tokenizer *tok,
                    const preft_rl_task *task, preft_rl_rewarder *rw, const preft_grpo_opts *o,
                    preft_error *err) {
  memset(R, 0, sizeof *R);
  R->tm = tm;
  R->ad = ad;
  R->tok = tok;
  R->task = task;
  R->rw = rw;
  R->o = o;
  R->ckpt = preft_path_join(o->out_dir, "checkpoint.bin");
  char policy[48]; /* each rank its own copy of the rollout adapter */
  if (o->comm && o->comm->rank > 0)
    snprintf(policy, sizeof policy, "rollout-policy-rank%d", o->comm->rank);
  else
    snprintf(policy, sizeof policy, "rollout-policy");
  R->policy_dir = preft_path_join(o->out_dir, policy);
  preft_adamw_init(&R->opt, ad->ps.n, o->beta1, o->beta2, o->eps, o->weight_decay);
  R->pool = preft_pool_create(o->threads);
  preft_grpo_updater_init(&R->up, tm, ad, R->pool, o->micro_batch);
  R->view = preft_train_model_view(tm);
  if (o->stop_newline) R->n_newline_ids = preft_grpo_newline_ids(tok, &R->newline_ids);
  int queue = o->prompts_per_step * o->group + o->eval_n + 16;
  preft_engine_config ec = {.threads = o->threads,
                            .kv_cache_mb = o->kv_cache_mb,
                            .max_queue = queue > 1024 ? queue : 1024,
                            .borrow_model = true};
  return preft_engine_create(&R->engine, R->view, &ec, err);
}

static void run_close(run *R) {
  if (R->engine) preft_engine_free(R->engine);
  preft_train_model_view_free(R->view);
  preft_grpo_updater_free(&R->up);
  preft_pool_free(R->pool);
  preft_adamw_free(&R->opt);
  if (R->policy_dir) remove_policy_dir(R->policy_dir);
  free(R->policy_dir);
  free(R->newline_ids);
  free(R->ckpt);
  free(R->hist.rows);
}

int preft_grpo_train(preft_train_model *tm, preft_train_adapter *ad, const preft_tokenizer *tok,
                     const preft_rl_task *task, preft_rl_rewarder *rw, const preft_grpo_opts *o,
                     preft_grpo_result *res, preft_error *err) {
  memset(res, 0, sizeof *res);
  if (o->prompts_per_step < 1 || o->group < 2 || o->epochs < 1 || o->max_new_tokens < 1)
    return preft_fail(err, "grpo: needs at least 1 prompt per step, 2 samples per group, 1 epoch, 1 token");
  if (preft_mkdir_p(o->out_dir, err) != 0) return -1;
  run R;
  int rc = run_open(&R, tm, ad, tok, task, rw, o, err);
  if (rc == 0) rc = resume(&R, err);
  double t_start = preft_now();
  bool lead = preft_dist_lead(o->comm); /* evaluates, logs and writes OUT */
  while (rc == 0 && R.step < o->steps) {
    double row[PREFT_RL_COLS];
    if ((rc = rl_step(&R, row, err)) != 0) break;
    R.step++;
    bool last = R.step == o->steps;
    if (lead && o->eval_every > 0 && (R.step % o->eval_every == 0 || last)) {
      /* the adapter after this step's update */
      double acc, mr;
      if ((rc = publish_policy(&R, err)) != 0) break;
      if ((rc = preft_grpo_evaluate(R.engine, tok, task, rw, R.policy_name, (int)ad->mode,
                                    PREFT_RL_HELDOUT_SEED + o->seed, o->eval_n, o->max_new_tokens,
                                    o->stop_newline, &acc, &mr, err)) != 0)
        break;
      row[PREFT_RL_EVAL_ACCURACY] = acc;
    }
    double el = preft_now() - t_start;
    row[PREFT_RL_ELAPSED_S] = R.elapsed0 + el;
    hist_add(&R.hist, row);
    if (!o->quiet && lead) {
      fprintf(stderr,
              "step %lld/%lld  reward %.3f (std %.3f)  kl %.4f  equal groups %d/%d  rollout %.0f tok/s  "
              "update %.0f tok/s",
              (long long)R.step, (long long)o->steps, row[PREFT_RL_REWARD_MEAN], row[PREFT_RL_REWARD_STD],
              row[PREFT_RL_KL], (int)row[PREFT_RL_EQUAL_GROUPS], o->prompts_per_step,
              row[PREFT_RL_ROLLOUT_TPS], row[PREFT_RL_UPDATE_TPS]);
      if (!isnan(row[PREFT_RL_EVAL_ACCURACY]))
        fprintf(stderr, "  eval accuracy %.3f", row[PREFT_RL_EVAL_ACCURACY]);
      fprintf(stderr, "\n");
    }
    bool do_save = (o->save_every > 0 && R.step % o->save_every == 0) || last;
    if (do_save && lead && (rc = save_checkpoint(&R, el, err)) != 0) break;
    if (o->stop_after > 0 && R.step >= o->stop_after) break;
  }
  if (rc != 0 && R.hist.n > 0 && lead) {
    preft_error e2;
    write_log(&R.hist, o->out_dir, &e2);
  }
  res->steps = R.step;
  res->seconds = preft_now() - t_start;
  res->n_hist = R.hist.n;
  res->hist = R.hist.rows;
  R.hist.rows = NULL;
  run_close(&R);
  return rc;
}
