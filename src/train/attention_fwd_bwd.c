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
 * (query, key) pair. V, K, Q and dO enter P·V, dS·K, dSᵀ·Q and Pᵀ·dO as
 * they are stored (preft_gemm_kmajor reads a weight operand k-major); the
 * two left operands that are transposed (Pᵀ, dSᵀ of a block) go through
 * preft_gemm_tn: read k-major out of P and dS on AVX-512, else a
 * transposed copy, QB·L floats against QB·L·Dh multiply-adds (1/Dh).
 *
 * The backward recomputes P from the saved log-sum-exp. Its tasks are
 * (sequence, kv head, chunk of query blocks): a chunk writes dQ of its
 * blocks' rows for the query heads that read the kv head, and its share
 * of that head's dK and dV (sums over its blocks, heads outer, blocks
 * inner). Chunk 0 writes dK and dV themselves; chunks 1.. write private
 * [n, Dh] partials that a second pool job adds in chunk order. The
 * chunking depends only on the batch's shape (enough tasks for
 * BWD_TASKS threads, chunks of equal causal cost), never on the thread
 * count, so results do not depend on it; with n_seq·hkv ≥ BWD_TASKS every
 * (sequence, kv head) is one chunk, the order of sums of the unchunked
 * pass.
 *
 * At BF16 matmul precision (prec) the six products round their operands to
 * BF16 and sum in FP32, as the linear layers' do (gemm_train.h): Q·Kᵀ and
 * dO·Vᵀ through preft_train_gemm, the others through
 * preft_gemm_bf16_kmajor, and dSᵀ·Q, Pᵀ·dO take dS and P in the pair layout
 * (two rows of each interleaved, preft_round_pairs_bf16) instead of a
 * transposed copy. The softmax, its log-sum-exp and every sum stay FP32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/scratch.h"
#include "tensor/gemm.h"
#include "tensor/gemm_train.h" /* preft_gemm_tn, preft_train_gemm, preft_round_pairs_bf16 */
#include "tensor/ops.h"
#include "train/layers.h"

#define QB 64       /* query rows per block */
#define BWD_TASKS 8 /* backward tasks wanted per pass (chunks split (sequence, kv head) below this) */
#define RED_ROWS 64 /* rows per task of the partials' reduction */

typedef struct {
  float *att, *lse, *dq, *dk, *dv;
  float *part; /* backward: chunk c ≥ 1's dK partial at part + (c−1)·2·rows·ks, its dV after */
  const float *datt, *catt, *q, *k, *v, *clse;
  const int *start, *len;
  int h, hkv, dh, window;
  preft_matmul_precision prec;
  int chunks, rows; /* backward: chunks per (sequence, kv head); rows of the batch */
} attn_job;

static int window_start(int pos, int window) {
  return window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
}

/* dst[i][0:dh] = src row i's head slice (rows stride floats apart), i < n */
static void gather_head(float *dst, const float *src, size_t stride, int n, int dh) {
  for (int i = 0; i < n; i++)
    memcpy(dst + (size_t)i * dh, src + (size_t)i * stride, sizeof(float) * (size_t)dh);
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
      preft_exp_affine_fast(row + lo, hi - lo + 1, scale, lse_in[(size_t)r * lse_stride]);
      continue;
    }
    float mx = preft_max_fast(row + lo, hi - lo + 1) * scale; /* scale > 0: the largest scaled score */
    double sum = preft_exp_affine_sum_fast(row + lo, hi - lo + 1, scale, mx);
    preft_scale_fast(row + lo, hi - lo + 1, (float)(1.0 / sum));
    lse_out[(size_t)r * lse_stride] = mx + (float)log(sum);
  }
}

/* y[n, m] (+)= x[n, k]·wt[k, m] with wt k-major, at precision prec (one thread) */
static void kmajor(preft_matmul_precision prec, float *y, int ys, const float *x, int xs, const float *wt,
                   int ws, int n, int k, int m, int accumulate) {
  if (prec == PREFT_MATMUL_BF16)
    preft_gemm_bf16_kmajor(NULL, y, ys, x, xs, NULL, wt, ws, n, k, m, accumulate);
  else
    preft_gemm_kmajor(NULL, y, ys, x, xs, wt, ws, n, k, m, accumulate);
}

/* y[L, m] += srcᵀ·wt for src [bi, L] (rows L apart) and wt [bi, m] k-major
 * (rows ws apart): dK += dSᵀ·Q, dV += Pᵀ·dO. FP32 through preft_gemm_tn
 * (src read k-major as stored on AVX-512); BF16 through the pair layout of
 * src in buf (L·(bi + 1) BF16 elements; NULL at FP32). */
static void transposed_left(preft_matmul_precision prec, float *y, int ys, const float *src, int bi, int L,
                            const float *wt, int ws, int m, float *buf) {
  if (prec == PREFT_MATMUL_BF16) {
    uint16_t *pairs = (uint16_t *)buf;
    preft_round_pairs_bf16(NULL, pairs, 2 * (size_t)L, NULL, 0, src, L, bi, L);
    preft_gemm_bf16_kmajor_pairs(NULL, y, ys, pairs, 2 * (size_t)L, wt, ws, L, bi, m, 1);
    return;
  }
  preft_gemm_tn(NULL, y, ys, src, L, wt, ws, L, bi, m, 1);
}

/* task = (sequence, query head) */
static void attn_fwd_task(void *p, int task, int thread) {
  (void)thread;
  const attn_job *j = p;
  int s = task / j->h, h = task % j->h, g = h / (j->h / j->hkv), dh = j->dh, n = j->len[s];
  size_t qs = (size_t)j->h * dh, ks = (size_t)j->hkv * dh, r0 = (size_t)j->start[s];
  float scale = 1.0f / sqrtf((float)dh);
  /* kd [n, Dh], sc [QB, L] */
  float *kd = preft_scratch_get(sizeof(float) * ((size_t)n * dh + (size_t)QB * n));
  float *sc = kd + (size_t)n * dh;
  gather_head(kd, j->k + r0 * ks + (size_t)g * dh, ks, n, dh);
  for (int i0 = 0; i0 < n; i0 += QB) {
    int i1 = i0 + QB < n ? i0 + QB : n, bi = i1 - i0, kt0 = window_start(i0, j->window), L = i1 - kt0;
    const float *q = j->q + (r0 + (size_t)i0) * qs + (size_t)h * dh;
    preft_train_gemm(NULL, j->prec, sc, L, q, (int)qs, kd + (size_t)kt0 * dh, bi, dh, L, 0); /* S = Q·Kᵀ */
    softmax_rows(sc, bi, L, i0, kt0, j->window, scale, j->lse + (r0 + (size_t)i0) * j->h + h, NULL,
                 (size_t)j->h);
    kmajor(j->prec, j->att + (r0 + (size_t)i0) * qs + (size_t)h * dh, (int)qs, sc, L,
           j->v + (r0 + (size_t)kt0) * ks + (size_t)g * dh, (int)ks, bi, L, dh, 0); /* O = P·V */
  }
  preft_scratch_put(kd);
}

/* The fields both passes set. */
static attn_job base_job(const float *q, const float *k, const float *v, const int *start, const int *len,
                         int h, int hkv, int head_dim, int window, preft_matmul_precision prec) {
  return (attn_job){.q = q,
                    .k = k,
                    .v = v,
                    .start = start,
                    .len = len,
                    .h = h,
                    .hkv = hkv,
                    .dh = head_dim,
                    .window = window,
                    .prec = prec};
}

void preft_attention_forward(preft_pool *pool, float *att, float *lse, const float *q, const float *k,
                             const float *v, const int *start, const int *len, int n_seq, int h, int hkv,
                             int head_dim, int window, preft_matmul_precision prec) {
  attn_job j = base_job(q, k, v, start, len, h, hkv, head_dim, window, prec);
  j.att = att;
  j.lse = lse;
  preft_pool_run(pool, n_seq * h, attn_fwd_task, &j);
}

/* The causal cost (query rows × keys seen) of query block b of a sequence of n rows. */
static double block_cost(int b, int n, int window) {
  int i0 = b * QB, i1 = i0 + QB < n ? i0 + QB : n;
  return (double)(i1 - i0) * (i1 - window_start(i0, window));
}

/* The first query block of chunk c of c_n over a sequence of n rows: chunks
 * are cut where the cost so far reaches c/c_n of the whole, so they cost
 * about the same (chunk c is blocks [chunk_start(c), chunk_start(c + 1))). */
static int chunk_start(int c, int c_n, int n, int window) {
  int nb = (n + QB - 1) / QB, b = 0;
  if (c >= c_n) return nb;
  double total = 0, acc = 0;
  for (int i = 0; i < nb; i++) total += block_cost(i, n, window);
  for (double want = total * c / c_n; b < nb && acc < want; b++) acc += block_cost(b, n, window);
  return b;
}

/* task = (sequence, kv head, chunk of query blocks). With P recomputed:
 * dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)) / √Dh, dQ = dS·K,
 * dK += dSᵀ·Q, dV += Pᵀ·dO. */
static void attn_bwd_task(void *p, int task, int thread) {
  (void)thread;
  const attn_job *j = p;
  int c = task % j->chunks, sg = task / j->chunks, s = sg / j->hkv, g = sg % j->hkv, dh = j->dh,
      group = j->h / j->hkv, n = j->len[s];
  size_t qs = (size_t)j->h * dh, ks = (size_t)j->hkv * dh, r0 = (size_t)j->start[s];
  float scale = 1.0f / sqrtf((float)dh);
  /* kd, vd [n, Dh]; P, dS [QB, L]; at BF16 also P, dS in the pair layout [QB/2][L][2] */
  size_t nd = (size_t)n * dh, ql = (size_t)QB * n;
  const int bf16 = j->prec == PREFT_MATMUL_BF16;
  float *kd = preft_scratch_get(sizeof(float) * (2 * nd + (bf16 ? 4 : 2) * ql));
  float *vd = kd + nd, *pr = vd + nd, *ds = pr + ql, *prp = bf16 ? ds + ql : NULL,
        *dsp = bf16 ? prp + ql : NULL;
  float *dk = j->dk, *dv = j->dv;
  if (c > 0) {
    dk = j->part + (size_t)(c - 1) * 2 * (size_t)j->rows * ks;
    dv = dk + (size_t)j->rows * ks;
  }
  dk += r0 * ks + (size_t)g * dh;
  dv += r0 * ks + (size_t)g * dh;
  gather_head(kd, j->k + r0 * ks + (size_t)g * dh, ks, n, dh);
  gather_head(vd, j->v + r0 * ks + (size_t)g * dh, ks, n, dh);
  for (int t = 0; t < n; t++) {
    memset(dk + (size_t)t * ks, 0, sizeof(float) * (size_t)dh);
    memset(dv + (size_t)t * ks, 0, sizeof(float) * (size_t)dh);
  }
  int b0 = chunk_start(c, j->chunks, n, j->window), b1 = chunk_start(c + 1, j->chunks, n, j->window);
  for (int h = g * group; h < (g + 1) * group; h++) {
    for (int i0 = b0 * QB; i0 < n && i0 < b1 * QB; i0 += QB) {
      int i1 = i0 + QB < n ? i0 + QB : n, bi = i1 - i0, kt0 = window_start(i0, j->window), L = i1 - kt0;
      size_t row0 = (r0 + (size_t)i0) * qs + (size_t)h * dh;
      const float *q = j->q + row0, *dout = j->datt + row0, *o = j->catt + row0;
      preft_train_gemm(NULL, j->prec, pr, L, q, (int)qs, kd + (size_t)kt0 * dh, bi, dh, L, 0); /* S = Q·Kᵀ */
      softmax_rows(pr, bi, L, i0, kt0, j->window, scale, NULL, j->clse + (r0 + (size_t)i0) * j->h + h,
                   (size_t)j->h);
      preft_train_gemm(NULL, j->prec, ds, L, dout, (int)qs, vd + (size_t)kt0 * dh, bi, dh, L,
                       0); /* dP = dO·Vᵀ */
      for (int r = 0; r < bi; r++) {
        float dsum = preft_dot(dout + (size_t)r * qs, o + (size_t)r * qs, dh);
        preft_softmax_grad_fast(ds + (size_t)r * L, pr + (size_t)r * L, L, dsum, scale);
      }
      kmajor(j->prec, j->dq + row0, (int)qs, ds, L, kd + (size_t)kt0 * dh, dh, bi, L, dh, 0); /* dQ = dS·K */
      transposed_left(j->prec, dk + (size_t)kt0 * ks, (int)ks, ds, bi, L, q, (int)qs, dh,
                      dsp); /* dK += dSᵀ·Q */
      transposed_left(j->prec, dv + (size_t)kt0 * ks, (int)ks, pr, bi, L, dout, (int)qs, dh,
                      prp); /* dV += Pᵀ·dO */
    }
  }
  preft_scratch_put(kd);
}

/* task = RED_ROWS rows of the batch: dK += partial of chunk 1, 2, ... in
 * that order (the same for dV). */
static void attn_reduce_task(void *p, int task, int thread) {
  (void)thread;
  const attn_job *j = p;
  size_t ks = (size_t)j->hkv * j->dh, a = (size_t)task * RED_ROWS * ks,
         e = (size_t)(task + 1) * RED_ROWS < (size_t)j->rows ? (size_t)(task + 1) * RED_ROWS * ks
                                                             : (size_t)j->rows * ks,
         plane = (size_t)j->rows * ks;
  for (int c = 1; c < j->chunks; c++) {
    const float *pk = j->part + (size_t)(c - 1) * 2 * plane, *pv = pk + plane;
    for (size_t i = a; i < e; i++) {
      j->dk[i] += pk[i];
      j->dv[i] += pv[i];
    }
  }
}

void preft_attention_backward(preft_pool *pool, float *dq, float *dk, float *dv, const float *datt,
                              const float *att, const float *lse, const float *q, const float *k,
                              const float *v, const int *start, const int *len, int n_seq, int h, int hkv,
                              int head_dim, int window, preft_matmul_precision prec) {
  attn_job j = base_job(q, k, v, start, len, h, hkv, head_dim, window, prec);
  j.dq = dq;
  j.dk = dk;
  j.dv = dv;
  j.datt = datt;
  j.catt = att;
  j.clse = lse;
  int units = n_seq * hkv, max_blocks = 1;
  for (int s = 0; s < n_seq; s++) {
    int nb = (len[s] + QB - 1) / QB;
    max_blocks = nb > max_blocks ? nb : max_blocks;
    j.rows = start[s] + len[s] > j.rows ? start[s] + len[s] : j.rows;
  }
  j.chunks = units >= BWD_TASKS ? 1 : (BWD_TASKS + units - 1) / units;
  j.chunks = j.chunks < max_blocks ? j.chunks : max_blocks;
  if (j.chunks > 1)
    j.part = preft_xcalloc((size_t)(j.chunks - 1) * 2 * (size_t)j.rows * (size_t)hkv * (size_t)head_dim,
                           sizeof(float)); /* zero: rows outside every sequence add nothing */
  preft_pool_run(pool, units * j.chunks, attn_bwd_task, &j);
  if (j.chunks > 1) {
    preft_pool_run(pool, (j.rows + RED_ROWS - 1) / RED_ROWS, attn_reduce_task, &j);
    free(j.part);
  }
}
