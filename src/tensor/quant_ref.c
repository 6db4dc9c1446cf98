/* quant_ref.c - the plain C reference of the quantized formats (quant.h):
 * row dequantization and quantization as ggml's reference code does them
 * (the same float operations in the same order, so the same bits and
 * bytes), the int8 activation formats, the reference dot products and the
 * single-threaded reference product. The SIMD kernels are tested against
 * these; these are tested against hand-made blocks and against golden files
 * of llama.cpp's gguf-py quantizers (tools/make_reference_quant.py).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"

#define QMIN(a, b) ((a) < (b) ? (a) : (b))
#define QMAX(a, b) ((a) > (b) ? (a) : (b))
#define GROUP_MAX_EPS 1e-15f

static float h2f(uint16_t h) { return preft_f16_to_f32(h); }
static uint16_t f2h(float f) { return preft_f32_to_f16(f); }

/* Round half to even for |x| < 2^22, by the float adder (ggml's nearest_int). */
static inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int i;
  memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

/* The 6-bit scale and min of Q4_K sub-block j (0..7). */
static inline void get_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

int preft_dtype_parse(const char *s) {
  for (int t = 0; t < PREFT_N_DTYPES; t++)
    if (strcasecmp(s, preft_dtype_name((preft_dtype)t)) == 0) return t;
  return -1;
}

/* ---------------------------------------------------------------- dequantize */

static void dequant_q8_0(const preft_block_q8_0 *x, float *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < PREFT_QK; j++) y[i * PREFT_QK + j] = x[i].qs[j] * d;
  }
}

static void dequant_q4_0(const preft_block_q4_0 *x, float *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    const float d = h2f(x[i].d);
    for (int j = 0; j < PREFT_QK / 2; j++) {
      const int x0 = (x[i].qs[j] & 0x0F) - 8;
      const int x1 = (x[i].qs[j] >> 4) - 8;
      y[i * PREFT_QK + j] = x0 * d;
      y[i * PREFT_QK + j + PREFT_QK / 2] = x1 * d;
    }
  }
}

static void dequant_q5_0(const preft_block_q5_0 *x, float *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    const float d = h2f(x[i].d);
    uint32_t qh;
    memcpy(&qh, x[i].qh, sizeof(qh));
    for (int j = 0; j < PREFT_QK / 2; j++) {
      const uint8_t xh0 = ((qh >> (j + 0)) << 4) & 0x10;
      const uint8_t xh1 = ((qh >> (j + 12))) & 0x10;
      const int32_t x0 = ((x[i].qs[j] & 0x0F) | xh0) - 16;
      const int32_t x1 = ((x[i].qs[j] >> 4) | xh1) - 16;
      y[i * PREFT_QK + j] = x0 * d;
      y[i * PREFT_QK + j + PREFT_QK / 2] = x1 * d;
    }
  }
}

static void dequant_q4_K(const preft_block_q4_K *x, float *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *q = x[i].qs;
    const float d = h2f(x[i].d), min = h2f(x[i].dmin);
    int is = 0;
    uint8_t sc, m;
    for (int j = 0; j < PREFT_QK_K; j += 64) {
      get_scale_min(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      get_scale_min(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

static void dequant_q6_K(const preft_block_q6_K *x, float *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    const float d = h2f(x[i].d);
    const uint8_t *ql = x[i].ql, *qh = x[i].qh;
    const int8_t *sc = x[i].scales;
    for (int n = 0; n < PREFT_QK_K; n += 128) {
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void preft_dequantize_row(preft_dtype t, const void *src, float *dst, size_t n) {
  size_t nb = n / preft_dtype_block(t);
  PREFT_ASSERT(nb * preft_dtype_block(t) == n);
  switch (t) {
    case PREFT_Q8_0:
      dequant_q8_0(src, dst, nb);
      return;
    case PREFT_Q4_0:
      dequant_q4_0(src, dst, nb);
      return;
    case PREFT_Q5_0:
      dequant_q5_0(src, dst, nb);
      return;
    case PREFT_Q4_K:
      dequant_q4_K(src, dst, nb);
      return;
    case PREFT_Q6_K:
      dequant_q6_K(src, dst, nb);
      return;
    case PREFT_Q4_0_X4:
    case PREFT_Q5_0_X4:
      preft_dequantize_x4_via(t, src, dst, n, preft_dequantize_row);
      return;
    case PREFT_Q4_K_R4:
      preft_dequantize_r4_via(src, dst, n, preft_dequantize_row);
      return;
    default:
      for (size_t i = 0; i < n; i++) dst[i] = preft_load_elem(src, t, i);
  }
}

float preft_quant_load_elem(const void *p, preft_dtype t, size_t i) {
  if (preft_dtype_is_x4(t)) { /* the element's group as the plain type's four blocks */
    unsigned char blocks[4 * sizeof(preft_block_q5_0)];
    preft_quant_from_x4(t, (const unsigned char *)p + i / 128 * preft_dtype_block_bytes(t), blocks, 128);
    return preft_quant_load_elem(blocks, preft_dtype_stored(t), i % 128);
  }
  size_t bs = preft_dtype_block(t), o = i % bs;
  if (preft_dtype_is_r4(t)) { /* i within the row at p */
    preft_block_q4_K blk;
    preft_quant_r4_block_get(p, i / bs, &blk);
    return preft_quant_load_elem(&blk, PREFT_Q4_K, o);
  }
  const unsigned char *b = (const unsigned char *)p + i / bs * preft_dtype_block_bytes(t);
  switch (t) {
    case PREFT_Q8_0: {
      const preft_block_q8_0 *x = (const void *)b;
      return x->qs[o] * h2f(x->d);
    }
    case PREFT_Q4_0: {
      const preft_block_q4_0 *x = (const void *)b;
      int q = o < 16 ? (x->qs[o] & 0x0F) - 8 : (x->qs[o - 16] >> 4) - 8;
      return q * h2f(x->d);
    }
    case PREFT_Q5_0: {
      const preft_block_q5_0 *x = (const void *)b;
      uint32_t qh;
      memcpy(&qh, x->qh, sizeof(qh));
      int lo = o < 16 ? (x->qs[o] & 0x0F) : (x->qs[o - 16] >> 4);
      int32_t q = (lo | (int)(((qh >> o) & 1u) << 4)) - 16;
      return q * h2f(x->d);
    }
    case PREFT_Q4_K: {
      const preft_block_q4_K *x = (const void *)b;
      int c = (int)o / 64, w = (int)o % 64, l = w % 32;
      uint8_t sc, m;
      get_scale_min(2 * c + (w >= 32), x->scales, &sc, &m);
      const float d1 = h2f(x->d) * sc, m1 = h2f(x->dmin) * m;
      uint8_t q = x->qs[32 * c + l];
      return d1 * (w < 32 ? (q & 0xF) : (q >> 4)) - m1;
    }
    case PREFT_Q6_K: {
      const preft_block_q6_K *x = (const void *)b;
      int n = (int)o / 128, r = (int)o % 128, l = r % 32, quarter = r / 32;
      const uint8_t *ql = x->ql + 64 * n, *qh = x->qh + 32 * n;
      uint8_t lo = quarter == 0   ? ql[l] & 0xF
                   : quarter == 1 ? ql[l + 32] & 0xF
                   : quarter == 2 ? ql[l] >> 4
                                  : ql[l + 32] >> 4;
      const int8_t q = (int8_t)(lo | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
      return h2f(x->d) * x->scales[8 * n + l / 16 + 2 * quarter] * q;
    }
    default:
      PREFT_ASSERT(!"preft_quant_load_elem: not a quantized type");
      return 0;
  }
}

/* ------------------------------------------------------------------ quantize */

static void quant_q8_0(const float *x, preft_block_q8_0 *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    float amax = 0.0f;
    for (int j = 0; j < PREFT_QK; j++) amax = QMAX(amax, fabsf(x[i * PREFT_QK + j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f2h(d);
    for (int j = 0; j < PREFT_QK; ++j) y[i].qs[j] = (int8_t)roundf(x[i * PREFT_QK + j] * id);
  }
}

/* The value of largest magnitude, with its sign (the first of ties). */
static float signed_absmax(const float *x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; j++)
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      max = x[j];
    }
  return max;
}

/* trunc(x * id + off) with one rounding, as an FMA gives it (see quant.h). */
static inline int trunc_fma(float x, float id, float off) {
  return (int8_t)(float)((double)x * (double)id + off);
}

static void quant_q4_0(const float *x, preft_block_q4_0 *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    const float *xb = x + i * PREFT_QK;
    const float d = signed_absmax(xb, PREFT_QK) / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f2h(d);
    for (int j = 0; j < PREFT_QK / 2; ++j) {
      const uint8_t xi0 = (uint8_t)QMIN(15, trunc_fma(xb[j], id, 8.5f));
      const uint8_t xi1 = (uint8_t)QMIN(15, trunc_fma(xb[PREFT_QK / 2 + j], id, 8.5f));
      y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
    }
  }
}

static void quant_q5_0(const float *x, preft_block_q5_0 *y, size_t nb) {
  for (size_t i = 0; i < nb; i++) {
    const float *xb = x + i * PREFT_QK;
    const float d = signed_absmax(xb, PREFT_QK) / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f2h(d);
    uint32_t qh = 0;
    for (int j = 0; j < PREFT_QK / 2; ++j) {
      const uint8_t xi0 = (uint8_t)QMIN(31, trunc_fma(xb[j], id, 16.5f));
      const uint8_t xi1 = (uint8_t)QMIN(31, trunc_fma(xb[PREFT_QK / 2 + j], id, 16.5f));
      y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
      qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
      qh |= ((xi1 & 0x10u) >> 4) << (j + PREFT_QK / 2);
    }
    memcpy(y[i].qh, &qh, sizeof(qh));
  }
}

/* ggml's make_qkx2_quants: the scale and min (returned, and -min in
 * *the_min) of n values in [0, nmax] minimising the weighted squared error,
 * searched over nstep+1 candidate scales around the range's. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)QMAX(0, QMIN(nmax, l));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    float w = weights[i];
    best_error += w * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = QMAX(0, QMIN(nmax, l));
      Laux[i] = (uint8_t)l;
      float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = diff * diff;
        float w = weights[i];
        cur_error += w * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

static void quant_q4_K(const float *x, preft_block_q4_K *y, size_t nb) {
  uint8_t L[PREFT_QK_K], Laux[32];
  float weights[32], mins[PREFT_QK_K / 32], scales[PREFT_QK_K / 32];
  for (size_t i = 0; i < nb; i++) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < PREFT_QK_K / 32; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      float av_x = sqrtf(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
      scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(y[i].scales, 0, sizeof(y[i].scales));
    for (int j = 0; j < PREFT_QK_K / 32; ++j) {
      uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
      uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
      ls = QMIN(63, ls);
      lm = QMIN(63, lm);
      if (j < 4) {
        y[i].scales[j] = ls;
        y[i].scales[j + 4] = lm;
      } else {
        y[i].scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        y[i].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
        y[i].scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
      }
    }
    y[i].d = f2h(max_scale / 63.f);
    y[i].dmin = f2h(max_min / 63.f);
    uint8_t sc, m;
    for (int j = 0; j < PREFT_QK_K / 32; ++j) {
      get_scale_min(j, y[i].scales, &sc, &m);
      const float d = h2f(y[i].d) * sc;
      if (!d) continue;
      const float dm = h2f(y[i].dmin) * m;
      for (int ii = 0; ii < 32; ++ii) {
        int l = nearest_int((x[32 * j + ii] + dm) / d);
        L[32 * j + ii] = (uint8_t)QMAX(0, QMIN(15, l));
      }
    }
    uint8_t *q = y[i].qs;
    for (int j = 0; j < PREFT_QK_K; j += 64) {
      for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
      q += 32;
    }
    x += PREFT_QK_K;
  }
}

/* ggml's make_qx_quants with rmse_type 1 and no importance weights: a
 * symmetric scale for n values in [-nmax, nmax-1] (stored + nmax in L),
 * searched over 19 candidates, weighted by x². */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    float ax = fabsf(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = QMAX(-nmax, QMIN(nmax - 1, l));
    L[i] = (int8_t)(l + nmax);
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = QMAX(-nmax, QMIN(nmax - 1, l));
      float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + QMAX(-nmax, QMIN(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

static void quant_q6_K(const float *x, preft_block_q6_K *y, size_t nb) {
  int8_t L[PREFT_QK_K];
  float scales[PREFT_QK_K / 16];
  for (size_t i = 0; i < nb; i++) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < PREFT_QK_K / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float abs_scale = fabsf(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
      memset(&y[i], 0, sizeof(preft_block_q6_K));
      y[i].d = f2h(0.f);
      x += PREFT_QK_K;
      continue;
    }
    float iscale = -128.f / max_scale;
    y[i].d = f2h(1 / iscale);
    for (int ib = 0; ib < PREFT_QK_K / 16; ++ib)
      y[i].scales[ib] = (int8_t)QMIN(127, nearest_int(iscale * scales[ib]));
    for (int j = 0; j < PREFT_QK_K / 16; ++j) {
      float d = h2f(y[i].d) * y[i].scales[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearest_int(x[16 * j + ii] / d);
        l = QMAX(-32, QMIN(31, l));
        L[16 * j + ii] = (int8_t)(l + 32);
      }
    }
    uint8_t *ql = y[i].ql, *qh = y[i].qh;
    for (int j = 0; j < PREFT_QK_K; j += 128) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
        ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
        ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
        qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                          ((L[j + l + 96] >> 4) << 6));
      }
      ql += 64;
      qh += 32;
    }
    x += PREFT_QK_K;
  }
}

void preft_quantize_row(preft_dtype t, const float *src, void *dst, size_t n) {
  size_t nb = n / preft_dtype_block(t);
  PREFT_ASSERT(nb * preft_dtype_block(t) == n);
  switch (t) {
    case PREFT_Q8_0:
      quant_q8_0(src, dst, nb);
      return;
    case PREFT_Q4_0:
      quant_q4_0(src, dst, nb);
      return;
    case PREFT_Q5_0:
      quant_q5_0(src, dst, nb);
      return;
    case PREFT_Q4_K:
      quant_q4_K(src, dst, nb);
      return;
    case PREFT_Q6_K:
      quant_q6_K(src, dst, nb);
      return;
    case PREFT_Q4_0_X4:
    case PREFT_Q5_0_X4:
      preft_quantize_row(preft_dtype_stored(t), src, dst, n);
      preft_quant_to_x4(preft_dtype_stored(t), dst, dst, n);
      return;
    case PREFT_Q4_K_R4: /* a row's blocks where its address (dst) has them */
      for (size_t b = 0; b < nb; b++) {
        preft_block_q4_K blk;
        quant_q4_K(src + PREFT_QK_K * b, &blk, 1);
        preft_quant_r4_block_put(dst, b, &blk);
      }
      return;
    case PREFT_F32:
      memcpy(dst, src, n * sizeof(float));
      return;
    case PREFT_F16:
      for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = preft_f32_to_f16(src[i]);
      return;
    default:
      for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = preft_f32_to_bf16(src[i]);
  }
}

/* --------------------------------------------------------------- activations */

void preft_quantize_q8_0(const float *x, preft_block_q8_0 *y, size_t k) {
  PREFT_ASSERT(k % PREFT_QK == 0);
  quant_q8_0(x, y, k / PREFT_QK);
}

void preft_quantize_q8_K(const float *x, preft_block_q8_K *y, size_t k) {
  PREFT_ASSERT(k % PREFT_QK_K == 0);
  for (size_t i = 0; i < k / PREFT_QK_K; i++, x += PREFT_QK_K) {
    const float max = signed_absmax(x, PREFT_QK_K);
    if (!max) {
      y[i].d = 0;
      memset(y[i].qs, 0, sizeof(y[i].qs));
      memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < PREFT_QK_K; ++j) {
      int v = nearest_int(iscale * x[j]);
      y[i].qs[j] = (int8_t)QMIN(127, v);
    }
    for (int j = 0; j < PREFT_QK_K / 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
      y[i].bsums[j] = (int16_t)sum;
    }
    y[i].d = 1 / iscale;
  }
}

void preft_quantize_act_rows(preft_qact a, void *dst, size_t dst_stride, const float *x, size_t x_stride,
                             int n, int k) {
  for (int i = 0; i < n; i++) {
    void *d = (char *)dst + (size_t)i * dst_stride;
    const float *xi = x + (size_t)i * x_stride;
    if (a == PREFT_QACT_Q8_K)
      preft_quantize_q8_K(xi, d, (size_t)k);
    else
      preft_quantize_q8_0(xi, d, (size_t)k);
  }
}

/* ---------------------------------------------------------------------- dots */

static float dot_q8_0(const preft_block_q8_0 *x, const preft_block_q8_0 *y, int nb) {
  float sumf = 0;
  for (int ib = 0; ib < nb; ++ib) {
    int sumi = 0;
    for (int j = 0; j < PREFT_QK; j++) sumi += x[ib].qs[j] * y[ib].qs[j];
    sumf += sumi * (h2f(x[ib].d) * h2f(y[ib].d));
  }
  return sumf;
}

static float dot_q4_0(const preft_block_q4_0 *x, const preft_block_q8_0 *y, int nb) {
  float sumf = 0;
  for (int ib = 0; ib < nb; ++ib) {
    int sumi0 = 0, sumi1 = 0;
    for (int j = 0; j < PREFT_QK / 2; ++j) {
      const int v0 = (x[ib].qs[j] & 0x0F) - 8;
      const int v1 = (x[ib].qs[j] >> 4) - 8;
      sumi0 += v0 * y[ib].qs[j];
      sumi1 += v1 * y[ib].qs[j + PREFT_QK / 2];
    }
    int sumi = sumi0 + sumi1;
    sumf += sumi * h2f(x[ib].d) * h2f(y[ib].d);
  }
  return sumf;
}

static float dot_q5_0(const preft_block_q5_0 *x, const preft_block_q8_0 *y, int nb) {
  float sumf = 0;
  for (int ib = 0; ib < nb; ++ib) {
    uint32_t qh;
    memcpy(&qh, x[ib].qh, sizeof(qh));
    int sumi0 = 0, sumi1 = 0;
    for (int j = 0; j < PREFT_QK / 2; ++j) {
      const uint8_t xh0 = ((qh & (1u << (j + 0))) >> (j + 0)) << 4;
      const uint8_t xh1 = ((qh & (1u << (j + 16))) >> (j + 12));
      const int32_t x0 = (int8_t)(((x[ib].qs[j] & 0x0F) | xh0) - 16);
      const int32_t x1 = (int8_t)(((x[ib].qs[j] >> 4) | xh1) - 16);
      sumi0 += x0 * y[ib].qs[j];
      sumi1 += x1 * y[ib].qs[j + PREFT_QK / 2];
    }
    int sumi = sumi0 + sumi1;
    sumf += sumi * h2f(x[ib].d) * h2f(y[ib].d);
  }
  return sumf;
}

static float dot_q4_K(const preft_block_q4_K *x, const preft_block_q8_K *y, int nb) {
  float sumf = 0;
  for (int i = 0; i < nb; i++) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 8; s++) {
      uint8_t sc, m;
      get_scale_min(s, x[i].scales, &sc, &m);
      const uint8_t *q = x[i].qs + 32 * (s / 2);
      const int8_t *a = y[i].qs + 32 * s;
      int sub = 0;
      for (int l = 0; l < 32; l++) sub += ((s & 1) ? (q[l] >> 4) : (q[l] & 0xF)) * a[l];
      isum += sc * sub;
      msum += m * (y[i].bsums[2 * s] + y[i].bsums[2 * s + 1]);
    }
    const float d = h2f(x[i].d) * y[i].d, dmin = h2f(x[i].dmin) * y[i].d;
    sumf += d * isum - dmin * msum;
  }
  return sumf;
}

static float dot_q6_K(const preft_block_q6_K *x, const preft_block_q8_K *y, int nb) {
  float sumf = 0;
  for (int i = 0; i < nb; i++) {
    int8_t a[PREFT_QK_K];
    const uint8_t *ql = x[i].ql, *qh = x[i].qh;
    for (int n = 0; n < PREFT_QK_K; n += 128, ql += 64, qh += 32)
      for (int l = 0; l < 32; ++l) {
        a[n + l + 0] = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        a[n + l + 32] = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        a[n + l + 64] = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        a[n + l + 96] = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      }
    int isum = 0;
    for (int s = 0; s < 16; s++) {
      int sub = 0;
      for (int l = 0; l < 16; l++) sub += a[16 * s + l] * y[i].qs[16 * s + l];
      isum += x[i].scales[s] * sub;
    }
    sumf += h2f(x[i].d) * y[i].d * isum;
  }
  return sumf;
}

float preft_quant_dot_ref(preft_dtype t, const void *w, const void *xq, int k) {
  switch (t) {
    case PREFT_Q8_0:
      return dot_q8_0(w, xq, k / PREFT_QK);
    case PREFT_Q4_0:
      return dot_q4_0(w, xq, k / PREFT_QK);
    case PREFT_Q5_0:
      return dot_q5_0(w, xq, k / PREFT_QK);
    case PREFT_Q4_K:
      return dot_q4_K(w, xq, k / PREFT_QK_K);
    case PREFT_Q6_K:
      return dot_q6_K(w, xq, k / PREFT_QK_K);
    case PREFT_Q4_0_X4:
    case PREFT_Q5_0_X4: { /* the plain row's dot, in its order */
      const size_t bytes = preft_dtype_row_bytes(t, (size_t)k);
      unsigned char *row = preft_xmalloc(bytes);
      preft_quant_from_x4(t, w, row, (size_t)k);
      const float d = preft_quant_dot_ref(preft_dtype_stored(t), row, xq, k);
      free(row);
      return d;
    }
    case PREFT_Q4_K_R4: { /* block by block as Q4_K: the same sum in the same order */
      float sumf = 0;
      for (int b = 0; b < k / PREFT_QK_K; b++) {
        preft_block_q4_K blk;
        preft_quant_r4_block_get(w, (size_t)b, &blk);
        sumf += dot_q4_K(&blk, (const preft_block_q8_K *)xq + b, 1);
      }
      return sumf;
    }
    default:
      PREFT_ASSERT(!"preft_quant_dot_ref: not a quantized type");
      return 0;
  }
}

void preft_qgemm_ref(float *y, int y_stride, const float *x, int x_stride, const void *w, preft_dtype wdt,
                     int n, int k, int m, int accumulate) {
  PREFT_ASSERT(preft_dtype_is_quant(wdt) && k % (int)preft_dtype_block(wdt) == 0);
  preft_qact a = preft_quant_act_of(wdt);
  size_t xrow = preft_qact_row_bytes(a, (size_t)k), wrow = preft_dtype_row_bytes(wdt, (size_t)k);
  unsigned char *xq = preft_xmalloc(xrow > 0 ? xrow : 1);
  for (int i = 0; i < n; i++) {
    preft_quantize_act_rows(a, xq, xrow, x + (size_t)i * (size_t)x_stride, 0, 1, k);
    float *yi = y + (size_t)i * (size_t)y_stride;
    for (int j = 0; j < m; j++) {
      float d = preft_quant_dot_ref(
          wdt, (const unsigned char *)w + preft_dtype_row_offset(wdt, wrow, (size_t)j), xq, k);
      yi[j] = accumulate ? yi[j] + d : d;
    }
  }
  free(xq);
}
