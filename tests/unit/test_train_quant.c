/* test_train_quant.c - adapters on a quantized base (QLoRA-style).
 *
 * The trainer uses a frozen base's block-quantized matrices in place
 * (train_model.c: no FP32 copy): the forward runs the serving kernels'
 * int8 products, the backward for x runs dy·dequant(W) on tiles
 * dequantized on the fly (preft_qgemm_dx). Checked:
 *   - no FP32 copy: the quantized matrices are borrowed, the parameter set
 *     holds only the norms;
 *   - one pass on a Q8_0 and on a Q4_K base (D 256, so Q4_K's 256-blocks
 *     fit) against the same pass on the FP32 model made of the same
 *     weights dequantized: the loss agrees within 0.2% and every adapter
 *     gradient (LoRA on all 7 modules, LoReFT) within 2% in relative L2
 *     norm (the forward's int8 activations are the whole difference);
 *   - a random model (D 128, F 256, L 2) and the same model quantized at
 *     load (Q8_0, Q4_0: preft_model_quantize, the path of `--quantize` and
 *     of a quantized GGUF) train the same LoRA and LoReFT adapters on the
 *     same data and seed: training lowers the loss on the quantized base
 *     as on the FP32 one, and the final losses agree within a stated
 *     tolerance (Q8_0: 2% relative, Q4_0: 10%, measured values printed);
 *   - the adapter trained on the quantized base serves on it unchanged: the
 *     serving forward gives the trainer's loss within 0.1% (the same int8
 *     products). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/adapter.h"
#include "model/llama.h"
#include "preft/generate.h"
#include "testutil.h"
#include "train/data.h"
#include "train/train_model.h"
#include "train/trainer.h"

#define V 160

static preft_model *random_model(void) {
  preft_model_config cfg = {.arch = PREFT_ARCH_LLAMA,
                            .vocab = V,
                            .dim = 128,
                            .ffn = 256,
                            .n_layers = 2,
                            .n_heads = 4,
                            .n_kv_heads = 2,
                            .head_dim = 32,
                            .max_pos = 64,
                            .norm_eps = 1e-5f,
                            .rope_theta = 10000,
                            .bos_id = -1};
  preft_model *m;
  preft_error err;
  if (preft_model_init_random(&m, &cfg, PREFT_F32, 11, &err)) fail_msg("%s", err.msg);
  return m;
}

static void make_data(preft_dataset *ds) {
  uint64_t s = 99;
  for (int e = 0; e < 6; e++) {
    int ids[32];
    uint8_t loss[32];
    int p = 6 + e % 4, n = p + 5;
    for (int t = 0; t < n; t++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      ids[t] = 3 + (int)((s >> 33) % (V - 3));
      loss[t] = t >= p;
    }
    preft_dataset_add(ds, ids, loss, n, p, 0);
  }
}

/* Mean completion loss of ds through the serving forward. */
static double serve_loss(const preft_model *m, const preft_adapter *a, preft_adapter_mode mode,
                         const preft_dataset *ds) {
  preft_pool *pool = preft_pool_create(2);
  double sum = 0;
  int n = 0;
  for (int e = 0; e < ds->n; e++) {
    const preft_example *x = &ds->ex[e];
    float *lg = malloc(sizeof(float) * (size_t)x->n * V);
    preft_error err;
    if (preft_all_logits_adapted(m, pool, x->ids, x->n, a, mode, x->prompt_len, lg, &err) != 0)
      fail_msg("%s", err.msg);
    for (int t = 0; t + 1 < x->n; t++) {
      if (!x->loss[t + 1]) continue;
      const float *l = lg + (size_t)t * V;
      double mx = l[0], z = 0;
      for (int c = 1; c < V; c++) mx = l[c] > mx ? l[c] : mx;
      for (int c = 0; c < V; c++) z += exp(l[c] - mx);
      sum += mx + log(z) - l[x->ids[t + 1]];
      n++;
    }
    free(lg);
  }
  preft_pool_free(pool);
  return sum / n;
}

/* Trains one adapter kind on base m; returns the final eval loss and the
 * serving loss of the saved adapter on m. */
static void train_on(const preft_model *m, preft_adapter_kind kind, const preft_dataset *ds, double *trained,
                     double *served) {
  preft_train_model tm;
  preft_train_model_from(&tm, m, false);
  preft_train_adapter_opts ao = {
      .kind = kind, .mode = PREFT_MODE_ALL, .rank = 8, .alpha = 16, .seed = 5, .positions = "all"};
  for (int k = 0; k < PREFT_N_MODULES; k++) ao.modules[k] = true;
  preft_train_adapter ad;
  preft_error err;
  if (preft_train_adapter_init(&ad, &tm.cfg, &ao, &err) != 0) fail_msg("%s", err.msg);
  char *out = test_tmpdir();
  preft_train_opts o;
  preft_train_opts_default(&o);
  o.steps = 12;
  o.batch = 3;
  o.max_tokens = 32;
  o.lr = kind == PREFT_ADAPTER_LORA ? 1e-2 : 1e-2;
  o.threads = 2;
  o.quiet = true;
  o.out_dir = out;
  o.base_name = "random";
  preft_train_result r;
  if (preft_train_run(&tm, &ad, ds, ds, &o, &r, &err) != 0) fail_msg("%s", err.msg);
  *trained = r.eval_loss;
  preft_adapter *a;
  if (preft_adapter_load(&a, out, "trained", &m->cfg, &err) != 0) fail_msg("%s", err.msg);
  *served = serve_loss(m, a, PREFT_MODE_ALL, ds);
  preft_adapter_free(a);
  preft_train_adapter_free(&ad);
  preft_train_model_free(&tm);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
  assert_int_equal(system(cmd), 0);
  free(out);
}

static void adapters_train_on_a_quantized_base(void **state) {
  preft_dataset ds = {0};
  make_data(&ds);
  preft_model *f32 = random_model();
  double base_loss = serve_loss(f32, NULL, PREFT_MODE_ALL, &ds);
  const struct {
    preft_dtype t;
    double tol;
  } types[] = {{PREFT_Q8_0, 0.02}, {PREFT_Q4_0, 0.10}};
  const preft_adapter_kind kinds[] = {PREFT_ADAPTER_LORA, PREFT_ADAPTER_LOREFT};
  for (int k = 0; k < 2; k++) {
    double ref_trained, ref_served;
    train_on(f32, kinds[k], &ds, &ref_trained, &ref_served);
    assert_true(ref_trained < 0.7 * base_loss);
    for (int q = 0; q < 2; q++) {
      preft_model *qm = random_model();
      preft_error err;
      if (preft_model_quantize(qm, types[q].t, NULL, &err)) fail_msg("%s", err.msg);
      double trained, served;
      train_on(qm, kinds[k], &ds, &trained, &served);
      double rel = fabs(trained - ref_trained) / ref_trained;
      fprintf(stderr,
              "# %s on %s: loss %.4f -> %.4f (FP32 base: %.4f, relative difference %.4f, limit %.2f); "
              "served %.4f\n",
              kinds[k] == PREFT_ADAPTER_LORA ? "LoRA" : "LoReFT", preft_dtype_name(types[q].t), base_loss,
              trained, ref_trained, rel, types[q].tol, served);
      assert_true(rel < types[q].tol);
      assert_true(fabs(served - trained) < 0.001 * trained);
      preft_model_free(qm);
    }
  }
  preft_model_free(f32);
  preft_dataset_free(&ds);
}

/* ---- one pass: gradients through the quantized weights ---- */

#define GV 256

static preft_model *random_model_256(void) {
  preft_model_config cfg = {.arch = PREFT_ARCH_LLAMA,
                            .vocab = GV,
                            .dim = 256,
                            .ffn = 512,
                            .n_layers = 2,
                            .n_heads = 4,
                            .n_kv_heads = 2,
                            .head_dim = 64,
                            .max_pos = 64,
                            .norm_eps = 1e-5f,
                            .rope_theta = 10000,
                            .bos_id = -1};
  preft_model *m;
  preft_error err;
  if (preft_model_init_random(&m, &cfg, PREFT_F32, 23, &err)) fail_msg("%s", err.msg);
  return m;
}

/* Loss and adapter gradients (into g, ad->ps.n floats) of one pass over
 * two sequences with a completion loss. */
static double pass_grads(const preft_train_model *tm, preft_train_adapter *ad, preft_pool *pool, float *g) {
  preft_train_batch b = {0};
  uint64_t s = 7;
  for (int q = 0; q < 2; q++) {
    int ids[20], tg[20];
    uint8_t fl[20];
    int n = 16 + 4 * q, p = 6;
    for (int t = 0; t < n; t++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      ids[t] = 3 + (int)((s >> 33) % (GV - 3));
    }
    for (int t = 0; t < n; t++) {
      tg[t] = t + 1 < n && t + 1 >= p ? ids[t + 1] : -1;
      fl[t] = (uint8_t)preft_train_row_flag(ad, PREFT_MODE_ALL, t, p);
    }
    preft_train_batch_add(&b, ids, tg, fl, n);
  }
  preft_train_acts acts;
  preft_train_acts_init(&acts, tm, ad, b.n, 20, preft_pool_size(pool), false);
  preft_param_set_zero_grad(&ad->ps);
  double sum;
  preft_error err;
  if (preft_train_pass(tm, ad, pool, &b, &acts, 1.0f / (float)b.n_targets, &sum, &err) != 0)
    fail_msg("%s", err.msg);
  double loss = sum / b.n_targets;
  memcpy(g, ad->ps.grad, sizeof(float) * ad->ps.n);
  preft_train_acts_free(&acts);
  preft_train_batch_free(&b);
  return loss;
}

static void gradients_through_quantized_weights(void **state) {
  (void)state;
  preft_pool *pool = preft_pool_create(2);
  const preft_dtype types[] = {PREFT_Q8_0, PREFT_Q4_K};
  const preft_adapter_kind kinds[] = {PREFT_ADAPTER_LORA, PREFT_ADAPTER_LOREFT};
  for (int q = 0; q < 2; q++) {
    preft_model *qm = random_model_256();
    preft_error err;
    if (preft_model_quantize(qm, types[q], NULL, &err)) fail_msg("%s", err.msg);
    preft_train_model tq, full, tref;
    preft_train_model_from(&tq, qm, false);
    /* no FP32 copy of the matrices: borrowed, only the norms copied */
    assert_true(preft_train_model_borrows(&tq));
    assert_null(tq.w.layers[0].wq);
    assert_null(tq.w.embed);
    assert_int_equal(preft_dtype_stored(tq.mats[PREFT_MOD_DOWN].dtype), types[q]); /* Q4_K: repacked (R4) */
    assert_true(tq.ps.n == (size_t)(2 * 2 + 1) * 256);
    /* the reference: the same weights dequantized, FP32 everywhere */
    preft_train_model_from(&full, qm, true);
    preft_model *view = preft_train_model_view(&full);
    preft_train_model_from(&tref, view, false);
    assert_false(preft_train_model_borrows(&tref));
    for (int k = 0; k < 2; k++) {
      preft_train_adapter_opts ao = {
          .kind = kinds[k], .mode = PREFT_MODE_ALL, .rank = 4, .alpha = 8, .seed = 3, .positions = "all"};
      for (int j = 0; j < PREFT_N_MODULES; j++) ao.modules[j] = true;
      preft_train_adapter ad;
      if (preft_train_adapter_init(&ad, &tq.cfg, &ao, &err) != 0) fail_msg("%s", err.msg);
      /* LoRA's B starts at zero (no gradient for A): give every B values */
      for (int i = 0; i < ad.ps.n_t; i++)
        if (ad.ps.t[i].role == PREFT_ROLE_LORA_B)
          for (size_t e = 0; e < ad.ps.t[i].n; e++)
            ad.ps.t[i].p[e] = 0.05f * sinf((float)(e * 7 + (size_t)i));
      float *gq = malloc(sizeof(float) * ad.ps.n), *gr = malloc(sizeof(float) * ad.ps.n);
      double lq = pass_grads(&tq, &ad, pool, gq), lr = pass_grads(&tref, &ad, pool, gr);
      double dd = 0, rr = 0;
      for (size_t e = 0; e < ad.ps.n; e++) {
        dd += ((double)gq[e] - gr[e]) * ((double)gq[e] - gr[e]);
        rr += (double)gr[e] * gr[e];
      }
      double rel = sqrt(dd / rr);
      fprintf(stderr,
              "# one pass, %s on %s: loss %.5f (dequantized FP32: %.5f, relative %.5f, limit 0.002); "
              "gradient relative L2 difference %.5f (limit 0.02), |g| %.3g\n",
              kinds[k] == PREFT_ADAPTER_LORA ? "LoRA" : "LoReFT", preft_dtype_name(types[q]), lq, lr,
              fabs(lq - lr) / lr, rel, sqrt(rr));
      assert_true(rr > 0);
      assert_true(fabs(lq - lr) < 0.002 * lr);
      assert_true(rel < 0.02);
      free(gq);
      free(gr);
      preft_train_adapter_free(&ad);
    }
    preft_train_model_free(&tref);
    preft_train_model_view_free(view);
    preft_train_model_free(&full);
    preft_train_model_free(&tq);
    preft_model_free(qm);
  }
  preft_pool_free(pool);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gradients_through_quantized_weights),
      cmocka_unit_test(adapters_train_on_a_quantized_base),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
