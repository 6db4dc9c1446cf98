/* gguf.c - writing GGUF v3 files (format in gguf.h).
 *
 * Metadata is serialized into one byte buffer as it is added; tensors are
 * described and their bytes produced only when the file is written, one
 * tensor at a time, straight into the atomic writer. */
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"

/* ggml's tensor types: name, elements per block, bytes per block (the
 * block layouts are ggml's; only their sizes matter to the container). */
typedef struct ggml_type_info {
  const char *name;
  uint32_t block, bytes;
} ggml_type_info;

static const ggml_type_info TYPES[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},         [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},      [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},      [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},   [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},   [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},  [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},  [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},        [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},   [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
};

static const ggml_type_info *type_info(uint32_t t) {
  return t < sizeof TYPES / sizeof TYPES[0] && TYPES[t].name ? &TYPES[t] : NULL;
}

const char *preft_ggml_type_name(uint32_t t) {
  const ggml_type_info *i = type_info(t);
  return i ? i->name : "unknown";
}

size_t preft_ggml_type_size(uint32_t t) {
  const ggml_type_info *i = type_info(t);
  return i && i->block == 1 ? i->bytes : 0;
}

size_t preft_ggml_type_block(uint32_t t) {
  const ggml_type_info *i = type_info(t);
  return i ? i->block : 0;
}

size_t preft_ggml_row_size(uint32_t t, int64_t n) {
  const ggml_type_info *i = type_info(t);
  if (!i || n < 0 || n % i->block) return 0;
  return (size_t)(n / i->block) * i->bytes;
}

void preft_gguf_writer_init(preft_gguf_writer *w) {
  memset(w, 0, sizeof *w);
  w->alignment = PREFT_GGUF_DEFAULT_ALIGNMENT;
}

void preft_gguf_writer_free(preft_gguf_writer *w) {
  free(w->kv);
  for (int64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
  free(w->keys);
  for (int64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
  free(w->tensors);
  memset(w, 0, sizeof *w);
}

/* ---- serialization into the metadata buffer ---- */

static void put(preft_gguf_writer *w, const void *p, size_t n) {
  if (w->kv_len + n > w->kv_cap) {
    size_t cap = w->kv_cap ? w->kv_cap : 4096;
    while (cap < w->kv_len + n) cap *= 2;
    w->kv = preft_xrealloc(w->kv, cap);
    w->kv_cap = cap;
  }
  memcpy(w->kv + w->kv_len, p, n);
  w->kv_len += n;
}

/* Integers are written little-endian; preft only builds on little-endian
 * hosts (x86-64, aarch64), so a memcpy of the native value is the format. */
static void put_u32(preft_gguf_writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(preft_gguf_writer *w, uint64_t v) { put(w, &v, 8); }
static void put_str(preft_gguf_writer *w, const char *s) {
  size_t n = strlen(s);
  put_u64(w, n);
  put(w, s, n);
}

static void fail(preft_gguf_writer *w, const char *what, const char *key) {
  if (w->failed) return;
  w->failed = true;
  snprintf(w->fail_msg, sizeof w->fail_msg, "GGUF metadata key '%.200s': %s", key, what);
}

/* Starts a pair: checks the key is new, writes it and the value type. */
static bool begin_kv(preft_gguf_writer *w, const char *key, preft_gguf_type type) {
  if (!key[0]) {
    fail(w, "empty key", key);
    return false;
  }
  for (int64_t i = 0; i < w->n_kv; i++)
    if (!strcmp(w->keys[i], key)) {
      fail(w, "set twice", key);
      return false;
    }
  w->keys = preft_xrealloc(w->keys, sizeof(char *) * (size_t)(w->n_kv + 1));
  w->keys[w->n_kv++] = preft_xstrdup(key);
  put_str(w, key);
  put_u32(w, (uint32_t)type);
  return true;
}

void preft_gguf_set_str(preft_gguf_writer *w, const char *key, const char *v) {
  if (begin_kv(w, key, PREFT_GGUF_STRING)) put_str(w, v);
}

void preft_gguf_set_u32(preft_gguf_writer *w, const char *key, uint32_t v) {
  if (!strcmp(key, "general.alignment")) {
    if (v == 0 || (v & (v - 1)) != 0) {
      fail(w, "alignment must be a power of two", key);
      return;
    }
    w->alignment = v;
  }
  if (begin_kv(w, key, PREFT_GGUF_U32)) put_u32(w, v);
}

void preft_gguf_set_i32(preft_gguf_writer *w, const char *key, int32_t v) {
  if (begin_kv(w, key, PREFT_GGUF_I32)) put(w, &v, 4);
}

void preft_gguf_set_f32(preft_gguf_writer *w, const char *key, float v) {
  if (begin_kv(w, key, PREFT_GGUF_F32)) put(w, &v, 4);
}

void preft_gguf_set_bool(preft_gguf_writer *w, const char *key, bool v) {
  uint8_t b = v ? 1 : 0;
  if (begin_kv(w, key, PREFT_GGUF_BOOL)) put(w, &b, 1);
}

static bool begin_arr(preft_gguf_writer *w, const char *key, preft_gguf_type elem, size_t n) {
  if (!begin_kv(w, key, PREFT_GGUF_ARRAY)) return false;
  put_u32(w, (uint32_t)elem);
  put_u64(w, (uint64_t)n);
  return true;
}

void preft_gguf_set_arr_str(preft_gguf_writer *w, const char *key, const char *const *v, size_t n) {
  if (!begin_arr(w, key, PREFT_GGUF_STRING, n)) return;
  for (size_t i = 0; i < n; i++) put_str(w, v[i]);
}

void preft_gguf_set_arr_i32(preft_gguf_writer *w, const char *key, const int32_t *v, size_t n) {
  if (begin_arr(w, key, PREFT_GGUF_I32, n)) put(w, v, 4 * n);
}

void preft_gguf_set_arr_f32(preft_gguf_writer *w, const char *key, const float *v, size_t n) {
  if (begin_arr(w, key, PREFT_GGUF_F32, n)) put(w, v, 4 * n);
}

int preft_gguf_add_tensor(preft_gguf_writer *w, const char *name, preft_ggml_type type, int ndim,
                          const int64_t *shape, const void *data, preft_gguf_fill_fn fill, void *fill_ctx,
                          preft_error *err) {
  size_t nl = strlen(name);
  if (nl == 0 || nl > PREFT_GGUF_MAX_NAME)
    return preft_fail(err, "GGUF tensor '%s': name must have 1 to %d bytes", name, PREFT_GGUF_MAX_NAME);
  if (preft_ggml_type_block(type) == 0)
    return preft_fail(err, "GGUF tensor '%s': unsupported ggml type %d", name, (int)type);
  if (ndim < 1 || ndim > PREFT_GGUF_MAX_DIMS)
    return preft_fail(err, "GGUF tensor '%s': %d dimensions (1 to %d supported)", name, ndim,
                      PREFT_GGUF_MAX_DIMS);
  if (!data == !fill) return preft_fail(err, "GGUF tensor '%s': give exactly one of data and fill", name);
  size_t numel = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 1 || (uint64_t)shape[d] > (SIZE_MAX / 8) / numel)
      return preft_fail(err, "GGUF tensor '%s': bad dimension %d of size %lld", name, d, (long long)shape[d]);
    numel *= (size_t)shape[d];
  }
  size_t row = preft_ggml_row_size(type, shape[ndim - 1]);
  if (row == 0)
    return preft_fail(err, "GGUF tensor '%s': rows of %lld elements are not whole %s blocks of %zu", name,
                      (long long)shape[ndim - 1], preft_ggml_type_name(type), preft_ggml_type_block(type));
  for (int64_t i = 0; i < w->n_tensors; i++)
    if (!strcmp(w->tensors[i].name, name)) return preft_fail(err, "GGUF tensor '%s' added twice", name);
  if (w->n_tensors == w->cap_tensors) {
    w->cap_tensors = w->cap_tensors ? 2 * w->cap_tensors : 64;
    w->tensors = preft_xrealloc(w->tensors, sizeof *w->tensors * (size_t)w->cap_tensors);
  }
  preft_gguf_wtensor *t = &w->tensors[w->n_tensors++];
  memset(t, 0, sizeof *t);
  t->name = preft_xstrdup(name);
  t->type = (uint32_t)type;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
  t->nbytes = numel / (size_t)shape[ndim - 1] * row;
  t->data = data;
  t->fill = fill;
  t->fill_ctx = fill_ctx;
  return 0;
}

static size_t pad_to(size_t n, size_t a) { return (n + a - 1) / a * a; }

static int write_zeros(preft_atomic_writer *aw, size_t n, preft_error *err) {
  static const uint8_t zeros[256];
  while (n > 0) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    if (preft_atomic_write(aw, zeros, k, err) != 0) return -1;
    n -= k;
  }
  return 0;
}

int preft_gguf_write(const preft_gguf_writer *w, const char *path, preft_error *err) {
  if (w->failed) return preft_fail(err, "%s: %s", path, w->fail_msg);
  /* Header and tensor infos go into one buffer (small: names and dims). */
  preft_gguf_writer h;
  preft_gguf_writer_init(&h);
  put(&h, "GGUF", 4);
  put_u32(&h, PREFT_GGUF_VERSION);
  put_u64(&h, (uint64_t)w->n_tensors);
  put_u64(&h, (uint64_t)w->n_kv);
  put(&h, w->kv, w->kv_len);
  uint64_t offset = 0;
  for (int64_t i = 0; i < w->n_tensors; i++) {
    const preft_gguf_wtensor *t = &w->tensors[i];
    put_str(&h, t->name);
    put_u32(&h, (uint32_t)t->ndim);
    for (int d = t->ndim - 1; d >= 0; d--) put_u64(&h, (uint64_t)t->shape[d]); /* GGUF order */
    put_u32(&h, t->type);
    put_u64(&h, offset);
    offset += pad_to(t->nbytes, w->alignment);
  }
  size_t header = h.kv_len;
  preft_atomic_writer aw;
  int rc = preft_atomic_open(&aw, path, err);
  if (rc == 0) rc = preft_atomic_write(&aw, h.kv, header, err);
  if (rc == 0) rc = write_zeros(&aw, pad_to(header, w->alignment) - header, err);
  preft_gguf_writer_free(&h);
  void *scratch = NULL;
  size_t scratch_cap = 0;
  for (int64_t i = 0; i < w->n_tensors && rc == 0; i++) {
    const preft_gguf_wtensor *t = &w->tensors[i];
    const void *bytes = t->data;
    if (!bytes) {
      if (t->nbytes > scratch_cap) {
        free(scratch);
        scratch = preft_xmalloc(t->nbytes);
        scratch_cap = t->nbytes;
      }
      rc = t->fill(t->fill_ctx, scratch, t->nbytes, err);
      if (rc != 0) {
        preft_fail_prefix(err, "GGUF tensor '%s'", t->name);
        break;
      }
      bytes = scratch;
    }
    rc = preft_atomic_write(&aw, bytes, t->nbytes, err);
    if (rc == 0) rc = write_zeros(&aw, pad_to(t->nbytes, w->alignment) - t->nbytes, err);
  }
  free(scratch);
  if (rc == 0) return preft_atomic_commit(&aw, err);
  if (aw.fp || aw.tmp_path) preft_atomic_abort(&aw);
  return -1;
}
