/* multitask_train.c - the multitask fine-tuning loop and the dev metrics
 * (see multitask_train.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "train/multitask_ckpt.h"
#include "train/multitask_train.h"
#include "train/optim.h"
#include "train/trainer.h"

void preft_mt_history_free(preft_mt_history *h) {
  free(h->step_loss);
  free(h->step_task);
  free(h->eval_step);
  free(h->evals);
  memset(h, 0, sizeof *h);
}

int preft_mt_evaluate(const preft_bt_model *m, preft_pool *pool, const preft_mt_set *dev, int batch,
                      int layer, preft_mt_eval *out, preft_error *err) {
  memset(out, 0, sizeof *out);
  double t0 = preft_now();
  preft_bt_step_ws ws = {0};
  preft_mt_batch mb = {0};
  int rc = 0;
  bool siamese = m->o.arch == PREFT_BT_SIAMESE;
  if (layer < 0) layer = m->cfg.n_layers - 1;
  for (int t = 0; t < PREFT_BT_N_TASKS && rc == 0; t++) {
    const preft_mt_set *s = &dev[t];
    out->metric[t] = NAN;
    out->n[t] = s->n;
    if (s->n == 0) continue;
    int w = preft_bt_task_width((preft_bt_task)t);
    float *pred = preft_xmalloc(sizeof(float) * (size_t)s->n * w),
          *labels = preft_xmalloc(sizeof(float) * s->n);
    int *idx = preft_xmalloc(sizeof(int) * (size_t)batch);
    for (int i0 = 0; i0 < s->n && rc == 0; i0 += batch) {
      int n = s->n - i0 < batch ? s->n - i0 : batch;
      for (int i = 0; i < n; i++) idx[i] = i0 + i, labels[i0 + i] = s->ex[i0 + i].label;
      preft_mt_batch_make(&mb, s, idx, n, siamese);
      rc = preft_bt_predict(m, pool, &mb.b, (preft_bt_task)t, n, layer, pred + (size_t)i0 * w, &ws, err);
    }
    if (rc == 0) out->metric[t] = preft_mt_metric((preft_bt_task)t, pred, labels, s->n);
    free(pred);
    free(labels);
    free(idx);
  }
  double v[3];
  for (int t = 0; t < 3; t++) v[t] = isnan(out->metric[t]) ? 0.0 : out->metric[t];
  out->score = preft_mt_score(v[0], v[1], v[2]);
  out->seconds = preft_now() - t0;
  preft_mt_batch_free(&mb);
  preft_bt_step_ws_free(&ws);
  return rc;
}

int preft_mt_evaluate_exit(preft_bert_classifier *cl, preft_pool *pool, const preft_mt_set *dev, int batch,
                           const preft_bert_exit_rule *rule, preft_mt_eval *out, double *mean_layers,
                           preft_error *err) {
  memset(out, 0, sizeof *out);
  preft_mt_batch mb = {0};
  int rc = 0, D = cl->bert->cfg.dim;
  double secs = 0;
  for (int t = 0; t < PREFT_BT_N_TASKS && rc == 0; t++) {
    const preft_mt_set *s = &dev[t];
    out->metric[t] = NAN;
    out->n[t] = s->n;
    if (mean_layers) mean_layers[t] = NAN;
    if (s->n == 0) continue;
    int w = preft_bt_task_width((preft_bt_task)t);
    bool two = cl->siamese && t != PREFT_BT_SST;
    float *pred = preft_xmalloc(sizeof(float) * (size_t)s->n * w),
          *labels = preft_xmalloc(sizeof(float) * s->n),
          *vecs = two ? preft_xmalloc(sizeof(float) * (size_t)2 * batch * D) : NULL;
    int *idx = preft_xmalloc(sizeof(int) * (size_t)batch), *used = preft_xmalloc(sizeof(int) * (size_t)batch);
    long layers = 0;
    for (int i0 = 0; i0 < s->n && rc == 0; i0 += batch) {
      int n = s->n - i0 < batch ? s->n - i0 : batch;
      for (int i = 0; i < n; i++) idx[i] = i0 + i, labels[i0 + i] = s->ex[i0 + i].label;
      preft_mt_batch_make(&mb, s, idx, n, cl->siamese);
      double t0 = preft_now();
      if (two) {
        rc = preft_bert_embed_sentences(cl, pool, &mb.b, vecs, err);
        for (int i = 0; i < n && rc == 0; i++)
          pred[i0 + i] = preft_bert_pair_output(cl, t, vecs + (size_t)i * D, vecs + (size_t)(n + i) * D);
        for (int i = 0; i < n; i++) used[i] = cl->bert->cfg.n_layers;
      } else {
        rc = preft_bert_classify(cl, pool, &mb.b, t, rule, pred + (size_t)i0 * w, used, err);
      }
      secs += preft_now() - t0;
      for (int i = 0; i < n; i++) layers += used[i];
    }
    if (rc == 0) out->metric[t] = preft_mt_metric((preft_bt_task)t, pred, labels, s->n);
    if (mean_layers) mean_layers[t] = (double)layers / s->n;
    free(pred), free(labels), free(vecs), free(idx), free(used);
  }
  double v[3];
  for (int t = 0; t < 3; t++) v[t] = isnan(out->metric[t]) ? 0.0 : out->metric[t];
  out->score = preft_mt_score(v[0], v[1], v[2]);
  out->seconds = secs;
  preft_mt_batch_free(&mb);
  return rc;
}

/* Reshuffles a task's order for its next pass. */
static void shuffle(preft_mt_order *o, preft_rng *r) {
  for (int i = o->n - 1; i > 0; i--) {
    int j = (int)preft_rng_below(r, (uint64_t)i + 1), t = o->perm[i];
    o->perm[i] = o->perm[j];
    o->perm[j] = t;
  }
  o->cursor = 0;
}

static double view_clip(preft_param_set *v, double max_norm) {
  double ss = 0;
  for (int k = 0; k < v->n_t; k++)
    for (size_t i = 0; i < v->t[k].n; i++) ss += (double)v->t[k].g[i] * v->t[k].g[i];
  double norm = sqrt(ss);
  if (max_norm > 0 && norm > max_norm)
    for (int k = 0; k < v->n_t; k++)
      for (size_t i = 0; i < v->t[k].n; i++) v->t[k].g[i] *= (float)(max_norm / norm);
  return norm;
}

int preft_mt_train(preft_bt_model *m, preft_pool *pool, const preft_mt_set *train, const preft_mt_set *dev,
                   const preft_mt_train_opts *o, preft_mt_history *h, preft_error *err) {
  memset(h, 0, sizeof *h);
  int active[PREFT_BT_N_TASKS], n_active = 0;
  double total = 0;
  for (int t = 0; t < PREFT_BT_N_TASKS; t++)
    if (train[t].n > 0) active[n_active++] = t, total += train[t].n;
  if (n_active == 0) return preft_fail(err, "multitask training: no training examples");
  bool only_exits = o->step.exits == PREFT_BT_EXITS_ONLY;
  if (only_exits) m->frozen_base = true;
  preft_param_set view;
  preft_bt_trainable_view(m, only_exits, &view);
  preft_adamw opt;
  preft_adamw_init(&opt, m->ps.n, 0.9, 0.999, 1e-8, o->weight_decay);
  preft_bt_model teacher = {0};
  preft_bt_step_opts so = o->step;
  if (so.mu > 0) {
    preft_bt_model_clone(&teacher, m);
    so.teacher = &teacher;
  }
  preft_rng rng;
  preft_rng_seed(&rng, o->seed);
  preft_mt_order ord[PREFT_BT_N_TASKS] = {{0}};
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) {
    ord[t].n = train[t].n;
    ord[t].perm = preft_xmalloc(sizeof(int) * (size_t)(train[t].n ? train[t].n : 1));
    for (int i = 0; i < train[t].n; i++) ord[t].perm[i] = i;
    shuffle(&ord[t], &rng);
  }
  h->step_loss = preft_xcalloc((size_t)o->steps, sizeof(double));
  h->step_task = preft_xcalloc((size_t)o->steps, sizeof(int));
  int max_evals = (o->eval_every > 0 ? o->steps / o->eval_every : 0) + 2;
  h->eval_step = preft_xcalloc((size_t)max_evals, sizeof(double));
  h->evals = preft_xcalloc((size_t)max_evals, sizeof *h->evals);
  preft_bt_step_ws ws = {0};
  preft_mt_batch mb = {0};
  int *idx = preft_xmalloc(sizeof(int) * (size_t)o->batch);
  preft_mt_loop loop = {.m = m,
                        .opt = &opt,
                        .teacher = so.mu > 0 ? &teacher : NULL,
                        .rng = &rng,
                        .ord = ord,
                        .h = h,
                        .max_evals = max_evals,
                        .seed = o->seed,
                        .steps = o->steps};
  int64_t start = 0;
  double elapsed0 = 0;
  int rc = 0;
  if (o->resume && o->ckpt_path && preft_file_exists(o->ckpt_path)) {
    if (preft_mt_ckpt_load(o->ckpt_path, &loop, &start, &elapsed0, err) != 0) {
      rc = -1;
      start = o->steps;
    } else {
      h->resumed_from = start;
      if (!o->quiet) fprintf(stderr, "resuming from %s at step %lld\n", o->ckpt_path, (long long)start);
    }
  }
  int64_t stop = o->steps;
  if (o->stop_after > 0 && start + o->stop_after < stop) stop = start + o->stop_after;
  preft_progress prog;
  preft_progress_init(&prog, o->steps, o->quiet);
  double t0 = preft_now(), ema = NAN;
  int64_t examples = 0, warm = (int64_t)(o->warmup_frac * o->steps);
  bool siamese = m->o.arch == PREFT_BT_SIAMESE;
  for (int step = (int)start; step < stop; step++) {
    int t;
    if (o->proportional) {
      double u = preft_rng_uniform(&rng) * total;
      t = active[n_active - 1];
      for (int k = 0; k < n_active; k++) {
        if (u < train[active[k]].n) {
          t = active[k];
          break;
        }
        u -= train[active[k]].n;
      }
    } else {
      t = active[step % n_active];
    }
    preft_mt_order *od = &ord[t];
    int n = o->batch < od->n ? o->batch : od->n;
    for (int i = 0; i < n; i++) {
      if (od->cursor == od->n) shuffle(od, &rng);
      idx[i] = od->perm[od->cursor++];
    }
    preft_mt_batch_make(&mb, &train[t], idx, n, siamese);
    preft_param_set_zero_grad(&m->ps);
    double loss = preft_bt_task_step(m, pool, &mb.b, (preft_bt_task)t, n, mb.labels, &so, &ws, &rng, err);
    if (isnan(loss)) {
      rc = -1;
      break;
    }
    view_clip(&view, o->clip);
    preft_adamw_step(&opt, &view, preft_lr_at(step, o->steps, warm, o->lr, o->min_lr_frac));
    if (so.mu > 0) preft_bt_model_ema(&teacher, m, o->bregman_beta);
    h->step_loss[step] = loss;
    h->step_task[step] = t;
    h->n_steps = step + 1;
    examples += n;
    ema = isnan(ema) ? loss : 0.95 * ema + 0.05 * loss;
    double el = preft_now() - t0;
    preft_progress_update(&prog, step + 1, ema, el > 0 ? (double)examples / el : 0, step + 1 == o->steps);
    bool last = step + 1 == o->steps, cut = step + 1 == stop && !last;
    if (((o->eval_every > 0 && (step + 1) % o->eval_every == 0) || last) && h->n_evals < max_evals) {
      preft_mt_eval *ev = &h->evals[h->n_evals];
      if (preft_mt_evaluate(m, pool, dev, 64, -1, ev, err) != 0) {
        rc = -1;
        break;
      }
      h->eval_step[h->n_evals++] = step + 1;
      if (!o->quiet) {
        if (prog.tty) fprintf(stderr, "\n");
        fprintf(stderr, "eval step %d: sst acc %.4f  para acc %.4f  sts pearson %.4f  score %.4f (%.1fs)\n",
                step + 1, ev->metric[0], ev->metric[1], ev->metric[2], ev->score, ev->seconds);
      }
    }
    if (o->ckpt_path && ((o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0) || cut) &&
        preft_mt_ckpt_save(o->ckpt_path, &loop, step + 1, elapsed0 + preft_now() - t0, err) != 0) {
      rc = -1;
      break;
    }
  }
  preft_progress_finish(&prog);
  h->seconds = elapsed0 + preft_now() - t0;
  free(idx);
  preft_mt_batch_free(&mb);
  preft_bt_step_ws_free(&ws);
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) free(ord[t].perm);
  if (so.mu > 0) preft_bt_model_free(&teacher);
  preft_adamw_free(&opt);
  free(view.t);
  if (only_exits) m->frozen_base = m->o.lora_rank > 0;
  return rc;
}
