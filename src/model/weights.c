/* weights.c - shape-checked tensor lookups and random fills shared by the
 * model loaders (see weights.h). */
#include "model/weights.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int preft_weights_expect(const preft_st_set *st, const char *name, int64_t d0, int64_t d1,
                         const preft_st_tensor **out, preft_error *err) {
  const preft_st_tensor *t = preft_st_find(st, name);
  if (!t) {
    const char *other = preft_st_skipped_dtype(st, name);
    if (other)
      return preft_fail(err, "tensor %s has dtype %s; a weight must be F32, F16 or BF16", name, other);
    char files[PATH_MAX + 32];
    return preft_fail(err, "%s: tensor %s is missing", preft_st_files_desc(st, files, sizeof files), name);
  }
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
    return preft_fail(err, "%s: tensor %s has shape %s, expected %s", preft_st_file_of(st, t), name, got,
                      want);
  }
  *out = t;
  return 0;
}

int preft_weights_matrix(const preft_st_set *st, const char *name, int64_t rows, int64_t cols,
                         preft_weight *w, preft_error *err) {
  const preft_st_tensor *t;
  if (preft_weights_expect(st, name, rows, cols, &t, err) != 0) return -1;
  w->data = t->data;
  w->dtype = t->dtype;
  return 0;
}

int preft_weights_vector(const preft_st_set *st, const char *name, int64_t n, float **out, preft_error *err) {
  const preft_st_tensor *t;
  if (preft_weights_expect(st, name, n, 0, &t, err) != 0) return -1;
  float *v = preft_xmalloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = preft_load_elem(t->data, t->dtype, (size_t)i);
  *out = v;
  return 0;
}

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void preft_weights_fill_uniform(void *dst, preft_dtype t, size_t n, float scale, uint64_t *rng) {
  for (size_t i = 0; i < n; i++) {
    float u = (float)((splitmix64(rng) >> 40) * 0x1p-24) * 2.0f - 1.0f;
    float v = u * scale;
    if (t == PREFT_F32)
      ((float *)dst)[i] = v;
    else if (t == PREFT_F16)
      ((uint16_t *)dst)[i] = preft_f32_to_f16(v);
    else
      ((uint16_t *)dst)[i] = preft_f32_to_bf16(v);
  }
}

float *preft_weights_random_vector(size_t n, float center, float scale, uint64_t *rng) {
  float *v = preft_xmalloc(sizeof(float) * n);
  preft_weights_fill_uniform(v, PREFT_F32, n, scale, rng);
  for (size_t i = 0; i < n; i++) v[i] += center;
  return v;
}
