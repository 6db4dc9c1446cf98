/* test_bert_train.c - the BERT training pass against PyTorch autograd
 * (tests/data/bert_train/, written by tools/make_reference_bert_train.py):
 * losses and the gradient of every tensor for the cross-encoder's three
 * heads, the bi-encoder's paraphrase and cosine-similarity heads (mean
 * pooling), early-exit heads trained jointly, the MLM head with its tied
 * decoder, and SMART (the inner ascent's gradient at the embedding output,
 * one projected ascent step, and the full loss with both passes
 * differentiated). Also: LoRA's gradients by finite differences, and that
 * the padding mask matters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "train/bert_train.h"
#include "testutil.h"

typedef struct {
  char *dir;
  cJSON *golden;
  int B, T, *ids, *types, *lengths;
  preft_bert_batch batch;
} fixture;

static int *int_array(const cJSON *a, int *n) {
  *n = cJSON_GetArraySize(a);
  int *v = malloc(sizeof(int) * (size_t)(*n ? *n : 1));
  for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valueint;
  return v;
}

static float *float_array(const cJSON *a, int *n) {
  *n = cJSON_GetArraySize(a);
  float *v = malloc(sizeof(float) * (size_t)(*n ? *n : 1));
  for (int i = 0; i < *n; i++) v[i] = (float)cJSON_GetArrayItem(a, i)->valuedouble;
  return v;
}

static double *read_f64(fixture *f, const char *name, size_t *count) {
  char rel[256];
  snprintf(rel, sizeof rel, "%s/%s", f->dir, name);
  size_t size;
  double *d = test_read_all(rel, &size);
  assert_non_null(d);
  *count = size / sizeof(double);
  return d;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  f->dir = test_data_path("bert_train");
  f->golden = test_load_golden(f->dir, "tools/make_reference_bert_train.py");
  const cJSON *b = cJSON_GetObjectItem(f->golden, "batch");
  int n;
  f->B = cJSON_GetObjectItem(b, "B")->valueint;
  f->T = cJSON_GetObjectItem(b, "T")->valueint;
  f->ids = int_array(cJSON_GetObjectItem(b, "ids"), &n);
  f->types = int_array(cJSON_GetObjectItem(b, "types"), &n);
  f->lengths = int_array(cJSON_GetObjectItem(b, "lengths"), &n);
  f->batch = (preft_bert_batch){
      .n_seqs = f->B, .seq_len = f->T, .ids = f->ids, .types = f->types, .lengths = f->lengths};
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  free(f->dir);
  cJSON_Delete(f->golden);
  free(f->ids);
  free(f->types);
  free(f->lengths);
  free(f);
  return 0;
}

static void load(fixture *f, const char *which, preft_bt_model *m) {
  preft_bt_opts o = {.tasks = true};
  if (strcmp(which, "cross") == 0) {
    o.mlm = true;
    o.exits = true;
  } else {
    o.arch = PREFT_BT_SIAMESE;
    o.pooling = PREFT_BT_POOL_MEAN;
  }
  char *dir = preft_path_join(f->dir, which);
  preft_error err = {0};
  int rc = preft_bt_model_load(m, dir, &o, 1, &err);
  if (rc != 0) fail_msg("%s", err.msg);
  free(dir);
}

/* every tensor named in the case against the reference gradients */
static void check_grads(fixture *f, const preft_bt_model *m, const cJSON *c) {
  size_t count;
  double *ref = read_f64(f, cJSON_GetObjectItem(c, "grads")->valuestring, &count);
  size_t off = 0;
  const cJSON *names = cJSON_GetObjectItem(c, "tensors");
  assert_int_equal(cJSON_GetArraySize(names), m->ps.n_t);
  for (int i = 0; i < cJSON_GetArraySize(names); i++) {
    const char *name = cJSON_GetArrayItem(names, i)->valuestring;
    const preft_train_tensor *t = preft_param_set_find(&m->ps, name);
    if (!t) fail_msg("tensor %s is not in preft's model", name);
    assert_true(off + t->n <= count);
    /* ||g - ref|| within 2e-5 of ||ref||, plus 1e-6 for tensors whose gradient
     * is zero in exact arithmetic (the key bias: softmax ignores it) */
    double nref = 0, nerr = 0;
    for (size_t e = 0; e < t->n; e++) {
      nref += ref[off + e] * ref[off + e];
      nerr += (t->g[e] - ref[off + e]) * (t->g[e] - ref[off + e]);
    }
    nref = sqrt(nref), nerr = sqrt(nerr);
    if (nerr > 2e-5 * nref + 1e-6)
      fail_msg("%s: %s: gradient error %g, reference norm %g", cJSON_GetObjectItem(c, "name")->valuestring,
               name, nerr, nref);
    off += t->n;
  }
  assert_int_equal(off, count);
  free(ref);
}

static preft_bt_task task_of(const cJSON *c) {
  const char *t = cJSON_GetObjectItem(c, "task")->valuestring;
  for (int i = 0; i < PREFT_BT_N_TASKS; i++)
    if (strcmp(t, preft_bt_task_names[i]) == 0) return (preft_bt_task)i;
  fail_msg("task %s", t);
  return PREFT_BT_SST;
}

static void run_case(fixture *f, const cJSON *c, preft_pool *pool) {
  const char *kind = cJSON_GetObjectItem(c, "kind")->valuestring;
  preft_bt_model m;
  load(f, cJSON_GetObjectItem(c, "model")->valuestring, &m);
  preft_param_set_zero_grad(&m.ps);
  preft_error err = {0};
  double loss, ref_loss = cJSON_GetObjectItem(c, "loss")->valuedouble;
  preft_bt_step_ws ws = {0};
  float *delta = NULL;
  if (strcmp(kind, "mlm") == 0) {
    int nr, nt;
    int *rows = int_array(cJSON_GetObjectItem(c, "rows"), &nr),
        *tg = int_array(cJSON_GetObjectItem(c, "targets"), &nt);
    preft_bt_acts a = {0};
    assert_int_equal(preft_bt_forward(&m, pool, &f->batch, NULL, &a, NULL, &err), 0);
    size_t ND = (size_t)f->B * f->T * m.cfg.dim;
    float **d_out = calloc((size_t)m.cfg.n_layers, sizeof *d_out);
    d_out[m.cfg.n_layers - 1] = calloc(ND, sizeof(float));
    loss = preft_bt_mlm_loss(&m, pool, &a, rows, tg, nr, d_out[m.cfg.n_layers - 1]);
    preft_bt_backward(&m, pool, &a, d_out, NULL, true);
    free(d_out[m.cfg.n_layers - 1]);
    free(d_out);
    preft_bt_acts_free(&a);
    free(rows);
    free(tg);
  } else {
    int n = cJSON_GetObjectItem(c, "n")->valueint, nl;
    float *labels = float_array(cJSON_GetObjectItem(c, "labels"), &nl);
    assert_int_equal(nl, n);
    preft_bt_step_opts o = {0};
    preft_bt_task t = task_of(c);
    if (strcmp(kind, "exits") == 0) o.exits = PREFT_BT_EXITS_JOINT;
    if (strcmp(kind, "smart") == 0) {
      size_t cnt;
      double *d64 = read_f64(f, "delta.f64", &cnt);
      delta = malloc(sizeof(float) * cnt);
      for (size_t i = 0; i < cnt; i++) delta[i] = (float)d64[i];
      free(d64);
      o.lambda_s = cJSON_GetObjectItem(c, "lambda")->valuedouble;
      o.fixed_delta = delta;
      /* the inner ascent: gradient at delta with the clean outputs fixed, and one step */
      float *clean = malloc(sizeof(float) * (size_t)n * preft_bt_task_width(t)),
            *g = malloc(sizeof(float) * cnt);
      assert_int_equal(preft_bt_predict(&m, pool, &f->batch, t, n, m.cfg.n_layers - 1, clean, &ws, &err), 0);
      assert_int_equal(preft_bt_smart_delta_grad(&m, pool, &f->batch, t, n, clean, delta, g, &ws, &err), 0);
      size_t gc;
      double *gref = read_f64(f, cJSON_GetObjectItem(c, "delta_grad")->valuestring, &gc);
      assert_int_equal(gc, cnt);
      double rel = test_rel_l2(g, gref, cnt);
      if (rel > 2e-5)
        fail_msg("%s: delta gradient relative L2 error %g", cJSON_GetObjectItem(c, "name")->valuestring, rel);
      float *step = malloc(sizeof(float) * cnt);
      memcpy(step, delta, sizeof(float) * cnt);
      preft_bt_smart_project(step, g, f->B * f->T, m.cfg.dim, cJSON_GetObjectItem(c, "eta")->valuedouble,
                             cJSON_GetObjectItem(c, "eps")->valuedouble);
      double *sref = read_f64(f, cJSON_GetObjectItem(c, "delta_step")->valuestring, &gc);
      for (size_t i = 0; i < cnt; i++) assert_true(fabs(step[i] - sref[i]) < 1e-6);
      free(sref);
      free(step);
      free(gref);
      free(g);
      free(clean);
      preft_param_set_zero_grad(&m.ps);
    }
    loss = preft_bt_task_step(&m, pool, &f->batch, t, n, labels, &o, &ws, NULL, &err);
    if (isnan(loss)) fail_msg("%s", err.msg);
    free(labels);
  }
  if (fabs(loss - ref_loss) > 1e-5 * fmax(1.0, fabs(ref_loss)))
    fail_msg("%s: loss %.8f, reference %.8f", cJSON_GetObjectItem(c, "name")->valuestring, loss, ref_loss);
  check_grads(f, &m, c);
  free(delta);
  preft_bt_step_ws_free(&ws);
  preft_bt_model_free(&m);
}

static void test_golden_cases(void **state) {
  fixture *f = *state;
  for (int threads = 1; threads <= 3; threads += 2) {
    preft_pool *pool = preft_pool_create(threads);
    const cJSON *cases = cJSON_GetObjectItem(f->golden, "cases");
    assert_true(cJSON_GetArraySize(cases) >= 11);
    for (int i = 0; i < cJSON_GetArraySize(cases); i++) run_case(f, cJSON_GetArrayItem(cases, i), pool);
    preft_pool_free(pool);
  }
}

/* Without the lengths (every sequence seen at full length, padding
 * included) the loss changes: the mask is exercised. */
static void test_padding_matters(void **state) {
  fixture *f = *state;
  preft_pool *pool = preft_pool_create(1);
  preft_bt_model m;
  load(f, "cross", &m);
  float labels[4] = {0, 3, 4, 2}, out[20], out2[20];
  preft_bt_step_ws ws = {0};
  preft_error err = {0};
  assert_int_equal(preft_bt_predict(&m, pool, &f->batch, PREFT_BT_SST, 4, m.cfg.n_layers - 1, out, &ws, &err),
                   0);
  preft_bert_batch nb = f->batch;
  nb.lengths = NULL;
  assert_int_equal(preft_bt_predict(&m, pool, &nb, PREFT_BT_SST, 4, m.cfg.n_layers - 1, out2, &ws, &err), 0);
  assert_true(fabs(preft_bt_task_loss(PREFT_BT_SST, out, labels, 4, NULL) -
                   preft_bt_task_loss(PREFT_BT_SST, out2, labels, 4, NULL)) > 1e-4);
  /* the first sequence is full length: identical either way */
  for (int k = 0; k < 5; k++) assert_true(fabs(out[k] - out2[k]) < 1e-6);
  preft_bt_step_ws_free(&ws);
  preft_bt_model_free(&m);
  preft_pool_free(pool);
}

/* LoRA on a fresh model (B made nonzero): the gradient of A and B against
 * central finite differences of the loss in double-checked float. */
static void test_lora_finite_differences(void **state) {
  fixture *f = *state;
  preft_pool *pool = preft_pool_create(1);
  preft_bt_model m;
  preft_bt_opts o = {.tasks = true, .lora_rank = 2, .lora_alpha = 4};
  char *dir = preft_path_join(f->dir, "cross");
  preft_error err = {0};
  assert_int_equal(preft_bt_model_load(&m, dir, &o, 3, &err), 0);
  free(dir);
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (int k = 0; k < BT_N_LIN; k++) {
      preft_bt_lin *li = &m.layers[l].lin[k];
      for (int i = 0; i < li->out * 2; i++) li->lb[i] = 0.05f * (float)((i * 7 + k + l) % 11 - 5);
    }
  float labels[4] = {0, 3, 4, 2};
  preft_bt_step_opts so = {0};
  preft_bt_step_ws ws = {0};
  preft_param_set_zero_grad(&m.ps);
  preft_bt_task_step(&m, pool, &f->batch, PREFT_BT_SST, 4, labels, &so, &ws, NULL, &err);
  const char *names[] = {"lora.1.query.A", "lora.0.ffn_out.B", "lora.2.value.B",
                         "bert.encoder.layer.1.attention.self.query.weight"};
  for (size_t k = 0; k < 4; k++) {
    const preft_train_tensor *t = preft_param_set_find(&m.ps, names[k]);
    assert_non_null(t);
    for (size_t e = 0; e < t->n; e += t->n / 5 + 1) {
      float keep = t->p[e], h = 1e-2f;
      float out[20];
      t->p[e] = keep + h;
      preft_bt_predict(&m, pool, &f->batch, PREFT_BT_SST, 4, m.cfg.n_layers - 1, out, &ws, &err);
      double lp = preft_bt_task_loss(PREFT_BT_SST, out, labels, 4, NULL);
      t->p[e] = keep - h;
      preft_bt_predict(&m, pool, &f->batch, PREFT_BT_SST, 4, m.cfg.n_layers - 1, out, &ws, &err);
      double lm = preft_bt_task_loss(PREFT_BT_SST, out, labels, 4, NULL);
      t->p[e] = keep;
      double fd = (lp - lm) / (2 * h);
      if (k == 3) { /* the base is frozen under LoRA */
        assert_true(t->g[e] == 0.0f);
        continue;
      }
      if (fabs(fd - t->g[e]) > 2e-3 * fmax(1.0, fabs(fd)))
        fail_msg("%s[%zu]: %g vs finite difference %g", names[k], e, t->g[e], fd);
    }
  }
  preft_bt_step_ws_free(&ws);
  preft_bt_model_free(&m);
  preft_pool_free(pool);
}

/* A layer wide enough that GELU and its gradient split over the pool
 * (N·F = 65536 values), and with them LayerNorm rows, dropout masks, bias
 * adds and the column sums of bias, LayerNorm and embedding gradients
 * (bert_rows.h), and the MLM head's rows: the same outputs, MLM loss and
 * gradients, bit for bit, on 1, 2 and 3 threads, without dropout and with
 * it (the masks drawn per row from one stream). The FNV-1a hash of each is printed, so a change meant to be
 * bit-identical can be compared with the build before it. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static void bert_pass(preft_pool *pool, double dropout, float *out, size_t n_out, float *grad,
                      size_t *n_grad) {
  preft_bert_config c = {.vocab = 50,
                         .dim = 64,
                         .n_heads = 2,
                         .head_dim = 32,
                         .ffn = 256,
                         .n_layers = 1,
                         .max_pos = 64,
                         .type_vocab = 2,
                         .ln_eps = 1e-12f};
  preft_bt_opts o = {.dropout = dropout, .mlm = true};
  preft_bt_model m;
  preft_bt_model_init(&m, &c, &o, 7);
  preft_rng rng;
  preft_rng_seed(&rng, 99);
  int ids[4 * 64], lengths[4] = {64, 50, 33, 64};
  for (int i = 0; i < 4 * 64; i++) ids[i] = (i * 37 + 11) % c.vocab;
  preft_bert_batch b = {.n_seqs = 4, .seq_len = 64, .ids = ids, .lengths = lengths};
  preft_bt_acts a = {0};
  preft_error err = {0};
  assert_int_equal(preft_bt_forward(&m, pool, &b, NULL, &a, dropout > 0 ? &rng : NULL, &err), 0);
  assert_true(n_out == (size_t)4 * 64 * c.dim);
  memcpy(out, a.l[0].out, sizeof(float) * n_out);
  float *d = malloc(sizeof(float) * n_out), *dl[1] = {d};
  for (size_t i = 0; i < n_out; i++) d[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-3f;
  /* the MLM head on every third row (its rows and column sums split too) */
  int rows[86], tg[86];
  for (int r = 0; r < 86; r++) rows[r] = 3 * r, tg[r] = (r * 13 + 5) % c.vocab;
  double mlm = preft_bt_mlm_loss(&m, pool, &a, rows, tg, 86, d);
  memcpy(out, &mlm, sizeof mlm); /* the first two floats: the loss's bits */
  preft_bt_backward(&m, pool, &a, dl, NULL, true);
  *n_grad = m.ps.n;
  memcpy(grad, m.ps.grad, sizeof(float) * m.ps.n);
  free(d);
  preft_bt_acts_free(&a);
  preft_bt_model_free(&m);
}

static void test_row_splits_match_one_thread(void **state) {
  (void)state;
  size_t n_out = (size_t)4 * 64 * 64, n1 = 0, nt = 0, cap = 1 << 20;
  float *o1 = malloc(sizeof(float) * n_out), *ot = malloc(sizeof(float) * n_out);
  float *g1 = malloc(sizeof(float) * cap), *gt = malloc(sizeof(float) * cap);
  preft_pool *pools[3] = {preft_pool_create(1), preft_pool_create(2), preft_pool_create(3)};
  for (int dr = 0; dr <= 1; dr++) {
    double dropout = dr ? 0.1 : 0.0;
    bert_pass(pools[0], dropout, o1, n_out, g1, &n1);
    assert_true(n1 > 0 && n1 <= cap);
    printf("dropout %.1f: outputs hash %016llx, gradients hash %016llx\n", dropout,
           (unsigned long long)fnv(14695981039346656037ull, o1, sizeof(float) * n_out),
           (unsigned long long)fnv(14695981039346656037ull, g1, sizeof(float) * n1));
    for (int p = 1; p < 3; p++) {
      bert_pass(pools[p], dropout, ot, n_out, gt, &nt);
      assert_true(nt == n1);
      if (memcmp(o1, ot, sizeof(float) * n_out) || memcmp(g1, gt, sizeof(float) * n1))
        fail_msg("dropout %.1f, %d threads: outputs or gradients differ from 1 thread's", dropout, p + 1);
    }
  }
  for (int p = 0; p < 3; p++) preft_pool_free(pools[p]);
  free(o1);
  free(ot);
  free(g1);
  free(gt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_cases),
      cmocka_unit_test(test_padding_matters),
      cmocka_unit_test(test_lora_finite_differences),
      cmocka_unit_test(test_row_splits_match_one_thread),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
