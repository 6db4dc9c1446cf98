/* ops_avx.c - AVX + FMA kernels for attention and the element-wise ops of a
 * decoder layer (ops_kern.h). Every function is compiled for
 * "avx,fma,f16c" only, the project's baseline (no AVX2: no 256-bit integer
 * instructions), and called only when preft_cpu_path() allows it. The plain
 * references are in ops.c and attention.c; tests/unit/test_ops.c compares.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tensor/ops.h"
#include "tensor/ops_kern.h"

#define AVX __attribute__((target("avx,fma,f16c")))

/* Lanes [0, k) set, for 1 <= k <= 8 (masked loads and stores of a tail). */
static AVX __m256i tail_mask(int k) {
  static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(bits + 8 - k));
}

static inline AVX float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline AVX float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* preft_expf_fast on 8 lanes. 2^n is assembled in two SSE halves. */
static inline AVX __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(PREFT_EXPF_LO), magic = _mm256_set1_ps(12582912.0f);
  __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(PREFT_EXPF_HI));
  __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
  __m256 n = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  __m256i ti = _mm256_castps_si256(t);
  const __m128i bias = _mm_set1_epi32(127 - 0x4B400000);
  __m128i t0 = _mm_slli_epi32(_mm_add_epi32(_mm256_castsi256_si128(ti), bias), 23);
  __m128i t1 = _mm_slli_epi32(_mm_add_epi32(_mm256_extractf128_si256(ti, 1), bias), 23);
  __m256 scale = _mm256_castsi256_ps(_mm256_insertf128_si256(_mm256_castsi128_si256(t0), t1, 1));
  return _mm256_and_ps(_mm256_mul_ps(y, scale), _mm256_cmp_ps(x, lo, _CMP_NLT_UQ));
}

/* ---- attention ------------------------------------------------------------ */

/* [sum(a0), sum(a1), sum(a2), sum(a3)], each lane sum by the same tree
 * ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)). */
static inline AVX __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1));
}

/* s_h[0:4] = scale · q_h·k_i for 4 keys pos_stride apart and HG <= 2 heads
 * (q rows Dh apart, s rows sn apart): each key chunk is loaded once for
 * both heads, 4·HG accumulators. */
static inline __attribute__((always_inline)) AVX void scores4(const int HG, float *s, size_t sn,
                                                              const float *q, const float *k, size_t ps,
                                                              int dh, float scale) {
  __m256 a[2][4];
#pragma GCC unroll 2
  for (int h = 0; h < HG; h++)
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) a[h][r] = _mm256_setzero_ps();
  for (int c = 0; c < dh; c += 8) {
    __m256 kv[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) kv[r] = _mm256_loadu_ps(k + (size_t)r * ps + c);
#pragma GCC unroll 2
    for (int h = 0; h < HG; h++) {
      __m256 qv = _mm256_loadu_ps(q + (size_t)h * (size_t)dh + c);
#pragma GCC unroll 4
      for (int r = 0; r < 4; r++) a[h][r] = _mm256_fmadd_ps(qv, kv[r], a[h][r]);
    }
  }
#pragma GCC unroll 2
  for (int h = 0; h < HG; h++)
    _mm_storeu_ps(s + (size_t)h * sn,
                  _mm_mul_ps(hsum4(a[h][0], a[h][1], a[h][2], a[h][3]), _mm_set1_ps(scale)));
}

/* s_h[len] = scale · q_h[Dh]·k_i for g heads over len keys pos_stride apart
 * (s rows sn apart): keys four at a time for two heads at a time (every
 * score is summed the same way whatever the grouping of heads, so a head's
 * scores do not depend on the other heads), the last len % 4 keys one at a
 * time. */
static AVX void scores_run(float *s, size_t sn, const float *q, int g, const float *k, size_t ps, int len,
                           int dh, float scale) {
  int body = len / 4 * 4;
  for (int i = 0; i < body; i += 4) {
    const float *ki = k + (size_t)i * ps;
    int h = 0;
    for (; h + 2 <= g; h += 2)
      scores4(2, s + (size_t)h * sn + (size_t)i, sn, q + (size_t)h * (size_t)dh, ki, ps, dh, scale);
    if (h < g) scores4(1, s + (size_t)h * sn + (size_t)i, sn, q + (size_t)h * (size_t)dh, ki, ps, dh, scale);
  }
  for (int h = 0; h < g; h++) {
    const float *qh = q + (size_t)h * (size_t)dh;
    for (int i = body; i < len; i++) {
      const float *kr = k + (size_t)i * ps;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0;
      int c = 0;
      for (; c + 16 <= dh; c += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + c), _mm256_loadu_ps(kr + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + c + 8), _mm256_loadu_ps(kr + c + 8), a1);
      }
      if (c < dh) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qh + c), _mm256_loadu_ps(kr + c), a0);
      s[(size_t)h * sn + (size_t)i] = hsum(_mm256_add_ps(a0, a1)) * scale;
    }
  }
}

/* s[n] = softmax(s[n]) in place. */
static AVX void softmax_avx(float *s, int n) {
  int tail = n % 8, body = n - tail;
  __m256i m = tail_mask(tail ? tail : 8);
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  for (int i = 0; i < body; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + i));
  float mx = hmax(vmax);
  for (int i = body; i < n; i++) mx = s[i] > mx ? s[i] : mx;
  vmax = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  for (int i = 0; i < body; i += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmax));
    _mm256_storeu_ps(s + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (tail) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(s + body, m), vmax));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(s + body, m, e);
    sum = _mm256_add_ps(sum, e);
  }
  __m256 inv = _mm256_set1_ps(1.0f / hsum(sum));
  for (int i = 0; i < body; i += 8) _mm256_storeu_ps(s + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), inv));
  if (tail) _mm256_maskstore_ps(s + body, m, _mm256_mul_ps(_mm256_maskload_ps(s + body, m), inv));
}

/* out[h][Dh] += Σ_i p_h[i] · v_i for HG heads (out rows Dh apart, p rows pn
 * apart) over len values pos_stride apart, columns c0 .. c1 in chunks of U
 * vectors: each chunk of a V row is loaded once for all HG heads, and the
 * HG·U accumulators (8 when the shape allows: two FMA pipes times the FMA
 * latency) are independent chains. Every output lane adds its terms in
 * position order whatever HG and U are, so the sums are the same bits as
 * one head at a time. */
static inline __attribute__((always_inline)) AVX void wsum_heads(const int HG, const int U, float *out,
                                                                 const float *p, size_t pn, const float *v,
                                                                 size_t ps, int len, int dh, int c0, int c1) {
  for (int c = c0; c + 8 * U <= c1; c += 8 * U) {
    __m256 o[4][8];
#pragma GCC unroll 4
    for (int h = 0; h < HG; h++)
#pragma GCC unroll 8
      for (int u = 0; u < U; u++) o[h][u] = _mm256_loadu_ps(out + (size_t)h * (size_t)dh + c + 8 * u);
    for (int i = 0; i < len; i++) {
      const float *vr = v + (size_t)i * ps + c;
      __m256 vv[8];
#pragma GCC unroll 8
      for (int u = 0; u < U; u++) vv[u] = _mm256_loadu_ps(vr + 8 * u);
#pragma GCC unroll 4
      for (int h = 0; h < HG; h++) {
        __m256 w = _mm256_broadcast_ss(p + (size_t)h * pn + (size_t)i);
#pragma GCC unroll 8
        for (int u = 0; u < U; u++) o[h][u] = _mm256_fmadd_ps(w, vv[u], o[h][u]);
      }
    }
#pragma GCC unroll 4
    for (int h = 0; h < HG; h++)
#pragma GCC unroll 8
      for (int u = 0; u < U; u++) _mm256_storeu_ps(out + (size_t)h * (size_t)dh + c + 8 * u, o[h][u]);
  }
}

/* wsum_heads over all g heads and all Dh columns (Dh a multiple of 8):
 * heads in groups of at most 4, each group's columns in chunks that give it
 * about 8 accumulators, the columns left over 8 at a time. */
static AVX void weighted_sum_run(float *out, const float *p, size_t pn, const float *v, size_t ps, int len,
                                 int g, int dh) {
  for (int h0 = 0; h0 < g; h0 += 4) {
    int hg = g - h0 < 4 ? g - h0 : 4;
    float *o = out + (size_t)h0 * (size_t)dh;
    const float *ph = p + (size_t)h0 * pn;
    int wide = hg == 1 ? 64 : hg == 2 ? 32 : 16; /* columns per chunk: 8, 8, 6, 8 accumulators */
    int body = dh / wide * wide;
    switch (hg) {
      case 1:
        wsum_heads(1, 8, o, ph, pn, v, ps, len, dh, 0, body);
        wsum_heads(1, 1, o, ph, pn, v, ps, len, dh, body, dh);
        break;
      case 2:
        wsum_heads(2, 4, o, ph, pn, v, ps, len, dh, 0, body);
        wsum_heads(2, 1, o, ph, pn, v, ps, len, dh, body, dh);
        break;
      case 3:
        wsum_heads(3, 2, o, ph, pn, v, ps, len, dh, 0, body);
        wsum_heads(3, 1, o, ph, pn, v, ps, len, dh, body, dh);
        break;
      default:
        wsum_heads(4, 2, o, ph, pn, v, ps, len, dh, 0, body);
        wsum_heads(4, 1, o, ph, pn, v, ps, len, dh, body, dh);
        break;
    }
  }
}

/* See attention.h. The cache is walked one run of contiguous positions (the
 * rest of a block) at a time, and all G heads are done on a run before the
 * next: the run's keys or values (16 positions·Dh floats) stay in L1 while
 * the G heads read them. */
AVX void preft_attention_avx(float *out, const float *q, int g, int dh, const preft_kv_view *kv, int start,
                             int end, float scale, float *s) {
  int n = end - start + 1, bs = kv->block_size;
  size_t ps = kv->pos_stride;
  for (int t = start; t <= end;) {
    int off = t % bs, len = bs - off < end - t + 1 ? bs - off : end - t + 1;
    const float *k = kv->k + (size_t)kv->table[t / bs] * kv->block_stride + (size_t)off * ps;
    scores_run(s + (size_t)(t - start), (size_t)n, q, g, k, ps, len, dh, scale);
    t += len;
  }
  for (int h = 0; h < g; h++) softmax_avx(s + (size_t)h * (size_t)n, n);
  memset(out, 0, sizeof(float) * (size_t)g * (size_t)dh);
  for (int t = start; t <= end;) {
    int off = t % bs, len = bs - off < end - t + 1 ? bs - off : end - t + 1;
    const float *v = kv->v + (size_t)kv->table[t / bs] * kv->block_stride + (size_t)off * ps;
    weighted_sum_run(out, s + (size_t)(t - start), (size_t)n, v, ps, len, g, dh);
    t += len;
  }
}

/* ---- element-wise ----------------------------------------------------------- */

static inline AVX __m256 silu_mul8(__m256 a, __m256 b) {
  __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), a));
  return _mm256_mul_ps(_mm256_div_ps(a, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), b);
}

/* The tails go through the same lanes (masked), so every element's result
 * is the same wherever a caller splits the array. */
AVX void preft_swiglu_avx(float *out, const float *a, const float *b, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  if (i < n) {
    __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(out + i, m, silu_mul8(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m)));
  }
}

/* SwiGLU's backward on 8 lanes: with s = σ(a), da = dout·b·s·(1 + a(1 − s))
 * and db = dout·a·s. */
static inline AVX void swiglu_bwd8(float *da, float *db, const float *dout, const float *a, const float *b,
                                   __m256i m, int masked) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 av = masked ? _mm256_maskload_ps(a, m) : _mm256_loadu_ps(a);
  __m256 bv = masked ? _mm256_maskload_ps(b, m) : _mm256_loadu_ps(b);
  __m256 dv = masked ? _mm256_maskload_ps(dout, m) : _mm256_loadu_ps(dout);
  __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), av))));
  __m256 dsilu = _mm256_mul_ps(sg, _mm256_fmadd_ps(av, _mm256_sub_ps(one, sg), one));
  __m256 dav = _mm256_mul_ps(_mm256_mul_ps(dv, bv), dsilu), dbv = _mm256_mul_ps(_mm256_mul_ps(dv, av), sg);
  if (masked) {
    _mm256_maskstore_ps(da, m, dav);
    _mm256_maskstore_ps(db, m, dbv);
  } else {
    _mm256_storeu_ps(da, dav);
    _mm256_storeu_ps(db, dbv);
  }
}

AVX void preft_swiglu_grad_avx(float *da, float *db, const float *dout, const float *a, const float *b,
                               int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) swiglu_bwd8(da + i, db + i, dout + i, a + i, b + i, _mm256_setzero_si256(), 0);
  if (i < n) swiglu_bwd8(da + i, db + i, dout + i, a + i, b + i, tail_mask(n - i), 1);
}

AVX void preft_exp_affine_avx(float *x, int n, float scale, float shift) {
  const __m256 sc = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), sc, sh)));
  if (i < n) {
    __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, exp8(_mm256_fmsub_ps(_mm256_maskload_ps(x + i, m), sc, sh)));
  }
}

/* The 8 floats of v widened and added to two double accumulators. */
static inline AVX void add_f64(__m256d *s0, __m256d *s1, __m256 v) {
  *s0 = _mm256_add_pd(*s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  *s1 = _mm256_add_pd(*s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

static inline AVX double hsum_f64(__m256d s0, __m256d s1) {
  __m256d s = _mm256_add_pd(s0, s1);
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/* preft_exp_affine_avx, and the results' sum: 8 lanes at a time into two
 * accumulators of 4 doubles (the tail's missing lanes as zeros). */
AVX double preft_exp_affine_sum_avx(float *x, int n, float scale, float shift) {
  const __m256 sc = _mm256_set1_ps(scale), sh = _mm256_set1_ps(shift);
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), sc, sh));
    _mm256_storeu_ps(x + i, e);
    add_f64(&s0, &s1, e);
  }
  if (i < n) {
    __m256i m = tail_mask(n - i);
    __m256 e =
        _mm256_and_ps(exp8(_mm256_fmsub_ps(_mm256_maskload_ps(x + i, m), sc, sh)), _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(x + i, m, e);
    add_f64(&s0, &s1, e);
  }
  return hsum_f64(s0, s1);
}

AVX float preft_max_avx(const float *x, int n) {
  __m256 mx = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(_mm256_loadu_ps(x + i), mx); /* a NaN of x is skipped */
  float r = hmax(mx);
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  return r;
}

AVX void preft_scale_avx(float *x, int n, float s) {
  const __m256 v = _mm256_set1_ps(s);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), v));
  for (; i < n; i++) x[i] *= s;
}

/* Mul, sub, mul in the plain version's order (no FMA): the same bits. */
AVX void preft_softmax_grad_avx(float *ds, const float *p, int n, float dsum, float scale) {
  const __m256 vs = _mm256_set1_ps(dsum), vc = _mm256_set1_ps(scale);
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        ds + i,
        _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), _mm256_sub_ps(_mm256_loadu_ps(ds + i), vs)), vc));
  for (; i < n; i++) ds[i] = p[i] * (ds[i] - dsum) * scale;
}

/* Σ a[i]·b[i] in double, 16 elements a step in four accumulators of four
 * doubles, then the tail in order (b = a: the exact squares' sum). With c,
 * Σ fl(a[i]·b[i])·c[i] the same way. */
static inline AVX double dot_f64(const float *a, const float *b, const float *c, int d) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 16 <= d; i += 16) {
    __m256 a0 = _mm256_loadu_ps(a + i), a1 = _mm256_loadu_ps(a + i + 8);
    __m256 b0 = _mm256_loadu_ps(b + i), b1 = _mm256_loadu_ps(b + i + 8);
    if (c) {
      a0 = _mm256_mul_ps(a0, b0), a1 = _mm256_mul_ps(a1, b1);
      b0 = _mm256_loadu_ps(c + i), b1 = _mm256_loadu_ps(c + i + 8);
    }
    s0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a0)),
                         _mm256_cvtps_pd(_mm256_castps256_ps128(b0)), s0);
    s1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a0, 1)),
                         _mm256_cvtps_pd(_mm256_extractf128_ps(b0, 1)), s1);
    s2 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a1)),
                         _mm256_cvtps_pd(_mm256_castps256_ps128(b1)), s2);
    s3 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a1, 1)),
                         _mm256_cvtps_pd(_mm256_extractf128_ps(b1, 1)), s3);
  }
  __m256d sv = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(sv), _mm256_extractf128_pd(sv, 1));
  double ss = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  for (; i < d; i++) ss += c ? (double)(a[i] * b[i]) * (double)c[i] : (double)a[i] * (double)b[i];
  return ss;
}

AVX double preft_dot_f64_avx(const float *a, const float *b, const float *c, int d) {
  return dot_f64(a, b, c, d);
}

AVX void preft_rmsnorm_avx(float *out, const float *x, const float *weight, int d, float eps) {
  double ss = dot_f64(x, x, NULL, d);
  float inv = (float)(1.0 / sqrt(ss / d + (double)eps));
  __m256 vinv = _mm256_set1_ps(inv);
  int i = 0;
  for (; i + 8 <= d; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv), _mm256_loadu_ps(weight + i)));
  for (; i < d; i++) out[i] = x[i] * inv * weight[i];
}

/* The lanes of v (4 doubles) summed. */
static inline AVX double hsum_pd(__m256d v) {
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

AVX void preft_layernorm_avx(float *out, const float *x, const float *weight, const float *bias, int d,
                             float eps) {
  /* pass 1: the mean, summed in double */
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int i = 0;
  for (; i + 8 <= d; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  double sum = hsum_pd(_mm256_add_pd(s0, s1));
  for (; i < d; i++) sum += (double)x[i];
  double mean = sum / d;
  /* pass 2: the squared deviations from it */
  __m256d vmean = _mm256_set1_pd(mean);
  s0 = s1 = _mm256_setzero_pd();
  for (i = 0; i + 8 <= d; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vmean),
            d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vmean);
    s0 = _mm256_fmadd_pd(d0, d0, s0);
    s1 = _mm256_fmadd_pd(d1, d1, s1);
  }
  double ss = hsum_pd(_mm256_add_pd(s0, s1));
  for (; i < d; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
  float inv = (float)(1.0 / sqrt(ss / d + (double)eps)), mf = (float)mean, mlo = (float)(mean - (double)mf);
  __m256 vinv = _mm256_set1_ps(inv), vm = _mm256_set1_ps(mf), vlo = _mm256_set1_ps(mlo);
  for (i = 0; i + 8 <= d; i += 8) {
    __m256 dev = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vlo);
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(dev, vinv), _mm256_loadu_ps(weight + i));
    _mm256_storeu_ps(out + i, _mm256_add_ps(y, _mm256_loadu_ps(bias + i)));
  }
  for (; i < d; i++) out[i] = ((x[i] - mf) - mlo) * inv * weight[i] + bias[i];
}

/* gelu on 8 lanes: with z = |x| / sqrt 2, t = 1 / (1 + p z) and
 * q = t (a1 + t (a2 + ... a5)) e^(-z^2) (Abramowitz and Stegun 7.1.26),
 * erf(z) = 1 - q, so gelu(x) = x (1 - q / 2) for x >= 0 and x q / 2 below. */
static inline AVX __m256 gelu8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(0.70710678118654752f));
  __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.3275911f), one));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  __m256 hq =
      _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(p, t), exp8(_mm256_xor_ps(_mm256_mul_ps(z, z), sign))), half);
  __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  return _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_sub_ps(one, hq), hq, neg));
}

AVX void preft_gelu_avx(float *x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, gelu8(_mm256_maskload_ps(x + i, m)));
  }
}

AVX void preft_rope_rotate_half_avx(float *x, const float *cos, const float *sin, int head_dim) {
  int half = head_dim / 2, i = 0;
  for (; i + 8 <= half; i += 8) {
    __m256 x1 = _mm256_loadu_ps(x + i), x2 = _mm256_loadu_ps(x + half + i);
    __m256 c = _mm256_loadu_ps(cos + i), s = _mm256_loadu_ps(sin + i);
    _mm256_storeu_ps(x + i, _mm256_sub_ps(_mm256_mul_ps(x1, c), _mm256_mul_ps(x2, s)));
    _mm256_storeu_ps(x + half + i, _mm256_add_ps(_mm256_mul_ps(x2, c), _mm256_mul_ps(x1, s)));
  }
  for (; i < half; i++) {
    float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * cos[i] - x2 * sin[i];
    x[i + half] = x2 * cos[i] + x1 * sin[i];
  }
}

#endif
