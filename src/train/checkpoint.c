/* checkpoint.c - writing and reading the resumable checkpoint (see
 * checkpoint.h). */
#include "train/checkpoint.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

int preft_checkpoint_save(const char *path, const preft_ckpt_state *s, const float *params, const float *m,
                          const float *v, const double *hist, preft_error *err) {
  cJSON *h = cJSON_CreateObject();
  cJSON_AddNumberToObject(h, "step", (double)s->step);
  cJSON_AddNumberToObject(h, "epoch", (double)s->epoch);
  cJSON_AddNumberToObject(h, "cursor", (double)s->cursor);
  cJSON_AddNumberToObject(h, "adam_t", (double)s->adam_t);
  cJSON_AddNumberToObject(h, "tokens", (double)s->tokens);
  cJSON_AddNumberToObject(h, "elapsed", s->elapsed);
  char seed[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
  cJSON_AddStringToObject(h, "seed", seed);
  cJSON_AddNumberToObject(h, "n_params", (double)s->n_params);
  cJSON_AddNumberToObject(h, "n_hist", (double)s->n_hist);
  cJSON_AddNumberToObject(h, "n_train", (double)s->n_train);
  int64_t cols = s->hist_cols > 0 ? s->hist_cols : PREFT_HIST_COLS;
  if (cols != PREFT_HIST_COLS) cJSON_AddNumberToObject(h, "hist_cols", (double)cols);
  if (s->extra_bytes) cJSON_AddNumberToObject(h, "extra_bytes", (double)s->extra_bytes);
  char *json = cJSON_PrintUnformatted(h);
  cJSON_Delete(h);
  uint64_t len = strlen(json);
  preft_atomic_writer w;
  if (preft_atomic_open(&w, path, err) != 0) {
    cJSON_free(json);
    return -1;
  }
  size_t n = (size_t)s->n_params;
  int rc = preft_atomic_write(&w, "PREFTCK1", 8, err);
  if (rc == 0) rc = preft_atomic_write(&w, &len, 8, err);
  if (rc == 0) rc = preft_atomic_write(&w, json, len, err);
  if (rc == 0) rc = preft_atomic_write(&w, params, sizeof(float) * n, err);
  if (rc == 0) rc = preft_atomic_write(&w, m, sizeof(float) * n, err);
  if (rc == 0) rc = preft_atomic_write(&w, v, sizeof(float) * n, err);
  if (rc == 0 && s->n_hist)
    rc = preft_atomic_write(&w, hist, sizeof(double) * (size_t)s->n_hist * (size_t)cols, err);
  if (rc == 0 && s->extra_bytes) rc = preft_atomic_write(&w, s->extra, (size_t)s->extra_bytes, err);
  cJSON_free(json);
  if (rc != 0) {
    preft_atomic_abort(&w);
    return -1;
  }
  return preft_atomic_commit(&w, err);
}

static int64_t num(const cJSON *h, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(h, k);
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

int preft_checkpoint_load(const char *path, preft_ckpt_state *s, float *params, float *m, float *v, size_t n,
                          double **hist, preft_error *err) {
  preft_mapped_file f;
  if (preft_map_file(&f, path, err) != 0) return -1;
  int rc = -1;
  cJSON *h = NULL;
  uint64_t len;
  if (f.size < 16 || memcmp(f.data, "PREFTCK1", 8) != 0) {
    preft_fail(err, "%s: not a preft checkpoint", path);
    goto done;
  }
  memcpy(&len, f.data + 8, 8);
  if (len > f.size - 16) {
    preft_fail(err, "%s: truncated header", path);
    goto done;
  }
  h = cJSON_ParseWithLength((const char *)f.data + 16, len);
  const cJSON *seed = h ? cJSON_GetObjectItem(h, "seed") : NULL;
  if (!h || !cJSON_IsString(seed)) {
    preft_fail(err, "%s: malformed header", path);
    goto done;
  }
  memset(s, 0, sizeof *s);
  s->step = num(h, "step");
  s->epoch = num(h, "epoch");
  s->cursor = num(h, "cursor");
  s->adam_t = num(h, "adam_t");
  s->tokens = num(h, "tokens");
  s->elapsed = cJSON_GetObjectItem(h, "elapsed") ? cJSON_GetObjectItem(h, "elapsed")->valuedouble : 0;
  s->seed = strtoull(seed->valuestring, NULL, 10);
  s->n_params = (uint64_t)num(h, "n_params");
  s->n_hist = num(h, "n_hist");
  s->n_train = num(h, "n_train");
  s->hist_cols = cJSON_GetObjectItem(h, "hist_cols") ? num(h, "hist_cols") : PREFT_HIST_COLS;
  int64_t extra = cJSON_GetObjectItem(h, "extra_bytes") ? num(h, "extra_bytes") : 0;
  if (s->step < 0 || s->n_hist < 0 || s->cursor < 0 || s->hist_cols < 1 || s->hist_cols > 64 || extra < 0 ||
      (uint64_t)extra > f.size) {
    preft_fail(err, "%s: malformed header", path);
    goto done;
  }
  if (s->n_params != n) {
    preft_fail(err, "%s: holds %llu parameters, this run has %zu (different model or adapter options?)", path,
               (unsigned long long)s->n_params, n);
    goto done;
  }
  size_t hb = sizeof(double) * (size_t)s->n_hist * (size_t)s->hist_cols;
  size_t need = 16 + len + 3 * sizeof(float) * n + hb + (size_t)extra;
  if (f.size != need) {
    preft_fail(err, "%s: %zu bytes, expected %zu (truncated or corrupt)", path, f.size, need);
    goto done;
  }
  const uint8_t *p = f.data + 16 + len;
  memcpy(params, p, sizeof(float) * n);
  memcpy(m, p + sizeof(float) * n, sizeof(float) * n);
  memcpy(v, p + 2 * sizeof(float) * n, sizeof(float) * n);
  *hist = preft_xmalloc(hb ? hb : 1);
  if (hb) memcpy(*hist, p + 3 * sizeof(float) * n, hb);
  if (extra) {
    void *x = preft_xmalloc((size_t)extra);
    memcpy(x, p + 3 * sizeof(float) * n + hb, (size_t)extra);
    s->extra = x;
    s->extra_bytes = (uint64_t)extra;
  }
  rc = 0;
done:
  cJSON_Delete(h);
  preft_unmap_file(&f);
  return rc;
}
