/* mlm_train.c - the masked-language-model pretraining loop of the encoder,
 * its held-out loss and exact resuming (see mlm.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "train/checkpoint.h"
#include "train/mlm.h"
#include "train/optim.h"
#include "train/trainer.h"

typedef struct {
  int *ids, *types, *lengths, *rows, *targets;
  uint8_t *ws;
  int cap;
} mlm_batch;

static void batch_free(mlm_batch *b) {
  free(b->ids), free(b->types), free(b->lengths), free(b->rows), free(b->targets), free(b->ws);
  memset(b, 0, sizeof *b);
}

/* sequences order[0..n) of s into a padded batch; returns T */
static int batch_fill(mlm_batch *mb, const preft_mlm_seqs *s, const int *order, int n) {
  int T = 1;
  for (int i = 0; i < n; i++)
    if (s->len[order[i]] > T) T = s->len[order[i]];
  if (n * T > mb->cap) {
    batch_free(mb);
    mb->cap = n * T;
    mb->ids = preft_xmalloc(sizeof(int) * (size_t)mb->cap);
    mb->types = preft_xcalloc((size_t)mb->cap, sizeof(int));
    mb->lengths = preft_xmalloc(sizeof(int) * (size_t)mb->cap);
    mb->rows = preft_xmalloc(sizeof(int) * (size_t)mb->cap);
    mb->targets = preft_xmalloc(sizeof(int) * (size_t)mb->cap);
    mb->ws = preft_xmalloc((size_t)mb->cap);
  }
  memset(mb->ids, 0, sizeof(int) * (size_t)n * T);
  memset(mb->ws, 0, (size_t)n * T);
  for (int i = 0; i < n; i++) {
    int q = order[i], len = s->len[q];
    memcpy(mb->ids + (size_t)i * T, s->ids + s->start[q], sizeof(int) * (size_t)len);
    memcpy(mb->ws + (size_t)i * T, s->word_start + s->start[q], (size_t)len);
    mb->lengths[i] = len;
  }
  return T;
}

double preft_mlm_eval_loss(const preft_bt_model *m, preft_pool *pool, const preft_mlm_seqs *s, int n,
                           int batch, const preft_mlm_mask_opts *mo, preft_error *err) {
  if (n > s->n) n = s->n;
  preft_bt_acts a = {0};
  mlm_batch mb = {0};
  int *order = preft_xmalloc(sizeof(int) * (size_t)batch);
  double sum = 0;
  long count = 0;
  for (int i0 = 0; i0 < n; i0 += batch) {
    int k = n - i0 < batch ? n - i0 : batch;
    for (int i = 0; i < k; i++) order[i] = i0 + i;
    int T = batch_fill(&mb, s, order, k);
    preft_rng r;
    preft_rng_seed(&r, 0x5eed0000u + (uint64_t)i0); /* the same masks every time */
    int M = preft_mlm_mask(mo, mb.ids, mb.ws, k, T, mb.lengths, &r, mb.rows, mb.targets);
    preft_bert_batch b = {.n_seqs = k, .seq_len = T, .ids = mb.ids, .types = mb.types, .lengths = mb.lengths};
    if (preft_bt_forward(m, pool, &b, NULL, &a, NULL, err) != 0) {
      sum = NAN;
      break;
    }
    sum += preft_bt_mlm_loss((preft_bt_model *)m, pool, &a, mb.rows, mb.targets, M, NULL) * M;
    count += M;
  }
  free(order);
  batch_free(&mb);
  preft_bt_acts_free(&a);
  return count ? sum / (double)count : NAN;
}

static void epoch_order(int *perm, int n, uint64_t seed, int64_t epoch) {
  preft_rng r;
  preft_rng_seed(&r, seed * 0x100000001b3ull + (uint64_t)epoch + 1);
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)preft_rng_below(&r, (uint64_t)i + 1), t = perm[i];
    perm[i] = perm[j], perm[j] = t;
  }
}

static int save_ckpt(const char *path, const preft_bt_model *m, const preft_adamw *opt, int64_t step,
                     int64_t epoch, int64_t cursor, double elapsed, int64_t tokens, uint64_t seed,
                     const preft_mlm_seqs *train, const double *hist, int64_t n_hist, preft_error *err) {
  preft_ckpt_state st = {.step = step,
                         .epoch = epoch,
                         .cursor = cursor,
                         .adam_t = opt->t,
                         .tokens = tokens,
                         .elapsed = elapsed,
                         .seed = seed,
                         .n_params = m->ps.n,
                         .n_hist = n_hist,
                         .n_train = train->n,
                         .hist_cols = PREFT_HIST_COLS};
  return preft_checkpoint_save(path, &st, m->ps.mem, opt->m, opt->v, hist, err);
}

int preft_mlm_train(preft_bt_model *m, preft_pool *pool, const preft_mlm_seqs *train,
                    const preft_mlm_seqs *heldout, const preft_mlm_train_opts *o, preft_mlm_result *res,
                    preft_error *err) {
  memset(res, 0, sizeof *res);
  res->final_eval_loss = res->final_train_loss = NAN;
  preft_adamw opt;
  preft_adamw_init(&opt, m->ps.n, 0.9, 0.999, 1e-6, o->weight_decay);
  int64_t step = 0, epoch = 0, cursor = 0, tokens = 0, n_hist = 0;
  double elapsed0 = 0;
  double *hist = preft_xcalloc((size_t)(o->steps + 1) * PREFT_HIST_COLS, sizeof(double));
  int rc = 0;
  if (o->resume && o->ckpt_path && preft_file_exists(o->ckpt_path)) {
    preft_ckpt_state st;
    double *h = NULL;
    if (preft_checkpoint_load(o->ckpt_path, &st, m->ps.mem, opt.m, opt.v, m->ps.n, &h, err) != 0) {
      rc = -1;
      goto out;
    }
    if (st.n_train != train->n || st.seed != o->seed || st.step > o->steps) {
      free(h);
      rc = preft_fail(err, "%s: made for another run (%lld training sequences, seed %llu, step %lld)",
                      o->ckpt_path, (long long)st.n_train, (unsigned long long)st.seed, (long long)st.step);
      goto out;
    }
    step = st.step, epoch = st.epoch, cursor = st.cursor, opt.t = st.adam_t, tokens = st.tokens;
    elapsed0 = st.elapsed, n_hist = st.n_hist;
    memcpy(hist, h, sizeof(double) * (size_t)n_hist * PREFT_HIST_COLS);
    free(h);
    res->resumed_from = step;
    fprintf(stderr, "resuming from %s at step %lld\n", o->ckpt_path, (long long)step);
  }
  {
    int *perm = preft_xmalloc(sizeof(int) * (size_t)train->n),
        *order = preft_xmalloc(sizeof(int) * (size_t)o->batch);
    epoch_order(perm, train->n, o->seed, epoch);
    preft_param_set view;
    preft_bt_trainable_view(m, false, &view);
    preft_bt_acts a = {0};
    mlm_batch mb = {0};
    float *dlast = NULL;
    size_t cap_d = 0;
    float **d_out = preft_xcalloc((size_t)m->cfg.n_layers, sizeof *d_out);
    preft_progress prog;
    preft_progress_init(&prog, o->steps, o->quiet);
    double t0 = preft_now(), ema = NAN;
    int64_t warm = (int64_t)(o->warmup_frac * o->steps), stop = o->steps;
    if (o->stop_after > 0 && step + o->stop_after < stop) stop = step + o->stop_after;
    for (; step < stop; step++) {
      for (int i = 0; i < o->batch; i++) {
        if (cursor == train->n) {
          epoch++;
          cursor = 0;
          epoch_order(perm, train->n, o->seed, epoch);
        }
        order[i] = perm[cursor++];
      }
      int T = batch_fill(&mb, train, order, o->batch);
      preft_rng r;
      preft_rng_seed(&r, o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)step);
      int M = preft_mlm_mask(&o->mask, mb.ids, mb.ws, o->batch, T, mb.lengths, &r, mb.rows, mb.targets);
      preft_bert_batch b = {
          .n_seqs = o->batch, .seq_len = T, .ids = mb.ids, .types = mb.types, .lengths = mb.lengths};
      if (preft_bt_forward(m, pool, &b, NULL, &a, &r, err) != 0) {
        rc = -1;
        break;
      }
      size_t ND = (size_t)o->batch * T * m->cfg.dim;
      if (ND > cap_d) {
        free(dlast);
        dlast = preft_xmalloc(sizeof(float) * ND);
        cap_d = ND;
      }
      memset(dlast, 0, sizeof(float) * ND);
      d_out[m->cfg.n_layers - 1] = dlast;
      preft_param_set_zero_grad(&m->ps);
      double loss = preft_bt_mlm_loss(m, pool, &a, mb.rows, mb.targets, M, dlast);
      preft_bt_backward(m, pool, &a, d_out, NULL, true);
      double gnorm = preft_clip_grad_norm(&m->ps, o->clip);
      double lr = preft_lr_at(step, o->steps, warm, o->lr, o->min_lr_frac);
      preft_adamw_step(&opt, &view, lr);
      for (int s = 0; s < o->batch; s++) tokens += mb.lengths[s];
      ema = isnan(ema) ? loss : 0.98 * ema + 0.02 * loss;
      double el = preft_now() - t0 + elapsed0;
      double *h = hist + (size_t)n_hist * PREFT_HIST_COLS;
      h[PREFT_HIST_STEP] = (double)step + 1;
      h[PREFT_HIST_EPOCH] = (double)epoch;
      h[PREFT_HIST_LR] = lr;
      h[PREFT_HIST_TRAIN_LOSS] = loss;
      h[PREFT_HIST_EVAL_LOSS] = NAN;
      h[PREFT_HIST_GRAD_NORM] = gnorm;
      h[PREFT_HIST_TOKENS] = (double)tokens;
      h[PREFT_HIST_TOKENS_PER_S] = el > 0 ? (double)tokens / el : 0;
      h[PREFT_HIST_ELAPSED_S] = el;
      bool last = step + 1 == o->steps, cut = step + 1 == stop;
      if ((o->eval_every > 0 && (step + 1) % o->eval_every == 0) || last) {
        h[PREFT_HIST_EVAL_LOSS] =
            preft_mlm_eval_loss(m, pool, heldout, o->eval_seqs, o->batch, &o->mask, err);
        if (!o->quiet) {
          if (prog.tty) fprintf(stderr, "\n");
          fprintf(stderr, "step %lld: train loss %.4f, held-out loss %.4f\n", (long long)step + 1, ema,
                  h[PREFT_HIST_EVAL_LOSS]);
        }
        res->final_eval_loss = h[PREFT_HIST_EVAL_LOSS];
      }
      n_hist++;
      preft_progress_update(&prog, step + 1, ema, h[PREFT_HIST_TOKENS_PER_S], last);
      if (o->ckpt_path && ((o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0) || cut) &&
          save_ckpt(o->ckpt_path, m, &opt, step + 1, epoch, cursor, el, tokens, o->seed, train, hist, n_hist,
                    err) != 0) {
        rc = -1;
        step++;
        break;
      }
      res->final_train_loss = ema;
    }
    preft_progress_finish(&prog);
    res->seconds = preft_now() - t0 + elapsed0;
    free(d_out);
    free(dlast);
    batch_free(&mb);
    preft_bt_acts_free(&a);
    free(view.t);
    free(perm);
    free(order);
  }
out:
  res->hist = hist;
  res->n_hist = n_hist;
  preft_adamw_free(&opt);
  return rc;
}
