/* test_lora_kernels.c - the small-rank LoRA expand (lora_kernels.h), the
 * grouped LoRA delta of lora.c and the batched ReFT edits of reft.c against
 * plain double-precision references,
 * for F32/F16/BF16 weights, odd sizes, scattered rows, on every CPU path
 * this machine has. The references convert weights with dtype.h's scalar
 * conversions and accumulate in double; the tolerance is the worst-case
 * float rounding of the sums, (terms + 4)·2⁻²³·Σ|term|. */
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
#include "model/adapter.h"
#include "model/adapter_plan.h"
#include "model/lora_kernels.h"
#include "tensor/cpu.h"
#include "tensor/dtype.h"
#include "testutil.h"

static double elem(const void *w, preft_dtype dt, size_t i) {
  if (dt == PREFT_F32) return ((const float *)w)[i];
  uint16_t h = ((const uint16_t *)w)[i];
  return dt == PREFT_F16 ? preft_f16_to_f32(h) : preft_bf16_to_f32(h);
}

static void expect_near(double got, double want, double mag, int terms, const char *what, int a, int b) {
  double tol = (terms + 4) * 0x1p-23 * mag + 1e-30;
  if (fabs(got - want) > tol) {
    fail_msg("%s [%d,%d] on %s: got %.9g, want %.9g (tolerance %.3g)", what, a, b,
             preft_cpu_path_name(preft_cpu_path()), got, want, tol);
  }
}

/* A decoder config of these widths, head_dim 8 and one KV head: all the
 * adapter kernels read of it. */
static preft_model_config small_config(int dim, int ffn, int n_layers) {
  preft_model_config c = {0};
  c.dim = dim;
  c.n_heads = dim / 8;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.ffn = ffn;
  c.n_layers = n_layers;
  return c;
}

/* One expand case: y (rows scattered through a wider buffer when
 * `scatter`) += t · Bt, Bt = transpose(B), checked against Σ_r t·B in double. */
static void check_expand(preft_dtype dt, int n, int rank, int out, bool scatter) {
  void *b = test_random_weights(dt, (size_t)out * rank);
  void *bt = malloc((size_t)out * rank * preft_dtype_size(dt));
  preft_lora_transpose_b(bt, b, dt, out, rank);
  for (int o = 0; o < out; o++)
    for (int r = 0; r < rank; r++)
      assert_true(elem(bt, dt, (size_t)r * out + o) == elem(b, dt, (size_t)o * rank + r));
  float *t = malloc(sizeof(float) * (size_t)n * rank);
  for (int i = 0; i < n * rank; i++) t[i] = test_frand();
  /* scatter: batch of 2n+1 rows, the group's rows are every other one,
   * backwards; rows 7 floats wider than out */
  int nb = scatter ? 2 * n + 1 : n, ys = scatter ? out + 7 : out;
  int *rows = scatter ? malloc(sizeof(int) * (size_t)n) : NULL;
  for (int i = 0; scatter && i < n; i++) rows[i] = 2 * (n - 1 - i) + 1;
  float *y = malloc(sizeof(float) * (size_t)nb * ys), *y0 = malloc(sizeof(float) * (size_t)nb * ys);
  for (int i = 0; i < nb * ys; i++) y0[i] = y[i] = test_frand();
  preft_lora_expand(y, (size_t)ys, rows, t, (size_t)rank, bt, (size_t)out, dt, n, rank, out);
  bool *touched = calloc((size_t)nb, sizeof(bool));
  for (int i = 0; i < n; i++) {
    int row = rows ? rows[i] : i;
    touched[row] = true;
    for (int o = 0; o < out; o++) {
      double want = y0[(size_t)row * ys + o], mag = fabs(want);
      for (int r = 0; r < rank; r++) {
        double term = (double)t[(size_t)i * rank + r] * elem(b, dt, (size_t)o * rank + r);
        want += term;
        mag += fabs(term);
      }
      expect_near(y[(size_t)row * ys + o], want, mag, rank, "expand y", row, o);
    }
    for (int o = out; o < ys; o++) assert_true(y[(size_t)row * ys + o] == y0[(size_t)row * ys + o]);
  }
  for (int row = 0; row < nb; row++)
    if (!touched[row])
      for (int o = 0; o < ys; o++) assert_true(y[(size_t)row * ys + o] == y0[(size_t)row * ys + o]);
  free(touched);
  free(b);
  free(bt);
  free(t);
  free(rows);
  free(y);
  free(y0);
}

static void expand_matches_double_reference_on_every_path(void **s) {
  static const int ranks[] = {1, 8, 16, 64, 70};
  static const int outs[] = {1, 7, 8, 13, 16, 24, 41, 100, 130, 300};
  static const int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17, 31, 40};
  static const preft_dtype dts[] = {PREFT_F32, PREFT_F16, PREFT_BF16};
  for (int path = PREFT_CPU_PORTABLE; path < PREFT_CPU_N_PATHS; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (size_t d = 0; d < 3; d++)
      for (size_t r = 0; r < sizeof ranks / sizeof ranks[0]; r++)
        for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++)
          for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
            check_expand(dts[d], ns[k], ranks[r], outs[o], (ns[k] + (int)o) % 2 == 1);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
}

/* A row's LoRA delta through preft_lora_apply must not depend on how many
 * rows of its adapter share the batch (a decode row alone, or among 39
 * others in a batch of rollouts or verified drafts): otherwise a
 * sequence's tokens would depend on the batching. */
static void lora_delta_of_a_row_does_not_depend_on_its_group(void **s) {
  (void)s;
  const preft_model_config c = small_config(40, 72, 1);
  enum { N = 40 };
  static const preft_dtype dts[] = {PREFT_F32, PREFT_BF16};
  preft_pool *pool = preft_pool_create(2);
  for (int path = PREFT_CPU_PORTABLE; path < PREFT_CPU_N_PATHS; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (size_t d = 0; d < 2; d++) {
      preft_adapter *ad = preft_adapter_random(PREFT_ADAPTER_LORA, &c, 16, PREFT_MODE_ALL, dts[d], 7);
      const preft_adapter *row_ad[N];
      uint8_t flag[N];
      for (int i = 0; i < N; i++) {
        row_ad[i] = ad;
        flag[i] = PREFT_ADAPT_ON;
      }
      for (int m = 0; m < PREFT_N_MODULES; m++) {
        int in, out;
        preft_module_dims(&c, (preft_module)m, &in, &out);
        float *x = malloc(sizeof(float) * N * (size_t)in), *y = malloc(sizeof(float) * N * (size_t)out);
        float *y1 = malloc(sizeof(float) * (size_t)out);
        for (int i = 0; i < N * in; i++) x[i] = test_frand();
        for (int i = 0; i < N * out; i++) y[i] = test_frand();
        for (int k = 0; k < out; k++) y1[k] = y[(size_t)(N - 1) * out + k];
        preft_adapter_plan all = {0}, one = {0};
        preft_adapter_plan_build(&all, N, row_ad, flag, c.ffn, preft_pool_size(pool));
        preft_lora_apply(pool, &all, 0, (preft_module)m, x, in, in, y, out, out);
        preft_adapter_plan_build(&one, 1, row_ad, flag, c.ffn, preft_pool_size(pool));
        preft_lora_apply(pool, &one, 0, (preft_module)m, x + (size_t)(N - 1) * in, in, in, y1, out, out);
        if (memcmp(y1, y + (size_t)(N - 1) * out, sizeof(float) * (size_t)out) != 0)
          fail_msg("module %d, %s on %s: the last row's delta alone differs from the same row among %d", m,
                   preft_dtype_name(dts[d]), preft_cpu_path_name(preft_cpu_path()), N);
        preft_adapter_plan_free(&all);
        preft_adapter_plan_free(&one);
        free(x);
        free(y);
        free(y1);
      }
      preft_adapter_free(ad);
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_pool_free(pool);
}

/* A group's rows take the few-rows kernel (lora_kernels.c) up to 4 rows
 * and the chunked one beyond: a row must get the same bits either way,
 * alone or among 8 other rows of its adapter (a decode row, or the same
 * row in a speculative verify or shared-adapter batch), on every path.
 * Widths cross the kernels' 64- and 128-column blocks and their tails. */
static void expand_row_gets_the_same_bits_alone_and_in_a_group(void **s) {
  (void)s;
  static const int outs[] = {5, 8, 16, 72, 130, 300, 4867};
  static const int ranks[] = {1, 16, 70};
  static const int ns[] = {1, 2, 3, 4};
  static const preft_dtype dts[] = {PREFT_F32, PREFT_F16, PREFT_BF16};
  enum { BIG = 9 };
  for (int path = PREFT_CPU_PORTABLE; path < PREFT_CPU_N_PATHS; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (size_t d = 0; d < 3; d++)
      for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++)
        for (size_t r = 0; r < sizeof ranks / sizeof ranks[0]; r++) {
          const int out = outs[o], rank = ranks[r];
          void *bt = test_random_weights(dts[d], (size_t)out * rank);
          float *t = malloc(sizeof(float) * BIG * (size_t)rank);
          float *y0 = malloc(sizeof(float) * BIG * (size_t)out),
                *yg = malloc(sizeof(float) * BIG * (size_t)out);
          float *yf = malloc(sizeof(float) * BIG * (size_t)out),
                *yc = malloc(sizeof(float) * BIG * (size_t)out);
          for (int i = 0; i < BIG * rank; i++) t[i] = test_frand();
          for (int i = 0; i < BIG * out; i++) y0[i] = yg[i] = test_frand();
          preft_lora_expand(yg, (size_t)out, NULL, t, (size_t)rank, bt, (size_t)out, dts[d], BIG, rank, out);
          for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            const int n = ns[k], first = BIG - n; /* the group's last n rows, as a group of their own */
            memcpy(yf, y0, sizeof(float) * BIG * (size_t)out);
            preft_lora_expand(yf + (size_t)first * out, (size_t)out, NULL, t + (size_t)first * rank,
                              (size_t)rank, bt, (size_t)out, dts[d], n, rank, out);
            /* and the chunked kernel itself on the same n rows */
            memcpy(yc, y0, sizeof(float) * BIG * (size_t)out);
            preft_lora_expand_chunked(yc + (size_t)first * out, (size_t)out, NULL, t + (size_t)first * rank,
                                      (size_t)rank, bt, (size_t)out, dts[d], n, rank, out);
            for (int i = first; i < BIG; i++)
              for (int c = 0; c < out; c++) {
                const float *f = &yf[(size_t)i * out + c], *g = &yg[(size_t)i * out + c];
                if (memcmp(f, g, sizeof(float)) != 0 ||
                    memcmp(f, &yc[(size_t)i * out + c], sizeof(float)) != 0)
                  fail_msg(
                      "%s on %s, rank %d, out %d: row %d of %d gives %.9g, in a group of %d %.9g, by the "
                      "chunked kernel %.9g",
                      preft_dtype_name(dts[d]), preft_cpu_path_name(preft_cpu_path()), rank, out, i - first,
                      n, *f, BIG, *g, yc[(size_t)i * out + c]);
              }
          }
          free(bt);
          free(t);
          free(y0);
          free(yg);
          free(yf);
          free(yc);
        }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
}

/* A batch mixing adapters: a long contiguous run of one adapter (split
 * into several tasks), single decode rows of many adapters, rows of one
 * adapter scattered through the batch, base rows and flag-off rows; through
 * preft_lora_apply on 3 threads, against y0 + scale·(x·Aᵀ)·Bᵀ per row in
 * double, with A and B read in PEFT's layout. */
static void grouped_delta_matches_reference(preft_dtype dt, int rank) {
  const preft_model_config c = small_config(24, 37, 2);
  enum { NA = 9, N = 61 };
  preft_adapter *ads[NA];
  for (int k = 0; k < NA; k++)
    ads[k] = preft_adapter_random(PREFT_ADAPTER_LORA, &c, rank, PREFT_MODE_ALL, dt, 100 + k);
  const preft_adapter *row_ad[N];
  uint8_t flag[N];
  for (int i = 0; i < N; i++) {
    row_ad[i] = i < 30 ? ads[0] : i % 5 == 0 ? ads[1] : i % 7 == 0 ? NULL : ads[2 + i % 7];
    flag[i] = i == 33 ? PREFT_ADAPT_OFF : PREFT_ADAPT_ON;
  }
  preft_pool *pool = preft_pool_create(3);
  preft_adapter_plan plan = {0};
  preft_adapter_plan_build(&plan, N, row_ad, flag, c.ffn, preft_pool_size(pool));
  assert_true(plan.n_tasks > plan.n_groups); /* the run of 30 rows is split */
  for (int m = 0; m < PREFT_N_MODULES; m++) {
    int in, out;
    preft_module_dims(&c, (preft_module)m, &in, &out);
    int xs = in + 3, ys = out + 5;
    float *x = malloc(sizeof(float) * N * (size_t)xs), *y = malloc(sizeof(float) * N * (size_t)ys);
    float *y0 = malloc(sizeof(float) * N * (size_t)ys);
    for (int i = 0; i < N * xs; i++) x[i] = test_frand();
    for (int i = 0; i < N * ys; i++) y0[i] = y[i] = test_frand();
    preft_lora_apply(pool, &plan, 1, (preft_module)m, x, xs, in, y, ys, out);
    for (int i = 0; i < N; i++) {
      const preft_lora_module *lm = row_ad[i] && flag[i] ? &row_ad[i]->lora[PREFT_N_MODULES + m] : NULL;
      for (int o = 0; o < ys; o++) {
        double want = y0[(size_t)i * ys + o], mag = fabs(want);
        for (int r = 0; lm && o < out && r < rank; r++) {
          double tr = 0, tm = 0;
          for (int k = 0; k < in; k++) {
            double term = (double)x[(size_t)i * xs + k] * elem(lm->a, dt, (size_t)r * in + k);
            tr += term;
            tm += fabs(term);
          }
          double bo = elem(lm->b, dt, (size_t)o * rank + r);
          want += lm->scale * tr * bo;
          mag += lm->scale * tm * fabs(bo);
        }
        expect_near(y[(size_t)i * ys + o], want, mag, in + rank, "lora_apply y", i, o);
      }
    }
    free(x);
    free(y);
    free(y0);
  }
  preft_adapter_plan_free(&plan);
  preft_pool_free(pool);
  for (int k = 0; k < NA; k++) preft_adapter_free(ads[k]);
}

static void grouped_lora_delta_matches_reference_on_every_path(void **s) {
  static const preft_dtype dts[] = {PREFT_F32, PREFT_F16, PREFT_BF16};
  static const int ranks[] = {1, 8, 16, 64};
  for (int path = PREFT_CPU_PORTABLE; path < PREFT_CPU_N_PATHS; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (size_t d = 0; d < 3; d++)
      for (size_t r = 0; r < sizeof ranks / sizeof ranks[0]; r++)
        grouped_delta_matches_reference(dts[d], ranks[r]);
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
}

/* preft_reft_apply over a batch of 150 rows: a run of 130 rows of one
 * adapter (cut into chunks of 64), rows alternating between an adapter and
 * none, and a run with one flag-off row; on 3 threads and every CPU path,
 * against h + up·(W1·h + b − [LoReFT] R·h) per row in double, from the
 * unedited h. */
static void reft_edit_matches_reference(preft_adapter_kind kind, int rank) {
  const preft_model_config c = small_config(24, 37, 2);
  enum { N = 150, NA = 3 };
  const int d = c.dim;
  preft_adapter *ads[NA];
  for (int k = 0; k < NA; k++)
    ads[k] = preft_adapter_random(kind, &c, rank, PREFT_MODE_ALL, PREFT_F32, 7 + k);
  const preft_adapter *row_ad[N];
  uint8_t flag[N];
  for (int i = 0; i < N; i++) {
    row_ad[i] = i < 130 ? ads[0] : i < 140 ? (i % 2 ? ads[1] : NULL) : ads[2];
    flag[i] = i == 145 ? PREFT_ADAPT_OFF : PREFT_ADAPT_ON;
  }
  preft_pool *pool = preft_pool_create(3);
  preft_adapter_plan plan = {0};
  preft_adapter_plan_build(&plan, N, row_ad, flag, c.ffn, preft_pool_size(pool));
  float *x = malloc(sizeof(float) * N * (size_t)d), *x0 = malloc(sizeof(float) * N * (size_t)d);
  for (int i = 0; i < N * d; i++) x0[i] = x[i] = test_frand();
  preft_reft_apply(pool, &plan, 1, x, d);
  for (int i = 0; i < N; i++) {
    const float *h = x0 + (size_t)i * d;
    const preft_reft_slot *sl =
        row_ad[i] && flag[i] ? &row_ad[i]->reft[1 * PREFT_REFT_SLOTS + PREFT_REFT_SHARED] : NULL;
    const float *up = sl ? (kind == PREFT_ADAPTER_LOREFT ? sl->rotate : sl->proj_up) : NULL;
    for (int o = 0; o < d; o++) {
      double want = h[o], mag = fabs(want);
      for (int k = 0; sl && k < rank; k++) {
        double u = sl->bias[k], um = fabs(u);
        for (int j = 0; j < d; j++) {
          double w = sl->weight[(size_t)k * d + j],
                 r = kind == PREFT_ADAPTER_LOREFT ? sl->rotate[(size_t)k * d + j] : 0;
          u += (w - r) * h[j];
          um += fabs(w * h[j]) + fabs(r * h[j]);
        }
        want += u * up[(size_t)k * d + o];
        mag += um * fabs(up[(size_t)k * d + o]);
      }
      expect_near(x[(size_t)i * d + o], want, mag, d + rank, "reft h", i, o);
    }
  }
  free(x);
  free(x0);
  preft_adapter_plan_free(&plan);
  preft_pool_free(pool);
  for (int k = 0; k < NA; k++) preft_adapter_free(ads[k]);
}

static void reft_edits_match_reference_on_every_path(void **s) {
  for (int path = PREFT_CPU_PORTABLE; path < PREFT_CPU_N_PATHS; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (int rank = 1; rank <= 16; rank += 15) {
      reft_edit_matches_reference(PREFT_ADAPTER_DIREFT, rank);
      reft_edit_matches_reference(PREFT_ADAPTER_LOREFT, rank);
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(expand_matches_double_reference_on_every_path),
      cmocka_unit_test(expand_row_gets_the_same_bits_alone_and_in_a_group),
      cmocka_unit_test(lora_delta_of_a_row_does_not_depend_on_its_group),
      cmocka_unit_test(grouped_lora_delta_matches_reference_on_every_path),
      cmocka_unit_test(reft_edits_match_reference_on_every_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
