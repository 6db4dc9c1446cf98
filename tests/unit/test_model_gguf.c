/* test_model_gguf.c - models loaded from GGUF files.
 *
 * Every reference model (tools/make_reference_models.py: Llama with GQA and
 * llama3 rope, F16 with a head width other than D/H, Mistral, Qwen2 with
 * biases, tied embeddings, BF16) is written to GGUF by `preft convert`'s
 * exporter (q/k rows permuted for llama.cpp's rope, llama3 scaling as
 * rope_freqs) and loaded back: the logits of every position must equal the
 * Hugging Face directory's bit for bit, and the config must match.
 * Quantized: `convert --type T` files load with T in place and give exactly
 * the logits of --quantize T at load, within stated errors of FP32; Q4_0 /
 * Q5_0 repacked at load give the logits and the exported bytes of the
 * file as it is.
 * Malformed files (missing or misshapen tensors, unsupported types,
 * architectures and keys) fail with an error naming the tensor or key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "io/gguf.h"
#include "model/gguf_export.h"
#include "model/llama.h"
#include "tensor/quant.h"
#include "preft/generate.h"
#include "testutil.h"

static float *logits_of(const preft_model *m, preft_pool *pool, const int *ids, int n) {
  float *out = malloc(sizeof(float) * (size_t)n * (size_t)m->cfg.vocab);
  preft_error err;
  if (preft_all_logits(m, pool, ids, n, out, &err) != 0) fail_msg("%s", err.msg);
  return out;
}

static void check_reference_model(const char *name, preft_pool *pool) {
  char rel[128];
  snprintf(rel, sizeof rel, "models/%s", name);
  char *dir = test_data_path(rel);
  preft_model *hf, *gg;
  preft_error err;
  if (preft_model_load(&hf, dir, &err)) fail_msg("%s", err.msg);
  char *path = test_tmp_file("model.gguf");
  if (preft_gguf_export_model(hf, NULL, NULL, path, &err)) fail_msg("%s", err.msg);
  if (preft_model_load(&gg, path, &err)) fail_msg("%s: %s", name, err.msg);
  assert_true(gg->gguf->map.copied); /* read into memory by default */
  const preft_model_config *a = &hf->cfg, *b = &gg->cfg;
  assert_int_equal(a->arch == PREFT_ARCH_QWEN2, b->arch == PREFT_ARCH_QWEN2);
  assert_int_equal(a->vocab, b->vocab);
  assert_int_equal(a->dim, b->dim);
  assert_int_equal(a->ffn, b->ffn);
  assert_int_equal(a->n_layers, b->n_layers);
  assert_int_equal(a->n_heads, b->n_heads);
  assert_int_equal(a->n_kv_heads, b->n_kv_heads);
  assert_int_equal(a->head_dim, b->head_dim);
  assert_int_equal(a->tie_embeddings, b->tie_embeddings);
  assert_int_equal(a->qkv_bias, b->qkv_bias);
  assert_true(a->norm_eps == b->norm_eps);
  assert_int_equal(a->rope_type, b->rope_type);
  for (int i = 0; i < a->head_dim / 2; i++) assert_true(hf->inv_freq[i] == gg->inv_freq[i]);
  assert_int_equal(hf->layers[0].wq.dtype, gg->layers[0].wq.dtype);
  int ids[12];
  for (int i = 0; i < 12; i++) ids[i] = (i * 37 + 5) % a->vocab;
  float *la = logits_of(hf, pool, ids, 12), *lb = logits_of(gg, pool, ids, 12);
  size_t n = (size_t)12 * (size_t)a->vocab;
  for (size_t i = 0; i < n; i++)
    if (la[i] != lb[i]) fail_msg("%s: logit %zu differs: %.9g vs %.9g", name, i, la[i], lb[i]);
  free(lb);
  /* the GGUF mapped instead of read into memory: the same logits */
  preft_model_free(gg);
  preft_weights_set_mmap(true);
  if (preft_model_load(&gg, path, &err)) fail_msg("%s (mapped): %s", name, err.msg);
  preft_weights_set_mmap(false);
  assert_false(gg->gguf->map.copied);
  lb = logits_of(gg, pool, ids, 12);
  if (memcmp(la, lb, n * sizeof(float)) != 0) fail_msg("%s: the mapped GGUF gives other logits", name);
  free(la);
  free(lb);
  preft_model_free(gg);
  preft_model_free(hf);
  test_remove_tmp_file(path);
  free(dir);
}

static void reference_models_load_from_gguf_exactly(void **state) {
  preft_pool *pool = preft_pool_create(2);
  const char *names[] = {"llama-gqa-rope3", "llama-headdim-f16", "mistral-long", "qwen2-bias-tied-bf16"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_reference_model(names[i], pool);
  preft_pool_free(pool);
}

/* ---- quantized ---------------------------------------------------------------------- */

static preft_model *random_model(preft_arch arch) {
  preft_model_config cfg = {.arch = arch,
                            .vocab = 320,
                            .dim = 256,
                            .ffn = 512,
                            .n_layers = 2,
                            .n_heads = 4,
                            .n_kv_heads = 2,
                            .head_dim = 64,
                            .max_pos = 128,
                            .norm_eps = 1e-5f,
                            .rope_theta = 10000,
                            .qkv_bias = arch == PREFT_ARCH_QWEN2,
                            .bos_id = -1};
  preft_model *m;
  preft_error err;
  if (preft_model_init_random(&m, &cfg, PREFT_F32, 7, &err)) fail_msg("%s", err.msg);
  return m;
}

static double rel_l2(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return sqrt(num / den);
}

/* A model exported with `convert --type T` and loaded keeps T in place and
 * gives exactly the logits of the same model quantized at load
 * (--quantize T: the same quantizer, the same kernels), for both
 * architectures (llama's q/k rows re-ordered as quantized rows); and those
 * logits stay within a stated distance of the FP32 model's:
 *   relative L2 error over all logits of 12 positions, random weights
 *   Q8_0 < 0.02, Q6_K < 0.03, Q5_0 < 0.08, Q4_K < 0.12, Q4_0 < 0.15
 * (measured: see the fprintf; int8 activations included). */
static void quantized_gguf_equals_load_time_quantization(void **state) {
  preft_pool *pool = preft_pool_create(2);
  const struct {
    preft_dtype t;
    double tol;
  } types[] = {
      {PREFT_Q8_0, 0.02}, {PREFT_Q6_K, 0.03}, {PREFT_Q5_0, 0.08}, {PREFT_Q4_K, 0.12}, {PREFT_Q4_0, 0.15}};
  int ids[12];
  for (int i = 0; i < 12; i++) ids[i] = (i * 53 + 11) % 320;
  for (int a = 0; a < 2; a++) {
    preft_arch arch = a ? PREFT_ARCH_QWEN2 : PREFT_ARCH_LLAMA;
    preft_model *ref = random_model(arch);
    float *l32 = logits_of(ref, pool, ids, 12);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
      preft_error err;
      char *path = test_tmp_file("q.gguf");
      preft_gguf_export_opts o = {.outtype = (int)types[k].t};
      if (preft_gguf_export_model(ref, NULL, &o, path, &err)) fail_msg("%s", err.msg);
      preft_model *gg, *lq = random_model(arch);
      if (preft_model_load(&gg, path, &err)) fail_msg("%s", err.msg);
      assert_int_equal(preft_dtype_stored(gg->layers[1].w_down.dtype), types[k].t); /* X4: repacked */
      assert_int_equal(preft_dtype_stored(gg->embed.dtype), types[k].t);
      if (preft_model_quantize(lq, types[k].t, pool, &err)) fail_msg("%s", err.msg);
      assert_true(preft_model_weight_bytes(gg) == preft_model_weight_bytes(lq));
      assert_true(preft_model_weight_bytes(gg) < preft_model_weight_bytes(ref) / 3);
      float *lg = logits_of(gg, pool, ids, 12), *ll = logits_of(lq, pool, ids, 12);
      size_t n = (size_t)12 * 320;
      for (size_t i = 0; i < n; i++)
        if (lg[i] != ll[i])
          fail_msg("%s %s: logit %zu: GGUF %.9g, --quantize %.9g", a ? "qwen2" : "llama",
                   preft_dtype_name(types[k].t), i, lg[i], ll[i]);
      double e = rel_l2(lg, l32, n);
      fprintf(stderr, "# %s %s: relative L2 error of the logits %.4f (limit %.2f)\n", a ? "qwen2" : "llama",
              preft_dtype_name(types[k].t), e, types[k].tol);
      assert_true(e < types[k].tol);
      free(lg);
      free(ll);
      preft_model_free(gg);
      preft_model_free(lq);
      test_remove_tmp_file(path);
    }
    free(l32);
    preft_model_free(ref);
  }
  preft_pool_free(pool);
}

/* Q4_0 / Q5_0 weights repacked at load into the X4 layouts and Q4_K into
 * the R4 layout (where this CPU reads them natively) are the same model:
 * the logits of the file loaded with repacking off, bit for bit over 20
 * positions (products of 16 rows or more take the tile kernels, which give
 * the reference's bits in every layout; the Q4_0 / Q5_0 decode rows
 * kernels sum in another order, within test_quant's tolerance, and int8
 * activations turn such differences into steps layer by layer), and
 * exporting the repacked model writes the file's bytes back. */
static void repacked_weights_are_the_same_model(void **state) {
  (void)state;
  preft_pool *pool = preft_pool_create(2);
  enum { P = 20 };
  int ids[P];
  for (int i = 0; i < P; i++) ids[i] = (i * 37 + 5) % 320;
  for (int a = 0; a < 2; a++) {
    preft_model *ref = random_model(a ? PREFT_ARCH_QWEN2 : PREFT_ARCH_LLAMA);
    for (int q = 0; q < 3; q++) {
      const preft_dtype t = q == 2 ? PREFT_Q4_K : q ? PREFT_Q5_0 : PREFT_Q4_0;
      preft_error err;
      char *path = test_tmp_file("p.gguf"), *back = test_tmp_file("b.gguf");
      preft_gguf_export_opts o = {.outtype = (int)t};
      if (preft_gguf_export_model(ref, NULL, &o, path, &err)) fail_msg("%s", err.msg);
      preft_model *plain, *packed;
      preft_weights_set_repack(false);
      if (preft_model_load(&plain, path, &err)) fail_msg("%s", err.msg);
      preft_weights_set_repack(true);
      if (preft_model_load(&packed, path, &err)) fail_msg("%s", err.msg);
      assert_int_equal(plain->layers[0].wq.dtype, t);
      const preft_dtype layout = t == PREFT_Q4_K ? PREFT_Q4_K_R4 : preft_dtype_x4_of(t);
      const preft_dtype want = preft_quant_layouts_native() ? layout : t;
      assert_int_equal(packed->layers[0].wq.dtype, want);
      assert_int_equal(packed->layers[1].w_down.dtype, want);
      assert_int_equal(packed->lm_head.dtype, want);
      float *lp = logits_of(plain, pool, ids, P), *lx = logits_of(packed, pool, ids, P);
      for (size_t i = 0; i < (size_t)P * 320; i++)
        if (lp[i] != lx[i])
          fail_msg("%s: logit %zu: plain %.9g, repacked %.9g", preft_dtype_name(want), i, lp[i], lx[i]);
      preft_gguf_export_opts same = {.outtype = -1};
      if (preft_gguf_export_model(packed, NULL, &same, back, &err)) fail_msg("%s", err.msg);
      size_t na, nb;
      void *fa = test_read_all(path, &na), *fb = test_read_all(back, &nb);
      assert_int_equal(na, nb);
      assert_memory_equal(fa, fb, na);
      /* a mapped file is never written: loaded mapped, and --quantize on
       * top (its matrices are quantized already), it keeps ggml's layout;
       * what --quantize makes itself is repacked */
      preft_model *mapped;
      preft_weights_set_mmap(true);
      if (preft_model_load(&mapped, path, &err)) fail_msg("%s", err.msg);
      preft_weights_set_mmap(false);
      if (preft_model_quantize(mapped, t, pool, &err)) fail_msg("%s", err.msg);
      assert_int_equal(mapped->layers[1].w_down.dtype, t);
      float *lm = logits_of(mapped, pool, ids, P);
      assert_memory_equal(lm, lp, sizeof(float) * P * 320);
      preft_model *made = random_model(a ? PREFT_ARCH_QWEN2 : PREFT_ARCH_LLAMA);
      if (preft_model_quantize(made, t, pool, &err)) fail_msg("%s", err.msg);
      assert_int_equal(made->layers[1].w_down.dtype, want);
      assert_int_equal(made->embed.dtype, want);
      free(fa), free(fb), free(lp), free(lx), free(lm);
      preft_model_free(mapped);
      preft_model_free(made);
      preft_model_free(plain);
      preft_model_free(packed);
      test_remove_tmp_file(path);
      test_remove_tmp_file(back);
    }
    preft_model_free(ref);
  }
  preft_pool_free(pool);
}

/* ---- malformed files -------------------------------------------------------------- */

/* A tiny llama model written tensor by tensor: D 32, F 64, L 1, H 2, Hkv 1,
 * Dh 16, V 8. The flags break one thing each. */
enum {
  BREAK_NONE,
  BREAK_ARCH,
  BREAK_NO_LAYERS_KEY,
  BREAK_MISSING_TENSOR,
  BREAK_SHAPE,
  BREAK_TYPE,
  BREAK_PARTIAL_ROPE,
  BREAK_YARN,
  BREAK_HEADS
};

static float zeros[64 * 64];

static char *write_tiny(int brk) {
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  preft_error err;
  preft_gguf_set_str(&w, "general.architecture", brk == BREAK_ARCH ? "gpt-neox" : "llama");
  const char *a = brk == BREAK_ARCH ? "gpt-neox" : "llama";
  char key[96];
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", a, s), key)
  preft_gguf_set_u32(&w, KEY("embedding_length"), 32);
  preft_gguf_set_u32(&w, KEY("feed_forward_length"), 64);
  if (brk != BREAK_NO_LAYERS_KEY) preft_gguf_set_u32(&w, KEY("block_count"), 1);
  preft_gguf_set_u32(&w, KEY("attention.head_count"), 2);
  preft_gguf_set_u32(&w, KEY("attention.head_count_kv"), brk == BREAK_HEADS ? 3 : 1);
  preft_gguf_set_u32(&w, KEY("context_length"), 64);
  preft_gguf_set_f32(&w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
  preft_gguf_set_f32(&w, KEY("rope.freq_base"), 10000.0f);
  preft_gguf_set_u32(&w, KEY("rope.dimension_count"), brk == BREAK_PARTIAL_ROPE ? 8 : 16);
  if (brk == BREAK_YARN) preft_gguf_set_str(&w, KEY("rope.scaling.type"), "yarn");
#undef KEY
  struct {
    const char *name;
    int64_t rows, cols;
  } ts[] = {{"token_embd.weight", 8, 32},      {"output_norm.weight", 32, 0},
            {"blk.0.attn_norm.weight", 32, 0}, {"blk.0.ffn_norm.weight", 32, 0},
            {"blk.0.attn_q.weight", 32, 32},   {"blk.0.attn_k.weight", 16, 32},
            {"blk.0.attn_v.weight", 16, 32},   {"blk.0.attn_output.weight", 32, 32},
            {"blk.0.ffn_gate.weight", 64, 32}, {"blk.0.ffn_up.weight", 64, 32},
            {"blk.0.ffn_down.weight", 32, 64}};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
    if (brk == BREAK_MISSING_TENSOR && !strcmp(ts[i].name, "blk.0.ffn_up.weight")) continue;
    int64_t shape[2] = {ts[i].rows, ts[i].cols};
    if (brk == BREAK_SHAPE && !strcmp(ts[i].name, "blk.0.attn_v.weight")) shape[0] = 8;
    preft_ggml_type type = PREFT_GGML_F32;
    if (brk == BREAK_TYPE && !strcmp(ts[i].name, "blk.0.ffn_gate.weight")) type = 7; /* Q5_1 */
    const void *data = zeros; /* 16 KiB: enough for any of these */
    assert_int_equal(
        preft_gguf_add_tensor(&w, ts[i].name, type, ts[i].cols ? 2 : 1, shape, data, NULL, NULL, &err), 0);
  }
  char *path = test_tmp_file("tiny.gguf");
  assert_int_equal(preft_gguf_write(&w, path, &err), 0);
  preft_gguf_writer_free(&w);
  return path;
}

static void expect_fail(int brk, const char *needle) {
  char *path = write_tiny(brk);
  preft_model *m = NULL;
  preft_error err;
  assert_int_not_equal(preft_model_load(&m, path, &err), 0);
  assert_null(m);
  if (!strstr(err.msg, needle)) fail_msg("error '%s' does not name '%s'", err.msg, needle);
  test_remove_tmp_file(path);
}

static void malformed_models_are_named(void **state) {
  char *path = write_tiny(BREAK_NONE);
  preft_model *m;
  preft_error err;
  if (preft_model_load(&m, path, &err)) fail_msg("%s", err.msg);
  assert_int_equal(m->cfg.head_dim, 16);
  assert_true(m->cfg.tie_embeddings);
  preft_model_free(m);
  test_remove_tmp_file(path);
  expect_fail(BREAK_ARCH, "'gpt-neox'");
  expect_fail(BREAK_NO_LAYERS_KEY, "llama.block_count");
  expect_fail(BREAK_MISSING_TENSOR, "blk.0.ffn_up.weight");
  expect_fail(BREAK_SHAPE, "blk.0.attn_v.weight");
  expect_fail(BREAK_TYPE, "blk.0.ffn_gate.weight");
  expect_fail(BREAK_PARTIAL_ROPE, "rope.dimension_count");
  expect_fail(BREAK_YARN, "'yarn'");
  expect_fail(BREAK_HEADS, "head_count_kv");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reference_models_load_from_gguf_exactly),
      cmocka_unit_test(quantized_gguf_equals_load_time_quantization),
      cmocka_unit_test(repacked_weights_are_the_same_model),
      cmocka_unit_test(malformed_models_are_named),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
