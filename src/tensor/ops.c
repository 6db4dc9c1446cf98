/* ops.c - element-wise and row-wise kernels (see ops.h). Plain C written so
 * the compiler vectorises the loops (independent partial sums in reductions). */
#include "tensor/ops.h"

#include <math.h>

#include "tensor/cpu.h"
#include "tensor/ops_kern.h"
#include "tensor/quant.h"

#ifdef PREFT_HAVE_OPS_AVX
#define USE_AVX() (preft_cpu_path() >= PREFT_CPU_AVX_FMA)
#else
#define USE_AVX() 0
#endif

void preft_rmsnorm(float *out, const float *x, const float *weight, int d, float eps) {
  double ss = 0.0;
  for (int i = 0; i < d; i++) ss += (double)x[i] * (double)x[i];
  float inv = (float)(1.0 / sqrt(ss / d + (double)eps));
  for (int i = 0; i < d; i++) out[i] = x[i] * inv * weight[i];
}

void preft_layernorm(float *out, const float *x, const float *weight, const float *bias, int d, float eps) {
  double sum = 0.0;
  for (int i = 0; i < d; i++) sum += (double)x[i];
  double mean = sum / d, ss = 0.0;
  for (int i = 0; i < d; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
  /* the mean as a float and the float of what that rounding lost: rows far
   * from zero keep their deviations' precision */
  float inv = (float)(1.0 / sqrt(ss / d + (double)eps)), mf = (float)mean, mlo = (float)(mean - (double)mf);
  for (int i = 0; i < d; i++) out[i] = ((x[i] - mf) - mlo) * inv * weight[i] + bias[i];
}

void preft_gelu(float *x, int n) {
  for (int i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void preft_softmax(float *x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    x[i] = expf(x[i] - mx);
    sum += x[i];
  }
  float inv = (float)(1.0 / sum);
  for (int i = 0; i < n; i++) x[i] *= inv;
}

/* max(d, PREFT_EXPF_LO) for d <= 0 (-inf included), NaN kept: in integer
 * arithmetic, as the compiler vectorises no float select here. */
static inline float clamp_to_exp_range(float d) {
  const float lo_f = PREFT_EXPF_LO;
  uint32_t b, lo;
  memcpy(&b, &d, 4);
  memcpy(&lo, &lo_f, 4);
  uint32_t mag = b & 0x7fffffffu; /* for d <= 0, a larger magnitude is a smaller d */
  uint32_t below = 0u - (uint32_t)((mag > (lo & 0x7fffffffu)) & (mag <= 0x7f800000u));
  b = (lo & below) | (b & ~below);
  memcpy(&d, &b, 4);
  return d;
}

double preft_logsumexp(const float *x, int n) {
  enum { LANES = 8 };
  int body = n > 0 ? n - n % LANES : 0;
  float lane_max[LANES];
  for (int l = 0; l < LANES; l++) lane_max[l] = -INFINITY;
  for (int i = 0; i < body; i += LANES)
    for (int l = 0; l < LANES; l++) lane_max[l] = x[i + l] > lane_max[l] ? x[i + l] : lane_max[l];
  float mx = -INFINITY;
  for (int l = 0; l < LANES; l++) mx = lane_max[l] > mx ? lane_max[l] : mx;
  for (int i = body; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (mx == INFINITY) return INFINITY;
  if (mx == -INFINITY) { /* every entry -inf or NaN (comparisons skip NaN) */
    for (int i = 0; i < n; i++)
      if (isnan(x[i])) return NAN;
    return -INFINITY;
  }
  double lane_sum[LANES] = {0};
  for (int i = 0; i < body; i += LANES)
    for (int l = 0; l < LANES; l++)
      lane_sum[l] += (double)preft_expf_in_range(clamp_to_exp_range(x[i + l] - mx));
  double sum = 0;
  for (int l = 0; l < LANES; l++) sum += lane_sum[l];
  for (int i = body; i < n; i++) sum += (double)preft_expf_fast(x[i] - mx);
  return (double)mx + log(sum);
}

void preft_swiglu(float *a, const float *b, int n) { preft_swiglu_out(a, a, b, n); }

void preft_swiglu_out(float *out, const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++) out[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

void preft_swiglu_grad(float *da, float *db, const float *dout, const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++) {
    float sg = 1.0f / (1.0f + expf(-a[i]));
    da[i] = dout[i] * b[i] * (sg * (1.0f + a[i] * (1.0f - sg)));
    db[i] = dout[i] * a[i] * sg;
  }
}

void preft_exp_affine(float *x, int n, float scale, float shift) {
  for (int i = 0; i < n; i++) x[i] = expf(x[i] * scale - shift);
}

void preft_rmsnorm_fast(float *out, const float *x, const float *weight, int d, float eps) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_rmsnorm_avx(out, x, weight, d, eps);
    return;
  }
#endif
  preft_rmsnorm(out, x, weight, d, eps);
}

void preft_layernorm_fast(float *out, const float *x, const float *weight, const float *bias, int d,
                          float eps) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_layernorm_avx(out, x, weight, bias, d, eps);
    return;
  }
#endif
  preft_layernorm(out, x, weight, bias, d, eps);
}

void preft_gelu_fast(float *x, int n) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_gelu_avx(x, n);
    return;
  }
#endif
  preft_gelu(x, n);
}

void preft_swiglu_fast(float *a, const float *b, int n) { preft_swiglu_out_fast(a, a, b, n); }

/* Off the AVX path each of these is its plain version: a scalar
 * preft_expf_fast is slower than libm's expf. */
void preft_swiglu_out_fast(float *out, const float *a, const float *b, int n) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_swiglu_avx(out, a, b, n);
    return;
  }
#endif
  preft_swiglu_out(out, a, b, n);
}

void preft_swiglu_grad_fast(float *da, float *db, const float *dout, const float *a, const float *b, int n) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_swiglu_grad_avx(da, db, dout, a, b, n);
    return;
  }
#endif
  preft_swiglu_grad(da, db, dout, a, b, n);
}

double preft_dot_f64_fast(const float *a, const float *b, const float *c, int n) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) return preft_dot_f64_avx(a, b, c, n);
#endif
  double s = 0.0;
  for (int i = 0; i < n; i++) s += c ? (double)(a[i] * b[i]) * (double)c[i] : (double)a[i] * (double)b[i];
  return s;
}

void preft_exp_affine_fast(float *x, int n, float scale, float shift) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_exp_affine_avx(x, n, scale, shift);
    return;
  }
#endif
  preft_exp_affine(x, n, scale, shift);
}

double preft_exp_affine_sum_fast(float *x, int n, float scale, float shift) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) return preft_exp_affine_sum_avx(x, n, scale, shift);
#endif
  preft_exp_affine(x, n, scale, shift);
  double sum = 0.0;
  for (int i = 0; i < n; i++) sum += x[i];
  return sum;
}

float preft_max_fast(const float *x, int n) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) return preft_max_avx(x, n);
#endif
  float mx = -INFINITY;
  for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  return mx;
}

void preft_scale_fast(float *x, int n, float s) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_scale_avx(x, n, s);
    return;
  }
#endif
  for (int i = 0; i < n; i++) x[i] *= s;
}

void preft_softmax_grad_fast(float *ds, const float *p, int n, float dsum, float scale) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_softmax_grad_avx(ds, p, n, dsum, scale);
    return;
  }
#endif
  for (int i = 0; i < n; i++) ds[i] = p[i] * (ds[i] - dsum) * scale;
}

void preft_rope_rotate_half_fast(float *x, const float *cos, const float *sin, int head_dim) {
#ifdef PREFT_HAVE_OPS_AVX
  if (USE_AVX()) {
    preft_rope_rotate_half_avx(x, cos, sin, head_dim);
    return;
  }
#endif
  preft_rope_rotate_half(x, cos, sin, head_dim);
}

void preft_rope_rotate_half(float *x, const float *cos, const float *sin, int head_dim) {
  int half = head_dim / 2;
  for (int i = 0; i < half; i++) {
    float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * cos[i] - x2 * sin[i];
    x[i + half] = x2 * cos[i] + x1 * sin[i];
  }
}

float preft_dot(const float *a, const float *b, int n) {
  float acc[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
  float s = 0;
  for (; i < n; i++) s += a[i] * b[i];
  return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void preft_axpy(float *y, float a, const float *x, int n) {
  for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void preft_load_row(float *out, const void *m, preft_dtype t, size_t row, int d) {
  size_t base = row * (size_t)d;
  switch (t) {
    case PREFT_F32:
      for (int i = 0; i < d; i++) out[i] = ((const float *)m)[base + (size_t)i];
      break;
    case PREFT_F16:
      for (int i = 0; i < d; i++) out[i] = preft_f16_to_f32(((const uint16_t *)m)[base + (size_t)i]);
      break;
    case PREFT_BF16:
      for (int i = 0; i < d; i++) out[i] = preft_bf16_to_f32(((const uint16_t *)m)[base + (size_t)i]);
      break;
    default: /* block-quantized rows (an embedding table of a GGUF model) */
      preft_dequantize_row(
          t, (const char *)m + preft_dtype_row_offset(t, preft_dtype_row_bytes(t, (size_t)d), row), out,
          (size_t)d);
  }
}
