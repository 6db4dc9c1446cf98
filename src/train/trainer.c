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

static int write_log(const history *h, const char *dir, preft_error *err) {
  size_t cap = 128 + (size_t)h->n * 200, len = 0;
  char *buf = preft_xmalloc(cap);
  len += (size_t)snprintf(buf, cap,
                          "step,epoch,lr,train_loss,eval_loss,grad_norm,tokens,tokens_per_s,elapsed_s\n");
  for (int64_t i = 0; i < h->n; i++) {
    const double *r = h->rows + (size_t)i * PREFT_HIST_COLS;
    char ev[32] = "";
    if (!isnan(r[4])) snprintf(ev, sizeof ev, "%.6f", r[4]);
    len += (size_t)snprintf(buf + len, cap - len, "%.0f,%.0f,%.6g,%.6f,%s,%.4f,%.0f,%.1f,%.2f\n", r[0], r[1],
                            r[2], r[3], ev, r[5], r[6], r[7], r[8]);
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
    xs[i] = r[0];
    ys[i] = r[3];
    if (!isnan(r[4])) {
      ex[ne] = r[0];
      ey[ne++] = r[4];
    }
  }
  preft_plot_series s[2] = {{"train loss", xs, ys, (int)h->n, false}, {"eval loss", ex, ey, ne, false}};
  preft_plot p = {"training loss", "step", "cross-entropy per token (nats)", false, false, s, ne ? 2 : 1};
  path = preft_path_join(dir, "loss.svg");
  rc = h->n > 0 ? preft_plot_write_svg(&p, path, err) : 0;
  free(path);
  free(xs);
  return rc;
}

/* ---- the loop ---------------------------------------------------------------- */

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

static int save_outputs(const preft_train_model *tm, const preft_train_adapter *ad, const preft_train_opts *o,
                        preft_error *err) {
  if (ad) return preft_train_adapter_save(ad, o->out_dir, o->base_name, err);
  return preft_train_model_save(tm, o->out_dir, err);
}

int preft_train_run(preft_train_model *tm, preft_train_adapter *ad, const preft_dataset *train,
                    const preft_dataset *eval, const preft_train_opts *o, preft_train_result *res,
                    preft_error *err) {
  memset(res, 0, sizeof *res);
  res->eval_loss = NAN;
  if (train->n == 0) return preft_fail(err, "train: no training examples");
  if (preft_mkdir_p(o->out_dir, err) != 0) return -1;
  preft_param_set *ps = ad ? &ad->ps : &tm->ps;
  int per_step = o->batch * o->grad_accum;
  int64_t steps_per_epoch = (train->n + per_step - 1) / per_step;
  int64_t total = o->steps > 0 ? o->steps : (int64_t)o->epochs * steps_per_epoch;
  preft_adamw opt;
  preft_adamw_init(&opt, ps->n, o->beta1, o->beta2, o->eps, o->weight_decay);
  history hist = {0};
  data_pos dp = {train, preft_xmalloc(sizeof(int) * (size_t)train->n), 0, 0, o->seed};
  preft_shuffle_indices(dp.perm, train->n, o->seed, 0);
  int64_t step = 0, tokens = 0;
  double elapsed0 = 0;
  char *ckpt = preft_path_join(o->out_dir, "checkpoint.bin");
  int rc = 0;
  if (o->resume && preft_file_exists(ckpt)) {
    preft_ckpt_state st;
    double *h = NULL;
    if (preft_checkpoint_load(ckpt, &st, ps->mem, opt.m, opt.v, ps->n, &h, err) != 0) {
      rc = -1;
      goto done;
    }
    if (st.n_train != train->n) {
      free(h);
      rc = preft_fail(err, "%s: was written for %lld training examples, this run has %d", ckpt,
                      (long long)st.n_train, train->n);
      goto done;
    }
    step = st.step;
    opt.t = st.adam_t;
    tokens = st.tokens;
    elapsed0 = st.elapsed;
    dp.epoch = st.epoch;
    dp.cursor = st.cursor;
    preft_shuffle_indices(dp.perm, train->n, o->seed, dp.epoch);
    for (int64_t i = 0; i < st.n_hist; i++) hist_add(&hist, h + (size_t)i * PREFT_HIST_COLS);
    free(h);
    if (!o->quiet) fprintf(stderr, "preft train: resuming from %s at step %lld\n", ckpt, (long long)step);
  }

  preft_pool *pool = preft_pool_create(o->threads);
  preft_train_acts acts;
  preft_train_acts_init(&acts, tm, ad, o->batch * o->max_tokens, o->max_tokens, preft_pool_size(pool),
                        o->recompute);
  res->peak_act_bytes = preft_train_acts_bytes(&acts);
  preft_train_batch b = {0};
  int *tg = preft_xmalloc(sizeof(int) * (size_t)o->max_tokens);
  uint8_t *fl = preft_xmalloc((size_t)o->max_tokens);
  const preft_example **mb = preft_xmalloc(sizeof(void *) * (size_t)per_step);
  preft_progress prog;
  preft_progress_init(&prog, total, o->quiet);
  double t_start = preft_now();
  int64_t tokens_start = tokens, step_start = step;
  double loss = NAN;
  preft_ckpt_state st = {0};
  int64_t last_ckpt = step;
  for (; step < total; step++) {
    int targets = 0;
    for (int k = 0; k < per_step; k++) {
      mb[k] = next_example(&dp);
      targets += count_targets(mb[k]);
    }
    preft_param_set_zero_grad(ps);
    double sum = 0;
    int64_t rows = 0;
    for (int g = 0; g < o->grad_accum && rc == 0 && targets > 0; g++) {
      preft_train_batch_clear(&b);
      for (int k = 0; k < o->batch; k++) add_example(&b, ad, mb[g * o->batch + k], tg, fl);
      double s;
      rc = preft_train_pass(tm, ad, pool, &b, &acts, 1.0f / (float)targets, &s, err);
      sum += s;
      rows += b.n;
    }
    if (rc != 0) break;
    loss = targets ? sum / targets : 0.0;
    double norm = preft_clip_grad_norm(ps, o->clip);
    if (!isfinite(loss) || !isfinite(norm)) {
      rc = preft_fail(
          err, "step %lld: the %s is %s; stopped (the last good checkpoint, step %lld, is kept in %s)",
          (long long)step + 1, isfinite(loss) ? "gradient norm" : "loss",
          isnan(isfinite(loss) ? norm : loss) ? "NaN" : "infinite", (long long)last_ckpt, o->out_dir);
      break;
    }
    double lr = preft_lr_at(step, total, o->warmup, o->lr, o->min_lr_frac);
    if (targets > 0) {
      preft_adamw_step(&opt, ps, lr);
      if (ad) preft_train_adapter_orthonormalize(ad);
    }
    tokens += rows;
    double el = preft_now() - t_start;
    double tps = el > 0 ? (double)(tokens - tokens_start) / el : 0;
    bool do_eval =
        eval && eval->n && ((o->eval_every > 0 && (step + 1) % o->eval_every == 0) || step + 1 == total);
    double ev = NAN;
    if (do_eval) {
      int64_t cnt;
      if ((rc = preft_train_eval_loss(tm, ad, pool, eval, o->batch, o->max_tokens, &ev, &cnt, err)) != 0)
        break;
      res->eval_loss = ev;
    }
    double row[PREFT_HIST_COLS] = {
        (double)step + 1, (double)dp.epoch, lr, loss, ev, norm, (double)tokens, tps, elapsed0 + el};
    hist_add(&hist, row);
    preft_progress_update(&prog, step + 1, loss, tps, do_eval);
    if (do_eval && !o->quiet) {
      if (prog.tty) fprintf(stderr, "\n");
      fprintf(stderr, "preft train: step %lld eval loss %.4f\n", (long long)step + 1, ev);
    }
    bool do_save = (o->save_every > 0 && (step + 1) % o->save_every == 0) || step + 1 == total;
    if (do_save) {
      st = (preft_ckpt_state){step + 1,      dp.epoch, dp.cursor, opt.t,  tokens,
                              elapsed0 + el, o->seed,  ps->n,     hist.n, train->n};
      if ((rc = save_outputs(tm, ad, o, err)) != 0 || (rc = write_log(&hist, o->out_dir, err)) != 0 ||
          (rc = preft_checkpoint_save(ckpt, &st, ps->mem, opt.m, opt.v, hist.rows, err)) != 0)
        break;
      last_ckpt = step + 1;
    }
    if (o->stop_after > 0 && step + 1 >= o->stop_after) {
      step++;
      break;
    }
  }
  preft_progress_finish(&prog);
  if (rc != 0 && hist.n > 0) {
    preft_error e2;
    write_log(&hist, o->out_dir, &e2); /* the log up to the failure */
  }
  if (isnan(loss) && hist.n > 0) loss = hist.rows[(size_t)(hist.n - 1) * PREFT_HIST_COLS + 3];
  res->train_loss = loss;
  res->steps = step;
  res->tokens = tokens;
  res->seconds = preft_now() - t_start;
  res->tokens_per_s = res->seconds > 0 ? (double)(tokens - tokens_start) / res->seconds : 0;
  if (step == step_start && eval && eval->n && rc == 0) { /* resumed a finished run: evaluate anyway */
    int64_t cnt;
    rc = preft_train_eval_loss(tm, ad, pool, eval, o->batch, o->max_tokens, &res->eval_loss, &cnt, err);
  }
  free(mb);
  free(tg);
  free(fl);
  preft_train_batch_free(&b);
  preft_train_acts_free(&acts);
  preft_pool_free(pool);
done:
  free(ckpt);
  free(dp.perm);
  free(hist.rows);
  preft_adamw_free(&opt);
  return rc;
}
