/* gguf_read.c - reading and validating GGUF files (format in gguf.h).
 *
 * The whole header is checked before anything is returned: every length is
 * compared with the bytes left in the file before it is used, so a corrupt
 * or hostile file yields an error naming the byte offset, never a read past
 * the mapping or an allocation sized by garbage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "tensor/dtype.h"

typedef struct {
  const uint8_t *p;
  size_t n, off;
  const char *path;
  preft_error *err;
} cursor;

static int need(cursor *c, size_t k, const char *what) {
  if (k > c->n - c->off)
    return preft_fail(c->err, "%s: truncated at byte %zu reading %s (%zu bytes needed, %zu left)", c->path,
                      c->off, what, k, c->n - c->off);
  return 0;
}

static int rd(cursor *c, void *dst, size_t k, const char *what) {
  if (need(c, k, what)) return -1;
  memcpy(dst, c->p + c->off, k);
  c->off += k;
  return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static int rd_u64(cursor *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

/* A string: u64 length + bytes; returns a heap NUL-terminated copy. */
static int rd_str(cursor *c, char **out, const char *what) {
  uint64_t len;
  size_t at = c->off;
  if (rd_u64(c, &len, what)) return -1;
  if (len > c->n - c->off)
    return preft_fail(c->err, "%s: %s at byte %zu has length %llu, beyond the end of the file", c->path, what,
                      at, (unsigned long long)len);
  char *s = preft_xmalloc((size_t)len + 1);
  memcpy(s, c->p + c->off, (size_t)len);
  s[len] = 0;
  c->off += (size_t)len;
  *out = s;
  return 0;
}

static size_t scalar_size(uint32_t t) {
  switch (t) {
    case PREFT_GGUF_U8:
    case PREFT_GGUF_I8:
    case PREFT_GGUF_BOOL:
      return 1;
    case PREFT_GGUF_U16:
    case PREFT_GGUF_I16:
      return 2;
    case PREFT_GGUF_U32:
    case PREFT_GGUF_I32:
    case PREFT_GGUF_F32:
      return 4;
    case PREFT_GGUF_U64:
    case PREFT_GGUF_I64:
    case PREFT_GGUF_F64:
      return 8;
    default:
      return 0;
  }
}

static void read_scalar(preft_gguf_kv *kv, uint32_t t, const uint8_t *p) {
  switch (t) {
    case PREFT_GGUF_U8:
      kv->v.u = p[0];
      break;
    case PREFT_GGUF_I8:
      kv->v.i = (int8_t)p[0];
      break;
    case PREFT_GGUF_BOOL:
      kv->v.b = p[0] != 0;
      break;
    case PREFT_GGUF_U16: {
      uint16_t x;
      memcpy(&x, p, 2);
      kv->v.u = x;
      break;
    }
    case PREFT_GGUF_I16: {
      int16_t x;
      memcpy(&x, p, 2);
      kv->v.i = x;
      break;
    }
    case PREFT_GGUF_U32: {
      uint32_t x;
      memcpy(&x, p, 4);
      kv->v.u = x;
      break;
    }
    case PREFT_GGUF_I32: {
      int32_t x;
      memcpy(&x, p, 4);
      kv->v.i = x;
      break;
    }
    case PREFT_GGUF_F32: {
      float x;
      memcpy(&x, p, 4);
      kv->v.f = x;
      break;
    }
    case PREFT_GGUF_U64: {
      uint64_t x;
      memcpy(&x, p, 8);
      kv->v.u = x;
      break;
    }
    case PREFT_GGUF_I64: {
      int64_t x;
      memcpy(&x, p, 8);
      kv->v.i = x;
      break;
    }
    case PREFT_GGUF_F64: {
      double x;
      memcpy(&x, p, 8);
      kv->v.f = x;
      break;
    }
    default:
      break;
  }
}

static int read_kv(cursor *c, preft_gguf_kv *kv, int64_t index) {
  char what[64];
  snprintf(what, sizeof what, "key %lld", (long long)index);
  if (rd_str(c, &kv->key, what)) return -1;
  size_t at = c->off;
  if (rd_u32(c, &kv->type, "a value type")) return -1;
  kv->n = 1;
  if (kv->type == PREFT_GGUF_STRING) return rd_str(c, &kv->str, kv->key);
  if (kv->type == PREFT_GGUF_ARRAY) {
    if (rd_u32(c, &kv->arr_type, "an array type") || rd_u64(c, &kv->n, "an array length")) return -1;
    if (kv->arr_type == PREFT_GGUF_STRING) {
      /* each element takes at least its 8-byte length */
      if (kv->n > (c->n - c->off) / 8)
        return preft_fail(c->err, "%s: key '%s': array of %llu strings cannot fit in the file", c->path,
                          kv->key, (unsigned long long)kv->n);
      kv->strs = preft_xcalloc((size_t)kv->n ? (size_t)kv->n : 1, sizeof(char *));
      for (uint64_t i = 0; i < kv->n; i++)
        if (rd_str(c, &kv->strs[i], kv->key)) return -1;
      return 0;
    }
    size_t es = scalar_size(kv->arr_type);
    if (es == 0)
      return preft_fail(c->err, "%s: key '%s': unsupported array element type %u at byte %zu", c->path,
                        kv->key, kv->arr_type, at);
    if (kv->n > (c->n - c->off) / es)
      return preft_fail(c->err, "%s: key '%s': array of %llu elements runs past the end of the file", c->path,
                        kv->key, (unsigned long long)kv->n);
    kv->arr = c->p + c->off;
    c->off += (size_t)kv->n * es;
    return 0;
  }
  size_t es = scalar_size(kv->type);
  if (es == 0)
    return preft_fail(c->err, "%s: key '%s': unknown value type %u at byte %zu", c->path, kv->key, kv->type,
                      at);
  if (need(c, es, kv->key)) return -1;
  read_scalar(kv, kv->type, c->p + c->off);
  c->off += es;
  return 0;
}

static void free_kv(preft_gguf_kv *kv) {
  free(kv->key);
  free(kv->str);
  if (kv->strs)
    for (uint64_t i = 0; i < kv->n; i++) free(kv->strs[i]);
  free(kv->strs);
}

void preft_gguf_close(preft_gguf_file *f) {
  for (int64_t i = 0; i < f->n_kv; i++) free_kv(&f->kv[i]);
  free(f->kv);
  for (int64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
  free(f->tensors);
  preft_unmap_file(&f->map);
  memset(f, 0, sizeof *f);
}

static int read_tensor_info(cursor *c, preft_gguf_tensor *t, int64_t index) {
  char what[64];
  snprintf(what, sizeof what, "tensor name %lld", (long long)index);
  size_t at = c->off;
  if (rd_str(c, &t->name, what)) return -1;
  size_t nl = strlen(t->name);
  if (nl == 0 || nl > PREFT_GGUF_MAX_NAME)
    return preft_fail(c->err, "%s: tensor %lld at byte %zu: name of %zu bytes (1 to %d allowed)", c->path,
                      (long long)index, at, nl, PREFT_GGUF_MAX_NAME);
  uint32_t nd;
  if (rd_u32(c, &nd, t->name)) return -1;
  if (nd < 1 || nd > PREFT_GGUF_MAX_DIMS)
    return preft_fail(c->err, "%s: tensor '%s': %u dimensions (1 to %d supported)", c->path, t->name, nd,
                      PREFT_GGUF_MAX_DIMS);
  t->ndim = (int)nd;
  uint64_t numel = 1;
  for (int d = 0; d < t->ndim; d++) {
    uint64_t ne;
    if (rd_u64(c, &ne, t->name)) return -1;
    if (ne < 1 || ne > (uint64_t)INT64_MAX / 8 || numel > ((uint64_t)INT64_MAX / 8) / ne)
      return preft_fail(c->err, "%s: tensor '%s': dimension %d has size %llu", c->path, t->name, d,
                        (unsigned long long)ne);
    numel *= ne;
    t->ne[d] = (int64_t)ne;
    t->shape[t->ndim - 1 - d] = (int64_t)ne;
  }
  if (rd_u32(c, &t->type, t->name) || rd_u64(c, &t->offset, t->name)) return -1;
  if (preft_ggml_type_block(t->type) == 0)
    return preft_fail(c->err, "%s: tensor '%s': unknown ggml type %u", c->path, t->name, t->type);
  size_t row = preft_ggml_row_size(t->type, t->ne[0]);
  if (row == 0)
    return preft_fail(c->err, "%s: tensor '%s': its rows of %lld elements are not whole %s blocks of %zu",
                      c->path, t->name, (long long)t->ne[0], preft_ggml_type_name(t->type),
                      preft_ggml_type_block(t->type));
  uint64_t rows = numel / (uint64_t)t->ne[0];
  if (rows > SIZE_MAX / row) return preft_fail(c->err, "%s: tensor '%s' is too large", c->path, t->name);
  t->nbytes = (size_t)rows * row;
  return 0;
}

static int open_file(preft_gguf_file *f, const char *path, bool read_in, preft_error *err);

int preft_gguf_open(preft_gguf_file *f, const char *path, preft_error *err) {
  return open_file(f, path, false, err);
}

int preft_gguf_open_read(preft_gguf_file *f, const char *path, preft_error *err) {
  return open_file(f, path, true, err);
}

static int open_file(preft_gguf_file *f, const char *path, bool read_in, preft_error *err) {
  memset(f, 0, sizeof *f);
  if ((read_in ? preft_copy_file(&f->map, path, err) : preft_map_file(&f->map, path, err)) != 0) return -1;
  cursor c = {.p = f->map.data, .n = f->map.size, .off = 0, .path = path, .err = err};
  uint8_t magic[4];
  uint64_t n_tensors, n_kv;
  if (rd(&c, magic, 4, "the magic")) goto fail;
  if (memcmp(magic, "GGUF", 4) != 0) {
    preft_fail(err, "%s: not a GGUF file (magic is not \"GGUF\")", path);
    goto fail;
  }
  if (rd_u32(&c, &f->version, "the version")) goto fail;
  if (f->version != 2 && f->version != 3) {
    preft_fail(err, "%s: GGUF version %u is not supported (2 or 3)", path, f->version);
    goto fail;
  }
  if (rd_u64(&c, &n_tensors, "the tensor count") || rd_u64(&c, &n_kv, "the metadata count")) goto fail;
  /* a key takes at least 12 bytes (length + type), a tensor info at least 28 */
  if (n_kv > (c.n - c.off) / 12 || n_tensors > (c.n - c.off) / 28) {
    preft_fail(err, "%s: header claims %llu keys and %llu tensors, more than the file can hold", path,
               (unsigned long long)n_kv, (unsigned long long)n_tensors);
    goto fail;
  }
  f->kv = preft_xcalloc((size_t)n_kv ? (size_t)n_kv : 1, sizeof *f->kv);
  for (uint64_t i = 0; i < n_kv; i++) {
    f->n_kv = (int64_t)i + 1;
    if (read_kv(&c, &f->kv[i], (int64_t)i)) goto fail;
    for (uint64_t j = 0; j < i; j++)
      if (!strcmp(f->kv[j].key, f->kv[i].key)) {
        preft_fail(err, "%s: duplicate key '%s'", path, f->kv[i].key);
        goto fail;
      }
  }
  f->alignment = PREFT_GGUF_DEFAULT_ALIGNMENT;
  const preft_gguf_kv *al = preft_gguf_find_kv(f, "general.alignment");
  if (al) {
    if (al->type != PREFT_GGUF_U32 || al->v.u == 0 || (al->v.u & (al->v.u - 1)) != 0) {
      preft_fail(err, "%s: general.alignment must be a u32 power of two", path);
      goto fail;
    }
    f->alignment = (size_t)al->v.u;
  }
  f->tensors = preft_xcalloc((size_t)n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
  for (uint64_t i = 0; i < n_tensors; i++) {
    f->n_tensors = (int64_t)i + 1;
    if (read_tensor_info(&c, &f->tensors[i], (int64_t)i)) goto fail;
    for (uint64_t j = 0; j < i; j++)
      if (!strcmp(f->tensors[j].name, f->tensors[i].name)) {
        preft_fail(err, "%s: duplicate tensor '%s'", path, f->tensors[i].name);
        goto fail;
      }
  }
  size_t data = (c.off + f->alignment - 1) / f->alignment * f->alignment;
  if (n_tensors > 0 && data > c.n) {
    preft_fail(err, "%s: data section would start at byte %zu, past the end of the file (%zu bytes)", path,
               data, c.n);
    goto fail;
  }
  f->data_offset = data;
  /* Offsets must be contiguous in info order, each tensor padded to the
   * alignment (llama.cpp refuses anything else). */
  uint64_t expect = 0;
  for (int64_t i = 0; i < f->n_tensors; i++) {
    preft_gguf_tensor *t = &f->tensors[i];
    if (t->offset != expect) {
      preft_fail(err, "%s: tensor '%s' at data offset %llu, expected %llu", path, t->name,
                 (unsigned long long)t->offset, (unsigned long long)expect);
      goto fail;
    }
    if (t->nbytes > c.n - data || t->offset > c.n - data - t->nbytes) {
      preft_fail(err, "%s: tensor '%s' (%zu bytes at data offset %llu) runs past the end of the file", path,
                 t->name, t->nbytes, (unsigned long long)t->offset);
      goto fail;
    }
    t->data = c.p + data + t->offset;
    expect = t->offset + (t->nbytes + f->alignment - 1) / f->alignment * f->alignment;
  }
  return 0;
fail:
  preft_gguf_close(f);
  return -1;
}

const preft_gguf_kv *preft_gguf_find_kv(const preft_gguf_file *f, const char *key) {
  for (int64_t i = 0; i < f->n_kv; i++)
    if (!strcmp(f->kv[i].key, key)) return &f->kv[i];
  return NULL;
}

const preft_gguf_tensor *preft_gguf_find_tensor(const preft_gguf_file *f, const char *name) {
  for (int64_t i = 0; i < f->n_tensors; i++)
    if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
  return NULL;
}

static const preft_gguf_kv *typed(const preft_gguf_file *f, const char *key, uint32_t type,
                                  preft_error *err) {
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, key);
  if (!kv) {
    preft_fail(err, "%s: key '%s' is missing", f->map.path, key);
    return NULL;
  }
  if (kv->type != type) {
    preft_fail(err, "%s: key '%s' has type %u, expected %u", f->map.path, key, kv->type, type);
    return NULL;
  }
  return kv;
}

int preft_gguf_get_str(const preft_gguf_file *f, const char *key, const char **out, preft_error *err) {
  const preft_gguf_kv *kv = typed(f, key, PREFT_GGUF_STRING, err);
  if (!kv) return -1;
  *out = kv->str;
  return 0;
}

int preft_gguf_get_u32(const preft_gguf_file *f, const char *key, uint32_t *out, preft_error *err) {
  const preft_gguf_kv *kv = typed(f, key, PREFT_GGUF_U32, err);
  if (!kv) return -1;
  *out = (uint32_t)kv->v.u;
  return 0;
}

int preft_gguf_get_f32(const preft_gguf_file *f, const char *key, float *out, preft_error *err) {
  const preft_gguf_kv *kv = typed(f, key, PREFT_GGUF_F32, err);
  if (!kv) return -1;
  *out = (float)kv->v.f;
  return 0;
}

int preft_gguf_get_bool(const preft_gguf_file *f, const char *key, bool *out, preft_error *err) {
  const preft_gguf_kv *kv = typed(f, key, PREFT_GGUF_BOOL, err);
  if (!kv) return -1;
  *out = kv->v.b;
  return 0;
}

float preft_gguf_tensor_get(const preft_gguf_tensor *t, size_t i) {
  const uint8_t *p = t->data;
  if (t->type == PREFT_GGML_F32) {
    float v;
    memcpy(&v, p + 4 * i, 4);
    return v;
  }
  uint16_t h;
  memcpy(&h, p + 2 * i, 2);
  return t->type == PREFT_GGML_F16 ? preft_f16_to_f32(h) : preft_bf16_to_f32(h);
}

bool preft_gguf_kv_integer(const preft_gguf_kv *kv, int64_t *v) {
  switch (kv->type) {
    case PREFT_GGUF_U8:
    case PREFT_GGUF_U16:
    case PREFT_GGUF_U32:
    case PREFT_GGUF_U64:
      *v = kv->v.u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)kv->v.u;
      return true;
    case PREFT_GGUF_I8:
    case PREFT_GGUF_I16:
    case PREFT_GGUF_I32:
    case PREFT_GGUF_I64:
      *v = kv->v.i;
      return true;
    default:
      return false;
  }
}

int preft_gguf_get_int(const preft_gguf_file *f, const char *key, int32_t *out, preft_error *err) {
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, key);
  if (!kv) return preft_fail(err, "%s: key '%s' is missing", f->map.path, key);
  int64_t v;
  if (!preft_gguf_kv_integer(kv, &v))
    return preft_fail(err, "%s: key '%s' must be an integer", f->map.path, key);
  if (v < 0 || v > INT32_MAX)
    return preft_fail(err, "%s: key '%s' is %lld, outside [0, %d]", f->map.path, key, (long long)v,
                      INT32_MAX);
  *out = (int32_t)v;
  return 0;
}

int preft_gguf_get_real(const preft_gguf_file *f, const char *key, double *out, preft_error *err) {
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, key);
  if (!kv) return preft_fail(err, "%s: key '%s' is missing", f->map.path, key);
  if (kv->type != PREFT_GGUF_F32 && kv->type != PREFT_GGUF_F64)
    return preft_fail(err, "%s: key '%s' must be a float", f->map.path, key);
  *out = kv->v.f;
  return 0;
}

bool preft_gguf_is_file(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  FILE *fp = fopen(path, "rb");
  if (!fp) return false;
  char magic[4];
  bool yes = fread(magic, 1, 4, fp) == 4 && !memcmp(magic, "GGUF", 4);
  fclose(fp);
  return yes;
}
