/* attention_fwd_bwd.c - the training pass's causal attention with GQA,
 * forward and backward (layers.h), as blocked matrix products.
 *
 * Legend: n positions of one sequence, Dh head width, QB query rows per
 * block, L keys a block sees (from the window start of its first row to
 * its last row: the causal triangle is cut at block granularity, so at
 * most one block's width of masked products is wasted per block).
 *
 * Per (sequence, head) the head's K and V are copied into dense [n, Dh]
 * buffers once; per block of QB query rows the scores S[QB, L] = Q·Kᵀ, the
 * output O = P·V and in the backward dP = dO·Vᵀ, dQ = dS·K, dK += dSᵀ·Q,
 * dV += Pᵀ·dO are each one preft_gemm call on the caller's thread (a NULL
 * pool: the pool is already split over sequences and heads), so they run
 * on the tuned FP32 kernels instead of one dot or axpy of Dh floats per
 * (query, key) pair. The operands a product needs transposed (Vᵀ, Kᵀ for
 * a block's keys; Pᵀ, dSᵀ, Qᵀ, dOᵀ of a block) are copied: QB·L + L·Dh
 * floats against QB·L·Dh multiply-adds, a fraction 1/Dh.
 *
 * The backward recomputes P from the saved log-sum-exp. Each backward task
 * owns (sequence, kv head): dK and dV of that head and dQ of the query
 * heads that read it, so no two tasks write the same float; results do not
 * depend on the thread count. Products are FP32 whatever the training
 * matmul precision (attention is not a weight product). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "train/layers.h"

#define QB 64 /* query rows per block */

typedef struct {
  float *att, *lse, *dq, *dk, *dv;
  const float *datt, *catt, *q, *k, *v, *clse;
  const int *start, *len;
  int h, hkv, dh, window;
} attn_job;

static int window_start(int pos, int window) {
  return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

/* dst[i][0:dh] = src row i's head slice (rows stride floats apart), i < n */
static void gather_head(float *dst, const float *src, size_t stride, int n, int dh) {
  for (int i = 0; i < n; i++)
    memcpy(dst + (size_t)i * dh, src + (size_t)i * stride, sizeof(float) * (size_t)dh);
}

/* dst[C, R] = src[R, C]ᵀ, src rows stride floats apart */
static void transpose(float *dst, const float *src, size_t stride, int rows, int cols) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * stride + c];
}

/* P[bi, L] in place over S[bi, L]: softmax of the scaled scores over each
 * row's keys [window start, pos] (zero elsewhere); with lse_out the rows'
 * log-sum-exp are written (forward), otherwise read from lse_in (backward:
 * p = exp(s·scale − lse), the forward's probabilities). */
static void softmax_rows(float *s, int bi, int L, int i0, int kt0, int window, float scale, float *lse_out,
                         const float *lse_in, size_t lse_stride) {
  for (int r = 0; r < bi; r++) {
    float *row = s + (size_t)r * L;
    int pos = i0 + r, lo = window_start(pos, window) - kt0, hi = pos - kt0;
    for (int t = 0; t < lo; t++) row[t] = 0.0f;
    for (int t = hi + 1; t < L; t++) row[t] = 0.0f;
    if (lse_in) {
      float l = lse_in[(size_t)r * lse_stride];
      for (int t = lo; t <= hi; t++) row[t] = expf(row[t] * scale - l);
      continue;
    }
    float mx = -INFINITY;
    for (int t = lo; t <= hi; t++) {
      row[t] *= scale;
      mx = row[t] > mx ? row[t] : mx;
    }
    double sum = 0.0;
    for (int t = lo; t <= hi; t++) {
      row[t] = expf(row[t] - mx);
      sum += row[t];
    }
    float inv = (float)(1.0 / sum);
    for (int t = lo; t <= hi; t++) row[t] *= inv;
    lse_out[(size_t)r * lse_stride] = mx + (float)log(sum);
  }
}

/* task = (sequence, query head) */
static void attn_fwd_task(void *p, int task, int thread) {
  (void)thread;
  const attn_job *j = p;
  int s = task / j->h, h = task % j->h, g = h / (j->h / j->hkv), dh = j->dh, n = j->len[s];
  size_t qs = (size_t)j->h * dh, ks = (size_t)j->hkv * dh, r0 = (size_t)j->start[s];
  float scale = 1.0f / sqrtf((float)dh);
  /* kd [n, Dh], vt [Dh, L], sc [QB, L] */
  float *kd = preft_xmalloc(sizeof(float) * ((size_t)n * dh * 2 + (size_t)QB * n));
  float *vt = kd + (size_t)n * dh, *sc = vt + (size_t)n * dh;
  gather_head(kd, j->k + r0 * ks + (size_t)g * dh, ks, n, dh);
  for (int i0 = 0; i0 < n; i0 += QB) {
    int i1 = i0 + QB < n ? i0 + QB : n, bi = i1 - i0, kt0 = window_start(i0, j->window), L = i1 - kt0;
    const float *q = j->q + (r0 + (size_t)i0) * qs + (size_t)h * dh;
    preft_gemm(NULL, sc, L, q, (int)qs, kd + (size_t)kt0 * dh, PREFT_F32, bi, dh, L, 0); /* S = Q·Kᵀ */
    softmax_rows(sc, bi, L, i0, kt0, j->window, scale, j->lse + (r0 + (size_t)i0) * j->h + h, NULL,
                 (size_t)j->h);
    transpose(vt, j->v + (r0 + (size_t)kt0) * ks + (size_t)g * dh, ks, L, dh);
    preft_gemm(NULL, j->att + (r0 + (size_t)i0) * qs + (size_t)h * dh, (int)qs, sc, L, vt, PREFT_F32, bi, L,
               dh, 0); /* O = P·V */
  }
  free(kd);
}

/* The fields both passes set. */
static attn_job base_job(const float *q, const float *k, const float *v, const int *start, const int *len,
                         int h, int hkv, int head_dim, int window) {
  return (attn_job){.q = q,
                    .k = k,
                    .v = v,
                    .start = start,
                    .len = len,
                    .h = h,
                    .hkv = hkv,
                    .dh = head_dim,
                    .window = window};
}

void preft_attention_forward(preft_pool *pool, float *att, float *lse, const float *q, const float *k,
                             const float *v, const int *start, const int *len, int n_seq, int h, int hkv,
                             int head_dim, int window) {
  attn_job j = base_job(q, k, v, start, len, h, hkv, head_dim, window);
  j.att = att;
  j.lse = lse;
  preft_pool_run(pool, n_seq * h, attn_fwd_task, &j);
}

/* task = (sequence, kv head). With P recomputed: dP = dO·Vᵀ,
 * dS = P ∘ (dP − rowsum(dO ∘ O)) / √Dh, dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO. */
static void attn_bwd_task(void *p, int task, int thread) {
  (void)thread;
  const attn_job *j = p;
  int s = task / j->hkv, g = task % j->hkv, dh = j->dh, group = j->h / j->hkv, n = j->len[s];
  size_t qs = (size_t)j->h * dh, ks = (size_t)j->hkv * dh, r0 = (size_t)j->start[s];
  float scale = 1.0f / sqrtf((float)dh);
  /* kd, vd [n, Dh]; kt [Dh, L]; P, dS [QB, L]; Pᵀ, dSᵀ [L, QB]; Qᵀ, dOᵀ [Dh, QB] */
  size_t nd = (size_t)n * dh, ql = (size_t)QB * n, qd = (size_t)QB * dh;
  float *kd = preft_xmalloc(sizeof(float) * (3 * nd + 4 * ql + 2 * qd));
  float *vd = kd + nd, *kt = vd + nd, *pr = kt + nd, *ds = pr + ql, *prt = ds + ql, *dst = prt + ql,
        *qt = dst + ql, *dot = qt + qd;
  float *dk = j->dk + r0 * ks + (size_t)g * dh, *dv = j->dv + r0 * ks + (size_t)g * dh;
  gather_head(kd, j->k + r0 * ks + (size_t)g * dh, ks, n, dh);
  gather_head(vd, j->v + r0 * ks + (size_t)g * dh, ks, n, dh);
  for (int t = 0; t < n; t++) {
    memset(dk + (size_t)t * ks, 0, sizeof(float) * (size_t)dh);
    memset(dv + (size_t)t * ks, 0, sizeof(float) * (size_t)dh);
  }
  for (int h = g * group; h < (g + 1) * group; h++) {
    for (int i0 = 0; i0 < n; i0 += QB) {
      int i1 = i0 + QB < n ? i0 + QB : n, bi = i1 - i0, kt0 = window_start(i0, j->window), L = i1 - kt0;
      size_t row0 = (r0 + (size_t)i0) * qs + (size_t)h * dh;
      const float *q = j->q + row0, *dout = j->datt + row0, *o = j->catt + row0;
      preft_gemm(NULL, pr, L, q, (int)qs, kd + (size_t)kt0 * dh, PREFT_F32, bi, dh, L, 0); /* S = Q·Kᵀ */
      softmax_rows(pr, bi, L, i0, kt0, j->window, scale, NULL, j->clse + (r0 + (size_t)i0) * j->h + h,
                   (size_t)j->h);
      preft_gemm(NULL, ds, L, dout, (int)qs, vd + (size_t)kt0 * dh, PREFT_F32, bi, dh, L, 0); /* dP = dO·Vᵀ */
      for (int r = 0; r < bi; r++) {
        float dsum = preft_dot(dout + (size_t)r * qs, o + (size_t)r * qs, dh);
        float *dr = ds + (size_t)r * L;
        const float *pp = pr + (size_t)r * L;
        for (int t = 0; t < L; t++) dr[t] = pp[t] * (dr[t] - dsum) * scale;
      }
      transpose(kt, kd + (size_t)kt0 * dh, (size_t)dh, L, dh);
      preft_gemm(NULL, j->dq + row0, (int)qs, ds, L, kt, PREFT_F32, bi, L, dh, 0); /* dQ = dS·K */
      transpose(dst, ds, (size_t)L, bi, L);
      transpose(qt, q, qs, bi, dh);
      preft_gemm(NULL, dk + (size_t)kt0 * ks, (int)ks, dst, bi, qt, PREFT_F32, L, bi, dh,
                 1); /* dK += dSᵀ·Q */
      transpose(prt, pr, (size_t)L, bi, L);
      transpose(dot, dout, qs, bi, dh);
      preft_gemm(NULL, dv + (size_t)kt0 * ks, (int)ks, prt, bi, dot, PREFT_F32, L, bi, dh,
                 1); /* dV += Pᵀ·dO */
    }
  }
  free(kd);
}

void preft_attention_backward(preft_pool *pool, float *dq, float *dk, float *dv, const float *datt,
                              const float *att, const float *lse, const float *q, const float *k,
                              const float *v, const int *start, const int *len, int n_seq, int h, int hkv,
                              int head_dim, int window) {
  attn_job j = base_job(q, k, v, start, len, h, hkv, head_dim, window);
  j.dq = dq;
  j.dk = dk;
  j.dv = dv;
  j.datt = datt;
  j.catt = att;
  j.clse = lse;
  preft_pool_run(pool, n_seq * hkv, attn_bwd_task, &j);
}
