/* trainer.c - the training loop, evaluation, logging and checkpoints (see
 * trainer.h). */
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/svg_plot.h"
#include "base/timer.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/train_dist.h"

void preft_train_opts_default(preft_train_opts *o) {
  memset(o, 0, sizeof *o);
  o->epochs = 1;
  o->batch = 4;
  o->grad_accum = 1;
  o->max_tokens = 1024;
  o->lr = 1e-3;
  o->min_lr_frac = 0.1;
  o->weight_decay = 0.0;
  o->clip = 1.0;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
}

/* Adds example e as one sequence of e->n − 1 rows, with its loss mask and
 * the adapter's flags. */
static void add_example(preft_train_batch *b, const preft_train_adapter *ad, const preft_example *e, int *tg,
                        uint8_t *fl) {
  int rows = e->n - 1;
  for (int t = 0; t < rows; t++) {
    tg[t] = e->loss[t + 1] ? e->ids[t + 1] : -1;
    fl[t] = ad ? (uint8_t)preft_train_row_flag(ad, ad->mode, t, e->prompt_len) : PREFT_ADAPT_OFF;
  }
  preft_train_batch_add(b, e->ids, tg, fl, rows);
}

static int count_targets(const preft_example *e) {
  int c = 0;
  for (int t = 1; t < e->n; t++) c += e->loss[t];
  return c;
}

int preft_train_eval_loss(const preft_train_model *tm, const preft_train_adapter *ad, preft_pool *pool,
                          const preft_dataset *ds, int batch, int max_tokens, double *loss, int64_t *count,
                          preft_error *err) {
  preft_train_acts acts;
  preft_train_acts_init(&acts, tm, ad, batch * max_tokens, max_tokens, preft_pool_size(pool), false);
  preft_train_batch b = {0};
  int *tg = preft_xmalloc(sizeof(int) * (size_t)max_tokens);
  uint8_t *fl = preft_xmalloc((size_t)max_tokens);
  double total = 0;
  int64_t n = 0;
  int rc = 0;
  for (int i = 0; i < ds->n && rc == 0; i += batch) {
    preft_train_batch_clear(&b);
    for (int k = i; k < ds->n && k < i + batch; k++) add_example(&b, ad, &ds->ex[k], tg, fl);
    if (b.n_targets == 0) continue;
    double s;
    rc = preft_train_pass(tm, ad, pool, &b, &acts, 0.0f, &s, err);
    total += s;
    n += b.n_targets;
  }
  free(tg);
  free(fl);
  preft_train_batch_free(&b);
  preft_train_acts_free(&acts);
  if (rc != 0) return -1;
  *loss = n ? total / (double)n : NAN;
  *count = n;
  return 0;
}

/* ---- log, plot --------------------------------------------------------------- */

typedef struct {
  double *rows; /* [n][PREFT_HIST_COLS] */
  int64_t n, cap;
} history;

static void hist_add(history *h, const double *row) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 256;
    h->rows = preft_xrealloc(h->rows, sizeof(double) * PREFT_HIST_COLS * (size_t)h->cap);
  }
  memcpy(h->rows + (size_t)h->n++ * PREFT_HIST_COLS, row, sizeof(double) * PREFT_HIST_COLS);
}

/* Writes OUT/train_log.csv and OUT/loss.svg from the history. */
static int write_log(const history *h, const char *dir, preft_error *err) {
  size_t cap = 128 + (size_t)h->n * 200, len = 0;
  char *buf = preft_xmalloc(cap);
  len += (size_t)snprintf(buf, cap,
                          "step,epoch,lr,train_loss,eval_loss,grad_norm,tokens,tokens_per_s,elapsed_s\n");
  for (int64_t i = 0; i < h->n; i++) {
    const double *r = h->rows + (size_t)i * PREFT_HIST_COLS;
    char ev[32] = "";
    if (!isnan(r[PREFT_HIST_EVAL_LOSS])) snprintf(ev, sizeof ev, "%.6f", r[PREFT_HIST_EVAL_LOSS]);
    len += (size_t)snprintf(buf + len, cap - len, "%.0f,%.0f,%.6g,%.6f,%s,%.4f,%.0f,%.1f,%.2f\n",
                            r[PREFT_HIST_STEP], r[PREFT_HIST_EPOCH], r[PREFT_HIST_LR],
                            r[PREFT_HIST_TRAIN_LOSS], ev, r[PREFT_HIST_GRAD_NORM], r[PREFT_HIST_TOKENS],
                            r[PREFT_HIST_TOKENS_PER_S], r[PREFT_HIST_ELAPSED_S]);
  }
  char *path = preft_path_join(dir, "train_log.csv");
  int rc = preft_write_atomic(path, buf, len, err);
  free(path);
  free(buf);
  if (rc != 0) return -1;
  /* loss curve */
  double *xs = preft_xmalloc(sizeof(double) * (size_t)(h->n + 1) * 4), *ys = xs + h->n + 1,
         *ex = ys + h->n + 1, *ey = ex + h->n + 1;
  int ne = 0;
  for (int64_t i = 0; i < h->n; i++) {
    const double *r = h->rows + (size_t)i * PREFT_HIST_COLS;
    xs[i] = r[PREFT_HIST_STEP];
    ys[i] = r[PREFT_HIST_TRAIN_LOSS];
    if (!isnan(r[PREFT_HIST_EVAL_LOSS])) {
      ex[ne] = r[PREFT_HIST_STEP];
      ey[ne++] = r[PREFT_HIST_EVAL_LOSS];
    }
  }
  preft_plot_series s[2] = {{.label = "train loss", .x = xs, .y = ys, .n = (int)h->n},
                            {.label = "eval loss", .x = ex, .y = ey, .n = ne}};
  preft_plot p = {.title = "training loss",
                  .x_label = "step",
                  .y_label = "cross-entropy per token (nats)",
                  .series = s,
                  .n_series = ne ? 2 : 1};
  path = preft_path_join(dir, "loss.svg");
  rc = h->n > 0 ? preft_plot_write_svg(&p, path, err) : 0;
  free(path);
  free(xs);
  return rc;
}

/* ---- the loop ---------------------------------------------------------------- */

/* Where the run is in the training set: epoch, position in the epoch's
 * permutation (drawn from seed and epoch). */
typedef struct {
  const preft_dataset *ds;
  int *perm;
  int64_t epoch, cursor;
  uint64_t seed;
} data_pos;

static const preft_example *next_example(data_pos *d) {
  if (d->cursor >= d->ds->n) {
    d->epoch++;
    d->cursor = 0;
    preft_shuffle_indices(d->perm, d->ds->n, d->seed, d->epoch);
  }
  return &d->ds->ex[d->perm[d->cursor++]];
}

/* Everything a run carries from step to step, and what it saves. */
typedef struct {
  preft_train_model *tm;
  preft_train_adapter *ad; /* NULL: train tm itself */
  const preft_dataset *train, *eval;
  const preft_train_opts *o;
  const preft_train_comm *comm; /* NULL: one process */
  bool lead;                    /* writes outputs, log and progress (rank 0) */
  preft_param_set *ps;          /* the trained parameters: ad's or tm's */
  int per_step;                 /* examples per optimizer step */
  int64_t total;                /* optimizer steps of the whole run */
  preft_adamw opt;
  history hist;
  data_pos dp;
  int64_t step, tokens; /* steps done, token rows seen (earlier runs included) */
  double elapsed0;      /* seconds of the earlier runs (resume) */
  int64_t last_ckpt;    /* step of the last checkpoint written */
  char *ckpt;           /* OUT/checkpoint.bin */
} run_state;

/* The buffers of the step loop, sized once. */
typedef struct {
  preft_pool *pool;
  preft_train_acts acts;
  preft_train_batch b;
  int *tg;                  /* [max_tokens] targets of one example */
  uint8_t *fl;              /* [max_tokens] adapt flags of one example */
  const preft_example **mb; /* [per_step] the examples of a step */
} step_buffers;

static void run_open(run_state *R, preft_train_model *tm, preft_train_adapter *ad, const preft_dataset *train,
                     const preft_dataset *eval, const preft_train_opts *o, const preft_train_comm *comm) {
  memset(R, 0, sizeof *R);
  R->comm = comm && comm->size > 1 ? comm : NULL;
  R->lead = preft_dist_lead(R->comm);
  R->tm = tm;
  R->ad = ad;
  R->train = train;
  R->eval = eval;
  R->o = o;
  R->ps = ad ? &ad->ps : &tm->ps;
  R->per_step = o->batch * o->grad_accum;
  int64_t steps_per_epoch = (train->n + R->per_step - 1) / R->per_step;
  R->total = o->steps > 0 ? o->steps : (int64_t)o->epochs * steps_per_epoch;
  preft_adamw_init(&R->opt, R->ps->n, o->beta1, o->beta2, o->eps, o->weight_decay);
  R->dp = (data_pos){.ds = train, .perm = preft_xmalloc(sizeof(int) * (size_t)train->n), .seed = o->seed};
  preft_shuffle_indices(R->dp.perm, train->n, o->seed, 0);
  R->ckpt = preft_path_join(o->out_dir, "checkpoint.bin");
}

static void run_close(run_state *R) {
  free(R->ckpt);
  free(R->dp.perm);
  free(R->hist.rows);
  preft_adamw_free(&R->opt);
}

/* With --resume and a checkpoint in OUT: parameters, optimizer state, data
 * position, counters and log history as they were when it was written.
 * Fails on an unreadable checkpoint or one of another training set. */
static int resume(run_state *R, preft_error *err) {
  if (!R->o->resume || !preft_file_exists(R->ckpt)) return 0;
  preft_ckpt_state st;
  double *h = NULL;
  if (preft_checkpoint_load(R->ckpt, &st, R->ps->mem, R->opt.m, R->opt.v, R->ps->n, &h, err) != 0) return -1;
  if (st.hist_cols != PREFT_HIST_COLS) {
    free(h);
    return preft_fail(err, "%s: was written by another kind of training (`preft train rl`?)", R->ckpt);
  }
  if (st.n_train != R->train->n) {
    free(h);
    return preft_fail(err, "%s: was written for %lld training examples, this run has %d", R->ckpt,
                      (long long)st.n_train, R->train->n);
  }
  R->step = R->last_ckpt = st.step;
  R->opt.t = st.adam_t;
  R->tokens = st.tokens;
  R->elapsed0 = st.elapsed;
  R->dp.epoch = st.epoch;
  R->dp.cursor = st.cursor;
  preft_shuffle_indices(R->dp.perm, R->train->n, R->o->seed, R->dp.epoch);
  for (int64_t i = 0; i < st.n_hist; i++) hist_add(&R->hist, h + (size_t)i * PREFT_HIST_COLS);
  free(h);
  if (!R->o->quiet && R->lead)
    fprintf(stderr, "preft train: resuming from %s at step %lld\n", R->ckpt, (long long)R->step);
  return 0;
}

static void buffers_open(step_buffers *B, const run_state *R) {
  const preft_train_opts *o = R->o;
  memset(B, 0, sizeof *B);
  B->pool = preft_pool_create(o->threads);
  int share = preft_dist_share_max(o->batch, R->comm ? R->comm->size : 1); /* this rank's examples */
  preft_train_acts_init(&B->acts, R->tm, R->ad, share * o->max_tokens, o->max_tokens,
                        preft_pool_size(B->pool), o->recompute);
  B->tg = preft_xmalloc(sizeof(int) * (size_t)o->max_tokens);
  B->fl = preft_xmalloc((size_t)o->max_tokens);
  B->mb = preft_xmalloc(sizeof(void *) * (size_t)R->per_step);
}

static void buffers_close(step_buffers *B) {
  free(B->mb);
  free(B->tg);
  free(B->fl);
  preft_train_batch_free(&B->b);
  preft_train_acts_free(&B->acts);
  preft_pool_free(B->pool);
}

/* The gradient of one optimizer step: the next per_step examples in
 * grad_accum micro-batches, zeroed first, scaled to the mean over the
 * step's counted predictions. Over ranks, each runs its share of every
 * micro-batch (preft_dist_share) and one sum of the flat gradient buffer
 * makes the whole step's gradient on every rank. *loss: that mean (0 with
 * none); *rows: token rows run (all ranks'); *targets: counted predictions. */
static int step_gradient(run_state *R, step_buffers *B, double *loss, int64_t *rows, int *targets,
                         preft_error *err) {
  const preft_train_opts *o = R->o;
  *targets = 0;
  for (int k = 0; k < R->per_step; k++) {
    B->mb[k] = next_example(&R->dp);
    *targets += count_targets(B->mb[k]);
  }
  preft_param_set_zero_grad(R->ps);
  int lo = 0, hi = o->batch;
  if (R->comm) preft_dist_share(o->batch, R->comm->rank, R->comm->size, &lo, &hi);
  double sum[2] = {0, 0}; /* cross-entropy sum, token rows */
  for (int g = 0; g<o->grad_accum && * targets> 0 && hi > lo; g++) {
    preft_train_batch_clear(&B->b);
    for (int k = lo; k < hi; k++) add_example(&B->b, R->ad, B->mb[g * o->batch + k], B->tg, B->fl);
    double s;
    if (preft_train_pass(R->tm, R->ad, B->pool, &B->b, &B->acts, 1.0f / (float)*targets, &s, err) != 0)
      return -1;
    sum[0] += s;
    sum[1] += B->b.n;
  }
  if (R->comm && *targets > 0) {
    if (R->comm->sum_f32(R->comm->ctx, R->ps->grad, R->ps->n, err) != 0 ||
        R->comm->sum_f64(R->comm->ctx, sum, 2, err) != 0)
      return -1;
  }
  *rows = (int64_t)sum[1];
  *loss = *targets ? sum[0] / *targets : 0.0;
  return 0;
}

/* The evaluation loss of R->eval: over ranks, each evaluates its share of
 * the examples and the sums of cross-entropy and predictions are summed. */
static int eval_loss_ranks(const run_state *R, const step_buffers *B, double *loss, preft_error *err) {
  const preft_train_opts *o = R->o;
  int64_t cnt;
  if (!R->comm)
    return preft_train_eval_loss(R->tm, R->ad, B->pool, R->eval, o->batch, o->max_tokens, loss, &cnt, err);
  int lo, hi;
  preft_dist_share(R->eval->n, R->comm->rank, R->comm->size, &lo, &hi);
  preft_dataset part = *R->eval;
  part.ex += lo;
  part.n = hi - lo;
  double s[2] = {0, 0}; /* cross-entropy sum, predictions */
  if (part.n > 0) {
    double mean;
    if (preft_train_eval_loss(R->tm, R->ad, B->pool, &part, o->batch, o->max_tokens, &mean, &cnt, err) != 0)
      return -1;
    if (cnt > 0) s[0] = mean * (double)cnt;
    s[1] = (double)cnt;
  }
  if (R->comm->sum_f64(R->comm->ctx, s, 2, err) != 0) return -1;
  *loss = s[1] > 0 ? s[0] / s[1] : NAN;
  return 0;
}

/* eval_loss_ranks with FP32 products whatever the training precision, so
 * evaluation losses compare across precisions. */
static int eval_loss(const run_state *R, const step_buffers *B, double *loss, preft_error *err) {
  preft_matmul_precision keep = R->tm->matmul;
  R->tm->matmul = PREFT_MATMUL_EXACT;
  int rc = eval_loss_ranks(R, B, loss, err);
  R->tm->matmul = keep;
  return rc;
}

/* Writes the outputs, the log and the checkpoint after `step` steps, at
 * `elapsed` seconds of this run. */
static int save_checkpoint(run_state *R, double elapsed, preft_error *err) {
  const preft_train_opts *o = R->o;
  preft_ckpt_state st = {.step = R->step,
                         .epoch = R->dp.epoch,
                         .cursor = R->dp.cursor,
                         .adam_t = R->opt.t,
                         .tokens = R->tokens,
                         .elapsed = R->elapsed0 + elapsed,
                         .seed = o->seed,
                         .n_params = R->ps->n,
                         .n_hist = R->hist.n,
                         .n_train = R->train->n};
  int rc = R->ad ? preft_train_adapter_save(R->ad, o->out_dir, o->base_name, err)
                 : preft_train_model_save(R->tm, o->out_dir, err);
  if (rc == 0) rc = write_log(&R->hist, o->out_dir, err);
  if (rc == 0) rc = preft_checkpoint_save(R->ckpt, &st, R->ps->mem, R->opt.m, R->opt.v, R->hist.rows, err);
  if (rc == 0) R->last_ckpt = R->step;
  return rc;
}

/* Steps from R->step to the end (or to --stop-after): gradient, clipping,
 * AdamW (and LoReFT's re-orthonormalisation), evaluation, log row and
 * checkpoints at their steps. *loss: the last step's loss (NaN: none
 * taken). Fails on a failed pass, a NaN or infinite loss or gradient norm,
 * or a failed write. */
static int step_loop(run_state *R, step_buffers *B, double *loss, preft_train_result *res, preft_error *err) {
  const preft_train_opts *o = R->o;
  preft_progress prog;
  preft_progress_init(&prog, R->total, o->quiet || !R->lead);
  double t_start = preft_now();
  int64_t tokens_start = R->tokens;
  int rc = 0;
  while (R->step < R->total) {
    int64_t rows;
    int targets;
    if ((rc = step_gradient(R, B, loss, &rows, &targets, err)) != 0) break;
    double norm = preft_clip_grad_norm(R->ps, o->clip);
    if (!isfinite(*loss) || !isfinite(norm)) {
      rc = preft_fail(
          err, "step %lld: the %s is %s; stopped (the last good checkpoint, step %lld, is kept in %s)",
          (long long)R->step + 1, isfinite(*loss) ? "gradient norm" : "loss",
          isnan(isfinite(*loss) ? norm : *loss) ? "NaN" : "infinite", (long long)R->last_ckpt, o->out_dir);
      break;
    }
    double lr = preft_lr_at(R->step, R->total, o->warmup, o->lr, o->min_lr_frac);
    if (targets > 0) {
      preft_adamw_step(&R->opt, R->ps, lr);
      if (R->ad) preft_train_adapter_orthonormalize(R->ad);
    }
    R->step++;
    R->tokens += rows;
    double el = preft_now() - t_start;
    double tps = el > 0 ? (double)(R->tokens - tokens_start) / el : 0;
    bool last = R->step == R->total;
    bool do_eval = R->eval && R->eval->n && ((o->eval_every > 0 && R->step % o->eval_every == 0) || last);
    double ev = NAN;
    if (do_eval) {
      if ((rc = eval_loss(R, B, &ev, err)) != 0) break;
      res->eval_loss = ev;
    }
    double row[PREFT_HIST_COLS] = {[PREFT_HIST_STEP] = (double)R->step,
                                   [PREFT_HIST_EPOCH] = (double)R->dp.epoch,
                                   [PREFT_HIST_LR] = lr,
                                   [PREFT_HIST_TRAIN_LOSS] = *loss,
                                   [PREFT_HIST_EVAL_LOSS] = ev,
                                   [PREFT_HIST_GRAD_NORM] = norm,
                                   [PREFT_HIST_TOKENS] = (double)R->tokens,
                                   [PREFT_HIST_TOKENS_PER_S] = tps,
                                   [PREFT_HIST_ELAPSED_S] = R->elapsed0 + el};
    hist_add(&R->hist, row);
    preft_progress_update(&prog, R->step, *loss, tps, do_eval);
    if (do_eval && !o->quiet && R->lead) {
      if (prog.tty) fprintf(stderr, "\n");
      fprintf(stderr, "preft train: step %lld eval loss %.4f\n", (long long)R->step, ev);
    }
    bool do_save = (o->save_every > 0 && R->step % o->save_every == 0) || last;
    if (do_save && R->lead && (rc = save_checkpoint(R, el, err)) != 0) break;
    if (o->stop_after > 0 && R->step >= o->stop_after) break;
  }
  preft_progress_finish(&prog);
  res->seconds = preft_now() - t_start;
  res->tokens_per_s = res->seconds > 0 ? (double)(R->tokens - tokens_start) / res->seconds : 0;
  return rc;
}

int preft_train_run(preft_train_model *tm, preft_train_adapter *ad, const preft_dataset *train,
                    const preft_dataset *eval, const preft_train_opts *o, preft_train_result *res,
                    preft_error *err) {
  return preft_train_run_dist(tm, ad, train, eval, o, NULL, res, err);
}

int preft_train_run_dist(preft_train_model *tm, preft_train_adapter *ad, const preft_dataset *train,
                         const preft_dataset *eval, const preft_train_opts *o, const preft_train_comm *comm,
                         preft_train_result *res, preft_error *err) {
  memset(res, 0, sizeof *res);
  res->eval_loss = NAN;
  if (train->n == 0) return preft_fail(err, "train: no training examples");
  if (preft_dist_lead(comm) && preft_mkdir_p(o->out_dir, err) != 0) return -1;
  run_state R;
  run_open(&R, tm, ad, train, eval, o, comm);
  int rc = resume(&R, err);
  if (rc != 0) {
    run_close(&R);
    return -1;
  }
  step_buffers B;
  buffers_open(&B, &R);
  res->peak_act_bytes = preft_train_acts_bytes(&B.acts);
  int64_t step_start = R.step;
  double loss = NAN;
  preft_matmul_precision keep = tm->matmul;
  tm->matmul = o->matmul;
  rc = step_loop(&R, &B, &loss, res, err);
  tm->matmul = keep;
  if (rc != 0 && R.hist.n > 0 && R.lead) {
    preft_error e2;
    write_log(&R.hist, o->out_dir, &e2); /* the log up to the failure */
  }
  if (isnan(loss) && R.hist.n > 0)
    loss = R.hist.rows[(size_t)(R.hist.n - 1) * PREFT_HIST_COLS + PREFT_HIST_TRAIN_LOSS];
  res->train_loss = loss;
  res->steps = R.step;
  res->tokens = R.tokens;
  if (R.step == step_start && eval && eval->n && rc == 0) { /* resumed a finished run: evaluate anyway */
    rc = eval_loss(&R, &B, &res->eval_loss, err);
  }
  buffers_close(&B);
  run_close(&R);
  return rc;
}
