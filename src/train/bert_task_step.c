/* bert_task_step.c - one training step of a multitask head on the trainable
 * encoder (bert_train.h): the task loss at the main head or at every
 * layer's exit head, SMART's smoothness term on the embedding output, and
 * the Bregman proximal term against the momentum teacher.
 *
 * With SMART the step runs the encoder twice (clean, and perturbed by the
 * delta that the inner ascent found), and both passes are differentiated:
 * loss = task(f(x)) + lambda_s·D(f(x+delta), f(x)) (+ mu·D(f(x), teacher(x))). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/bert_train.h"

void preft_bt_step_ws_free(preft_bt_step_ws *ws) {
  preft_bt_acts_free(&ws->clean);
  preft_bt_acts_free(&ws->adv);
  preft_bt_acts_free(&ws->teach);
  preft_bt_head_cache_free(&ws->hc);
  preft_bt_head_cache_free(&ws->ha);
  free(ws->buf);
  memset(ws, 0, sizeof *ws);
}

static float *grow(preft_bt_step_ws *ws, size_t n) {
  if (n > ws->cap) {
    free(ws->buf);
    ws->buf = preft_xmalloc(sizeof(float) * n);
    ws->cap = n;
  }
  return ws->buf;
}

void preft_bt_smart_project(float *delta, const float *g, int rows, int dim, double eta, double eps) {
  for (int r = 0; r < rows; r++) {
    const float *gr = g + (size_t)r * dim;
    float *dr = delta + (size_t)r * dim;
    double mx = 0;
    for (int d = 0; d < dim; d++)
      if (fabs(gr[d]) > mx) mx = fabs(gr[d]);
    for (int d = 0; d < dim; d++) {
      double v = dr[d] + eta * gr[d] / (mx + 1e-6);
      dr[d] = (float)(v > eps ? eps : v < -eps ? -eps : v);
    }
  }
}

int preft_bt_smart_delta_grad(preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, preft_bt_task t,
                              int n, const float *clean, const float *delta, float *g, preft_bt_step_ws *ws,
                              preft_error *err) {
  int L = m->cfg.n_layers, D = m->cfg.dim, W = preft_bt_task_width(t);
  size_t ND = (size_t)b->n_seqs * b->seq_len * D;
  if (preft_bt_forward(m, pool, b, delta, &ws->adv, NULL, err) != 0) return -1;
  float *out = preft_xmalloc(sizeof(float) * ((size_t)2 * n * W + ND)), *dout = out + (size_t)n * W,
        *dlast = dout + (size_t)n * W;
  preft_bt_head_forward(m, &ws->adv, t, L - 1, n, out, &ws->ha, NULL);
  memset(dout, 0, sizeof(float) * (size_t)n * W);
  preft_bt_divergence(t, out, clean, n, 1.0, dout, NULL);
  memset(dlast, 0, sizeof(float) * ND);
  preft_bt_head_backward(m, &ws->adv, &ws->ha, dout, dlast, false);
  float **d_out = preft_xcalloc((size_t)L, sizeof *d_out);
  d_out[L - 1] = dlast;
  preft_bt_backward(m, pool, &ws->adv, d_out, g, false);
  free(d_out);
  free(out);
  return 0;
}

int preft_bt_predict(const preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, preft_bt_task t,
                     int n, int layer, float *out, preft_bt_step_ws *ws, preft_error *err) {
  if (preft_bt_forward(m, pool, b, NULL, &ws->clean, NULL, err) != 0) return -1;
  preft_bt_head_forward(m, &ws->clean, t, layer, n, out, &ws->hc, NULL);
  return 0;
}

double preft_bt_task_step(preft_bt_model *m, preft_pool *pool, const preft_bert_batch *b, preft_bt_task t,
                          int n, const float *labels, const preft_bt_step_opts *o, preft_bt_step_ws *ws,
                          preft_rng *rng, preft_error *err) {
  int L = m->cfg.n_layers, D = m->cfg.dim, W = preft_bt_task_width(t), T = b->seq_len;
  size_t ND = (size_t)b->n_seqs * T * D, nW = (size_t)n * W;
  if (o->exits != PREFT_BT_EXITS_OFF && !m->exit_pooler) {
    preft_fail(err, "early-exit training needs a model with exit heads");
    return NAN;
  }
  float *buf = grow(ws, (size_t)(L + 3) * ND + 6 * nW);
  float *dlayers = buf, *delta = dlayers + (size_t)L * ND, *g = delta + ND, *dadv = g + ND;
  float *out = dadv + ND, *dclean = out + nW, *outc = dclean + nW, *outa = outc + nW, *dadvo = outa + nW,
        *outt = dadvo + nW;
  memset(dlayers, 0, sizeof(float) * (size_t)L * ND);
  float **d_out = preft_xcalloc((size_t)L, sizeof *d_out);
  for (int l = 0; l < L; l++) d_out[l] = dlayers + (size_t)l * ND;
  double loss = NAN;

  if (preft_bt_forward(m, pool, b, NULL, &ws->clean, rng, err) != 0) goto done;
  loss = 0;
  int first = o->exits == PREFT_BT_EXITS_OFF ? L - 1 : 0;
  int last = o->exits == PREFT_BT_EXITS_ONLY ? L - 2 : L - 1;
  double wsum = 0;
  for (int l = first; l <= last; l++) wsum += o->exits == PREFT_BT_EXITS_OFF ? 1.0 : (double)(l + 1);
  for (int l = first; l <= last; l++) {
    double wl = (o->exits == PREFT_BT_EXITS_OFF ? 1.0 : (double)(l + 1)) / wsum;
    preft_bt_head_forward(m, &ws->clean, t, l, n, out, &ws->hc, rng);
    loss += wl * preft_bt_task_loss(t, out, labels, n, dclean);
    for (size_t i = 0; i < nW; i++) dclean[i] *= (float)wl;
    if (l < L - 1) {
      preft_bt_head_backward(m, &ws->clean, &ws->hc, dclean, d_out[l], true);
      continue;
    }
    /* the main head: SMART and the proximal term join its gradient */
    memcpy(outc, out, sizeof(float) * nW);
    if (o->lambda_s > 0 && (o->fixed_delta || rng)) {
      if (o->fixed_delta) {
        memcpy(delta, o->fixed_delta, sizeof(float) * ND);
      } else {
        for (int s = 0; s < b->n_seqs; s++) {
          int len = b->lengths ? b->lengths[s] : T;
          for (int i = 0; i < T; i++)
            for (int d = 0; d < D; d++)
              delta[((size_t)s * T + i) * D + d] = i < len ? (float)o->sigma * preft_rng_normal(rng) : 0.0f;
        }
        for (int k = 0; k < o->steps; k++) {
          if (preft_bt_smart_delta_grad(m, pool, b, t, n, outc, delta, g, ws, err) != 0) {
            loss = NAN;
            goto done;
          }
          preft_bt_smart_project(delta, g, b->n_seqs * T, D, o->eta, o->eps);
        }
      }
      if (preft_bt_forward(m, pool, b, delta, &ws->adv, rng, err) != 0) {
        loss = NAN;
        goto done;
      }
      preft_bt_head_forward(m, &ws->adv, t, L - 1, n, outa, &ws->ha, rng);
      memset(dadvo, 0, sizeof(float) * nW);
      loss += o->lambda_s * preft_bt_divergence(t, outa, outc, n, o->lambda_s, dadvo, dclean);
      memset(dadv, 0, sizeof(float) * ND);
      preft_bt_head_backward(m, &ws->adv, &ws->ha, dadvo, dadv, true);
      float **da = preft_xcalloc((size_t)L, sizeof *da);
      da[L - 1] = dadv;
      preft_bt_backward(m, pool, &ws->adv, da, NULL, true);
      free(da);
    }
    if (o->mu > 0 && o->teacher) {
      if (preft_bt_forward(o->teacher, pool, b, NULL, &ws->teach, NULL, err) != 0) {
        loss = NAN;
        goto done;
      }
      preft_bt_head_cache tc = {0};
      preft_bt_head_forward(o->teacher, &ws->teach, t, L - 1, n, outt, &tc, NULL);
      preft_bt_head_cache_free(&tc);
      loss += o->mu * preft_bt_divergence(t, outc, outt, n, o->mu, dclean, NULL);
    }
    preft_bt_head_backward(m, &ws->clean, &ws->hc, dclean, d_out[L - 1], true);
  }
  if (o->exits != PREFT_BT_EXITS_ONLY) preft_bt_backward(m, pool, &ws->clean, d_out, NULL, true);
done:
  free(d_out);
  return loss;
}
