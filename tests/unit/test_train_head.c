/* test_train_head.c - the training pass's LM head and cross-entropy, run
 * over the target rows in chunks of preft_train_head_rows rows: the chunk
 * length follows the vocabulary, and a pass whose head runs in several
 * chunks (a vocabulary of 40,000: chunks of 128 rows, the last shorter)
 * gives the loss and the head's gradient of a double-precision reference
 * computed here from the pass's own final hidden states (softmax, the
 * cross-entropy's gradient and its product with the states, none of the
 * library's code). */
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
#include "testutil.h"
#include "train/train_model.h"

static void head_rows_follow_the_vocabulary(void **state) {
  (void)state;
  assert_int_equal(preft_train_head_rows(512, 4096), 512);    /* 16 MiB hold 1024 rows */
  assert_int_equal(preft_train_head_rows(4096, 4096), 1024);  /* ... and no more */
  assert_int_equal(preft_train_head_rows(4096, 20000), 209);  /* 4 Mi floats / 20000 */
  assert_int_equal(preft_train_head_rows(4096, 40000), 128);  /* at least 128 */
  assert_int_equal(preft_train_head_rows(4096, 128256), 128); /* Llama 3's vocabulary */
  assert_int_equal(preft_train_head_rows(50, 128256), 50);    /* at most the rows there are */
  assert_int_equal(preft_train_head_rows(1, 1), 1);
}

/* width 16 = one head of 16, one layer, an untied head */
static preft_model_config config(int vocab) {
  preft_model_config c = {0};
  c.arch = PREFT_ARCH_LLAMA;
  c.dim = 16;
  c.n_layers = 1;
  c.head_dim = 16;
  c.n_heads = 1;
  c.n_kv_heads = 1;
  c.ffn = 32;
  c.vocab = vocab;
  c.max_pos = 256;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000;
  c.bos_id = -1;
  c.tie_embeddings = false;
  return c;
}

static void chunked_head_matches_a_double_reference(void **state) {
  (void)state;
  enum { V = 40000, D = 16, SEQ = 150, N_SEQ = 2 };
  preft_model_config c = config(V);
  preft_train_model tm;
  preft_error err;
  if (preft_train_model_init(&tm, &c, 5, &err) != 0) fail_msg("%s", err.msg);
  preft_train_batch b = {0};
  int ids[SEQ], tg[SEQ];
  for (int s = 0; s < N_SEQ; s++) {
    for (int t = 0; t < SEQ; t++) {
      ids[t] = (s * 7919 + t * 104729) % V;
      tg[t] = t % 7 == 3 ? -1 : (ids[t] * 31 + 7 + s) % V; /* some rows without a target */
    }
    preft_train_batch_add(&b, ids, tg, NULL, SEQ);
  }
  const int n = b.n;
  assert_true(preft_train_head_rows(n, V) < n / 2); /* the head runs in at least three chunks */
  preft_pool *pool = preft_pool_create(2);
  preft_train_acts a;
  preft_train_acts_init(&a, &tm, NULL, n, SEQ, preft_pool_size(pool), false);
  preft_param_set_zero_grad(&tm.ps);
  const float dloss = 1.0f / (float)b.n_targets;
  double loss;
  if (preft_train_pass(&tm, NULL, pool, &b, &a, dloss, &loss, &err) != 0) fail_msg("%s", err.msg);

  /* the reference from the final hidden states xf [n, D] the pass left */
  double *g = calloc((size_t)V * D, sizeof(double)), *z = malloc(sizeof(double) * V), ref_loss = 0.0,
         gmax = 0.0;
  for (int r = 0; r < n; r++) {
    if (b.target[r] < 0) continue;
    const float *x = a.xf + (size_t)r * D;
    double mx = -INFINITY, sum = 0.0;
    for (int v = 0; v < V; v++) {
      double s = 0.0;
      for (int d = 0; d < D; d++) s += (double)x[d] * tm.w.lm_head[(size_t)v * D + d];
      z[v] = s;
      mx = s > mx ? s : mx;
    }
    for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
    ref_loss += mx + log(sum) - z[b.target[r]];
    for (int v = 0; v < V; v++) {
      double dz = (exp(z[v] - mx) / sum - (v == b.target[r])) * dloss;
      for (int d = 0; d < D; d++) g[(size_t)v * D + d] += dz * x[d];
    }
  }
  for (size_t i = 0; i < (size_t)V * D; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
  assert_true(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss));
  for (size_t i = 0; i < (size_t)V * D; i++)
    if (fabs(tm.g.lm_head[i] - g[i]) > 1e-4 * gmax)
      fail_msg("head gradient [%zu]: %.9g against %.9g (largest %.3g)", i, tm.g.lm_head[i], g[i], gmax);
  printf("loss %.9g (reference %.9g), head gradient within 1e-4 of its largest %.3g\n", loss, ref_loss, gmax);
  free(g);
  free(z);
  preft_train_acts_free(&a);
  preft_pool_free(pool);
  preft_train_batch_free(&b);
  preft_train_model_free(&tm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(head_rows_follow_the_vocabulary),
      cmocka_unit_test(chunked_head_matches_a_double_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
