/* ops.h - the element-wise and row-wise kernels of a decoder layer.
 *
 * Legend: N rows, D width, Dh head width. All buffers FP32 unless a dtype
 * is passed. Every function here is deterministic and single-threaded; the
 * callers parallelise over rows or heads where it pays.
 */
#ifndef PREFT_TENSOR_OPS_H
#define PREFT_TENSOR_OPS_H

#include <stddef.h>

#include "tensor/dtype.h"

/* out[D] = x[D] / sqrt(mean(x^2) + eps) * weight[D]  (out may alias x) */
void preft_rmsnorm(float *out, const float *x, const float *weight, int d, float eps);

/* x[n] = softmax(x[n]) in place, max-subtracted. */
void preft_softmax(float *x, int n);

/* a[n] = silu(a[n]) * b[n]  (SwiGLU gate) */
void preft_swiglu(float *a, const float *b, int n);

/* Rotary embedding, Hugging Face rotate-half convention, on one head vector
 * x[Dh]: for i < Dh/2, (x[i], x[i+Dh/2]) is rotated by angle i, given as
 * cos[i], sin[i]. */
void preft_rope_rotate_half(float *x, const float *cos, const float *sin, int head_dim);

float preft_dot(const float *a, const float *b, int n);
/* y[n] += a * x[n] */
void preft_axpy(float *y, float a, const float *x, int n);

/* out[D] = row `row` of a [rows, D] matrix of type t, converted to FP32. */
void preft_load_row(float *out, const void *m, preft_dtype t, size_t row, int d);

#endif
