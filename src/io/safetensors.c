/* safetensors.c - validated reading and atomic writing of safetensors files. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER_BYTES (100u << 20) /* the reference implementation's limit */

static int parse_dtype(const char *s, preft_dtype *out) {
  if (!strcmp(s, "F32"))
    *out = PREFT_F32;
  else if (!strcmp(s, "F16"))
    *out = PREFT_F16;
  else if (!strcmp(s, "BF16"))
    *out = PREFT_BF16;
  else
    return -1;
  return 0;
}

/* Bytes per element of the safetensors dtypes no weight has; 0 if unknown. */
static size_t other_dtype_size(const char *s) {
  static const struct {
    const char *name;
    size_t size;
  } types[] = {{"F64", 8}, {"I64", 8}, {"U64", 8}, {"I32", 4},  {"U32", 4},     {"I16", 2},
               {"U16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (!strcmp(s, types[i].name)) return types[i].size;
  return 0;
}

static int json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return -1;
  double d = v->valuedouble;
  if (d < 0 || d > 9007199254740992.0 || d != (double)(uint64_t)d) return -1;
  *out = (uint64_t)d;
  return 0;
}

typedef struct {
  uint64_t begin, end;
  const char *name;
} byte_range;

static int cmp_range(const void *a, const void *b) {
  const byte_range *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

/* Parses one tensor entry of the header into t (name not yet set).
 * Returns 1 (t->nbytes and *begin set) for a valid tensor of a dtype no
 * weight has, to be skipped. */
static int parse_entry(const cJSON *entry, const char *path, uint64_t data_size, preft_st_tensor *t,
                       uint64_t *begin, preft_error *err) {
  const char *name = entry->string;
  if (!cJSON_IsObject(entry))
    return preft_fail(err, "%s: tensor %s: header entry is not an object", path, name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
  if (!cJSON_IsString(dt))
    return preft_fail(err, "%s: tensor %s: missing or non-string \"dtype\"", path, name);
  size_t elem = 0;
  if (parse_dtype(dt->valuestring, &t->dtype) == 0)
    elem = preft_dtype_size(t->dtype);
  else if (!(elem = other_dtype_size(dt->valuestring)))
    return preft_fail(err, "%s: tensor %s: unsupported dtype %s (expected F32, F16 or BF16)", path, name,
                      dt->valuestring);
  if (!cJSON_IsArray(shape)) return preft_fail(err, "%s: tensor %s: missing \"shape\" array", path, name);
  int nd = cJSON_GetArraySize(shape);
  if (nd > PREFT_ST_MAX_DIMS)
    return preft_fail(err, "%s: tensor %s: %d dimensions (max %d)", path, name, nd, PREFT_ST_MAX_DIMS);
  t->ndim = nd;
  uint64_t numel = 1;
  for (int i = 0; i < nd; i++) {
    uint64_t d;
    if (json_uint(cJSON_GetArrayItem(shape, i), &d) != 0 || d > (1ull << 40))
      return preft_fail(err, "%s: tensor %s: shape[%d] is not a valid dimension", path, name, i);
    t->shape[i] = (int64_t)d;
    if (d && numel > (1ull << 48) / d) return preft_fail(err, "%s: tensor %s: shape too large", path, name);
    numel *= d;
  }
  uint64_t b, e;
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
      json_uint(cJSON_GetArrayItem(offs, 0), &b) != 0 || json_uint(cJSON_GetArrayItem(offs, 1), &e) != 0)
    return preft_fail(err, "%s: tensor %s: \"data_offsets\" must be [begin, end]", path, name);
  if (b > e || e > data_size)
    return preft_fail(err, "%s: tensor %s: data_offsets [%llu, %llu] run past the data section (%llu bytes)",
                      path, name, (unsigned long long)b, (unsigned long long)e,
                      (unsigned long long)data_size);
  if (e - b != numel * elem)
    return preft_fail(err, "%s: tensor %s: data_offsets cover %llu bytes but shape and dtype need %llu", path,
                      name, (unsigned long long)(e - b), (unsigned long long)(numel * elem));
  t->nbytes = (size_t)(e - b);
  *begin = b;
  return other_dtype_size(dt->valuestring) ? 1 : 0;
}

int preft_st_add_file(preft_st_set *set, const char *path, preft_error *err) {
  preft_mapped_file f;
  if ((set->copy ? preft_copy_file(&f, path, err) : preft_map_file(&f, path, err)) != 0) return -1;
  int rc = -1;
  cJSON *root = NULL;
  byte_range *ranges = NULL;
  int first_new = set->n_tensors, first_skipped = set->n_skipped;
  if (f.size < 8) {
    preft_fail(err, "%s: truncated: %zu bytes, a safetensors file starts with an 8-byte header length", path,
               f.size);
    goto done;
  }
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++) hlen |= (uint64_t)f.data[i] << (8 * i);
  if (hlen > MAX_HEADER_BYTES || hlen > f.size - 8) {
    preft_fail(err,
               "%s: header length %llu at offset 0 runs past the end of the %zu-byte file (truncated or not "
               "safetensors)",
               path, (unsigned long long)hlen, f.size);
    goto done;
  }
  const char *hdr = (const char *)f.data + 8;
  root = cJSON_ParseWithLength(hdr, (size_t)hlen);
  if (!root || !cJSON_IsObject(root)) {
    const char *at = cJSON_GetErrorPtr();
    long off = at && at >= hdr && at <= hdr + hlen ? (long)(at - hdr) + 8 : -1;
    preft_fail(err, "%s: header is not a valid JSON object (near byte offset %ld)", path, off);
    goto done;
  }
  uint64_t data_off = 8 + hlen, data_size = f.size - data_off;
  const uint8_t *data = f.data + data_off;
  int n = 0;
  const cJSON *entry;
  cJSON_ArrayForEach(entry, root) if (strcmp(entry->string, "__metadata__") != 0) n++;
  ranges = preft_xcalloc((size_t)n + 1, sizeof *ranges);
  set->tensors = preft_xrealloc(set->tensors, sizeof(preft_st_tensor) * (size_t)(set->n_tensors + n));
  int k = 0;
  cJSON_ArrayForEach(entry, root) {
    if (!strcmp(entry->string, "__metadata__")) continue;
    if (preft_st_find(set, entry->string) || preft_st_skipped_dtype(set, entry->string)) {
      preft_fail(err, "%s: tensor %s appears twice (in this file or an earlier shard)", path, entry->string);
      goto done;
    }
    preft_st_tensor *t = &set->tensors[set->n_tensors];
    memset(t, 0, sizeof *t);
    uint64_t begin = 0;
    int kind = parse_entry(entry, path, data_size, t, &begin, err);
    if (kind < 0) goto done;
    if (kind == 1) { /* remembered by name only; its bytes still may not overlap others */
      set->skipped = preft_xrealloc(set->skipped, sizeof *set->skipped * (size_t)(set->n_skipped + 1));
      preft_st_skipped *sk = &set->skipped[set->n_skipped++];
      sk->name = preft_xstrdup(entry->string);
      snprintf(sk->dtype, sizeof sk->dtype, "%s",
               cJSON_GetObjectItemCaseSensitive(entry, "dtype")->valuestring);
      ranges[k++] = (byte_range){begin, begin + t->nbytes, sk->name};
      continue;
    }
    t->name = preft_xstrdup(entry->string);
    t->file = set->n_files;
    t->data = data + begin;
    ranges[k++] = (byte_range){begin, begin + t->nbytes, t->name};
    set->n_tensors++;
  }
  qsort(ranges, (size_t)k, sizeof *ranges, cmp_range);
  for (int i = 1; i < k; i++) {
    if (ranges[i].begin < ranges[i - 1].end && ranges[i].end > ranges[i].begin) {
      preft_fail(err, "%s: tensors %s and %s overlap in the data section (offsets %llu and %llu)", path,
                 ranges[i - 1].name, ranges[i].name, (unsigned long long)ranges[i - 1].begin,
                 (unsigned long long)ranges[i].begin);
      goto done;
    }
  }
  /* Point misaligned tensors at aligned copies. */
  for (int i = first_new; i < set->n_tensors; i++) {
    preft_st_tensor *t = &set->tensors[i];
    if (((uintptr_t)t->data % preft_dtype_size(t->dtype)) == 0) continue;
    void *copy = preft_xmalloc(t->nbytes);
    memcpy(copy, t->data, t->nbytes);
    set->owned = preft_xrealloc(set->owned, sizeof(void *) * (size_t)(set->n_owned + 1));
    set->owned[set->n_owned++] = copy;
    t->data = copy;
  }
  set->files = preft_xrealloc(set->files, sizeof(preft_mapped_file) * (size_t)(set->n_files + 1));
  set->files[set->n_files++] = f;
  set->file_bytes += f.size;
  if (set->sum) set->checksum = set->checksum * 0x100000001b3ull ^ preft_checksum64(f.data, f.size);
  rc = 0;
done:
  if (rc != 0) {
    for (int i = first_new; i < set->n_tensors; i++) free(set->tensors[i].name);
    set->n_tensors = first_new;
    for (int i = first_skipped; i < set->n_skipped; i++) free(set->skipped[i].name);
    set->n_skipped = first_skipped;
    preft_unmap_file(&f);
  }
  free(ranges);
  cJSON_Delete(root);
  return rc;
}

static int open_index(preft_st_set *set, const char *dir, const char *index_path, preft_error *err) {
  char *text;
  if (preft_read_file(index_path, &text, NULL, err) != 0) return -1;
  cJSON *root = cJSON_Parse(text);
  free(text);
  int rc = -1;
  const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
  if (!cJSON_IsObject(map)) {
    preft_fail(err, "%s: not valid JSON with a \"weight_map\" object", index_path);
    goto done;
  }
  /* Open each distinct shard once, in order of first mention. */
  const cJSON *e;
  cJSON_ArrayForEach(e, map) {
    if (!cJSON_IsString(e)) {
      preft_fail(err, "%s: weight_map entry %s is not a file name", index_path, e->string);
      goto done;
    }
    const char *shard = e->valuestring;
    if (strchr(shard, '/') || !strcmp(shard, "..")) {
      preft_fail(err, "%s: weight_map entry %s names a path outside the directory: %s", index_path, e->string,
                 shard);
      goto done;
    }
    int seen = 0;
    for (int i = 0; i < set->n_files; i++) {
      const char *base = strrchr(set->files[i].path, '/');
      if (!strcmp(base ? base + 1 : set->files[i].path, shard)) seen = 1;
    }
    if (seen) continue;
    char *p = preft_path_join(dir, shard);
    int r = preft_st_add_file(set, p, err);
    free(p);
    if (r != 0) goto done;
  }
  cJSON_ArrayForEach(e, map) {
    if (!preft_st_find(set, e->string) && !preft_st_skipped_dtype(set, e->string)) {
      preft_fail(err, "%s: tensor %s is listed in weight_map but missing from %s", index_path, e->string,
                 e->valuestring);
      goto done;
    }
  }
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

static int open_dir(preft_st_set *set, const char *dir, const char *stem, bool copy, bool sum,
                    preft_error *err) {
  memset(set, 0, sizeof *set);
  set->copy = copy;
  set->sum = sum;
  char name[256];
  snprintf(name, sizeof name, "%s.safetensors", stem);
  char *single = preft_path_join(dir, name);
  snprintf(name, sizeof name, "%s.safetensors.index.json", stem);
  char *index = preft_path_join(dir, name);
  int rc;
  if (preft_file_exists(single))
    rc = preft_st_add_file(set, single, err);
  else if (preft_file_exists(index))
    rc = open_index(set, dir, index, err);
  else
    rc = preft_fail(err, "%s: no %s.safetensors or %s.safetensors.index.json", dir, stem, stem);
  free(single);
  free(index);
  if (rc != 0) preft_st_close(set);
  return rc;
}

int preft_st_open_dir(preft_st_set *set, const char *dir, const char *stem, preft_error *err) {
  return open_dir(set, dir, stem, false, false, err);
}

int preft_st_open_dir_copied(preft_st_set *set, const char *dir, const char *stem, preft_error *err) {
  return open_dir(set, dir, stem, true, true, err);
}

int preft_st_open_dir_read(preft_st_set *set, const char *dir, const char *stem, preft_error *err) {
  return open_dir(set, dir, stem, true, false, err);
}

void preft_st_close(preft_st_set *set) {
  for (int i = 0; i < set->n_tensors; i++) free(set->tensors[i].name);
  for (int i = 0; i < set->n_files; i++) preft_unmap_file(&set->files[i]);
  for (int i = 0; i < set->n_owned; i++) free(set->owned[i]);
  for (int i = 0; i < set->n_skipped; i++) free(set->skipped[i].name);
  free(set->skipped);
  free(set->tensors);
  free(set->files);
  free(set->owned);
  memset(set, 0, sizeof *set);
}

const preft_st_tensor *preft_st_find(const preft_st_set *set, const char *name) {
  for (int i = 0; i < set->n_tensors; i++)
    if (!strcmp(set->tensors[i].name, name)) return &set->tensors[i];
  return NULL;
}

const char *preft_st_skipped_dtype(const preft_st_set *set, const char *name) {
  for (int i = 0; i < set->n_skipped; i++)
    if (!strcmp(set->skipped[i].name, name)) return set->skipped[i].dtype;
  return NULL;
}

const char *preft_st_file_of(const preft_st_set *set, const preft_st_tensor *t) {
  return set->files[t->file].path;
}

const char *preft_st_files_desc(const preft_st_set *set, char *buf, size_t n) {
  if (set->n_files == 0) return "(no safetensors file)";
  if (set->n_files == 1) return set->files[0].path;
  snprintf(buf, n, "%s (and %d more files)", set->files[0].path, set->n_files - 1);
  return buf;
}

size_t preft_st_numel(const preft_st_tensor *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
  return n;
}

static int cmp_write(const void *a, const void *b) {
  return strcmp(((const preft_st_write_tensor *const *)a)[0]->name,
                ((const preft_st_write_tensor *const *)b)[0]->name);
}

int preft_st_write(const char *path, const preft_st_write_tensor *tensors, int n, preft_error *err) {
  const preft_st_write_tensor **order = preft_xcalloc((size_t)n + 1, sizeof *order);
  for (int i = 0; i < n; i++) order[i] = &tensors[i];
  qsort(order, (size_t)n, sizeof *order, cmp_write);
  cJSON *root = cJSON_CreateObject();
  cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
  cJSON_AddStringToObject(meta, "format", "pt");
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const preft_st_write_tensor *t = order[i];
    cJSON *e = cJSON_AddObjectToObject(root, t->name);
    cJSON_AddStringToObject(e, "dtype", preft_dtype_name(t->dtype));
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
      cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
      numel *= (uint64_t)t->shape[d];
    }
    uint64_t bytes = numel * preft_dtype_size(t->dtype);
    cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
    off += bytes;
  }
  char *json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  size_t jlen = strlen(json), padded = (jlen + 7) & ~(size_t)7;
  uint8_t lenbuf[8];
  for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
  preft_atomic_writer w;
  int rc = preft_atomic_open(&w, path, err);
  if (rc == 0) rc = preft_atomic_write(&w, lenbuf, 8, err);
  if (rc == 0) rc = preft_atomic_write(&w, json, jlen, err);
  if (rc == 0 && padded > jlen) rc = preft_atomic_write(&w, "        ", padded - jlen, err);
  for (int i = 0; i < n && rc == 0; i++) {
    size_t numel = 1;
    for (int d = 0; d < order[i]->ndim; d++) numel *= (size_t)order[i]->shape[d];
    rc = preft_atomic_write(&w, order[i]->data, numel * preft_dtype_size(order[i]->dtype), err);
  }
  free(json);
  free(order);
  if (rc != 0) {
    preft_atomic_abort(&w);
    return -1;
  }
  return preft_atomic_commit(&w, err);
}
