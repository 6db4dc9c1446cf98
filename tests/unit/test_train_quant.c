/* test_train_quant.c - adapters on a quantized base (QLoRA-style).
 *
 * A random model (D 128, F 256, L 2) and the same model quantized at load
 * (Q8_0, Q4_0: preft_model_quantize, the path of `--quantize` and of a
 * quantized GGUF) train the same LoRA and LoReFT adapters on the same data
 * and seed. The trainer's frozen base is the quantized weights dequantized
 * (train_model.c), the adapters and their gradients FP32. Checked:
 *   - training lowers the loss on the quantized base as on the FP32 one,
 *     and the final losses agree within a stated tolerance (Q8_0: 2%
 *     relative, Q4_0: 10%, measured values printed);
 *   - the adapter trained on the quantized base serves on it unchanged: the
 *     serving forward (int8 activation kernels) gives the trainer's loss
 *     within 1% (the trainer's products are FP32). */
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
      assert_true(fabs(served - trained) < 0.01 * trained);
      preft_model_free(qm);
    }
  }
  preft_model_free(f32);
  preft_dataset_free(&ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(adapters_train_on_a_quantized_base),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
