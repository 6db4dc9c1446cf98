/* test_gguf.c - GGUF export for llama.cpp: the container round-trips every
 * metadata type and tensor; corrupt files are refused without a crash; every
 * reference model and LoRA adapter exports with llama.cpp's names, shapes,
 * metadata and values, checked against the Hugging Face / PEFT safetensors
 * they came from (the q/k row permutation of the llama architecture
 * undone); tokenizers export their vocabulary, merges and pre-tokenizer as
 * tokenizer.json has them; ReFT adapters and architectures llama.cpp cannot
 * express are refused with a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/adapter.h"
#include "model/gguf_export.h"
#include "model/llama.h"
#include "testutil.h"
#include "text/tokenizer.h"

/* ---- the container ------------------------------------------------------------ */

static int fill_ramp(void *ctx, void *dst, size_t nbytes, preft_error *err) {
  (void)err;
  float base = *(const float *)ctx;
  for (size_t i = 0; i < nbytes / 4; i++) ((float *)dst)[i] = base + (float)i;
  return 0;
}

static void write_sample(const char *path, uint32_t alignment) {
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  preft_gguf_set_str(&w, "general.architecture", "llama");
  if (alignment != PREFT_GGUF_DEFAULT_ALIGNMENT) preft_gguf_set_u32(&w, "general.alignment", alignment);
  preft_gguf_set_u32(&w, "test.u32", 4000000000u);
  preft_gguf_set_i32(&w, "test.i32", -7);
  preft_gguf_set_f32(&w, "test.f32", 0.25f);
  preft_gguf_set_bool(&w, "test.bool", true);
  const char *strs[] = {"a", "", "Ġhello wörld"};
  preft_gguf_set_arr_str(&w, "test.strs", strs, 3);
  int32_t ints[] = {1, -2, 3};
  preft_gguf_set_arr_i32(&w, "test.i32s", ints, 3);
  float fl[] = {1.5f, -2.5f};
  preft_gguf_set_arr_f32(&w, "test.f32s", fl, 2);
  preft_gguf_set_arr_str(&w, "test.empty", NULL, 0);
  static float vec[5] = {1, 2, 3, 4, 5};
  static uint16_t half[6] = {0x3c00, 0x4000, 0x4200, 0xbc00, 0, 0x3800}; /* 1 2 3 -1 0 .5 */
  static float base = 100;
  preft_error err;
  int64_t s1[1] = {5}, s2[2] = {2, 3}, s3[3] = {2, 2, 7};
  assert_int_equal(preft_gguf_add_tensor(&w, "vec", PREFT_GGML_F32, 1, s1, vec, NULL, NULL, &err), 0);
  assert_int_equal(preft_gguf_add_tensor(&w, "half", PREFT_GGML_F16, 2, s2, half, NULL, NULL, &err), 0);
  assert_int_equal(preft_gguf_add_tensor(&w, "ramp", PREFT_GGML_F32, 3, s3, NULL, fill_ramp, &base, &err), 0);
  assert_int_equal(preft_gguf_write(&w, path, &err), 0);
  preft_gguf_writer_free(&w);
}

static void container_round_trips_metadata_and_tensors(void **state) {
  (void)state;
  uint32_t aligns[] = {32, 64, 1};
  for (int k = 0; k < 3; k++) {
    char *path = test_tmp_file("sample.gguf");
    write_sample(path, aligns[k]);
    preft_gguf_file f;
    preft_error err;
    assert_int_equal(preft_gguf_open(&f, path, &err), 0);
    assert_int_equal(f.version, 3);
    assert_int_equal(f.alignment, aligns[k]);
    assert_int_equal(f.data_offset % aligns[k], 0);
    const char *s;
    uint32_t u;
    float fv;
    bool b;
    assert_int_equal(preft_gguf_get_str(&f, "general.architecture", &s, &err), 0);
    assert_string_equal(s, "llama");
    assert_int_equal(preft_gguf_get_u32(&f, "test.u32", &u, &err), 0);
    assert_true(u == 4000000000u);
    assert_int_equal(preft_gguf_find_kv(&f, "test.i32")->v.i, -7);
    assert_int_equal(preft_gguf_get_f32(&f, "test.f32", &fv, &err), 0);
    assert_true(fv == 0.25f);
    assert_int_equal(preft_gguf_get_bool(&f, "test.bool", &b, &err), 0);
    assert_true(b);
    const preft_gguf_kv *kv = preft_gguf_find_kv(&f, "test.strs");
    assert_int_equal(kv->arr_type, PREFT_GGUF_STRING);
    assert_int_equal(kv->n, 3);
    assert_string_equal(kv->strs[0], "a");
    assert_string_equal(kv->strs[1], "");
    assert_string_equal(kv->strs[2], "Ġhello wörld");
    kv = preft_gguf_find_kv(&f, "test.i32s");
    int32_t iv[3];
    memcpy(iv, kv->arr, sizeof iv);
    assert_true(iv[0] == 1 && iv[1] == -2 && iv[2] == 3);
    kv = preft_gguf_find_kv(&f, "test.f32s");
    float fa[2];
    memcpy(fa, kv->arr, sizeof fa);
    assert_true(fa[0] == 1.5f && fa[1] == -2.5f);
    assert_int_equal(preft_gguf_find_kv(&f, "test.empty")->n, 0);
    /* a wrong-type lookup names the key */
    assert_int_equal(preft_gguf_get_u32(&f, "test.f32", &u, &err), -1);
    assert_non_null(strstr(err.msg, "test.f32"));
    assert_int_equal(f.n_tensors, 3);
    const preft_gguf_tensor *t = preft_gguf_find_tensor(&f, "vec");
    assert_int_equal(t->ndim, 1);
    for (int i = 0; i < 5; i++) assert_true(preft_gguf_tensor_get(t, (size_t)i) == (float)(i + 1));
    t = preft_gguf_find_tensor(&f, "half");
    assert_int_equal(t->type, PREFT_GGML_F16);
    assert_true(t->shape[0] == 2 && t->shape[1] == 3 && t->ne[0] == 3 && t->ne[1] == 2);
    float want[6] = {1, 2, 3, -1, 0, 0.5f};
    for (int i = 0; i < 6; i++) assert_true(preft_gguf_tensor_get(t, (size_t)i) == want[i]);
    t = preft_gguf_find_tensor(&f, "ramp");
    assert_true(t->ne[0] == 7 && t->ne[1] == 2 && t->ne[2] == 2);
    assert_int_equal(t->offset % aligns[k], 0);
    for (int i = 0; i < 28; i++) assert_true(preft_gguf_tensor_get(t, (size_t)i) == 100.0f + (float)i);
    preft_gguf_close(&f);
    test_remove_tmp_file(path);
  }
}

static void writer_refuses_bad_names_and_duplicate_keys(void **state) {
  (void)state;
  preft_gguf_writer w;
  preft_error err;
  float v = 0;
  int64_t one = 1, zero = 0;
  preft_gguf_writer_init(&w);
  char longname[80];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(preft_gguf_add_tensor(&w, longname, PREFT_GGML_F32, 1, &one, &v, NULL, NULL, &err), -1);
  assert_int_equal(preft_gguf_add_tensor(&w, "", PREFT_GGML_F32, 1, &one, &v, NULL, NULL, &err), -1);
  assert_int_equal(preft_gguf_add_tensor(&w, "z", PREFT_GGML_F32, 1, &zero, &v, NULL, NULL, &err), -1);
  assert_int_equal(preft_gguf_add_tensor(&w, "t", (preft_ggml_type)2, 1, &one, &v, NULL, NULL, &err), -1);
  assert_int_equal(preft_gguf_add_tensor(&w, "t", PREFT_GGML_F32, 1, &one, &v, NULL, NULL, &err), 0);
  assert_int_equal(preft_gguf_add_tensor(&w, "t", PREFT_GGML_F32, 1, &one, &v, NULL, NULL, &err), -1);
  preft_gguf_set_u32(&w, "k", 1);
  preft_gguf_set_str(&w, "k", "again");
  char *path = test_tmp_file("dup.gguf");
  assert_int_equal(preft_gguf_write(&w, path, &err), -1);
  assert_non_null(strstr(err.msg, "'k'"));
  assert_int_equal(access(path, F_OK), -1); /* nothing written */
  preft_gguf_writer_free(&w);
  test_remove_tmp_file(path);
}

/* Every truncation and a sweep of corrupted bytes either opens a file whose
 * tensors lie inside it or fails with a message; never crashes (ASan). */
static void reader_refuses_corrupt_files(void **state) {
  (void)state;
  char *path = test_tmp_file("good.gguf");
  write_sample(path, 32);
  size_t n;
  uint8_t *good = test_read_all(path, &n);
  assert_non_null(good);
  char *bad = test_tmp_file("bad.gguf");
  preft_gguf_file f;
  preft_error err;
  /* a file cut anywhere before the end of its last tensor's data is refused
   * (only the final tensor's zero padding may be missing) */
  preft_gguf_file f0;
  assert_int_equal(preft_gguf_open(&f0, path, &err), 0);
  const preft_gguf_tensor *last = &f0.tensors[f0.n_tensors - 1];
  size_t end = (size_t)((const uint8_t *)last->data - f0.map.data) + last->nbytes;
  preft_gguf_close(&f0);
  for (size_t len = 0; len < end; len++) {
    FILE *fp = fopen(bad, "wb");
    fwrite(good, 1, len, fp);
    fclose(fp);
    assert_int_equal(preft_gguf_open(&f, bad, &err), -1);
    assert_true(strlen(err.msg) > 0);
  }
  uint8_t *copy = malloc(n);
  for (size_t at = 0; at < n; at++) {
    for (int flip = 0; flip < 2; flip++) {
      memcpy(copy, good, n);
      copy[at] = flip ? 0xff : (uint8_t)(copy[at] ^ 0x80);
      FILE *fp = fopen(bad, "wb");
      fwrite(copy, 1, n, fp);
      fclose(fp);
      if (preft_gguf_open(&f, bad, &err) == 0) {
        for (int64_t i = 0; i < f.n_tensors; i++) {
          const preft_gguf_tensor *t = &f.tensors[i];
          assert_true((const uint8_t *)t->data + t->nbytes <= f.map.data + f.map.size);
        }
        preft_gguf_close(&f);
      }
    }
  }
  /* specific messages */
  memcpy(copy, good, n);
  copy[0] = 'X';
  FILE *fp = fopen(bad, "wb");
  fwrite(copy, 1, n, fp);
  fclose(fp);
  assert_int_equal(preft_gguf_open(&f, bad, &err), -1);
  assert_non_null(strstr(err.msg, "not a GGUF file"));
  memcpy(copy, good, n);
  copy[4] = 9;
  fp = fopen(bad, "wb");
  fwrite(copy, 1, n, fp);
  fclose(fp);
  assert_int_equal(preft_gguf_open(&f, bad, &err), -1);
  assert_non_null(strstr(err.msg, "version 9"));
  free(copy);
  free(good);
  test_remove_tmp_file(bad);
  test_remove_tmp_file(path);
}

/* ---- models ------------------------------------------------------------------------ */

/* The GGUF tensor must equal the HF one (row src_row(r) of it when
 * permute_dh > 0); exact unless tol > 0 (relative to the value). */
static void expect_same(const preft_gguf_file *g, const char *gname, const preft_st_set *st,
                        const char *hname, int permute_dh, uint32_t want_type, double tol) {
  const preft_gguf_tensor *t = preft_gguf_find_tensor(g, gname);
  const preft_st_tensor *h = preft_st_find(st, hname);
  if (!t || !h)
    fail_msg("tensor %s (from %s) missing: gguf %p, safetensors %p", gname, hname, (void *)t, (void *)h);
  if (t->ndim != h->ndim) fail_msg("%s: %d dims, HF %s has %d", gname, t->ndim, hname, h->ndim);
  for (int d = 0; d < h->ndim; d++)
    if (t->shape[d] != h->shape[d])
      fail_msg("%s: dim %d is %lld, HF has %lld", gname, d, (long long)t->shape[d], (long long)h->shape[d]);
  if (t->type != want_type)
    fail_msg("%s: type %s, expected %s", gname, preft_ggml_type_name(t->type),
             preft_ggml_type_name(want_type));
  size_t cols = h->ndim == 2 ? (size_t)h->shape[1] : 1, rows = (size_t)h->shape[0];
  for (size_t r = 0; r < rows; r++) {
    size_t sr = permute_dh ? (size_t)preft_gguf_rope_src_row((int)r, permute_dh) : r;
    for (size_t c = 0; c < cols; c++) {
      float got = preft_gguf_tensor_get(t, r * cols + c);
      float want = preft_load_elem(h->data, h->dtype, sr * cols + c);
      /* (narrowed values: relative rounding, or half the F16 subnormal step) */
      if (tol == 0 ? got != want : fabs(got - want) > tol * fabs(want) + 0x1p-25)
        fail_msg("%s[%zu,%zu] = %g, HF %s[%zu,%zu] = %g", gname, r, c, got, hname, sr, c, want);
    }
  }
}

static uint32_t ggml_of(preft_dtype d) { return d == PREFT_F32 ? 0 : d == PREFT_F16 ? 1 : 30; }

static void expect_u32(const preft_gguf_file *g, const char *arch, const char *suffix, uint32_t want) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  uint32_t v;
  preft_error err;
  if (preft_gguf_get_u32(g, key, &v, &err) != 0) fail_msg("%s", err.msg);
  if (v != want) fail_msg("%s = %u, expected %u", key, v, want);
}

static void expect_f32(const preft_gguf_file *g, const char *arch, const char *suffix, double want) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  float v;
  preft_error err;
  if (preft_gguf_get_f32(g, key, &v, &err) != 0) fail_msg("%s", err.msg);
  if (v != (float)want) fail_msg("%s = %g, expected %g", key, v, want);
}

/* Exports one reference model and checks metadata and every tensor against
 * its safetensors. outtype -1 (as stored: exact) or F32 (exact widening). */
static void check_model(const char *name, int outtype) {
  char rel[128];
  snprintf(rel, sizeof rel, "models/%s", name);
  char *dir = test_data_path(rel);
  preft_model *m;
  preft_error err;
  if (preft_model_load(&m, dir, &err) != 0) fail_msg("%s", err.msg);
  preft_st_set st = {0};
  assert_int_equal(preft_st_open_dir(&st, dir, "model", &err), 0);
  char *path = test_tmp_file("model.gguf");
  preft_gguf_export_opts o = {.outtype = outtype, .name = name};
  if (preft_gguf_export_model(m, NULL, &o, path, &err) != 0) fail_msg("%s: %s", name, err.msg);
  preft_gguf_file g;
  if (preft_gguf_open(&g, path, &err) != 0) fail_msg("%s", err.msg);

  const preft_model_config *c = &m->cfg;
  const char *arch = c->arch == PREFT_ARCH_QWEN2 ? "qwen2" : "llama";
  const char *s;
  assert_int_equal(preft_gguf_get_str(&g, "general.architecture", &s, &err), 0);
  assert_string_equal(s, arch);
  assert_int_equal(preft_gguf_get_str(&g, "general.name", &s, &err), 0);
  assert_string_equal(s, name);
  assert_int_equal(preft_gguf_get_str(&g, "tokenizer.ggml.model", &s, &err), 0);
  assert_string_equal(s, "none");
  expect_u32(&g, arch, "vocab_size", (uint32_t)c->vocab);
  expect_u32(&g, arch, "context_length", (uint32_t)c->max_pos);
  expect_u32(&g, arch, "embedding_length", (uint32_t)c->dim);
  expect_u32(&g, arch, "block_count", (uint32_t)c->n_layers);
  expect_u32(&g, arch, "feed_forward_length", (uint32_t)c->ffn);
  expect_u32(&g, arch, "attention.head_count", (uint32_t)c->n_heads);
  expect_u32(&g, arch, "attention.head_count_kv", (uint32_t)c->n_kv_heads);
  expect_u32(&g, arch, "rope.dimension_count", (uint32_t)c->head_dim);
  expect_f32(&g, arch, "attention.layer_norm_rms_epsilon", c->norm_eps);
  expect_f32(&g, arch, "rope.freq_base", c->rope_theta);
  char key[128];
  snprintf(key, sizeof key, "%s.attention.key_length", arch);
  if (c->head_dim * c->n_heads != c->dim)
    expect_u32(&g, arch, "attention.key_length", (uint32_t)c->head_dim);
  else
    assert_null(preft_gguf_find_kv(&g, key));

  preft_dtype stored = m->layers[0].wq.dtype;
  uint32_t mat = outtype < 0 ? ggml_of(stored) : ggml_of((preft_dtype)outtype);
  uint32_t ftype;
  assert_int_equal(preft_gguf_get_u32(&g, "general.file_type", &ftype, &err), 0);
  assert_int_equal(ftype, mat == 0 ? 0 : mat == 1 ? 1 : 32);
  int pdh = c->arch == PREFT_ARCH_QWEN2 ? 0 : c->head_dim;
  int expected = 2 + (c->tie_embeddings ? 0 : 1);
  expect_same(&g, "token_embd.weight", &st, "model.embed_tokens.weight", 0, mat, 0);
  expect_same(&g, "output_norm.weight", &st, "model.norm.weight", 0, 0, 0);
  if (!c->tie_embeddings)
    expect_same(&g, "output.weight", &st, "lm_head.weight", 0, mat, 0);
  else
    assert_null(preft_gguf_find_tensor(&g, "output.weight"));
  static const struct {
    const char *g, *h;
    int permute, vector;
  } map[] = {
      {"attn_norm.weight", "input_layernorm.weight", 0, 1},
      {"attn_q.weight", "self_attn.q_proj.weight", 1, 0},
      {"attn_k.weight", "self_attn.k_proj.weight", 1, 0},
      {"attn_v.weight", "self_attn.v_proj.weight", 0, 0},
      {"attn_output.weight", "self_attn.o_proj.weight", 0, 0},
      {"attn_q.bias", "self_attn.q_proj.bias", 1, 1},
      {"attn_k.bias", "self_attn.k_proj.bias", 1, 1},
      {"attn_v.bias", "self_attn.v_proj.bias", 0, 1},
      {"attn_output.bias", "self_attn.o_proj.bias", 0, 1},
      {"ffn_norm.weight", "post_attention_layernorm.weight", 0, 1},
      {"ffn_gate.weight", "mlp.gate_proj.weight", 0, 0},
      {"ffn_up.weight", "mlp.up_proj.weight", 0, 0},
      {"ffn_down.weight", "mlp.down_proj.weight", 0, 0},
  };
  for (int l = 0; l < c->n_layers; l++) {
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
      char gname[96], hname[160];
      snprintf(gname, sizeof gname, "blk.%d.%s", l, map[k].g);
      snprintf(hname, sizeof hname, "model.layers.%d.%s", l, map[k].h);
      if (!preft_st_find(&st, hname)) {
        if (preft_gguf_find_tensor(&g, gname))
          fail_msg("%s written but %s is not in the checkpoint", gname, hname);
        continue;
      }
      expect_same(&g, gname, &st, hname, map[k].permute ? pdh : 0, map[k].vector ? 0 : mat, 0);
      expected++;
    }
  }
  if (c->rope_type == PREFT_ROPE_LLAMA3) {
    /* llama.cpp divides the unscaled frequency by rope_freqs[i]; the llama3
     * rule (independent of the exporter): 1 above the high-frequency
     * wavelength, factor below the low one, smooth in between. */
    const preft_gguf_tensor *t = preft_gguf_find_tensor(&g, "rope_freqs.weight");
    assert_non_null(t);
    assert_int_equal(t->type, PREFT_GGML_F32);
    assert_int_equal(t->ne[0], c->head_dim / 2);
    for (int i = 0; i < c->head_dim / 2; i++) {
      double freq = pow(c->rope_theta, -2.0 * i / c->head_dim), wavelen = 2 * M_PI / freq;
      double lo = c->rope_original_max_pos / c->rope_low_freq_factor;
      double hi = c->rope_original_max_pos / c->rope_high_freq_factor, want;
      if (wavelen < hi)
        want = 1;
      else if (wavelen > lo)
        want = c->rope_factor;
      else {
        double smooth = (c->rope_original_max_pos / wavelen - c->rope_low_freq_factor) /
                        (c->rope_high_freq_factor - c->rope_low_freq_factor);
        want = 1 / ((1 - smooth) / c->rope_factor + smooth);
      }
      float got = preft_gguf_tensor_get(t, (size_t)i);
      if (fabs(got - want) > 1e-6 * want) fail_msg("rope_freqs[%d] = %.9g, expected %.9g", i, got, want);
    }
    expected++;
  } else {
    assert_null(preft_gguf_find_tensor(&g, "rope_freqs.weight"));
  }
  /* nothing else: llama.cpp refuses files with tensors it does not use */
  assert_int_equal(g.n_tensors, expected);
  preft_gguf_close(&g);
  test_remove_tmp_file(path);
  preft_st_close(&st);
  preft_model_free(m);
  free(dir);
}

static const char *const MODELS[] = {"llama-gqa-rope3", "llama-headdim-f16", "mistral-long",
                                     "qwen2-bias-tied-bf16"};

static void every_reference_model_exports_exactly(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
    check_model(MODELS[i], -1);
    check_model(MODELS[i], PREFT_F32);
  }
}

/* Narrowing to BF16/F16 rounds each value once (relative error < 2^-8 / 2^-11). */
static void outtype_narrows_matrices_only(void **state) {
  (void)state;
  char *dir = test_data_path("models/llama-gqa-rope3");
  preft_model *m;
  preft_error err;
  assert_int_equal(preft_model_load(&m, dir, &err), 0);
  preft_st_set st = {0};
  assert_int_equal(preft_st_open_dir(&st, dir, "model", &err), 0);
  preft_dtype types[2] = {PREFT_BF16, PREFT_F16};
  double tols[2] = {1.0 / 256, 1.0 / 2048};
  for (int k = 0; k < 2; k++) {
    char *path = test_tmp_file("narrow.gguf");
    preft_gguf_export_opts o = {.outtype = (int)types[k]};
    assert_int_equal(preft_gguf_export_model(m, NULL, &o, path, &err), 0);
    preft_gguf_file g;
    assert_int_equal(preft_gguf_open(&g, path, &err), 0);
    uint32_t mt = ggml_of(types[k]);
    expect_same(&g, "blk.1.attn_k.weight", &st, "model.layers.1.self_attn.k_proj.weight", m->cfg.head_dim, mt,
                tols[k]);
    expect_same(&g, "blk.0.ffn_down.weight", &st, "model.layers.0.mlp.down_proj.weight", 0, mt, tols[k]);
    expect_same(&g, "blk.0.attn_norm.weight", &st, "model.layers.0.input_layernorm.weight", 0, 0, 0);
    preft_gguf_close(&g);
    test_remove_tmp_file(path);
  }
  preft_st_close(&st);
  preft_model_free(m);
  free(dir);
}

static void qwen2_without_square_attention_is_refused(void **state) {
  (void)state;
  preft_model_config cfg = {.arch = PREFT_ARCH_QWEN2,
                            .vocab = 64,
                            .dim = 32,
                            .ffn = 48,
                            .n_layers = 1,
                            .n_heads = 4,
                            .n_kv_heads = 2,
                            .head_dim = 16,
                            .max_pos = 128,
                            .norm_eps = 1e-6f,
                            .rope_theta = 10000,
                            .tie_embeddings = true,
                            .bos_id = -1};
  preft_model *m;
  preft_error err;
  assert_int_equal(preft_model_init_random(&m, &cfg, PREFT_F32, 1, &err), 0);
  char *path = test_tmp_file("q.gguf");
  assert_int_equal(preft_gguf_export_model(m, NULL, NULL, path, &err), -1);
  assert_non_null(strstr(err.msg, "qwen2"));
  assert_int_equal(access(path, F_OK), -1);
  test_remove_tmp_file(path);
  preft_model_free(m);
}

/* ---- LoRA adapters ---------------------------------------------------------------- */

static const char *const PEFT_MODULE[PREFT_N_MODULES] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
static const char *const GGUF_MODULE[PREFT_N_MODULES] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                         "ffn_gate", "ffn_up", "ffn_down"};

/* lora_a equals PEFT's lora_A; alpha/R * lora_b equals PEFT's scale *
 * lora_B with q/k rows permuted on the llama architecture. */
static void check_lora(const char *adapter_name, const char *base_name) {
  char rel[128];
  snprintf(rel, sizeof rel, "adapters/%s", adapter_name);
  char *adir = test_data_path(rel);
  snprintf(rel, sizeof rel, "models/%s", base_name);
  char *mdir = test_data_path(rel);
  preft_model_config cfg;
  preft_error err;
  assert_int_equal(preft_config_load(&cfg, mdir, &err), 0);
  preft_adapter *a;
  if (preft_adapter_load(&a, adir, adapter_name, &cfg, &err) != 0) fail_msg("%s", err.msg);
  preft_st_set st = {0};
  char *st_path = preft_path_join(adir, "adapter_model.safetensors");
  assert_int_equal(preft_st_add_file(&st, st_path, &err), 0);
  char *path = test_tmp_file("lora.gguf");
  if (preft_gguf_export_lora(a, &cfg, NULL, path, &err) != 0) fail_msg("%s: %s", adapter_name, err.msg);
  preft_gguf_file g;
  if (preft_gguf_open(&g, path, &err) != 0) fail_msg("%s", err.msg);
  const char *s;
  assert_int_equal(preft_gguf_get_str(&g, "general.type", &s, &err), 0);
  assert_string_equal(s, "adapter");
  assert_int_equal(preft_gguf_get_str(&g, "adapter.type", &s, &err), 0);
  assert_string_equal(s, "lora");
  assert_int_equal(preft_gguf_get_str(&g, "general.architecture", &s, &err), 0);
  assert_string_equal(s, preft_gguf_arch_name(cfg.arch));
  float alpha;
  assert_int_equal(preft_gguf_get_f32(&g, "adapter.lora.alpha", &alpha, &err), 0);
  int pdh = preft_gguf_arch_permutes_qk(cfg.arch) ? cfg.head_dim : 0, pairs = 0;
  for (int l = 0; l < cfg.n_layers; l++) {
    for (int mo = 0; mo < PREFT_N_MODULES; mo++) {
      const preft_lora_module *lm = &a->lora[l * PREFT_N_MODULES + mo];
      char ga[96], gb[96], ha[160], hb[160];
      snprintf(ga, sizeof ga, "blk.%d.%s.weight.lora_a", l, GGUF_MODULE[mo]);
      snprintf(gb, sizeof gb, "blk.%d.%s.weight.lora_b", l, GGUF_MODULE[mo]);
      snprintf(ha, sizeof ha, "base_model.model.model.layers.%d.%s.lora_A.weight", l, PEFT_MODULE[mo]);
      snprintf(hb, sizeof hb, "base_model.model.model.layers.%d.%s.lora_B.weight", l, PEFT_MODULE[mo]);
      const preft_gguf_tensor *ta = preft_gguf_find_tensor(&g, ga), *tb = preft_gguf_find_tensor(&g, gb);
      if (lm->rank == 0) {
        assert_null(ta);
        assert_null(tb);
        continue;
      }
      pairs++;
      expect_same(&g, ga, &st, ha, 0, ggml_of(lm->a_dtype), 0);
      const preft_st_tensor *hB = preft_st_find(&st, hb);
      assert_non_null(tb);
      assert_true(tb->shape[0] == hB->shape[0] && tb->shape[1] == hB->shape[1] && tb->shape[1] == lm->rank);
      /* llama.cpp's scale is alpha / R with R = lora_b's inner size */
      double gscale = (double)alpha / (double)tb->shape[1];
      int perm = (mo == PREFT_MOD_Q || mo == PREFT_MOD_K) ? pdh : 0;
      for (int64_t r = 0; r < hB->shape[0]; r++) {
        int64_t sr = perm ? preft_gguf_rope_src_row((int)r, perm) : r;
        for (int64_t c = 0; c < hB->shape[1]; c++) {
          double got = gscale * preft_gguf_tensor_get(tb, (size_t)(r * hB->shape[1] + c));
          double want = lm->scale * preft_load_elem(hB->data, hB->dtype, (size_t)(sr * hB->shape[1] + c));
          if (fabs(got - want) > 1e-6 * fabs(want) + 1e-30)
            fail_msg("%s: %s[%lld,%lld] scaled %.9g, PEFT %.9g", adapter_name, gb, (long long)r, (long long)c,
                     got, want);
        }
      }
    }
  }
  assert_int_equal(g.n_tensors, 2 * pairs);
  preft_gguf_close(&g);
  test_remove_tmp_file(path);
  preft_st_close(&st);
  free(st_path);
  preft_adapter_free(a);
  free(adir);
  free(mdir);
}

static void every_reference_lora_exports_with_its_scales(void **state) {
  (void)state;
  check_lora("lora-qv-r4", "llama-gqa-rope3");
  check_lora("lora-all7-rslora-patterns", "llama-gqa-rope3"); /* rsLoRA, rank and alpha patterns: folded */
  check_lora("lora-layers-list-f16", "llama-headdim-f16");
  check_lora("lora-regex-layers-f16", "llama-headdim-f16");
  check_lora("lora-qwen2-bf16", "qwen2-bias-tied-bf16");
}

static void reft_adapters_are_refused(void **state) {
  (void)state;
  char *adir = test_data_path("adapters/loreft-f3l3"), *mdir = test_data_path("models/llama-gqa-rope3");
  preft_model_config cfg;
  preft_error err;
  assert_int_equal(preft_config_load(&cfg, mdir, &err), 0);
  preft_adapter *a;
  assert_int_equal(preft_adapter_load(&a, adir, "loreft", &cfg, &err), 0);
  char *path = test_tmp_file("reft.gguf");
  assert_int_equal(preft_gguf_export_lora(a, &cfg, NULL, path, &err), -1);
  assert_non_null(strstr(err.msg, "llama.cpp has no ReFT"));
  assert_int_equal(access(path, F_OK), -1);
  test_remove_tmp_file(path);
  preft_adapter_free(a);
  free(adir);
  free(mdir);
}

/* ---- tokenizers ------------------------------------------------------------------- */

/* Checks the exported vocabulary against tokenizer.json parsed here. */
static void check_tokenizer(const char *tok_dir, int vocab, const char *want_pre, int want_eos, bool want_bos,
                            bool want_template) {
  preft_tokenizer *tok;
  preft_error err;
  if (preft_tokenizer_load(&tok, tok_dir, &err) != 0) fail_msg("%s", err.msg);
  preft_model_config cfg = {.arch = PREFT_ARCH_LLAMA,
                            .vocab = vocab,
                            .dim = 16,
                            .ffn = 16,
                            .n_layers = 1,
                            .n_heads = 2,
                            .n_kv_heads = 1,
                            .head_dim = 8,
                            .max_pos = 64,
                            .norm_eps = 1e-5f,
                            .rope_theta = 10000,
                            .tie_embeddings = true,
                            .bos_id = -1};
  preft_model *m;
  assert_int_equal(preft_model_init_random(&m, &cfg, PREFT_BF16, 3, &err), 0);
  char *path = test_tmp_file("tok.gguf");
  if (preft_gguf_export_model(m, tok, NULL, path, &err) != 0) fail_msg("%s", err.msg);
  preft_gguf_file g;
  assert_int_equal(preft_gguf_open(&g, path, &err), 0);

  char *json_path = preft_path_join(tok_dir, "tokenizer.json");
  size_t n;
  char *text = test_read_all(json_path, &n);
  assert_non_null(text);
  cJSON *root = cJSON_ParseWithLength(text, n);
  assert_non_null(root);
  const cJSON *model = cJSON_GetObjectItem(root, "model"), *e;
  const char *s;
  assert_int_equal(preft_gguf_get_str(&g, "tokenizer.ggml.model", &s, &err), 0);
  assert_string_equal(s, "gpt2");
  assert_int_equal(preft_gguf_get_str(&g, "tokenizer.ggml.pre", &s, &err), 0);
  assert_string_equal(s, want_pre);
  const preft_gguf_kv *toks = preft_gguf_find_kv(&g, "tokenizer.ggml.tokens");
  const preft_gguf_kv *types = preft_gguf_find_kv(&g, "tokenizer.ggml.token_type");
  assert_int_equal(toks->n, vocab);
  assert_int_equal(types->n, vocab);
  int32_t *ty = malloc(sizeof(int32_t) * (size_t)vocab);
  memcpy(ty, types->arr, sizeof(int32_t) * (size_t)vocab);
  char *seen = calloc((size_t)vocab, 1);
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "added_tokens")) {
    int id = cJSON_GetObjectItem(e, "id")->valueint;
    assert_string_equal(toks->strs[id], cJSON_GetObjectItem(e, "content")->valuestring);
    bool special = cJSON_IsTrue(cJSON_GetObjectItem(e, "special"));
    if (special && ty[id] != 3) fail_msg("special token %d has type %d, expected CONTROL", id, ty[id]);
    if (!special && ty[id] != 3 && ty[id] != 4) fail_msg("added token %d has type %d", id, ty[id]);
    seen[id] = 2;
  }
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(model, "vocab")) {
    int id = e->valueint;
    if (strcmp(toks->strs[id], e->string))
      fail_msg("token %d is '%s', tokenizer.json has '%s'", id, toks->strs[id], e->string);
    if (seen[id] != 2 && ty[id] != 1)
      fail_msg("token %d '%s' has type %d, expected NORMAL", id, e->string, ty[id]);
    seen[id] = 1;
  }
  for (int i = 0; i < vocab; i++) {
    if (seen[i]) continue;
    char pad[32];
    snprintf(pad, sizeof pad, "[PAD%d]", i);
    assert_string_equal(toks->strs[i], pad);
    assert_int_equal(ty[i], 5);
  }
  const preft_gguf_kv *merges = preft_gguf_find_kv(&g, "tokenizer.ggml.merges");
  const cJSON *jm = cJSON_GetObjectItem(model, "merges");
  assert_int_equal(merges->n, cJSON_GetArraySize(jm));
  size_t k = 0;
  cJSON_ArrayForEach(e, jm) {
    char want[512];
    if (cJSON_IsString(e))
      snprintf(want, sizeof want, "%s", e->valuestring);
    else
      snprintf(want, sizeof want, "%s %s", cJSON_GetArrayItem(e, 0)->valuestring,
               cJSON_GetArrayItem(e, 1)->valuestring);
    if (strcmp(merges->strs[k], want))
      fail_msg("merge %zu is '%s', tokenizer.json has '%s'", k, merges->strs[k], want);
    k++;
  }
  uint32_t u;
  if (want_eos >= 0) {
    assert_int_equal(preft_gguf_get_u32(&g, "tokenizer.ggml.eos_token_id", &u, &err), 0);
    assert_int_equal(u, want_eos);
  }
  bool b;
  assert_int_equal(preft_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b, &err), 0);
  assert_int_equal(b, want_bos);
  assert_int_equal(preft_gguf_find_kv(&g, "tokenizer.chat_template") != NULL, want_template);
  free(ty);
  free(seen);
  cJSON_Delete(root);
  free(text);
  free(json_path);
  preft_gguf_close(&g);
  test_remove_tmp_file(path);
  preft_model_free(m);
  preft_tokenizer_free(tok);
}

static void trained_tokenizer_exports_vocab_and_merges(void **state) {
  (void)state;
  char *dir = test_data_path("tokenizer/trained");
  check_tokenizer(dir, 1030, "llama-bpe", -1, false, false);
  /* a vocabulary smaller than the tokenizer's is refused */
  preft_tokenizer *tok;
  preft_error err;
  assert_int_equal(preft_tokenizer_load(&tok, dir, &err), 0);
  preft_model_config cfg = {.arch = PREFT_ARCH_LLAMA,
                            .vocab = 100,
                            .dim = 16,
                            .ffn = 16,
                            .n_layers = 1,
                            .n_heads = 2,
                            .n_kv_heads = 1,
                            .head_dim = 8,
                            .max_pos = 64,
                            .norm_eps = 1e-5f,
                            .rope_theta = 10000,
                            .tie_embeddings = true,
                            .bos_id = -1};
  preft_model *m;
  assert_int_equal(preft_model_init_random(&m, &cfg, PREFT_F32, 3, &err), 0);
  char *path = test_tmp_file("small.gguf");
  assert_int_equal(preft_gguf_export_model(m, tok, NULL, path, &err), -1);
  assert_non_null(strstr(err.msg, "vocabulary"));
  test_remove_tmp_file(path);
  preft_model_free(m);
  preft_tokenizer_free(tok);
  free(dir);
}

/* Real tokenizers, when scripts/fetch-test-data.sh has fetched them. */
static void real_tokenizers_export(void **state) {
  (void)state;
  char *q = test_data_path(".cache/qwen3/tokenizer.json"),
       *l = test_data_path(".cache/llama3_1/tokenizer.json");
  if (access(q, R_OK) == 0) {
    char *dir = test_data_path(".cache/qwen3");
    check_tokenizer(dir, 151936, "qwen2", 151645, false, true);
    free(dir);
  } else {
    fprintf(stderr, "skipped Qwen3 tokenizer: run scripts/fetch-test-data.sh\n");
  }
  if (access(l, R_OK) == 0) {
    char *dir = test_data_path(".cache/llama3_1");
    check_tokenizer(dir, 128256, "llama-bpe", -1, true, true);
    free(dir);
  } else {
    fprintf(stderr, "skipped Llama 3.1 tokenizer: run scripts/fetch-test-data.sh\n");
  }
  free(q);
  free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(container_round_trips_metadata_and_tensors),
      cmocka_unit_test(writer_refuses_bad_names_and_duplicate_keys),
      cmocka_unit_test(reader_refuses_corrupt_files),
      cmocka_unit_test(every_reference_model_exports_exactly),
      cmocka_unit_test(outtype_narrows_matrices_only),
      cmocka_unit_test(qwen2_without_square_attention_is_refused),
      cmocka_unit_test(every_reference_lora_exports_with_its_scales),
      cmocka_unit_test(reft_adapters_are_refused),
      cmocka_unit_test(trained_tokenizer_exports_vocab_and_merges),
      cmocka_unit_test(real_tokenizers_export),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
