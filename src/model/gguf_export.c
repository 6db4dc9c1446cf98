/* gguf_export.c - preft model / tokenizer / LoRA adapter -> llama.cpp GGUF
 * (what is written and why: gguf_export.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "base/log.h"
#include "io/gguf.h"
#include "model/gguf_export.h"
#include "tensor/ops.h"
#include "tensor/quant.h"
#include "text/tokenizer_int.h"

const char *preft_gguf_arch_name(preft_arch arch) { return arch == PREFT_ARCH_QWEN2 ? "qwen2" : "llama"; }

bool preft_gguf_arch_permutes_qk(preft_arch arch) { return arch != PREFT_ARCH_QWEN2; }

int preft_gguf_rope_src_row(int r, int head_dim) {
  int h = r / head_dim, k = r % head_dim;
  return h * head_dim + (k % 2) * (head_dim / 2) + k / 2;
}

static preft_ggml_type ggml_of(preft_dtype t) {
  switch (t) {
    case PREFT_F32:
      return PREFT_GGML_F32;
    case PREFT_F16:
      return PREFT_GGML_F16;
    case PREFT_Q8_0:
      return PREFT_GGML_Q8_0;
    case PREFT_Q4_0:
      return PREFT_GGML_Q4_0;
    case PREFT_Q5_0:
      return PREFT_GGML_Q5_0;
    case PREFT_Q4_K:
      return PREFT_GGML_Q4_K;
    case PREFT_Q6_K:
      return PREFT_GGML_Q6_K;
    default:
      return PREFT_GGML_BF16;
  }
}

/* ---- tensor jobs: the bytes of one GGUF tensor made at write time ---------- */

/* Copies a [rows, cols] matrix (or a vector: cols 1) from src_dtype to
 * dst_dtype, taking row preft_gguf_rope_src_row(r, permute_dh) when
 * permute_dh > 0 and multiplying by scale. */
typedef struct tensor_job {
  const void *src;
  preft_dtype src_dtype, dst_dtype;
  int64_t rows, cols;
  int permute_dh;
  float scale;
} tensor_job;

static int fill_job(void *ctx, void *dst, size_t nbytes, preft_error *err) {
  const tensor_job *j = ctx;
  size_t rb_in = preft_dtype_row_bytes(j->src_dtype, (size_t)j->cols),
         rb_out = preft_dtype_row_bytes(j->dst_dtype, (size_t)j->cols);
  if (nbytes != (size_t)j->rows * rb_out)
    return preft_fail(err, "internal size mismatch (%zu bytes for [%lld, %lld])", nbytes, (long long)j->rows,
                      (long long)j->cols);
  /* the same type, or an X4 / R4 layout (in memory only) written as its plain type */
  bool copy = preft_dtype_stored(j->src_dtype) == j->dst_dtype && j->scale == 1.0f;
  float *row = copy ? NULL : preft_xmalloc(sizeof(float) * (size_t)j->cols);
  for (int64_t r = 0; r < j->rows; r++) {
    int64_t sr = j->permute_dh > 0 ? preft_gguf_rope_src_row((int)r, j->permute_dh) : r;
    uint8_t *out = (uint8_t *)dst + (size_t)r * rb_out;
    if (copy) { /* an X4 or R4 row unpacked, any other copied */
      preft_quant_row_plain(j->src_dtype, j->src, rb_in, (size_t)sr, (size_t)j->cols, out);
      continue;
    }
    preft_load_row(row, j->src, j->src_dtype, (size_t)sr, (int)j->cols);
    for (int64_t c = 0; c < j->cols; c++) row[c] *= j->scale;
    if (j->dst_dtype == PREFT_F32) {
      memcpy(out, row, rb_out);
    } else if (j->dst_dtype == PREFT_F16 || j->dst_dtype == PREFT_BF16) {
      for (int64_t c = 0; c < j->cols; c++) {
        uint16_t h = j->dst_dtype == PREFT_F16 ? preft_f32_to_f16(row[c]) : preft_f32_to_bf16(row[c]);
        memcpy(out + 2 * c, &h, 2);
      }
    } else {
      preft_quantize_row(j->dst_dtype, row, out, (size_t)j->cols);
    }
  }
  free(row);
  return 0;
}

/* Jobs outlive preft_gguf_add_tensor (they run at write time), so they are
 * allocated from a list the exporter frees after writing. */
typedef struct job_list {
  tensor_job **v;
  int n, cap;
} job_list;

static tensor_job *new_job(job_list *l) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->v = preft_xrealloc(l->v, sizeof *l->v * (size_t)l->cap);
  }
  return l->v[l->n++] = preft_xcalloc(1, sizeof(tensor_job));
}

static void free_jobs(job_list *l) {
  for (int i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
}

/* Adds a matrix [rows, cols] stored as src_dtype, written as dst_dtype;
 * written straight from the source when nothing changes. */
static int add_matrix(preft_gguf_writer *w, job_list *jobs, const char *name, const void *src,
                      preft_dtype src_dtype, preft_dtype dst_dtype, int64_t rows, int64_t cols,
                      int permute_dh, float scale, preft_error *err) {
  int64_t shape[2] = {rows, cols};
  dst_dtype = preft_quant_fallback(preft_dtype_stored(dst_dtype), cols);
  if (src_dtype == dst_dtype && permute_dh == 0 && scale == 1.0f)
    return preft_gguf_add_tensor(w, name, ggml_of(dst_dtype), 2, shape, src, NULL, NULL, err);
  tensor_job *j = new_job(jobs);
  *j = (tensor_job){.src = src,
                    .src_dtype = src_dtype,
                    .dst_dtype = dst_dtype,
                    .rows = rows,
                    .cols = cols,
                    .permute_dh = permute_dh,
                    .scale = scale};
  return preft_gguf_add_tensor(w, name, ggml_of(dst_dtype), 2, shape, NULL, fill_job, j, err);
}

/* Adds an F32 vector (permuted in blocks of permute_dh when > 0). */
static int add_vector(preft_gguf_writer *w, job_list *jobs, const char *name, const float *v, int64_t n,
                      int permute_dh, preft_error *err) {
  if (permute_dh == 0) return preft_gguf_add_tensor(w, name, PREFT_GGML_F32, 1, &n, v, NULL, NULL, err);
  tensor_job *j = new_job(jobs);
  *j = (tensor_job){.src = v,
                    .src_dtype = PREFT_F32,
                    .dst_dtype = PREFT_F32,
                    .rows = n,
                    .cols = 1,
                    .permute_dh = permute_dh,
                    .scale = 1.0f};
  return preft_gguf_add_tensor(w, name, PREFT_GGML_F32, 1, &n, NULL, fill_job, j, err);
}

/* ---- model ------------------------------------------------------------------ */

static int check_arch(const preft_model_config *c, preft_error *err) {
  if (c->arch == PREFT_ARCH_QWEN2 && c->n_heads * c->head_dim != c->dim)
    return preft_fail(err,
                      "llama.cpp's qwen2 architecture needs num_attention_heads * head_dim == hidden_size "
                      "(%d * %d != %d)",
                      c->n_heads, c->head_dim, c->dim);
  if (c->arch == PREFT_ARCH_QWEN2 && c->o_bias)
    return preft_fail(err, "llama.cpp's qwen2 architecture has no o_proj bias");
  if (c->sliding_window > 0 && c->sliding_window < c->max_pos)
    PREFT_WARN(
        "gguf: llama.cpp's llama architecture attends to the whole context; past %d positions its "
        "outputs differ from this model's sliding-window attention",
        c->sliding_window);
  return 0;
}

/* llama.cpp's general.file_type (llama_ftype) of a model whose matrices are t. */
static uint32_t file_type_of(preft_dtype t) {
  switch (t) {
    case PREFT_F32:
      return 0;
    case PREFT_F16:
      return 1;
    case PREFT_Q4_0:
      return 2;
    case PREFT_Q8_0:
      return 7;
    case PREFT_Q5_0:
      return 8;
    case PREFT_Q4_K:
      return 14; /* Q4_K_S: every matrix Q4_K */
    case PREFT_Q6_K:
      return 18;
    default:
      return 32; /* BF16 */
  }
}

static void set_arch_kv(preft_gguf_writer *w, const char *arch, const char *suffix, uint32_t v) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  preft_gguf_set_u32(w, key, v);
}

static void set_arch_f32(preft_gguf_writer *w, const char *arch, const char *suffix, float v) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  preft_gguf_set_f32(w, key, v);
}

static void model_metadata(preft_gguf_writer *w, const preft_model *m, const char *arch,
                           preft_dtype mat_dtype, const preft_gguf_export_opts *o) {
  const preft_model_config *c = &m->cfg;
  preft_gguf_set_str(w, "general.architecture", arch);
  preft_gguf_set_str(w, "general.type", "model");
  preft_gguf_set_str(w, "general.name", o->name ? o->name : "preft");
  preft_gguf_set_u32(w, "general.file_type", file_type_of(mat_dtype));
  set_arch_kv(w, arch, "vocab_size", (uint32_t)c->vocab);
  set_arch_kv(w, arch, "context_length", (uint32_t)c->max_pos);
  set_arch_kv(w, arch, "embedding_length", (uint32_t)c->dim);
  set_arch_kv(w, arch, "block_count", (uint32_t)c->n_layers);
  set_arch_kv(w, arch, "feed_forward_length", (uint32_t)c->ffn);
  set_arch_kv(w, arch, "attention.head_count", (uint32_t)c->n_heads);
  set_arch_kv(w, arch, "attention.head_count_kv", (uint32_t)c->n_kv_heads);
  if (c->head_dim * c->n_heads != c->dim) {
    /* llama.cpp's default head width is D / H */
    set_arch_kv(w, arch, "attention.key_length", (uint32_t)c->head_dim);
    set_arch_kv(w, arch, "attention.value_length", (uint32_t)c->head_dim);
  }
  set_arch_f32(w, arch, "attention.layer_norm_rms_epsilon", c->norm_eps);
  set_arch_f32(w, arch, "rope.freq_base", (float)c->rope_theta);
  set_arch_kv(w, arch, "rope.dimension_count", (uint32_t)c->head_dim);
  if (c->rope_type == PREFT_ROPE_LINEAR) {
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    preft_gguf_set_str(w, key, "linear");
    set_arch_f32(w, arch, "rope.scaling.factor", (float)c->rope_factor);
  }
}

/* rope_freqs[i]: the factor llama.cpp divides frequency i by, so that
 * theta_base^(-2i/Dh) / factor = preft's scaled inverse frequency. */
static float *llama3_rope_factors(const preft_model *m) {
  const preft_model_config *c = &m->cfg;
  int half = c->head_dim / 2;
  float *f = preft_xmalloc(sizeof(float) * (size_t)half);
  for (int i = 0; i < half; i++)
    f[i] = (float)((1.0 / pow(c->rope_theta, 2.0 * i / c->head_dim)) / m->inv_freq[i]);
  return f;
}

static int model_tensors(preft_gguf_writer *w, job_list *jobs, const preft_model *m, int outtype,
                         float *rope_factors, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  int64_t D = c->dim, F = c->ffn, V = c->vocab, qd = (int64_t)c->n_heads * c->head_dim,
          kvd = (int64_t)c->n_kv_heads * c->head_dim;
  int pdh = preft_gguf_arch_permutes_qk(c->arch) ? c->head_dim : 0;
#define OUT(dt) (outtype < 0 ? (dt) : (preft_dtype)outtype)
  if (add_matrix(w, jobs, "token_embd.weight", m->embed.data, m->embed.dtype, OUT(m->embed.dtype), V, D, 0, 1,
                 err))
    return -1;
  if (rope_factors) {
    int64_t half = c->head_dim / 2;
    if (preft_gguf_add_tensor(w, "rope_freqs.weight", PREFT_GGML_F32, 1, &half, rope_factors, NULL, NULL,
                              err))
      return -1;
  }
  char name[PREFT_GGUF_MAX_NAME + 1];
#define NAME(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, l), name)
  for (int l = 0; l < c->n_layers; l++) {
    const preft_layer_weights *L = &m->layers[l];
    int rc = add_vector(w, jobs, NAME("attn_norm.weight"), L->attn_norm, D, 0, err);
    if (!rc)
      rc = add_matrix(w, jobs, NAME("attn_q.weight"), L->wq.data, L->wq.dtype, OUT(L->wq.dtype), qd, D, pdh,
                      1, err);
    if (!rc)
      rc = add_matrix(w, jobs, NAME("attn_k.weight"), L->wk.data, L->wk.dtype, OUT(L->wk.dtype), kvd, D, pdh,
                      1, err);
    if (!rc)
      rc = add_matrix(w, jobs, NAME("attn_v.weight"), L->wv.data, L->wv.dtype, OUT(L->wv.dtype), kvd, D, 0, 1,
                      err);
    if (!rc && L->bq) rc = add_vector(w, jobs, NAME("attn_q.bias"), L->bq, qd, pdh, err);
    if (!rc && L->bk) rc = add_vector(w, jobs, NAME("attn_k.bias"), L->bk, kvd, pdh, err);
    if (!rc && L->bv) rc = add_vector(w, jobs, NAME("attn_v.bias"), L->bv, kvd, 0, err);
    if (!rc)
      rc = add_matrix(w, jobs, NAME("attn_output.weight"), L->wo.data, L->wo.dtype, OUT(L->wo.dtype), D, qd,
                      0, 1, err);
    if (!rc && L->bo) rc = add_vector(w, jobs, NAME("attn_output.bias"), L->bo, D, 0, err);
    if (!rc) rc = add_vector(w, jobs, NAME("ffn_norm.weight"), L->ffn_norm, D, 0, err);
    if (!rc)
      rc = add_matrix(w, jobs, NAME("ffn_gate.weight"), L->w_gate.data, L->w_gate.dtype, OUT(L->w_gate.dtype),
                      F, D, 0, 1, err);
    if (!rc)
      rc = add_matrix(w, jobs, NAME("ffn_up.weight"), L->w_up.data, L->w_up.dtype, OUT(L->w_up.dtype), F, D,
                      0, 1, err);
    if (!rc)
      rc = add_matrix(w, jobs, NAME("ffn_down.weight"), L->w_down.data, L->w_down.dtype, OUT(L->w_down.dtype),
                      D, F, 0, 1, err);
    if (rc) return -1;
  }
#undef NAME
  if (add_vector(w, jobs, "output_norm.weight", m->final_norm, D, 0, err)) return -1;
  if (!c->tie_embeddings && add_matrix(w, jobs, "output.weight", m->lm_head.data, m->lm_head.dtype,
                                       OUT(m->lm_head.dtype), V, D, 0, 1, err))
    return -1;
#undef OUT
  return 0;
}

/* ---- tokenizer ---------------------------------------------------------------- */

/* Split regexes of the byte-level pre-tokenizers llama.cpp implements, as
 * they appear in tokenizer.json. */
static const char LLAMA3_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_SPLIT[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static bool is_type(const cJSON *o, const char *type) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
  return cJSON_IsString(t) && !strcmp(t->valuestring, type);
}

static bool bytelevel_regex(const cJSON *o) {
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "use_regex");
  return !cJSON_IsBool(u) || cJSON_IsTrue(u); /* tokenizers' default is true */
}

/* The llama.cpp pre-tokenizer name of a tokenizer.json pre_tokenizer, or NULL. */
static const char *recognise_pre(const cJSON *pre) {
  if (is_type(pre, "ByteLevel")) return bytelevel_regex(pre) ? "gpt-2" : NULL;
  if (!is_type(pre, "Sequence")) return NULL;
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
  if (cJSON_GetArraySize(list) != 2) return NULL;
  const cJSON *a = cJSON_GetArrayItem(list, 0), *b = cJSON_GetArrayItem(list, 1);
  if (!is_type(b, "ByteLevel")) return NULL;
  if (is_type(a, "Digits")) {
    const cJSON *ind = cJSON_GetObjectItemCaseSensitive(a, "individual_digits");
    return cJSON_IsTrue(ind) && bytelevel_regex(b) ? "smollm" : NULL;
  }
  if (!is_type(a, "Split") || bytelevel_regex(b)) return NULL;
  const cJSON *pat = cJSON_GetObjectItemCaseSensitive(a, "pattern");
  const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
  const cJSON *beh = cJSON_GetObjectItemCaseSensitive(a, "behavior");
  if (!cJSON_IsString(re) || !cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") ||
      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "invert")))
    return NULL;
  if (!strcmp(re->valuestring, LLAMA3_SPLIT)) return "llama-bpe";
  if (!strcmp(re->valuestring, QWEN2_SPLIT)) return "qwen2";
  return NULL;
}

/* Reads the tokenizer's tokenizer.json to name its pre-tokenizer. */
static int detect_pre(const preft_tokenizer *t, char **out, preft_error *err) {
  struct stat st;
  bool dir = stat(t->path, &st) == 0 && S_ISDIR(st.st_mode);
  char *path = dir ? preft_path_join(t->path, "tokenizer.json") : preft_xstrdup(t->path);
  char *text;
  size_t len;
  if (preft_read_file(path, &text, &len, err) != 0) {
    free(path);
    return -1;
  }
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  if (!root) {
    preft_fail(err, "%s: not valid JSON", path);
    free(path);
    return -1;
  }
  const char *name = recognise_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
  int rc = 0;
  if (name)
    *out = preft_xstrdup(name);
  else
    rc = preft_fail(
        err,
        "%s: pre-tokenizer not recognised as one llama.cpp implements (Llama 3, Qwen2, GPT-2, SmolLM); "
        "name it with --tokenizer-pre NAME or convert without the tokenizer (--no-tokenizer)",
        path);
  cJSON_Delete(root);
  free(path);
  return rc;
}

/* Added tokens that llama.cpp's converter treats as control tokens even when
 * tokenizer.json does not mark them special. */
static bool looks_special(const char *s) {
  size_t n = strlen(s);
  if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>")) return true;
  return n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>");
}

typedef struct merge_rank {
  uint32_t rank, left, right;
} merge_rank;

static int cmp_rank(const void *a, const void *b) {
  uint32_t x = ((const merge_rank *)a)->rank, y = ((const merge_rank *)b)->rank;
  return x < y ? -1 : x > y;
}

/* Does encoding with special tokens put `id` first (at_end: last) where
 * encoding without them does not? (The post-processor's BOS / EOS.) */
static bool adds_special(const preft_tokenizer *t, int32_t id, bool at_end) {
  if (id < 0) return false;
  int32_t *a = NULL, *b = NULL;
  size_t na = 0, nb = 0;
  preft_error e;
  bool r = false;
  if (preft_tokenizer_encode(t, "a", 1, true, &a, &na, &e) == 0 &&
      preft_tokenizer_encode(t, "a", 1, false, &b, &nb, &e) == 0 && na > nb && na > 0)
    r = at_end ? a[na - 1] == id : a[0] == id;
  free(a);
  free(b);
  return r;
}

static int tokenizer_metadata(preft_gguf_writer *w, const preft_tokenizer *t, const preft_model_config *c,
                              const preft_gguf_export_opts *o, preft_error *err) {
  if (t->model_type != MODEL_BPE || !t->byte_level)
    return preft_fail(
        err,
        "%s: only byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, SmolLM) export to GGUF; convert "
        "without the tokenizer (--no-tokenizer)",
        t->path);
  if (t->vocab_size > c->vocab)
    return preft_fail(err, "%s: the tokenizer has %d ids but the model's vocabulary is %d", t->path,
                      t->vocab_size, c->vocab);
  char *pre = NULL;
  if (o->tokenizer_pre)
    pre = preft_xstrdup(o->tokenizer_pre);
  else if (t->gguf_pre) /* read from a GGUF: its own name */
    pre = preft_xstrdup(t->gguf_pre);
  else if (detect_pre(t, &pre, err) != 0)
    return -1;

  int V = c->vocab;
  char **tokens = preft_xcalloc((size_t)V, sizeof(char *));
  int32_t *types = preft_xmalloc(sizeof(int32_t) * (size_t)V);
  for (int i = 0; i < V; i++) {
    const char *s = i < t->vocab_size ? t->id_to_token[i] : NULL;
    if (!s) {
      char pad[32];
      snprintf(pad, sizeof pad, "[PAD%d]", i);
      tokens[i] = preft_xstrdup(pad);
      types[i] = 5; /* UNUSED */
    } else {
      tokens[i] = preft_xstrdup(s);
      types[i] = !t->is_added[i]                        ? 1 /* NORMAL */
                 : t->is_special[i] || looks_special(s) ? 3 /* CONTROL */
                                                        : 4;
    }
  }
  /* merges in rank order, as "left right" in tokenizer.json's spelling */
  const preft_u64map *mm = &t->bpe.merges;
  merge_rank *mr = preft_xmalloc(sizeof *mr * (mm->count ? mm->count : 1));
  size_t nm = 0;
  for (size_t i = 0; i < mm->cap; i++) {
    if (mm->slots[i].key == UINT64_MAX) continue;
    mr[nm++] = (merge_rank){(uint32_t)(mm->slots[i].val >> 32), (uint32_t)(mm->slots[i].key >> 32),
                            (uint32_t)mm->slots[i].key};
  }
  qsort(mr, nm, sizeof *mr, cmp_rank);
  char **merges = preft_xmalloc(sizeof(char *) * (nm ? nm : 1));
  for (size_t i = 0; i < nm; i++) {
    const char *l = t->id_to_token[mr[i].left], *r = t->id_to_token[mr[i].right];
    size_t n = strlen(l) + strlen(r) + 2;
    merges[i] = preft_xmalloc(n);
    snprintf(merges[i], n, "%s %s", l, r);
  }
  free(mr);

  preft_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
  preft_gguf_set_str(w, "tokenizer.ggml.pre", pre);
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, (size_t)V);
  preft_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)V);
  preft_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, nm);
  int32_t bos = preft_tokenizer_bos_id(t);
  if (bos < 0 && c->bos_id >= 0 && c->bos_id < V) bos = c->bos_id;
  int32_t eos = -1;
  const char *eos_tok = preft_tokenizer_eos_token(t);
  if (eos_tok) eos = preft_tokenizer_token_to_id(t, eos_tok);
  if (eos < 0) {
    const int32_t *ids;
    if (preft_tokenizer_eos_ids(t, &ids) > 0)
      eos = ids[0];
    else if (c->n_eos > 0)
      eos = c->eos_ids[0];
  }
  if (bos >= 0) preft_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
  if (eos >= 0 && eos < V) preft_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
  int32_t pad = preft_tokenizer_pad_id(t);
  if (pad >= 0 && pad < V) preft_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
  preft_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", adds_special(t, preft_tokenizer_bos_id(t), false));
  preft_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", adds_special(t, eos, true));
  const char *tmpl = preft_tokenizer_chat_template(t);
  if (tmpl) preft_gguf_set_str(w, "tokenizer.chat_template", tmpl);

  for (int i = 0; i < V; i++) free(tokens[i]);
  free(tokens);
  free(types);
  for (size_t i = 0; i < nm; i++) free(merges[i]);
  free(merges);
  free(pre);
  return 0;
}

int preft_gguf_export_model(const preft_model *m, const preft_tokenizer *tok,
                            const preft_gguf_export_opts *opts, const char *path, preft_error *err) {
  preft_gguf_export_opts dflt = {.outtype = -1};
  const preft_gguf_export_opts *o = opts ? opts : &dflt;
  const preft_model_config *c = &m->cfg;
  if (check_arch(c, err) != 0) return -1;
  const char *arch = preft_gguf_arch_name(c->arch);
  preft_dtype mat = o->outtype < 0 ? preft_dtype_stored(m->layers[0].wq.dtype) : (preft_dtype)o->outtype;
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  job_list jobs = {0};
  float *rope_factors = c->rope_type == PREFT_ROPE_LLAMA3 ? llama3_rope_factors(m) : NULL;
  model_metadata(&w, m, arch, mat, o);
  int rc = 0;
  if (tok)
    rc = tokenizer_metadata(&w, tok, c, o, err);
  else
    preft_gguf_set_str(&w, "tokenizer.ggml.model", "none");
  if (rc == 0) rc = model_tensors(&w, &jobs, m, o->outtype, rope_factors, err);
  if (rc == 0) rc = preft_gguf_write(&w, path, err);
  preft_gguf_writer_free(&w);
  free_jobs(&jobs);
  free(rope_factors);
  return rc;
}

/* ---- LoRA adapters -------------------------------------------------------------- */

static const char *const gguf_module[PREFT_N_MODULES] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                         "ffn_gate", "ffn_up", "ffn_down"};

int preft_gguf_export_lora(const preft_adapter *a, const preft_model_config *cfg,
                           const preft_gguf_export_opts *opts, const char *path, preft_error *err) {
  preft_gguf_export_opts dflt = {.outtype = -1};
  const preft_gguf_export_opts *o = opts ? opts : &dflt;
  if (a->kind != PREFT_ADAPTER_LORA)
    return preft_fail(err, "%s: llama.cpp has no ReFT; only LoRA adapters export to GGUF", a->path);
  if (o->outtype >= 0 && preft_dtype_is_quant((preft_dtype)o->outtype))
    return preft_fail(err, "%s: adapters stay exact: give f32, f16 or bf16 (not %s)", a->path,
                      preft_dtype_name((preft_dtype)o->outtype));
  if (check_arch(cfg, err) != 0) return -1;
  const preft_model_config *c = cfg;
  /* llama.cpp scales every pair by alpha / R: take alpha = scale * R of the
   * first adapted module and fold any other module's ratio into its B. */
  double alpha = 0;
  for (int i = 0; i < a->n_layers * PREFT_N_MODULES && alpha == 0; i++)
    if (a->lora[i].rank > 0) alpha = (double)a->lora[i].scale * a->lora[i].rank;
  if (alpha == 0)
    return preft_fail(err, "%s: the adapter adapts no module (or every LoRA scale is zero)", a->path);
  int pdh = preft_gguf_arch_permutes_qk(c->arch) ? c->head_dim : 0;
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  job_list jobs = {0};
  preft_gguf_set_str(&w, "general.architecture", preft_gguf_arch_name(c->arch));
  preft_gguf_set_str(&w, "general.type", "adapter");
  preft_gguf_set_str(&w, "general.name", o->name ? o->name : (a->name ? a->name : "preft"));
  preft_gguf_set_str(&w, "adapter.type", "lora");
  preft_gguf_set_f32(&w, "adapter.lora.alpha", (float)alpha);
  int rc = 0, folded = 0;
  char name[PREFT_GGUF_MAX_NAME + 1];
  for (int l = 0; l < a->n_layers && rc == 0; l++) {
    for (int mo = 0; mo < PREFT_N_MODULES && rc == 0; mo++) {
      const preft_lora_module *lm = &a->lora[l * PREFT_N_MODULES + mo];
      if (lm->rank == 0) continue;
      double ratio = (double)lm->scale * lm->rank / alpha;
      float fold = fabs(ratio - 1.0) < 1e-6 ? 1.0f : (float)ratio;
      int perm = (mo == PREFT_MOD_Q || mo == PREFT_MOD_K) ? pdh : 0;
      preft_dtype ta = o->outtype < 0 ? lm->a_dtype : (preft_dtype)o->outtype;
      preft_dtype tb = o->outtype < 0 ? (fold != 1.0f ? PREFT_F32 : lm->b_dtype) : (preft_dtype)o->outtype;
      folded += fold != 1.0f;
      int in, out;
      preft_module_dims(c, (preft_module)mo, &in, &out);
      snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, gguf_module[mo]);
      rc = add_matrix(&w, &jobs, name, lm->a, lm->a_dtype, ta, lm->rank, in, 0, 1.0f, err);
      snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, gguf_module[mo]);
      if (rc == 0) rc = add_matrix(&w, &jobs, name, lm->b, lm->b_dtype, tb, out, lm->rank, perm, fold, err);
    }
  }
  if (folded)
    PREFT_INFO("gguf: %d LoRA modules have their own scale; it is folded into their lora_b (alpha %g)",
               folded, alpha);
  if (rc == 0) rc = preft_gguf_write(&w, path, err);
  preft_gguf_writer_free(&w);
  free_jobs(&jobs);
  return rc;
}
