/* layers.h - the decoder's building blocks as forward/backward pairs (llm.c
 * style), FP32, on flat row-major buffers.
 *
 * Legend: N rows, D width, H / Hkv heads, Dh head width, F FFN width,
 * V vocabulary, S sequences. A pair has the same argument order; the
 * backward takes the forward's saved inputs and accumulates (+=) into
 * parameter gradients. Input gradients are overwritten (=) unless the
 * comment says +=.
 *
 * Sequences: rows [start[s], start[s]+len[s]) hold sequence s at positions
 * 0..len[s]-1; attention is causal within a sequence (and limited to the
 * last `window` positions when window > 0, Mistral's sliding window).
 */
#ifndef PREFT_TRAIN_LAYERS_H
#define PREFT_TRAIN_LAYERS_H

#include "base/threadpool.h"
#include "preft/model.h" /* preft_matmul_precision */

/* x[N,D] = embed[token[i], :] */
void preft_embedding_forward(float *x, const int *token, const float *embed, int n, int d);
/* dembed[V,D] += dx rows scattered by token */
void preft_embedding_backward(float *dembed, const float *dx, const int *token, int n, int d);

/* out[N,D] = x / sqrt(mean(x²) + eps) * w, rstd[N] saved (preft_rmsnorm's arithmetic) */
void preft_rmsnorm_forward(preft_pool *pool, float *out, float *rstd, const float *x, const float *w, int n,
                           int d, float eps);
/* dx[N,D] += d/dx, dw[D] += d/dw (dw may be NULL), from dout[N,D] */
void preft_rmsnorm_backward(preft_pool *pool, float *dx, float *dw, const float *dout, const float *x,
                            const float *w, const float *rstd, int n, int d);

/* rotate-half RoPE in place on x[N, heads*Dh]; cos, sin [N, Dh/2] */
void preft_rope_forward(float *x, const float *cos, const float *sin, int n, int heads, int head_dim);
/* its transpose (rotation by minus the angle), in place on dx */
void preft_rope_backward(float *dx, const float *cos, const float *sin, int n, int heads, int head_dim);

/* att[N, H*Dh] = softmax(q·kᵀ/sqrt(Dh)) v per (row, head), causal within
 * each sequence; lse[N, H] (log-sum-exp of the scaled scores) saved.
 * Blocked matrix products at the training matmul precision prec
 * (attention_fwd_bwd.c). */
void preft_attention_forward(preft_pool *pool, float *att, float *lse, const float *q, const float *k,
                             const float *v, const int *start, const int *len, int n_seq, int h, int hkv,
                             int head_dim, int window, preft_matmul_precision prec);
/* dq[N,H*Dh], dk, dv[N,Hkv*Dh] (=) from datt; probabilities recomputed from lse. */
void preft_attention_backward(preft_pool *pool, float *dq, float *dk, float *dv, const float *datt,
                              const float *att, const float *lse, const float *q, const float *k,
                              const float *v, const int *start, const int *len, int n_seq, int h, int hkv,
                              int head_dim, int window, preft_matmul_precision prec);

/* out[N*F] = silu(a) * b (preft_swiglu's arithmetic) */
void preft_swiglu_forward(preft_pool *pool, float *out, const float *a, const float *b, int n);
/* da, db (=) from dout */
void preft_swiglu_backward(preft_pool *pool, float *da, float *db, const float *dout, const float *a,
                           const float *b, int n);

/* logits[N,V] -> probabilities in place; loss[N] = -log p[target] (0 where
 * target < 0). Returns the sum of the losses (double). */
double preft_crossentropy_forward(preft_pool *pool, float *probs_inplace, float *loss, const int *target,
                                  int n, int v);
/* dlogits[N,V] = (p - onehot(target)) * dloss at rows with a target, 0
 * elsewhere; in place over the probabilities. */
void preft_crossentropy_backward(preft_pool *pool, float *dlogits_inplace, const int *target, int n, int v,
                                 float dloss);
/* Forward and backward in one pass over the rows (one pool job; the same
 * results as the two calls): dlogits in place, loss[N]; returns the sum. */
double preft_crossentropy_fwd_bwd(preft_pool *pool, float *logits_inplace, float *loss, const int *target,
                                  int n, int v, float dloss);
/* The same with a dloss of its own for each row: row_dloss[N]. */
void preft_crossentropy_backward_rows(preft_pool *pool, float *dlogits_inplace, const int *target, int n,
                                      int v, const float *row_dloss);

/* y[N, M] += bias[M] per row; dbias[M] += column sums of dy */
void preft_bias_forward(float *y, const float *bias, int n, int m);
void preft_bias_backward(float *dbias, const float *dy, int n, int m);

#endif
