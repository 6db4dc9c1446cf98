/* test_lora_fused.c - the fused LoRA path of preft_lora_gemm (shrink in one
 * pass, expand in the base product's epilogue, adapter_plan.h) against the
 * unfused one (base product, then preft_lora_apply per module), which
 * test_lora_kernels.c holds to a double-precision reference.
 *
 * Tolerance: zero. Both paths compute every number with the same kernels
 * in the same order: the same preft_gemm calls for the base product (the
 * epilogue's column blocks start where the kernels' row groups start) and
 * for each shrink (same rows per call, same x), the same scaling, and the
 * expand sums y + Σ_r t·Bt in rank order whatever block of columns it is
 * given (lora_kernels.h). So the outputs must agree bit for bit; any
 * difference is a row given the wrong adapter, a block expanded twice or
 * not at all, or a race.
 *
 * Groups of 16 rows or more take the epilogue, smaller ones the separate
 * pass after it; batches mix a long contiguous run of one adapter (a
 * prompt, split into several tasks; fused from n = 32), one-row groups of
 * many adapters (a decode step), an
 * adapter's rows scattered through the batch, rows without an adapter and
 * flag-off rows (a prefill-only adapter's decode rows); sizes cover the
 * rows regime and the packed regime (several row blocks) of every CPU path,
 * F32/F16/BF16 base weights, F32/BF16 adapters, exact and BF16 matmul
 * precision, 3 threads. The test also checks that the delta is there
 * (adapted rows differ from the base product, others equal it), so a path
 * that skipped the LoRA on both sides would fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "model/adapter.h"
#include "model/adapter_plan.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "testutil.h"

enum { NA = 9 };

/* Row i's adapter (index into ads, -1: none) and flag for a batch of n. */
static int row_adapter(int i, int n) {
  if (n <= 8) return i % 4 == 3 ? -1 : i % NA; /* decode-like: one row each */
  if (i < n / 2) return 0;                     /* a prompt */
  if (i % 5 == 0) return 1;                    /* scattered (fused at n = 300) */
  return i % 7 == 0 ? -1 : 2 + i % (NA - 2);   /* single rows, base rows */
}

/* Runs modules `mods` (all reading x [n, in]) on both paths and compares. */
static void check_modules(preft_pool *pool, const preft_model_config *c, preft_adapter **ads, int n,
                          const preft_module *mods, int n_mods, preft_dtype wdt, int accumulate) {
  const preft_adapter *row_ad[512];
  uint8_t flag[512];
  for (int i = 0; i < n; i++) {
    int a = row_adapter(i, n);
    row_ad[i] = a < 0 ? NULL : ads[a];
    flag[i] = i % 11 == 4 ? PREFT_ADAPT_OFF : PREFT_ADAPT_ON;
  }
  preft_adapter_plan plan = {0};
  preft_adapter_plan_build(&plan, n, row_ad, flag, c->ffn, preft_pool_size(pool));
  assert_true(plan.n_groups > 0);
  int in, out0;
  preft_module_dims(c, mods[0], &in, &out0);
  const int xs = in + 3;
  float *x = malloc(sizeof(float) * (size_t)n * xs);
  for (int i = 0; i < n * xs; i++) x[i] = test_frand();
  preft_gemm_out outs[3][3]; /* [base, unfused, fused][module] */
  void *w[3];
  float *y0[3];
  for (int q = 0; q < n_mods; q++) {
    int in_q, out;
    preft_module_dims(c, mods[q], &in_q, &out);
    assert_int_equal(in_q, in);
    w[q] = test_random_weights(wdt, (size_t)out * in);
    int ys = out + 5;
    y0[q] = malloc(sizeof(float) * (size_t)n * ys);
    for (int i = 0; i < n * ys; i++) y0[q][i] = test_frand();
    for (int v = 0; v < 3; v++) {
      outs[v][q] = (preft_gemm_out){
          .y = malloc(sizeof(float) * (size_t)n * ys), .y_stride = ys, .w = w[q], .wdt = wdt, .m = out};
      memcpy(outs[v][q].y, y0[q], sizeof(float) * (size_t)n * ys);
    }
  }
  preft_gemm_multi(pool, x, xs, n, in, outs[0], n_mods, accumulate);
  preft_lora_set_fused(0);
  preft_lora_gemm(pool, &plan, 1, mods, x, xs, n, in, outs[1], n_mods, accumulate);
  preft_lora_set_fused(1);
  preft_lora_gemm(pool, &plan, 1, mods, x, xs, n, in, outs[2], n_mods, accumulate);
  for (int q = 0; q < n_mods; q++) {
    const int ys = outs[0][q].y_stride, out = outs[0][q].m;
    for (int i = 0; i < n; i++) {
      const float *b = outs[0][q].y + (size_t)i * ys, *u = outs[1][q].y + (size_t)i * ys,
                  *f = outs[2][q].y + (size_t)i * ys;
      if (memcmp(u, f, sizeof(float) * (size_t)ys) != 0) {
        int o = 0;
        while (u[o] == f[o]) o++;
        fail_msg("module %d row %d col %d (n %d, %s weights, %s, %s): unfused %.9g, fused %.9g", (int)mods[q],
                 i, o, n, preft_dtype_name(wdt), preft_cpu_path_name(preft_cpu_path()),
                 preft_matmul_precision_name(preft_matmul_get_precision()), u[o], f[o]);
      }
      int adapted = row_ad[i] && flag[i] != PREFT_ADAPT_OFF;
      int differs = memcmp(b, f, sizeof(float) * (size_t)out) != 0;
      if (adapted != differs)
        fail_msg("module %d row %d (n %d): adapted %d but the delta is %s", (int)mods[q], i, n, adapted,
                 differs ? "there" : "missing");
      for (int o = out; o < ys; o++) assert_true(f[o] == y0[q][(size_t)i * ys + o]); /* past the width */
    }
    for (int v = 0; v < 3; v++) free(outs[v][q].y);
    free(w[q]);
    free(y0[q]);
  }
  free(x);
  preft_adapter_plan_free(&plan);
}

/* The tests' model: 2 layers of width 40 (5 heads of 8, one KV head). */
static preft_model_config fused_config(int ffn) {
  preft_model_config c = {0};
  c.dim = 40;
  c.n_heads = 5;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.ffn = ffn;
  c.n_layers = 2;
  return c;
}

static void fused_matches_unfused_bit_for_bit(void **s) {
  /* ffn wider than the rows regime's fewest columns per epilogue block (48) */
  preft_model_config c = fused_config(130);
  static const preft_module qkv[3] = {PREFT_MOD_Q, PREFT_MOD_K, PREFT_MOD_V};
  static const preft_module gate_up[2] = {PREFT_MOD_GATE, PREFT_MOD_UP};
  static const preft_module o[1] = {PREFT_MOD_O}, down[1] = {PREFT_MOD_DOWN};
  static const int ns[] = {1, 5, 40, 61, 300}; /* rows regime ... packed, two row blocks */
  static const preft_dtype wdts[] = {PREFT_F32, PREFT_F16, PREFT_BF16};
  static const preft_dtype adts[] = {PREFT_F32, PREFT_BF16};
  preft_pool *pool = preft_pool_create(3);
  for (int path = PREFT_CPU_PORTABLE; path < PREFT_CPU_N_PATHS; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (int prec = 0; prec < 2; prec++) {
      preft_matmul_set_precision(prec ? PREFT_MATMUL_BF16 : PREFT_MATMUL_EXACT);
      for (size_t ad = 0; ad < 2; ad++) {
        preft_adapter *ads[NA];
        for (int k = 0; k < NA; k++)
          ads[k] = preft_adapter_random(PREFT_ADAPTER_LORA, &c, k == 3 ? 8 : 16, PREFT_MODE_ALL, adts[ad],
                                        200 + k);
        for (size_t d = 0; d < 3; d++)
          for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            if (prec && wdts[d] != PREFT_BF16) continue; /* precision only changes BF16 weights */
            check_modules(pool, &c, ads, ns[k], qkv, 3, wdts[d], 0);
            check_modules(pool, &c, ads, ns[k], gate_up, 2, wdts[d], 0);
            check_modules(pool, &c, ads, ns[k], o, 1, wdts[d], 1);
            check_modules(pool, &c, ads, ns[k], down, 1, wdts[d], 1);
          }
        for (int k = 0; k < NA; k++) preft_adapter_free(ads[k]);
      }
    }
  }
  preft_matmul_set_precision(PREFT_MATMUL_EXACT);
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_lora_set_fused(1);
  preft_pool_free(pool);
}

/* One thread gives the rows regime one task over all m weight rows, which
 * rows_task then cuts into epilogue blocks of about 64 KiB of y: for 40
 * rows of x that is 408 columns, so an output 1300 wide takes four blocks
 * (the last one 76 columns), each expanded as soon as it is final. The
 * test above, at 3 threads, never gives a task more than one block. */
static void fused_rows_regime_expands_every_block_of_a_task(void **s) {
  (void)s;
  preft_model_config c = fused_config(1300);
  static const preft_module gate_up[2] = {PREFT_MOD_GATE, PREFT_MOD_UP};
  static const preft_dtype wdts[] = {PREFT_F32, PREFT_BF16};
  preft_pool *pool = preft_pool_create(1);
  preft_adapter *ads[NA];
  for (int k = 0; k < NA; k++)
    ads[k] = preft_adapter_random(PREFT_ADAPTER_LORA, &c, 16, PREFT_MODE_ALL, PREFT_F32, 300 + k);
  for (int path = PREFT_CPU_PORTABLE; path < PREFT_CPU_N_PATHS; path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (size_t d = 0; d < 2; d++) check_modules(pool, &c, ads, 40, gate_up, 2, wdts[d], 0);
  }
  for (int k = 0; k < NA; k++) preft_adapter_free(ads[k]);
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  preft_pool_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fused_matches_unfused_bit_for_bit),
      cmocka_unit_test(fused_rows_regime_expands_every_block_of_a_task),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
