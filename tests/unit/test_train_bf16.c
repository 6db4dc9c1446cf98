/* test_train_bf16.c - a training pass at BF16 matmul precision against the
 * FP32 pass on a tiny fresh model (odd widths: K tails everywhere), on
 * every CPU path (vdpbf16ps where the CPU has AVX512_BF16, the emulation
 * below), and the trainer's --matmul-precision plumbing.
 *
 * Tolerances from BF16's 8-bit significand: rounding an operand has
 * relative error at most u = 2^-8 (about 2^-9 on average). A product whose
 * two operands are rounded is off by at most 2u relative, term by term;
 * the forward and backward of this 2-layer model chain about a dozen
 * products into each gradient, so gradients may move by ~12 · 2u ≈ 0.1
 * (relative L2, per tensor; random errors make it far smaller) and the mean
 * loss by 2u relative (the logits' own rounding; the loss is an average).
 * Both must also move at all (> 1e-5, FP32 summation order moves them by
 * ~1e-7), or BF16 was not engaged. The native and emulated BF16 paths
 * round the same operands; their FP32 sums differ in order, which now and
 * then flips one rounding of an activation downstream, so they agree far
 * more closely (0.01) than either does with FP32. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "testutil.h"
#include "train/train_model.h"

#define U_BF16 0x1p-8 /* unit roundoff of BF16 */

typedef struct {
  double loss;
  float *grad; /* [ps.n] */
} pass_out;

static preft_model_config tiny_config(void) {
  preft_model_config c = {0};
  c.arch = PREFT_ARCH_LLAMA;
  c.dim = 80;
  c.n_layers = 2;
  c.head_dim = 40;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn = 200;
  c.vocab = 203;
  c.max_pos = 64;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000;
  c.bos_id = -1;
  return c;
}

static void make_batch(preft_train_batch *b, const preft_model_config *c, int seqs, int len) {
  int ids[64], tg[64];
  for (int s = 0; s < seqs; s++) {
    for (int t = 0; t < len; t++) {
      ids[t] = (s * 7919 + t * 104729 + t * t) % c->vocab;
      tg[t] = (ids[t] * 31 + 7 + s) % c->vocab;
    }
    preft_train_batch_add(b, ids, tg, NULL, len);
  }
}

static pass_out run(preft_train_model *tm, preft_pool *pool, const preft_train_batch *b,
                    preft_matmul_precision p, bool recompute) {
  preft_train_acts a;
  preft_train_acts_init(&a, tm, NULL, b->n, 64, preft_pool_size(pool), recompute);
  preft_param_set_zero_grad(&tm->ps);
  tm->matmul = p;
  pass_out o;
  preft_error err;
  if (preft_train_pass(tm, NULL, pool, b, &a, 1.0f / (float)b->n_targets, &o.loss, &err) != 0)
    fail_msg("%s", err.msg);
  tm->matmul = PREFT_MATMUL_EXACT;
  o.loss /= b->n_targets;
  o.grad = malloc(sizeof(float) * tm->ps.n);
  memcpy(o.grad, tm->ps.grad, sizeof(float) * tm->ps.n);
  preft_train_acts_free(&a);
  return o;
}

/* The largest relative L2 distance of a's gradient from b's over the
 * model's tensors (tensors with a zero gradient in b skipped). */
static double worst_tensor(const preft_train_model *tm, const float *a, const float *b, const char **which) {
  double worst = 0;
  for (int t = 0; t < tm->ps.n_t; t++) {
    const preft_train_tensor *tt = &tm->ps.t[t];
    size_t off = (size_t)(tt->g - tm->ps.grad);
    double num = 0, den = 0;
    for (size_t i = 0; i < tt->n; i++) {
      double d = (double)a[off + i] - b[off + i];
      num += d * d;
      den += (double)b[off + i] * b[off + i];
    }
    if (den == 0) continue;
    double r = sqrt(num / den);
    if (r > worst) {
      worst = r;
      *which = tt->name;
    }
  }
  return worst;
}

static void bf16_pass_matches_f32_within_bf16_rounding(void **state) {
  preft_model_config c = tiny_config();
  preft_train_model tm;
  preft_error err;
  if (preft_train_model_init(&tm, &c, 7, &err) != 0) fail_msg("%s", err.msg);
  preft_train_batch b = {0};
  make_batch(&b, &c, 3, 37);
  preft_pool *pool = preft_pool_create(2);
  pass_out f32 = run(&tm, pool, &b, PREFT_MATMUL_EXACT, false);
  pass_out native = {0};
  for (int path = 0; path <= (int)preft_cpu_detected(); path++) {
    preft_cpu_limit((preft_cpu_path_kind)path);
    for (int rc = 0; rc <= 1; rc++) {
      pass_out bf = run(&tm, pool, &b, PREFT_MATMUL_BF16, rc);
      const char *which = "";
      double dl = fabs(bf.loss - f32.loss) / f32.loss, dg = worst_tensor(&tm, bf.grad, f32.grad, &which);
      printf("path %s%s: loss %.6f vs f32 %.6f (rel %.2g), worst gradient %s rel %.3g\n",
             preft_cpu_path_name((preft_cpu_path_kind)path), rc ? " recompute" : "", bf.loss, f32.loss, dl,
             which, dg);
      if (!(dl < 2 * U_BF16)) fail_msg("loss moved by %.3g relative (limit 2u = %.3g)", dl, 2 * U_BF16);
      if (!(dg < 24 * U_BF16))
        fail_msg("gradient of %s moved by %.3g (limit 24u = %.3g)", which, dg, 24 * U_BF16);
      if (!(dg > 1e-5)) fail_msg("gradients within %.3g of FP32: BF16 not engaged", dg);
      /* the same precision on two paths: close, far closer than to FP32 */
      if (path == 0 && rc == 0) {
        native = bf; /* the emulation on the portable path is the yardstick */
        continue;
      }
      double dn = worst_tensor(&tm, bf.grad, native.grad, &which);
      if (!(dn < 0.01 && dn < dg))
        fail_msg("path %d: BF16 gradient of %s %.3g from the emulated portable path's", path, which, dn);
      printf("  %.3g from the portable emulation\n", dn);
      free(bf.grad);
    }
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  free(native.grad);
  free(f32.grad);
  preft_pool_free(pool);
  preft_train_batch_free(&b);
  preft_train_model_free(&tm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bf16_pass_matches_f32_within_bf16_rounding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
