/* llama_load_gguf.c - a preft_model from a GGUF file as llama.cpp writes it
 * (architectures "llama", which Mistral checkpoints convert to as well, and
 * "qwen2"): the config from <arch>.* metadata, the weights from llama.cpp's
 * tensor names, the inverse of what gguf_export.c writes.
 *
 * Matrices point into the mapped file in their stored type (F32, F16, BF16
 * and the block-quantized types of tensor/dtype.h, which the GEMM reads
 * directly), except q and k of the "llama" architecture: llama.cpp stores
 * their rows permuted for its rotary layout (adjacent pairs), and they are
 * copied back into Hugging Face's order (halves) so that the forward pass,
 * the KV cache and LoRA adapters trained on the Hugging Face model apply
 * unchanged. The permutation moves whole rows, so quantized rows are moved
 * as bytes. Vectors (norms, biases) are copied to FP32.
 *
 * Llama 3 rope scaling is stored as the rope_freqs tensor (the factor each
 * frequency is divided by). When the factors are exactly those of the
 * llama3 rule with Meta's constants (low 1, high 4; the original context
 * 8192 or the one a factor between the regimes implies; any factor), the
 * config says so and the frequencies are computed as for the Hugging Face
 * model, bit for bit; otherwise they are taken from the tensor.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "model/gguf_export.h"
#include "model/llama.h"

/* The preft_dtype of a ggml tensor type, or -1 when preft has no kernels
 * for it. */
static int dtype_of(uint32_t g) {
  switch (g) {
    case PREFT_GGML_F32:
      return PREFT_F32;
    case PREFT_GGML_F16:
      return PREFT_F16;
    case PREFT_GGML_BF16:
      return PREFT_BF16;
    case PREFT_GGML_Q8_0:
      return PREFT_Q8_0;
    case PREFT_GGML_Q4_0:
      return PREFT_Q4_0;
    case PREFT_GGML_Q5_0:
      return PREFT_Q5_0;
    case PREFT_GGML_Q4_K:
      return PREFT_Q4_K;
    case PREFT_GGML_Q6_K:
      return PREFT_Q6_K;
    default:
      return -1;
  }
}

typedef struct loader {
  preft_model *m;
  preft_gguf_file *f;
  const char *arch;
  bool permute;
  uint8_t *owned; /* q/k rows in Hugging Face order, all layers */
  size_t owned_used, owned_cap;
} loader;

static const preft_gguf_tensor *find(loader *ld, const char *name, int64_t d0, int64_t d1, preft_error *err) {
  const preft_gguf_tensor *t = preft_gguf_find_tensor(ld->f, name);
  if (!t) return preft_fail(err, "%s: tensor '%s' is missing", ld->f->map.path, name), NULL;
  int nd = d1 > 0 ? 2 : 1;
  if (t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
    char got[96] = "[", want[64];
    for (int i = 0; i < t->ndim; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    strcat(got, "]");
    if (nd == 2)
      snprintf(want, sizeof want, "[%lld, %lld]", (long long)d0, (long long)d1);
    else
      snprintf(want, sizeof want, "[%lld]", (long long)d0);
    return preft_fail(err, "%s: tensor '%s' has shape %s (PyTorch order), expected %s", ld->f->map.path, name,
                      got, want),
           NULL;
  }
  return t;
}

/* A [rows, cols] matrix; permute_dh > 0: rows re-ordered per head of that
 * width from llama.cpp's rotary layout back to Hugging Face's. */
static int matrix(loader *ld, const char *name, int64_t rows, int64_t cols, int permute_dh, preft_weight *w,
                  preft_error *err) {
  const preft_gguf_tensor *t = find(ld, name, rows, cols, err);
  if (!t) return -1;
  int dt = dtype_of(t->type);
  if (dt < 0)
    return preft_fail(
        err,
        "%s: tensor '%s' has ggml type %s, which preft cannot compute with (F32, F16, BF16, Q8_0, "
        "Q4_0, Q5_0, Q4_K, Q6_K)",
        ld->f->map.path, name, preft_ggml_type_name(t->type));
  w->dtype = (preft_dtype)dt;
  if (permute_dh <= 0) {
    w->data = t->data;
    return 0;
  }
  size_t rb = preft_ggml_row_size(t->type, cols);
  PREFT_ASSERT(ld->owned_used + rb * (size_t)rows <= ld->owned_cap);
  uint8_t *dst = ld->owned + ld->owned_used;
  for (int64_t r = 0; r < rows; r++)
    memcpy(dst + (size_t)preft_gguf_rope_src_row((int)r, permute_dh) * rb,
           (const uint8_t *)t->data + (size_t)r * rb, rb);
  ld->owned_used += rb * (size_t)rows;
  w->data = dst;
  return 0;
}

/* A [n] vector copied to FP32 (permuted like a matrix's rows when
 * permute_dh > 0). */
static int vector(loader *ld, const char *name, int64_t n, int permute_dh, float **out, preft_error *err) {
  const preft_gguf_tensor *t = find(ld, name, n, 0, err);
  if (!t) return -1;
  if (t->type != PREFT_GGML_F32 && t->type != PREFT_GGML_F16 && t->type != PREFT_GGML_BF16)
    return preft_fail(err, "%s: tensor '%s' has ggml type %s; a vector must be F32, F16 or BF16",
                      ld->f->map.path, name, preft_ggml_type_name(t->type));
  float *v = preft_xmalloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    int64_t dst = permute_dh > 0 ? preft_gguf_rope_src_row((int)i, permute_dh) : i;
    v[dst] = preft_gguf_tensor_get(t, (size_t)i);
  }
  *out = v;
  return 0;
}

/* ---- config -------------------------------------------------------------------- */

static int arch_int(loader *ld, const char *suffix, int32_t dflt, int32_t *out, preft_error *err) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
  if (dflt >= 0 && !preft_gguf_find_kv(ld->f, key)) {
    *out = dflt;
    return 0;
  }
  return preft_gguf_get_int(ld->f, key, out, err);
}

static int arch_real(loader *ld, const char *suffix, double dflt, double *out, preft_error *err) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
  if (dflt >= 0 && !preft_gguf_find_kv(ld->f, key)) {
    *out = dflt;
    return 0;
  }
  return preft_gguf_get_real(ld->f, key, out, err);
}

static void push_eos(preft_model_config *c, const preft_gguf_file *f, const char *key) {
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, key);
  int32_t id;
  preft_error e;
  if (!kv || preft_gguf_get_int(f, key, &id, &e) != 0 || id >= c->vocab || c->n_eos >= PREFT_MAX_EOS) return;
  for (int i = 0; i < c->n_eos; i++)
    if (c->eos_ids[i] == id) return;
  c->eos_ids[c->n_eos++] = id;
}

static int read_config(loader *ld, preft_error *err) {
  preft_model_config *c = &ld->m->cfg;
  const char *path = ld->f->map.path;
  if (preft_gguf_get_str(ld->f, "general.architecture", &ld->arch, err)) return -1;
  if (!strcmp(ld->arch, "llama")) {
    c->arch = PREFT_ARCH_LLAMA;
  } else if (!strcmp(ld->arch, "qwen2")) {
    c->arch = PREFT_ARCH_QWEN2;
  } else {
    return preft_fail(err, "%s: general.architecture '%s' is not supported (llama, qwen2)", path, ld->arch);
  }
  ld->permute = c->arch == PREFT_ARCH_LLAMA;
  int32_t dim, ffn, layers, heads, kv_heads, kdim, vdim, ctx, rope_dims;
  double eps, theta;
  if (arch_int(ld, "embedding_length", -1, &dim, err) || arch_int(ld, "feed_forward_length", -1, &ffn, err) ||
      arch_int(ld, "block_count", -1, &layers, err) ||
      arch_int(ld, "attention.head_count", -1, &heads, err) ||
      arch_int(ld, "attention.head_count_kv", heads, &kv_heads, err) ||
      arch_int(ld, "context_length", -1, &ctx, err) ||
      arch_real(ld, "attention.layer_norm_rms_epsilon", -1, &eps, err) ||
      arch_real(ld, "rope.freq_base", 10000.0, &theta, err))
    return -1;
  if (dim <= 0 || ffn <= 0 || layers <= 0 || heads <= 0 || kv_heads <= 0 || ctx <= 0)
    return preft_fail(err,
                      "%s: %s.embedding_length, feed_forward_length, block_count, head counts and "
                      "context_length must be positive",
                      path, ld->arch);
  if ((int64_t)layers * 9 > ld->f->n_tensors)
    return preft_fail(err, "%s: %s.block_count is %d but the file has only %lld tensors", path, ld->arch,
                      layers, (long long)ld->f->n_tensors);
  if (heads % kv_heads)
    return preft_fail(err, "%s: %s.attention.head_count (%d) is not a multiple of head_count_kv (%d)", path,
                      ld->arch, heads, kv_heads);
  if (arch_int(ld, "attention.key_length", dim % heads ? -1 : dim / heads, &kdim, err) ||
      arch_int(ld, "attention.value_length", kdim, &vdim, err) ||
      arch_int(ld, "rope.dimension_count", kdim, &rope_dims, err))
    return -1;
  if (vdim != kdim || kdim <= 0 || kdim % 2)
    return preft_fail(err, "%s: %s.attention.key_length %d and value_length %d must be equal and even", path,
                      ld->arch, kdim, vdim);
  if (rope_dims != kdim)
    return preft_fail(err,
                      "%s: %s.rope.dimension_count %d: partial rotary embeddings (head width %d) are not "
                      "supported",
                      path, ld->arch, rope_dims, kdim);
  if (!(eps > 0) || !(theta > 0))
    return preft_fail(err, "%s: %s.attention.layer_norm_rms_epsilon and rope.freq_base must be positive",
                      path, ld->arch);
  c->dim = dim;
  c->ffn = ffn;
  c->n_layers = layers;
  c->n_heads = heads;
  c->n_kv_heads = kv_heads;
  c->head_dim = kdim;
  c->max_pos = ctx;
  c->norm_eps = (float)eps;
  c->rope_theta = theta;
  c->rope_type = PREFT_ROPE_DEFAULT;
  char key[128];
  snprintf(key, sizeof key, "%s.rope.scaling.type", ld->arch);
  const preft_gguf_kv *st = preft_gguf_find_kv(ld->f, key);
  if (st) {
    const char *type;
    if (preft_gguf_get_str(ld->f, key, &type, err)) return -1;
    if (!strcmp(type, "linear")) {
      double factor;
      if (arch_real(ld, "rope.scaling.factor", -1, &factor, err)) return -1;
      if (!(factor > 0))
        return preft_fail(err, "%s: %s.rope.scaling.factor must be positive", path, ld->arch);
      c->rope_type = PREFT_ROPE_LINEAR;
      c->rope_factor = factor;
    } else if (strcmp(type, "none") != 0) {
      return preft_fail(err, "%s: %s '%s' is not supported (none, linear; llama3 comes as rope_freqs)", path,
                        key, type);
    }
  }
  const preft_gguf_tensor *emb = preft_gguf_find_tensor(ld->f, "token_embd.weight");
  if (!emb || emb->ndim != 2)
    return preft_fail(err, "%s: tensor 'token_embd.weight' is %s", path, emb ? "not a matrix" : "missing");
  if (emb->shape[0] > INT32_MAX) return preft_fail(err, "%s: token_embd.weight has too many rows", path);
  c->vocab = (int)emb->shape[0];
  c->tie_embeddings = preft_gguf_find_tensor(ld->f, "output.weight") == NULL;
  c->qkv_bias = preft_gguf_find_tensor(ld->f, "blk.0.attn_q.bias") != NULL;
  c->o_bias = preft_gguf_find_tensor(ld->f, "blk.0.attn_output.bias") != NULL;
  c->sliding_window = 0;
  c->bos_id = -1;
  int32_t bos;
  preft_error e;
  if (preft_gguf_find_kv(ld->f, "tokenizer.ggml.bos_token_id") &&
      preft_gguf_get_int(ld->f, "tokenizer.ggml.bos_token_id", &bos, &e) == 0 && bos < c->vocab)
    c->bos_id = bos;
  push_eos(c, ld->f, "tokenizer.ggml.eos_token_id");
  push_eos(c, ld->f, "tokenizer.ggml.eot_token_id");
  push_eos(c, ld->f, "tokenizer.ggml.eom_token_id");
  int dt = dtype_of(emb->type);
  c->torch_dtype = dt == PREFT_F16 || dt == PREFT_BF16 ? (preft_dtype)dt : PREFT_F32;
  return 0;
}

/* Llama 3 scaling: the config's llama3 rule when the stored factors are
 * exactly that rule with Meta's constants, else the factors as stored. */
static int rope_frequencies(loader *ld, preft_error *err) {
  preft_model *m = ld->m;
  preft_model_config *c = &m->cfg;
  int half = c->head_dim / 2;
  const preft_gguf_tensor *rf = preft_gguf_find_tensor(ld->f, "rope_freqs.weight");
  if (!rf) {
    m->inv_freq = preft_rope_inv_freq(c);
    return 0;
  }
  if (c->rope_type != PREFT_ROPE_DEFAULT)
    return preft_fail(err, "%s: rope_freqs.weight and %s.rope.scaling.type cannot both apply",
                      ld->f->map.path, ld->arch);
  float *factors;
  if (vector(ld, "rope_freqs.weight", half, 0, &factors, err)) return -1;
  for (int i = 0; i < half; i++)
    if (!(factors[i] > 0)) {
      free(factors);
      return preft_fail(err, "%s: rope_freqs.weight[%d] is not positive", ld->f->map.path, i);
    }
  /* Meta's constants are low 1, high 4; the original context is 8192, or
   * what a frequency between the two regimes implies. */
  int candidates[2] = {8192, 0};
  double fmax = factors[half - 1];
  for (int i = 0; i < half && fmax > 1; i++) {
    double f = factors[i];
    if (f > 1.0 + 1e-6 && f < fmax * (1 - 1e-6)) {
      double smooth = (1.0 / f - 1.0 / fmax) / (1.0 - 1.0 / fmax);
      double wavelen = 2.0 * M_PI * pow(c->rope_theta, 2.0 * i / c->head_dim);
      candidates[1] = (int)lround(wavelen * (smooth * 3.0 + 1.0));
      break;
    }
  }
  double *inv = NULL;
  for (int k = 0; k < 2 && !inv; k++) {
    if (candidates[k] <= 0) continue;
    preft_model_config l3 = *c;
    l3.rope_type = PREFT_ROPE_LLAMA3;
    l3.rope_factor = fmax;
    l3.rope_low_freq_factor = 1.0;
    l3.rope_high_freq_factor = 4.0;
    l3.rope_original_max_pos = candidates[k];
    double *try = preft_rope_inv_freq(&l3);
    bool same = true;
    for (int i = 0; i < half && same; i++) {
      double base = 1.0 / pow(c->rope_theta, 2.0 * i / c->head_dim);
      same = fabs(base / try[i] - factors[i]) <= 1e-6 * factors[i];
    }
    if (same) {
      *c = l3;
      inv = try;
    } else {
      free(try);
    }
  }
  if (!inv) {
    inv = preft_xmalloc(sizeof(double) * (size_t)half);
    for (int i = 0; i < half; i++) inv[i] = 1.0 / pow(c->rope_theta, 2.0 * i / c->head_dim) / factors[i];
  }
  m->inv_freq = inv;
  free(factors);
  return 0;
}

static int load_layer(loader *ld, int l, preft_error *err) {
  const preft_model_config *c = &ld->m->cfg;
  preft_layer_weights *w = &ld->m->layers[l];
  int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
  int pdh = ld->permute ? c->head_dim : 0;
  char name[PREFT_GGUF_MAX_NAME + 1];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", l, suffix), name)
  if (matrix(ld, NAME("attn_q.weight"), qd, c->dim, pdh, &w->wq, err) ||
      matrix(ld, NAME("attn_k.weight"), kvd, c->dim, pdh, &w->wk, err) ||
      matrix(ld, NAME("attn_v.weight"), kvd, c->dim, 0, &w->wv, err) ||
      matrix(ld, NAME("attn_output.weight"), c->dim, qd, 0, &w->wo, err) ||
      matrix(ld, NAME("ffn_gate.weight"), c->ffn, c->dim, 0, &w->w_gate, err) ||
      matrix(ld, NAME("ffn_up.weight"), c->ffn, c->dim, 0, &w->w_up, err) ||
      matrix(ld, NAME("ffn_down.weight"), c->dim, c->ffn, 0, &w->w_down, err) ||
      vector(ld, NAME("attn_norm.weight"), c->dim, 0, &w->attn_norm, err) ||
      vector(ld, NAME("ffn_norm.weight"), c->dim, 0, &w->ffn_norm, err))
    return -1;
  if (c->qkv_bias && (vector(ld, NAME("attn_q.bias"), qd, pdh, &w->bq, err) ||
                      vector(ld, NAME("attn_k.bias"), kvd, pdh, &w->bk, err) ||
                      vector(ld, NAME("attn_v.bias"), kvd, 0, &w->bv, err)))
    return -1;
  if (c->o_bias && vector(ld, NAME("attn_output.bias"), c->dim, 0, &w->bo, err)) return -1;
#undef NAME
  return 0;
}

/* Bytes of the re-ordered q and k of every layer (0 without permutation). */
static size_t permuted_bytes(loader *ld) {
  if (!ld->permute) return 0;
  size_t total = 0;
  char name[PREFT_GGUF_MAX_NAME + 1];
  for (int l = 0; l < ld->m->cfg.n_layers; l++)
    for (int k = 0; k < 2; k++) {
      snprintf(name, sizeof name, "blk.%d.%s", l, k ? "attn_k.weight" : "attn_q.weight");
      const preft_gguf_tensor *t = preft_gguf_find_tensor(ld->f, name);
      if (t) total += t->nbytes;
    }
  return total;
}

int preft_model_load_gguf(preft_model **out, const char *path, preft_error *err) {
  preft_model *m = preft_xcalloc(1, sizeof *m);
  m->gguf = preft_xcalloc(1, sizeof *m->gguf);
  loader ld = {.m = m, .f = m->gguf};
  if ((preft_weights_get_mmap() ? preft_gguf_open(m->gguf, path, err)
                                : preft_gguf_open_read(m->gguf, path, err)) != 0) {
    free(m->gguf);
    m->gguf = NULL;
    goto fail;
  }
  if (read_config(&ld, err) != 0) goto fail;
  const preft_model_config *c = &m->cfg;
  ld.owned_cap = permuted_bytes(&ld);
  if (ld.owned_cap) {
    ld.owned = malloc(ld.owned_cap);
    if (!ld.owned) {
      preft_fail(err, "cannot allocate %zu MiB for the re-ordered q/k rows", ld.owned_cap >> 20);
      goto fail;
    }
    m->owned = ld.owned;
  }
  m->layers = preft_xcalloc((size_t)c->n_layers, sizeof *m->layers);
  if (matrix(&ld, "token_embd.weight", c->vocab, c->dim, 0, &m->embed, err) != 0) goto fail;
  if (c->tie_embeddings)
    m->lm_head = m->embed;
  else if (matrix(&ld, "output.weight", c->vocab, c->dim, 0, &m->lm_head, err) != 0)
    goto fail;
  if (vector(&ld, "output_norm.weight", c->dim, 0, &m->final_norm, err) != 0) goto fail;
  for (int l = 0; l < c->n_layers; l++)
    if (load_layer(&ld, l, err) != 0) goto fail;
  if (rope_frequencies(&ld, err) != 0) goto fail;
  if (!preft_weights_get_mmap()) preft_model_repack(m, NULL); /* the weights were read into memory */
  *out = m;
  return 0;
fail:
  preft_fail_prefix(err, "loading model %s", path);
  preft_model_free(m);
  return -1;
}
