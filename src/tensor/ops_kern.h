/* ops_kern.h - private: the AVX+FMA kernels behind ops.h's *_fast functions
 * and preft_attention (ops_avx.c). Only call them when
 * preft_cpu_path() >= PREFT_CPU_AVX_FMA; none exists off x86. */
#ifndef PREFT_TENSOR_OPS_KERN_H
#define PREFT_TENSOR_OPS_KERN_H

#include "tensor/attention.h"

#if defined(__x86_64__) || defined(__i386__)
#define PREFT_HAVE_OPS_AVX 1
/* Dh must be a multiple of 8 (the caller falls back to plain C otherwise). */
void preft_attention_avx(float *out, const float *q, int g, int dh, const preft_kv_view *kv, int start,
                         int end, float scale, float *scratch);
void preft_swiglu_avx(float *out, const float *a, const float *b, int n);
void preft_swiglu_grad_avx(float *da, float *db, const float *dout, const float *a, const float *b, int n);
void preft_exp_affine_avx(float *x, int n, float scale, float shift);
double preft_exp_affine_sum_avx(float *x, int n, float scale, float shift);
float preft_max_avx(const float *x, int n);
void preft_scale_avx(float *x, int n, float s);
void preft_softmax_grad_avx(float *ds, const float *p, int n, float dsum, float scale);
void preft_rmsnorm_avx(float *out, const float *x, const float *weight, int d, float eps);
double preft_dot_f64_avx(const float *a, const float *b, const float *c, int d);
void preft_layernorm_avx(float *out, const float *x, const float *weight, const float *bias, int d,
                         float eps);
void preft_gelu_avx(float *x, int n);
void preft_rope_rotate_half_avx(float *x, const float *cos, const float *sin, int head_dim);
#endif

#endif
