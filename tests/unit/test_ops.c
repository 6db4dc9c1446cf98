/* test_ops.c - the vectorised attention and element-wise kernels against
 * independent double-precision references and against their plain versions,
 * on every CPU path this machine has (portable, then each SIMD path forced
 * with preft_cpu_limit), over odd sizes, GQA ratios, paged layouts with odd
 * block sizes and sliding-window starts; LayerNorm and the erf GELU of the
 * encoder against double references; and the forward pass bitwise equal
 * for 1, 2 and 3 threads; log-sum-exp against a double reference, extreme
 * values included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "model/llama.h"
#include "model/shapes.h"
#include "tensor/attention.h"
#include "tensor/cpu.h"
#include "tensor/ops.h"
#include "testutil.h"

static void fill(float *x, size_t n, float amp) {
  for (size_t i = 0; i < n; i++) x[i] = amp * test_frand();
}

/* Runs the body once per path the CPU has, with preft_cpu_path() == path;
 * every test's teardown lifts the cap again. */
static int use_path(int path) {
  preft_cpu_limit((preft_cpu_path_kind)path);
  return 1;
}
#define FOR_EACH_PATH(path)                                     \
  for (int path = 0; path <= (int)preft_cpu_detected(); path++) \
    if (use_path(path))

static int lift_cap(void **s) {
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  return 0;
}

/* ---- log-sum-exp ---------------------------------------------------------------- */

/* log(sum e^x) in double with libm's exp: the textbook max-subtracted form. */
static double lse_reference(const float *x, int n) {
  double m = -INFINITY;
  for (int i = 0; i < n; i++) {
    if (isnan(x[i])) return NAN;
    m = x[i] > m ? x[i] : m;
  }
  if (isinf(m)) return m;
  double sum = 0;
  for (int i = 0; i < n; i++) sum += exp((double)x[i] - m);
  return m + log(sum);
}

static void expect_lse(const float *x, int n, const char *what) {
  double got = preft_logsumexp(x, n), want = lse_reference(x, n);
  if (isnan(want) || isinf(want)) {
    if (!(isnan(want) ? isnan(got) : got == want)) fail_msg("%s: got %.17g, want %.17g", what, got, want);
    return;
  }
  /* the polynomial exp is within 2 ulp: about 2.4e-7 of the sum, relative */
  double tol = 5e-7 + 1e-12 * fabs(want);
  if (!(fabs(got - want) <= tol))
    fail_msg("%s: got %.17g, want %.17g (|diff| %.3g)", what, got, want, fabs(got - want));
}

static void logsumexp_matches_double_reference(void **s) {
  const int sizes[] = {1, 2, 7, 8, 9, 17, 1000, 151937};
  const float scales[] = {1e-3f, 1.0f, 30.0f, 1e4f};
  float *x = malloc(sizeof(float) * 151937);
  for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
    for (size_t b = 0; b < sizeof scales / sizeof *scales; b++) {
      int n = sizes[a];
      fill(x, (size_t)n, scales[b]);
      char what[64];
      snprintf(what, sizeof what, "n %d, scale %g", n, (double)scales[b]);
      expect_lse(x, n, what);
      /* the largest entry last and first: every lane and the tail see it */
      x[n - 1] = 2 * scales[b];
      expect_lse(x, n, what);
      x[0] = 3 * scales[b];
      expect_lse(x, n, what);
    }
  /* many equal entries: log(n) exactly added to the value */
  for (int i = 0; i < 1000; i++) x[i] = 5.0f;
  expect_lse(x, 1000, "1000 equal entries");
  assert_true(fabs(preft_logsumexp(x, 1000) - (5.0 + log(1000.0))) < 1e-6);
  free(x);
}

static void logsumexp_extreme_values(void **s) {
  const float big = 3e38f;
  float huge[9] = {big, big, -big, 1e30f, 0, -1e30f, big, -big, 1};
  expect_lse(huge, 9, "near FLT_MAX"); /* no overflow: three equal maxima give big + log 3 */
  assert_true(fabs(preft_logsumexp(huge, 9) - ((double)big + log(3.0))) <= 1e-6 * big);
  float low[10] = {-1e30f, -1e30f + 1e24f, -3e38f, -2e30f, -1e30f, -1e30f, -1e30f, -1e30f, -1e30f, -5e29f};
  expect_lse(low, 10, "all large negative");
  float gap[9] = {0, -80, -90, -100, -200, -1e6f, -INFINITY, 0, -INFINITY};
  expect_lse(gap, 9, "terms below the exp range and -inf");
  assert_true(fabs(preft_logsumexp(gap, 9) - (log(2.0 + exp(-80.0) + exp(-90.0) + exp(-100.0)))) < 1e-7);
  float ninf[11];
  for (int i = 0; i < 11; i++) ninf[i] = -INFINITY;
  assert_true(preft_logsumexp(ninf, 11) == -INFINITY);
  ninf[9] = -3.0f;
  expect_lse(ninf, 11, "one finite entry among -inf");
  assert_true(fabs(preft_logsumexp(ninf, 11) - -3.0) < 1e-7);
  ninf[4] = INFINITY;
  assert_true(preft_logsumexp(ninf, 11) == INFINITY);
  ninf[4] = NAN;
  assert_true(isnan(preft_logsumexp(ninf, 11)));
  for (int i = 0; i < 11; i++) ninf[i] = i == 10 ? NAN : -INFINITY;
  assert_true(isnan(preft_logsumexp(ninf, 11)));
  assert_true(preft_logsumexp(ninf, 0) == -INFINITY);
}

/* ---- exp ---------------------------------------------------------------------- */

static double ulps(float got, double want) {
  float w = (float)want;
  float ulp = nextafterf(fabsf(w), INFINITY) - fabsf(w);
  return fabs((double)got - want) / (double)ulp;
}

static void expf_fast_within_2_ulp_over_its_range(void **s) {
  double worst = 0;
  for (int i = 0; i <= 2000000; i++) {
    float x = PREFT_EXPF_LO + (PREFT_EXPF_HI - PREFT_EXPF_LO) * (float)i / 2000000.0f;
    double u = ulps(preft_expf_fast(x), exp((double)x));
    worst = u > worst ? u : worst;
  }
  if (worst > 2.0) fail_msg("preft_expf_fast: %.2f ulp worst error", worst);
  assert_true(preft_expf_fast(-100.0f) == 0.0f);
  assert_true(preft_expf_fast(-INFINITY) == 0.0f);
  assert_true(preft_expf_fast(0.0f) == 1.0f);
  assert_true(isfinite(preft_expf_fast(1000.0f)));
}

/* ---- element-wise ------------------------------------------------------------- */

static void swiglu_fast_matches_double_silu_on_every_path(void **s) {
  int sizes[] = {1, 7, 8, 9, 31, 4864, 4867};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int n = sizes[si];
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    float *got = malloc(sizeof(float) * (size_t)n);
    fill(a, (size_t)n, 12.0f);
    fill(b, (size_t)n, 2.0f);
    a[0] = n > 1 ? -120.0f : a[0]; /* exp(-a) beyond the clamp */
    if (n > 2) a[1] = 120.0f;
    FOR_EACH_PATH(path) {
      memcpy(got, a, sizeof(float) * (size_t)n);
      preft_swiglu_fast(got, b, n);
      for (int i = 0; i < n; i++) {
        double want = (double)a[i] / (1.0 + exp(-(double)a[i])) * (double)b[i];
        if (fabs(got[i] - want) > 1e-6 * fabs(want) + 1e-30)
          fail_msg("path %s n=%d i=%d: silu(%g)*%g = %.9g, want %.9g", preft_cpu_path_name(path), n, i, a[i],
                   b[i], got[i], want);
      }
    }
    free(a);
    free(b);
    free(got);
  }
}

static void swiglu_fast_is_the_same_wherever_the_array_is_split(void **s) {
  int n = 203;
  float a[203], b[203], whole[203], parts[203];
  fill(a, (size_t)n, 8.0f);
  fill(b, (size_t)n, 1.0f);
  FOR_EACH_PATH(path) {
    memcpy(whole, a, sizeof a);
    memcpy(parts, a, sizeof a);
    preft_swiglu_fast(whole, b, n);
    int cuts[] = {0, 3, 13, 14, 101, 203};
    for (int c = 0; c + 1 < 6; c++) preft_swiglu_fast(parts + cuts[c], b + cuts[c], cuts[c + 1] - cuts[c]);
    assert_memory_equal(whole, parts, sizeof whole);
  }
}

/* The training steps: SwiGLU's gradient and the softmax numerators
 * e^(x·scale − shift), vectorised, against double references on every
 * path (exp's argument beyond the clamp on both sides), and the same bits
 * wherever the array is split. */
static void swiglu_grad_and_exp_affine_fast_match_double_on_every_path(void **s) {
  int sizes[] = {1, 7, 8, 9, 31, 4864, 4867};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int n = sizes[si];
    size_t bytes = sizeof(float) * (size_t)n;
    float *a = malloc(bytes), *b = malloc(bytes), *dout = malloc(bytes), *da = malloc(bytes),
          *db = malloc(bytes), *e = malloc(bytes);
    fill(a, (size_t)n, 12.0f);
    fill(b, (size_t)n, 2.0f);
    fill(dout, (size_t)n, 1.5f);
    a[0] = n > 1 ? -120.0f : a[0];
    if (n > 2) a[1] = 120.0f;
    FOR_EACH_PATH(path) {
      preft_swiglu_grad_fast(da, db, dout, a, b, n);
      memcpy(e, a, bytes);
      preft_exp_affine_fast(e, n, 0.125f, -1.5f);
      for (int i = 0; i < n; i++) {
        double x = a[i], sg = 1.0 / (1.0 + exp(-x)), g = (double)dout[i];
        double want_da = g * b[i] * sg * (1.0 + x * (1.0 - sg)), want_db = g * x * sg;
        double scale = fabs(g) * (fabs((double)b[i]) + 1.0) * (1.0 + fabs(x)) * 1e-6 + 1e-30;
        if (fabs(da[i] - want_da) > scale || fabs(db[i] - want_db) > scale)
          fail_msg("path %s n=%d i=%d a=%g: da %.9g (want %.9g), db %.9g (want %.9g)",
                   preft_cpu_path_name(path), n, i, a[i], da[i], want_da, db[i], want_db);
        double want_e = exp(x * 0.125 + 1.5);
        if (fabs(e[i] - want_e) > 1e-6 * want_e)
          fail_msg("path %s n=%d i=%d: e^(%g/8 + 1.5) = %.9g, want %.9g", preft_cpu_path_name(path), n, i,
                   a[i], e[i], want_e);
      }
      if (n == 4867) { /* split at odd places: the same bits */
        float *da2 = malloc(bytes), *db2 = malloc(bytes), *e2 = malloc(bytes);
        memcpy(e2, a, bytes);
        int cuts[] = {0, 3, 13, 14, 1001, 4867};
        for (int c = 0; c + 1 < 6; c++) {
          int o = cuts[c], len = cuts[c + 1] - cuts[c];
          preft_swiglu_grad_fast(da2 + o, db2 + o, dout + o, a + o, b + o, len);
          preft_exp_affine_fast(e2 + o, len, 0.125f, -1.5f);
        }
        assert_memory_equal(da, da2, bytes);
        assert_memory_equal(db, db2, bytes);
        assert_memory_equal(e, e2, bytes);
        free(da2), free(db2), free(e2);
      }
    }
    free(a), free(b), free(dout), free(da), free(db), free(e);
  }
  float big[3] = {-1000.0f, 0.0f, 1000.0f}; /* below the clamp: 0; above: huge (libm: inf) */
  FOR_EACH_PATH(path) {
    float v[3];
    memcpy(v, big, sizeof v);
    preft_exp_affine_fast(v, 3, 1.0f, 0.0f);
    assert_true(v[0] == 0.0f && v[1] == 1.0f && v[2] > 1e38f);
  }
}

/* The training attention's softmax steps (attention_fwd_bwd.c): the
 * largest score, the numerators with their sum in double, the scaling by
 * the sum's inverse and the backward's p·(dp − Σ)·scale, on every path,
 * against double references (max, scale and the backward bit for bit: the
 * vector code does what the loop does, in the same order). */
static void softmax_row_steps_match_references_on_every_path(void **s) {
  int sizes[] = {1, 7, 8, 9, 63, 64, 65, 256};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int n = sizes[si];
    size_t bytes = sizeof(float) * (size_t)n;
    float *x = malloc(bytes), *e = malloc(bytes), *p = malloc(bytes), *ds = malloc(bytes),
          *want = malloc(bytes);
    fill(x, (size_t)n, 20.0f);
    fill(p, (size_t)n, 1.0f);
    x[n / 2] = 30.5f; /* the largest, anywhere in the row */
    FOR_EACH_PATH(path) {
      float mx = preft_max_fast(x, n);
      assert_true(mx == 30.5f);
      memcpy(e, x, bytes);
      double sum = preft_exp_affine_sum_fast(e, n, 0.125f, mx * 0.125f), want_sum = 0.0, mag = 0.0;
      for (int i = 0; i < n; i++) {
        double w = exp(((double)x[i] - mx) * 0.125);
        if (fabs(e[i] - w) > 1e-6 * w)
          fail_msg("path %s n=%d i=%d: e %.9g, want %.9g", preft_cpu_path_name(path), n, i, e[i], w);
        want_sum += e[i];
        mag += fabs(e[i]);
      }
      if (fabs(sum - want_sum) > 1e-14 * mag)
        fail_msg("path %s n=%d: sum %.17g, want %.17g", preft_cpu_path_name(path), n, sum, want_sum);
      float inv = (float)(1.0 / sum);
      for (int i = 0; i < n; i++) want[i] = e[i] * inv;
      preft_scale_fast(e, n, inv);
      assert_memory_equal(e, want, bytes);
      fill(ds, (size_t)n, 3.0f);
      for (int i = 0; i < n; i++) want[i] = p[i] * (ds[i] - 0.25f) * 0.125f;
      preft_softmax_grad_fast(ds, p, n, 0.25f, 0.125f);
      assert_memory_equal(ds, want, bytes);
    }
    free(x), free(e), free(p), free(ds), free(want);
  }
}

/* The double-accumulated dot products of the training norms: against a
 * long-double sum, with and without the third operand, on every path. */
static void dot_f64_fast_matches_a_long_double_sum(void **s) {
  int sizes[] = {1, 15, 16, 17, 512, 901};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int n = sizes[si];
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n),
          *c = malloc(sizeof(float) * (size_t)n);
    fill(a, (size_t)n, 3.0f);
    fill(b, (size_t)n, 2.0f);
    fill(c, (size_t)n, 1.5f);
    long double w2 = 0, w3 = 0, m2 = 0, m3 = 0;
    for (int i = 0; i < n; i++) {
      w2 += (long double)a[i] * b[i];
      w3 += (long double)a[i] * b[i] * c[i];
      m2 += fabsl((long double)a[i] * b[i]);
      m3 += fabsl((long double)a[i] * b[i] * c[i]);
    }
    FOR_EACH_PATH(path) {
      double g2 = preft_dot_f64_fast(a, b, NULL, n), g3 = preft_dot_f64_fast(a, b, c, n);
      if (fabsl(g2 - w2) > 1e-12L * m2 || fabsl(g3 - w3) > 1e-7L * m3) /* c: a·b rounded to FP32 first */
        fail_msg("path %s n=%d: %.17g / %.17g, want %.17Lg / %.17Lg", preft_cpu_path_name(path), n, g2, g3,
                 w2, w3);
    }
    free(a), free(b), free(c);
  }
}

static void rmsnorm_fast_matches_reference_on_every_path(void **s) {
  int sizes[] = {1, 8, 15, 17, 64, 896, 901};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int d = sizes[si];
    float *x = malloc(sizeof(float) * (size_t)d), *w = malloc(sizeof(float) * (size_t)d);
    float *got = malloc(sizeof(float) * (size_t)d), *ref = malloc(sizeof(float) * (size_t)d);
    fill(x, (size_t)d, 3.0f);
    fill(w, (size_t)d, 1.5f);
    double ss = 0;
    for (int i = 0; i < d; i++) ss += (double)x[i] * x[i];
    double inv = 1.0 / sqrt(ss / d + 1e-6);
    FOR_EACH_PATH(path) {
      preft_rmsnorm_fast(got, x, w, d, 1e-6f);
      preft_rmsnorm(ref, x, w, d, 1e-6f);
      for (int i = 0; i < d; i++) {
        double want = x[i] * inv * w[i];
        if (fabs(got[i] - want) > 3e-7 * fabs(want) || fabs(got[i] - ref[i]) > 2.5e-7 * fabs(ref[i]))
          fail_msg("path %s d=%d i=%d: %.9g, reference %.9g, double %.9g", preft_cpu_path_name(path), d, i,
                   got[i], ref[i], want);
      }
      memcpy(got, x, sizeof(float) * (size_t)d); /* in place */
      preft_rmsnorm_fast(got, got, w, d, 1e-6f);
      preft_rmsnorm_fast(ref, x, w, d, 1e-6f);
      assert_memory_equal(got, ref, sizeof(float) * (size_t)d);
    }
    free(x);
    free(w);
    free(got);
    free(ref);
  }
}

/* LayerNorm of rows with a large common offset (the two-pass variance must
 * not cancel), against a double reference; in place gives the same. */
static void layernorm_fast_matches_double_reference_on_every_path(void **s) {
  int sizes[] = {1, 7, 8, 15, 17, 36, 768, 901};
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
    int d = sizes[si];
    float *x = malloc(sizeof(float) * (size_t)d), *w = malloc(sizeof(float) * (size_t)d);
    float *b = malloc(sizeof(float) * (size_t)d), *got = malloc(sizeof(float) * (size_t)d);
    float *ref = malloc(sizeof(float) * (size_t)d);
    fill(x, (size_t)d, 3.0f);
    for (int i = 0; i < d; i++) x[i] += 20.0f;
    fill(w, (size_t)d, 1.5f);
    fill(b, (size_t)d, 0.5f);
    double mean = 0, var = 0;
    for (int i = 0; i < d; i++) mean += x[i];
    mean /= d;
    for (int i = 0; i < d; i++) var += (x[i] - mean) * (x[i] - mean);
    double inv = 1.0 / sqrt(var / d + 1e-5);
    FOR_EACH_PATH(path) {
      preft_layernorm_fast(got, x, w, b, d, 1e-5f);
      preft_layernorm(ref, x, w, b, d, 1e-5f);
      for (int i = 0; i < d; i++) {
        double scaled = (x[i] - mean) * inv * w[i], want = scaled + b[i];
        double tol = 1e-6 * (fabs(scaled) + fabs(b[i])) + 1e-7;
        if (fabs(got[i] - want) > tol || fabs(ref[i] - want) > tol)
          fail_msg("path %s d=%d i=%d: %.9g, plain %.9g, double %.9g", preft_cpu_path_name(path), d, i,
                   got[i], ref[i], want);
      }
      memcpy(got, x, sizeof(float) * (size_t)d); /* in place */
      preft_layernorm_fast(got, got, w, b, d, 1e-5f);
      preft_layernorm_fast(ref, x, w, b, d, 1e-5f);
      assert_memory_equal(got, ref, sizeof(float) * (size_t)d);
    }
    free(x);
    free(w);
    free(b);
    free(got);
    free(ref);
  }
}

/* GELU (erf) against 0.5 x (1 + erf(x / sqrt 2)) in double over [-12, 12],
 * tails included, every length's SIMD tail, and zeros. */
static void gelu_fast_matches_double_erf_on_every_path(void **s) {
  enum { N = 2003 };
  static float x[N], got[N], plain[N];
  for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1);
  x[0] = 0.0f;
  x[1] = -0.0f;
  x[2] = 1e-30f;
  x[3] = -40.0f;
  x[4] = 40.0f;
  FOR_EACH_PATH(path) {
    for (int n = 1; n <= 17; n++) { /* tails: the first n values alone */
      memcpy(got, x, sizeof(float) * (size_t)n);
      preft_gelu_fast(got, n);
      memcpy(plain, x, sizeof(float) * N);
      preft_gelu_fast(plain, N);
      assert_memory_equal(got, plain, sizeof(float) * (size_t)n);
    }
    memcpy(got, x, sizeof x);
    preft_gelu_fast(got, N);
    memcpy(plain, x, sizeof x);
    preft_gelu(plain, N);
    for (int i = 0; i < N; i++) {
      double want = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
      double tol = 3e-7 * fmax(1.0, fabs(x[i]));
      if (!(fabs(got[i] - want) <= tol) || !(fabs(plain[i] - want) <= tol))
        fail_msg("path %s x=%.9g: %.9g, plain %.9g, double %.9g", preft_cpu_path_name(path), x[i], got[i],
                 plain[i], want);
    }
  }
}

static void rope_fast_is_bitwise_the_reference_on_every_path(void **s) {
  int dims[] = {2, 6, 16, 18, 64, 80, 128};
  for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
    int dh = dims[di];
    float x[128], got[128], ref[128], cs[64], sn[64];
    fill(x, (size_t)dh, 2.0f);
    for (int i = 0; i < dh / 2; i++) {
      cs[i] = cosf(0.37f * (float)i + 0.1f);
      sn[i] = sinf(0.37f * (float)i + 0.1f);
    }
    FOR_EACH_PATH(path) {
      memcpy(got, x, sizeof(float) * (size_t)dh);
      memcpy(ref, x, sizeof(float) * (size_t)dh);
      preft_rope_rotate_half_fast(got, cs, sn, dh);
      preft_rope_rotate_half(ref, cs, sn, dh);
      assert_memory_equal(got, ref, sizeof(float) * (size_t)dh);
    }
  }
}

/* ---- attention ---------------------------------------------------------------- */

/* A paged cache of one layer: n_blocks blocks, positions block_size per
 * block, pos_stride floats apart (Hkv·Dh plus padding), blocks in a shuffled
 * order in the table so a wrong block lookup shows. */
typedef struct {
  float *k, *v;
  int *table;
  preft_kv_view view;
} paged;

static void paged_init(paged *p, int n_pos, int block_size, int hkv, int dh, int kvh) {
  int n_blocks = (n_pos + block_size - 1) / block_size;
  size_t ps = (size_t)hkv * (size_t)dh + 3, bstride = (size_t)block_size * ps;
  size_t total = (size_t)n_blocks * bstride;
  p->k = malloc(sizeof(float) * total);
  p->v = malloc(sizeof(float) * total);
  fill(p->k, total, 1.5f);
  fill(p->v, total, 1.0f);
  p->table = malloc(sizeof(int) * (size_t)n_blocks);
  for (int i = 0; i < n_blocks; i++) p->table[i] = (i * 7 + 3) % n_blocks;
  if (n_blocks % 7 == 0)
    for (int i = 0; i < n_blocks; i++) p->table[i] = n_blocks - 1 - i;
  p->view = (preft_kv_view){
      p->k + (size_t)kvh * (size_t)dh, p->v + (size_t)kvh * (size_t)dh, p->table, bstride, ps, block_size};
}

static void paged_free(paged *p) {
  free(p->k);
  free(p->v);
  free(p->table);
}

static const float *row_at(const preft_kv_view *kv, const float *base, int t) {
  return base + (size_t)kv->table[t / kv->block_size] * kv->block_stride +
         (size_t)(t % kv->block_size) * kv->pos_stride;
}

/* The definition, in double: softmax over [start, end] of q·k·scale, then
 * the weighted sum of v. */
static void attention_double(double *out, const float *q, int g, int dh, const preft_kv_view *kv, int start,
                             int end, float scale) {
  int n = end - start + 1;
  double *p = malloc(sizeof(double) * (size_t)n);
  for (int h = 0; h < g; h++) {
    double mx = -INFINITY, sum = 0;
    for (int t = start; t <= end; t++) {
      const float *k = row_at(kv, kv->k, t);
      double d = 0;
      for (int i = 0; i < dh; i++) d += (double)q[h * dh + i] * k[i];
      p[t - start] = d * scale;
      mx = p[t - start] > mx ? p[t - start] : mx;
    }
    for (int i = 0; i < n; i++) sum += (p[i] = exp(p[i] - mx));
    for (int i = 0; i < dh; i++) out[h * dh + i] = 0;
    for (int t = start; t <= end; t++) {
      const float *v = row_at(kv, kv->v, t);
      for (int i = 0; i < dh; i++) out[h * dh + i] += p[t - start] / sum * v[i];
    }
  }
  free(p);
}

/* max |got - want| over max |want|: the error on the scale of the output. */
static double scaled_err(const float *got, const double *want, size_t n) {
  double e = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    e = fabs(got[i] - want[i]) > e ? fabs(got[i] - want[i]) : e;
    m = fabs(want[i]) > m ? fabs(want[i]) : m;
  }
  return e / m;
}

static void attention_matches_double_reference_on_every_path(void **s) {
  /* G, Dh, Hkv, block size, positions [start, end] */
  struct {
    int g, dh, hkv, bs, start, end;
  } cases[] = {
      {1, 8, 1, 16, 0, 0},      {7, 64, 2, 16, 0, 128}, {7, 64, 2, 16, 3, 200}, {4, 64, 8, 16, 17, 17},
      {3, 128, 2, 5, 0, 77},    {2, 80, 3, 7, 9, 40},   {1, 96, 1, 1, 0, 19},   {5, 16, 2, 3, 11, 60},
      {2, 12, 2, 16, 0, 33}, /* Dh not a multiple of 8: the portable kernel on every path */
      {8, 32, 1, 16, 100, 163},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    int g = cases[ci].g, dh = cases[ci].dh, start = cases[ci].start, end = cases[ci].end, n = end - start + 1;
    paged p;
    paged_init(&p, end + 1, cases[ci].bs, cases[ci].hkv, dh, cases[ci].hkv - 1);
    size_t od = (size_t)g * (size_t)dh;
    float *q = malloc(sizeof(float) * od), *got = malloc(sizeof(float) * od),
          *ref = malloc(sizeof(float) * od);
    float *scratch = malloc(sizeof(float) * (size_t)g * (size_t)n);
    double *want = malloc(sizeof(double) * od);
    fill(q, od, 1.0f);
    float scale = 1.0f / sqrtf((float)dh);
    attention_double(want, q, g, dh, &p.view, start, end, scale);
    preft_attention_ref(ref, q, g, dh, &p.view, start, end, scale, scratch);
    double e_ref = scaled_err(ref, want, od);
    if (e_ref > 1e-6) fail_msg("case %zu: reference off the double result by %.3g", ci, e_ref);
    FOR_EACH_PATH(path) {
      for (size_t i = 0; i < od; i++) got[i] = NAN; /* every output must be written */
      preft_attention(got, q, g, dh, &p.view, start, end, scale, scratch);
      double e = scaled_err(got, want, od);
      if (!(e <= 1e-6))
        fail_msg("case %zu (G=%d Dh=%d block %d, [%d, %d]) path %s: error %.3g (reference %.3g)", ci, g, dh,
                 cases[ci].bs, start, end, preft_cpu_path_name(path), e, e_ref);
    }
    paged_free(&p);
    free(q);
    free(got);
    free(ref);
    free(scratch);
    free(want);
  }
}

/* A window of one position is that position's value, exactly (p = 1). */
static void attention_over_one_position_returns_its_value(void **s) {
  paged p;
  paged_init(&p, 40, 16, 2, 64, 1);
  float q[3 * 64], out[3 * 64], scratch[3];
  fill(q, sizeof q / sizeof *q, 1.0f);
  FOR_EACH_PATH(path) {
    preft_attention(out, q, 3, 64, &p.view, 37, 37, 0.125f, scratch);
    for (int h = 0; h < 3; h++)
      assert_memory_equal(out + h * 64, row_at(&p.view, p.view.v, 37), 64 * sizeof(float));
  }
  paged_free(&p);
}

/* The G heads of a group are done together (each row of V loaded once for
 * several heads), but every head must get the bits it gets alone: a model's
 * output cannot depend on how its heads are grouped. */
static void attention_heads_together_give_each_heads_bits(void **s) {
  static const int gs[] = {2, 3, 4, 5, 7, 8};
  static const int dhs[] = {64, 128, 80, 32};
  for (size_t gi = 0; gi < sizeof gs / sizeof *gs; gi++)
    for (size_t di = 0; di < sizeof dhs / sizeof *dhs; di++) {
      int g = gs[gi], dh = dhs[di], start = 5, end = 150, n = end - start + 1;
      paged p;
      paged_init(&p, end + 1, 16, 2, dh, 1);
      size_t od = (size_t)g * (size_t)dh;
      float *q = malloc(sizeof(float) * od), *all = malloc(sizeof(float) * od),
            *one = malloc(sizeof(float) * dh);
      float *scratch = malloc(sizeof(float) * (size_t)g * (size_t)n);
      fill(q, od, 1.0f);
      FOR_EACH_PATH(path) {
        preft_attention(all, q, g, dh, &p.view, start, end, 0.1f, scratch);
        for (int h = 0; h < g; h++) {
          preft_attention(one, q + (size_t)h * (size_t)dh, 1, dh, &p.view, start, end, 0.1f, scratch);
          if (memcmp(one, all + (size_t)h * (size_t)dh, sizeof(float) * (size_t)dh) != 0)
            fail_msg("G=%d Dh=%d path %s: head %d differs from the same head alone", g, dh,
                     preft_cpu_path_name(path), h);
        }
      }
      paged_free(&p);
      free(q);
      free(all);
      free(one);
      free(scratch);
    }
  (void)s;
}

/* ---- the forward pass ----------------------------------------------------------- */

/* Logits of a prefill of two sequences (one past a sliding window) with
 * `threads` threads. */
static float *forward_logits(const preft_model *m, int threads, int rows_a, int rows_b) {
  const preft_model_config *c = &m->cfg;
  preft_error err;
  preft_kv_cache kv;
  int n = rows_a + rows_b;
  assert_int_equal(preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, 16, 48, 2, 512, &err), 0);
  assert_int_equal(preft_kv_reserve(&kv, 0, rows_a, &err), 0);
  assert_int_equal(preft_kv_reserve(&kv, 1, rows_b, &err), 0);
  int *tok = malloc(sizeof(int) * (size_t)n), *pos = malloc(sizeof(int) * (size_t)n);
  int *seq = malloc(sizeof(int) * (size_t)n), *want = malloc(sizeof(int) * (size_t)n);
  for (int i = 0; i < n; i++) {
    tok[i] = (i * 37 + 11) % c->vocab;
    seq[i] = i < rows_a ? 0 : 1;
    pos[i] = i < rows_a ? i : i - rows_a;
    want[i] = i;
  }
  preft_batch b = {.n = n, .token = tok, .pos = pos, .seq = seq, .logit_rows = want, .n_logits = n};
  float *logits = malloc(sizeof(float) * (size_t)n * (size_t)c->vocab);
  preft_workspace ws = {0};
  preft_pool *pool = preft_pool_create(threads);
  assert_int_equal(preft_model_forward(m, pool, &kv, &b, &ws, logits, &err), 0);
  preft_pool_free(pool);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  free(tok);
  free(pos);
  free(seq);
  free(want);
  return logits;
}

/* Wide and long enough that the forward splits every row-wise step (norms,
 * q/k/v, swiglu, embedding) across the pool; odd widths so row splits and
 * vector tails meet. */
static void forward_is_bitwise_the_same_for_any_thread_count(void **s) {
  preft_model_config c;
  preft_error err;
  assert_int_equal(preft_shape_config("tiny", &c, &err), 0);
  c.dim = 260;
  c.ffn = 683;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.sliding_window = 37;
  c.qkv_bias = true;
  c.o_bias = true;
  preft_model *m;
  assert_int_equal(preft_model_init_random(&m, &c, PREFT_F32, 7, &err), 0);
  int paths[2] = {PREFT_CPU_PORTABLE, (int)preft_cpu_detected()};
  for (int pi = 0; pi < 2; pi++) {
    use_path(paths[pi]);
    float *one = forward_logits(m, 1, 400, 203);
    for (int t = 2; t <= 3; t++) {
      float *many = forward_logits(m, t, 400, 203);
      assert_memory_equal(one, many, sizeof(float) * 603 * (size_t)c.vocab);
      free(many);
    }
    free(one);
  }
  preft_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(expf_fast_within_2_ulp_over_its_range, lift_cap),
      cmocka_unit_test(logsumexp_matches_double_reference),
      cmocka_unit_test(logsumexp_extreme_values),
      cmocka_unit_test_teardown(swiglu_fast_matches_double_silu_on_every_path, lift_cap),
      cmocka_unit_test_teardown(swiglu_fast_is_the_same_wherever_the_array_is_split, lift_cap),
      cmocka_unit_test_teardown(swiglu_grad_and_exp_affine_fast_match_double_on_every_path, lift_cap),
      cmocka_unit_test_teardown(softmax_row_steps_match_references_on_every_path, lift_cap),
      cmocka_unit_test_teardown(dot_f64_fast_matches_a_long_double_sum, lift_cap),
      cmocka_unit_test_teardown(rmsnorm_fast_matches_reference_on_every_path, lift_cap),
      cmocka_unit_test_teardown(layernorm_fast_matches_double_reference_on_every_path, lift_cap),
      cmocka_unit_test_teardown(gelu_fast_matches_double_erf_on_every_path, lift_cap),
      cmocka_unit_test_teardown(rope_fast_is_bitwise_the_reference_on_every_path, lift_cap),
      cmocka_unit_test_teardown(attention_matches_double_reference_on_every_path, lift_cap),
      cmocka_unit_test_teardown(attention_over_one_position_returns_its_value, lift_cap),
      cmocka_unit_test_teardown(attention_heads_together_give_each_heads_bits, lift_cap),
      cmocka_unit_test_teardown(forward_is_bitwise_the_same_for_any_thread_count, lift_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
