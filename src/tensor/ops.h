/* ops.h - the element-wise and row-wise kernels of a decoder or encoder
 * layer.
 *
 * Legend: N rows, D width, Dh head width. All buffers FP32 unless a dtype
 * is passed. Every function here is deterministic and single-threaded; the
 * callers parallelise over rows or heads where it pays.
 *
 * The plain functions (preft_rmsnorm, preft_softmax, preft_swiglu, ...) are
 * the references: libm expf, double sums, no SIMD. The *_fast variants are
 * what the inference forward calls: they take the AVX+FMA kernels in
 * ops_avx.c (with the polynomial exp below) when preft_cpu_path() allows,
 * else the plain functions. Each element's result depends only on its
 * own inputs (and, for norms, its own row), never on where a caller splits
 * the work, so the forward pass is bitwise the same for any thread count.
 */
#ifndef PREFT_TENSOR_OPS_H
#define PREFT_TENSOR_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tensor/dtype.h"

/* out[D] = x[D] / sqrt(mean(x^2) + eps) * weight[D]  (out may alias x) */
void preft_rmsnorm(float *out, const float *x, const float *weight, int d, float eps);

/* out[D] = (x[D] - mean(x)) / sqrt(var(x) + eps) * weight[D] + bias[D]
 * (LayerNorm, biased variance; mean and variance summed in double, two
 * passes; out may alias x) */
void preft_layernorm(float *out, const float *x, const float *weight, const float *bias, int d, float eps);

/* x[n] = gelu(x[n]) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) in place, the
 * exact (erf) GELU of BERT's hidden_act "gelu"; libm erff. */
void preft_gelu(float *x, int n);

/* x[n] = softmax(x[n]) in place, max-subtracted. */
void preft_softmax(float *x, int n);

/* a[n] = silu(a[n]) * b[n]  (SwiGLU gate) */
void preft_swiglu(float *a, const float *b, int n);
/* out[n] = silu(a[n]) * b[n] (out may be a or b) */
void preft_swiglu_out(float *out, const float *a, const float *b, int n);
/* SwiGLU's backward (training): with s = σ(a), silu'(a) = s·(1 + a(1 − s)),
 * da = dout·b·silu'(a), db = dout·silu(a) = dout·a·s. */
void preft_swiglu_grad(float *da, float *db, const float *dout, const float *a, const float *b, int n);
/* x[n] = e^(x[n]·scale − shift) in place (a softmax's numerators) */
void preft_exp_affine(float *x, int n, float scale, float shift);

/* Rotary embedding, Hugging Face rotate-half convention, on one head vector
 * x[Dh]: for i < Dh/2, (x[i], x[i+Dh/2]) is rotated by angle i, given as
 * cos[i], sin[i]. */
void preft_rope_rotate_half(float *x, const float *cos, const float *sin, int head_dim);

float preft_dot(const float *a, const float *b, int n);
/* y[n] += a * x[n] */
void preft_axpy(float *y, float a, const float *x, int n);

/* e^x within 2 ulp for x in [-87.33, 88.37] (Cephes' reduction by n·ln2 in
 * two parts and degree-6 polynomial); 0 below, e^88.37 above. This is the
 * scalar statement of the AVX kernels' exp (ops_avx.c runs the same steps
 * on 8 lanes, with FMA, so the last bit may differ); the tests check its
 * accuracy here. Scalar, it is slower than glibc's expf, so the plain paths
 * keep expf. */
#define PREFT_EXPF_LO (-87.33654f)
#define PREFT_EXPF_HI 88.37626f
static inline float preft_expf_in_range(float xc);
static inline float preft_expf_fast(float x) {
  float xc = x < PREFT_EXPF_LO ? PREFT_EXPF_LO : x > PREFT_EXPF_HI ? PREFT_EXPF_HI : x;
  return x < PREFT_EXPF_LO ? 0.0f : preft_expf_in_range(xc);
}
/* preft_expf_fast's steps for xc already in [PREFT_EXPF_LO, PREFT_EXPF_HI]
 * (NaN gives NaN): no branches, so loops over it vectorise. */
static inline float preft_expf_in_range(float xc) {
  /* t = 1.5·2^23 + round(x/ln2): the integer n sits in t's low mantissa bits */
  float t = xc * 1.44269504088896341f + 12582912.0f;
  float n = t - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * (r * r) + r + 1.0f;
  uint32_t bits;
  memcpy(&bits, &t, 4);
  bits = (bits - 0x4B400000u + 127u) << 23; /* 2^n, n in [-126, 127] */
  float scale;
  memcpy(&scale, &bits, 4);
  return y * scale;
}

/* log(sum_i e^x[i]) of x[n], max-subtracted: within about 3e-7 (absolute)
 * of the exact value for any finite inputs (no overflow at +-3e38); terms
 * below e^-87.3 (-inf entries included) count as e^-87.3, which the sum
 * (>= 1) cannot see; an all -inf (or empty) x gives -inf, a +inf entry
 * +inf, a NaN entry NaN. Written as 8 independent branch-free lanes (the
 * polynomial exp above, sums in double) so the compiler vectorises it on
 * any CPU; the result depends only on x, never on the CPU path. */
double preft_logsumexp(const float *x, int n);

/* preft_rmsnorm, vectorised (the sum of squares is still in double). */
void preft_rmsnorm_fast(float *out, const float *x, const float *weight, int d, float eps);

/* preft_layernorm, vectorised (sums still in double, two passes). */
void preft_layernorm_fast(float *out, const float *x, const float *weight, const float *bias, int d,
                          float eps);

/* preft_gelu, vectorised: erf by Abramowitz and Stegun 7.1.26 (|error| <
 * 1.5e-7) with the polynomial exp, written so that 1 + erf(x / sqrt 2) for
 * negative x is never a difference of nearly equal numbers. Within
 * 3e-7 * max(1, |x|) of preft_gelu (tests/unit/test_ops.c). */
void preft_gelu_fast(float *x, int n);

/* preft_swiglu, preft_swiglu_out, preft_swiglu_grad and
 * preft_exp_affine, vectorised with the polynomial exp (x·scale − shift is
 * one FMA there). Each element depends only on its own inputs, so results
 * do not depend on where a caller splits the array. */
void preft_swiglu_fast(float *a, const float *b, int n);
void preft_swiglu_out_fast(float *out, const float *a, const float *b, int n);
void preft_swiglu_grad_fast(float *da, float *db, const float *dout, const float *a, const float *b, int n);
void preft_exp_affine_fast(float *x, int n, float scale, float shift);
/* preft_exp_affine_fast, returning the sum of the results in double (in
 * an order that depends only on n). */
double preft_exp_affine_sum_fast(float *x, int n, float scale, float shift);
/* The largest of x[0:n] (n >= 1; -inf for n = 0), vectorised. */
float preft_max_fast(const float *x, int n);
/* x[n] *= s, vectorised (the same bits as the plain loop). */
void preft_scale_fast(float *x, int n, float s);
/* A softmax's backward for one row of probabilities p with dsum =
 * Σ dO·O of the row: ds[i] = p[i]·(ds[i] − dsum)·scale in place,
 * vectorised with the plain loop's bits (no FMA). */
void preft_softmax_grad_fast(float *ds, const float *p, int n, float dsum, float scale);
/* Σ a[i]·b[i] (c NULL) or Σ fl(a[i]·b[i])·c[i] summed in double, vectorised
 * (the order of the sums depends only on n): a norm's sums of squares and
 * its backward's dot product. */
double preft_dot_f64_fast(const float *a, const float *b, const float *c, int n);

/* preft_rope_rotate_half, vectorised; bitwise equal to it (no FMA). */
void preft_rope_rotate_half_fast(float *x, const float *cos, const float *sin, int head_dim);

/* out[D] = row `row` of a [rows, D] matrix of type t, converted to FP32. */
void preft_load_row(float *out, const void *m, preft_dtype t, size_t row, int d);

#endif
