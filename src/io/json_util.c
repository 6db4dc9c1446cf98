/* json_util.c - see json_util.h. */
#include "io/json_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"

int preft_json_load(const char *path, cJSON **out, preft_error *err) {
  char *text;
  size_t n;
  if (preft_read_file(path, &text, &n, err) != 0) return -1;
  cJSON *root = cJSON_ParseWithLength(text, n);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long off = at && at >= text && at <= text + n ? (long)(at - text) : -1;
    free(text);
    return preft_fail(err, "%s: malformed JSON near byte offset %ld", path, off);
  }
  free(text);
  *out = root;
  return 0;
}

static const cJSON *field_of(const cJSON *obj, const char *field) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, field) : NULL;
  return v && !cJSON_IsNull(v) ? v : NULL;
}

int preft_json_int(const cJSON *obj, const char *file, const char *field, bool required, long lo, long hi,
                   long dflt, long *out, preft_error *err) {
  const cJSON *v = field_of(obj, field);
  if (!v) {
    if (required) return preft_fail(err, "%s: missing field \"%s\"", file, field);
    *out = dflt;
    return 0;
  }
  double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
  if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
    return preft_fail(err, "%s: field \"%s\" must be an integer in [%ld, %ld]", file, field, lo, hi);
  *out = (long)d;
  return 0;
}

int preft_json_num(const cJSON *obj, const char *file, const char *field, bool required, double dflt,
                   double *out, preft_error *err) {
  const cJSON *v = field_of(obj, field);
  if (!v) {
    if (required) return preft_fail(err, "%s: missing field \"%s\"", file, field);
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return preft_fail(err, "%s: field \"%s\" must be a finite number", file, field);
  *out = v->valuedouble;
  return 0;
}

int preft_json_bool(const cJSON *obj, const char *file, const char *field, bool dflt, bool *out,
                    preft_error *err) {
  const cJSON *v = field_of(obj, field);
  if (!v) {
    *out = dflt;
    return 0;
  }
  if (!cJSON_IsBool(v)) return preft_fail(err, "%s: field \"%s\" must be true or false", file, field);
  *out = cJSON_IsTrue(v);
  return 0;
}

int preft_json_str(const cJSON *obj, const char *file, const char *field, bool required, const char **out,
                   preft_error *err) {
  const cJSON *v = field_of(obj, field);
  if (!v) {
    if (required) return preft_fail(err, "%s: missing field \"%s\"", file, field);
    *out = NULL;
    return 0;
  }
  if (!cJSON_IsString(v)) return preft_fail(err, "%s: field \"%s\" must be a string", file, field);
  *out = v->valuestring;
  return 0;
}

int preft_json_save(const char *path, const cJSON *j, preft_error *err) {
  char *text = cJSON_Print(j);
  size_t n = strlen(text);
  text = preft_xrealloc(text, n + 2);
  text[n] = '\n';
  text[n + 1] = '\0';
  int rc = preft_write_atomic(path, text, n + 1, err);
  free(text);
  return rc;
}
