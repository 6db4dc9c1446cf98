/* adapter_grad.h - forward/backward pairs of the adapters in training: the
 * LoRA delta of one linear module and the ReFT edit of one layer's output,
 * on the rows whose adapt flag is set (the semantics of lora.c / reft.c).
 *
 * Legend: N rows, R rank, "in"/"out" the module's widths, D width.
 */
#ifndef PREFT_TRAIN_ADAPTER_GRAD_H
#define PREFT_TRAIN_ADAPTER_GRAD_H

#include <stdint.h>

#include "base/threadpool.h"
#include "train/train_model.h"

/* t[N,R] = scale·(x·Aᵀ) on flagged rows, 0 on the others (saved);
 * y[N,out] += t·Bᵀ. x rows x_stride apart, y rows y_stride apart. */
void preft_lora_forward(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride,
                        const preft_train_lora *lm, float scale, const uint8_t *flag, int n, int rank,
                        float *t);
/* dx[N,in] += ..., lm->ga += ..., lm->gb += ... from dy[N,out]; dt [N,R] scratch.
 * dx may be NULL (input gradient not needed). */
void preft_lora_backward(preft_pool *pool, float *dx, int dx_stride, const float *dy, int dy_stride,
                         const float *x, int x_stride, const preft_train_lora *lm, float scale,
                         const uint8_t *flag, int n, int rank, const float *t, float *dt);

/* x[N,D] edited in place at the flagged rows of an intervened layer; x_pre
 * [N,D] receives x before the edit (the backward's input). */
void preft_reft_forward(float *x, float *x_pre, const preft_train_adapter *ad, int layer, const uint8_t *flag,
                        int n);
/* dx[N,D] in place: gradient w.r.t. the edited output in, w.r.t. the input
 * out; slot gradients += ... */
void preft_reft_backward(float *dx, const float *x_pre, const preft_train_adapter *ad, int layer,
                         const uint8_t *flag, int n);

#endif
