/* test_train_threads.c - the decoder's training pass gives the same loss
 * and gradients bit for bit on 1, 2 and 3 threads, at FP32 and BF16 matmul
 * precision, with stored and recomputed activations. The batches are
 * shaped so that the attention backward splits a (sequence, kv head) into
 * chunks of query blocks (one kv head, one or two sequences of several
 * blocks: attention_fwd_bwd.c) and so that it does not (eight kv units).
 * A split whose sums depended on the thread count (which thread ran which
 * chunk, or how many chunks) would change the low bits and fail here. The
 * FNV-1a hash of the loss and gradients is printed, so a change meant to be
 * bit-identical can be compared with the build before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "testutil.h"
#include "train/train_model.h"

/* width 64 = 2 heads of 32, kv heads as given; sequences of up to 200 (4 query blocks) */
static preft_model_config config(int kv_heads) {
  preft_model_config c = {0};
  c.arch = PREFT_ARCH_LLAMA;
  c.dim = 64;
  c.n_layers = 2;
  c.head_dim = 32;
  c.n_heads = 2;
  c.n_kv_heads = kv_heads;
  c.ffn = 96;
  c.vocab = 97;
  c.max_pos = 256;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000;
  c.bos_id = -1;
  return c;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* The loss and gradients of one pass; *hash their FNV-1a. */
static float *pass(preft_train_model *tm, preft_pool *pool, const preft_train_batch *b,
                   preft_matmul_precision prec, bool recompute, double *loss, uint64_t *hash) {
  preft_train_acts a;
  preft_train_acts_init(&a, tm, NULL, b->n, 256, preft_pool_size(pool), recompute);
  preft_param_set_zero_grad(&tm->ps);
  tm->matmul = prec;
  preft_error err;
  if (preft_train_pass(tm, NULL, pool, b, &a, 1.0f / (float)b->n_targets, loss, &err) != 0)
    fail_msg("%s", err.msg);
  tm->matmul = PREFT_MATMUL_EXACT;
  float *g = malloc(sizeof(float) * tm->ps.n);
  memcpy(g, tm->ps.grad, sizeof(float) * tm->ps.n);
  *hash = fnv(fnv(14695981039346656037ull, loss, sizeof *loss), g, sizeof(float) * tm->ps.n);
  preft_train_acts_free(&a);
  return g;
}

static void check_shape(int kv_heads, const int *lens, int n_seq) {
  preft_model_config c = config(kv_heads);
  preft_train_model tm;
  preft_error err;
  if (preft_train_model_init(&tm, &c, 11, &err) != 0) fail_msg("%s", err.msg);
  preft_train_batch b = {0};
  int ids[256], tg[256];
  for (int s = 0; s < n_seq; s++) {
    for (int t = 0; t < lens[s]; t++) {
      ids[t] = (s * 7919 + t * 104729 + t * t) % c.vocab;
      tg[t] = (ids[t] * 31 + 7 + s) % c.vocab;
    }
    preft_train_batch_add(&b, ids, tg, NULL, lens[s]);
  }
  preft_pool *pools[3] = {preft_pool_create(1), preft_pool_create(2), preft_pool_create(3)};
  for (int prec = 0; prec < 2; prec++)
    for (int rc = 0; rc <= 1; rc++) {
      preft_matmul_precision mp = prec ? PREFT_MATMUL_BF16 : PREFT_MATMUL_EXACT;
      double l1, lt;
      uint64_t h1, ht;
      float *g1 = pass(&tm, pools[0], &b, mp, rc, &l1, &h1);
      printf("kv heads %d, %d sequences, %s%s: loss %.9g, hash %016llx\n", kv_heads, n_seq,
             prec ? "bf16" : "fp32", rc ? " recompute" : "", l1, (unsigned long long)h1);
      for (int p = 1; p < 3; p++) {
        float *gt = pass(&tm, pools[p], &b, mp, rc, &lt, &ht);
        if (ht != h1 || lt != l1 || memcmp(gt, g1, sizeof(float) * tm.ps.n) != 0) {
          size_t i = 0;
          while (i + 1 < tm.ps.n && gt[i] == g1[i]) i++;
          fail_msg("%d threads: loss %.9g vs %.9g on 1, gradient [%zu] %.9g vs %.9g", p + 1, lt, l1, i, gt[i],
                   g1[i]);
        }
        free(gt);
      }
      free(g1);
    }
  for (int p = 0; p < 3; p++) preft_pool_free(pools[p]);
  preft_train_batch_free(&b);
  preft_train_model_free(&tm);
}

static void attention_backward_chunked(void **state) {
  (void)state;
  int one[] = {200}, two[] = {150, 90};
  check_shape(1, one, 1);
  check_shape(1, two, 2);
}

static void attention_backward_unchunked(void **state) {
  (void)state;
  int lens[] = {70, 65, 80, 33};
  check_shape(2, lens, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(attention_backward_chunked),
      cmocka_unit_test(attention_backward_unchunked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
