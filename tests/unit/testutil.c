/* testutil.c - see testutil.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file.h"

#include "text/jinja.h"

char *test_data_path(const char *rel) {
  const char *root = getenv("PREFT_TEST_DATA");
  if (!root) root = "tests/data";
  size_t n = strlen(root) + strlen(rel) + 2;
  char *p = malloc(n);
  snprintf(p, n, "%s/%s", root, rel);
  return p;
}

char *test_tmpdir(void) {
  char tmpl[] = "/tmp/preft-test-XXXXXX";
  char *d = mkdtemp(tmpl);
  if (!d) abort();
  char *p = malloc(strlen(d) + 1);
  strcpy(p, d);
  return p;
}

char *test_tmp_file(const char *name) {
  char *dir = test_tmpdir();
  char *p = preft_path_join(dir, name);
  free(dir);
  return p;
}

void test_remove_tmp_file(char *path) {
  unlink(path);
  char *slash = strrchr(path, '/');
  if (slash) {
    *slash = 0;
    rmdir(path);
  }
  free(path);
}

double test_rel_l2(const float *a, const double *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

int *test_parse_ints(const char *s, int *n) {
  int *v = malloc(sizeof(int) * 1024);
  *n = 0;
  char *end;
  for (;;) {
    v[(*n)++] = (int)strtol(s, &end, 10);
    if (*end != ',' || *n == 1024) break;
    s = end + 1;
  }
  return v;
}

void *test_read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *buf = malloc(n > 0 ? (size_t)n + 1 : 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  fclose(f);
  ((char *)buf)[got] = 0;
  if (size) *size = got;
  return buf;
}

cJSON *test_load_golden(const char *dir, const char *tool) {
  size_t n = strlen(dir) + sizeof "/golden.json";
  char *path = malloc(n);
  snprintf(path, n, "%s/golden.json", dir);
  char *text = test_read_all(path, NULL);
  if (!text) fail_msg("missing %s (run %s)", path, tool);
  cJSON *j = cJSON_Parse(text);
  if (!j) fail_msg("%s is not JSON (run %s)", path, tool);
  free(text);
  free(path);
  return j;
}

test_jsonl test_read_jsonl(const char *rel) {
  char *path = test_data_path(rel);
  size_t size;
  char *data = test_read_all(path, &size);
  if (!data) fail_msg("missing %s", path);
  test_jsonl out = {0};
  char *p = data, *end = data + size;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) nl = end;
    if (nl > p) {
      out.v = realloc(out.v, sizeof *out.v * (size_t)(out.n + 1));
      out.v[out.n] = cJSON_ParseWithLength(p, (size_t)(nl - p));
      if (!out.v[out.n]) fail_msg("%s line %d is not JSON", path, out.n + 1);
      out.n++;
    }
    p = nl + 1;
  }
  free(data);
  free(path);
  return out;
}

void test_jsonl_free(test_jsonl *j) {
  for (int i = 0; i < j->n; i++) cJSON_Delete(j->v[i]);
  free(j->v);
}

double test_time_scale(void) {
  const char *s = getenv("PREFT_TEST_TIME_SCALE");
  double v = s ? atof(s) : 1.0;
  return v >= 1.0 ? v : 1.0;
}

int test_run_preft(const char *args, char **output) {
  const char *bin = getenv("PREFT_BIN");
  if (!bin) bin = "build/preft";
  size_t n = strlen(bin) + strlen(args) + 16;
  char *cmd = malloc(n);
  snprintf(cmd, n, "%s %s 2>&1", bin, args);
  FILE *p = popen(cmd, "r");
  free(cmd);
  if (!p) return -1;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += got;
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
  }
  buf[len] = 0;
  int status = pclose(p);
  if (output)
    *output = buf;
  else
    free(buf);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static uint64_t frand_state = 0x9e3779b97f4a7c15ull;

float test_frand(void) {
  frand_state ^= frand_state << 13;
  frand_state ^= frand_state >> 7;
  frand_state ^= frand_state << 17;
  return (float)((frand_state >> 40) * 0x1p-24 * 2.0 - 1.0);
}

void *test_random_weights(preft_dtype dt, size_t count) {
  void *w = malloc(count * preft_dtype_size(dt) + 1);
  for (size_t i = 0; i < count; i++) {
    float v = test_frand();
    if (dt == PREFT_F16)
      ((uint16_t *)w)[i] = preft_f32_to_f16(v);
    else if (dt == PREFT_BF16)
      ((uint16_t *)w)[i] = preft_f32_to_bf16(v);
    else
      ((float *)w)[i] = v;
  }
  return w;
}

void test_render_ok(const char *tmpl, const char *ctx_json, const char *want) {
  cJSON *ctx = cJSON_Parse(ctx_json ? ctx_json : "{}");
  assert_non_null(ctx);
  char *out;
  preft_error err;
  if (preft_jinja_render(tmpl, NULL, ctx, &out, &err)) fail_msg("%s: %s", tmpl, err.msg);
  if (strcmp(out, want)) fail_msg("template %s\nwant [%s]\ngot  [%s]", tmpl, want, out);
  free(out);
  cJSON_Delete(ctx);
}

void test_render_fails(const char *tmpl, const char *source, const char *needle1, const char *needle2) {
  cJSON *ctx = cJSON_CreateObject();
  char *out = NULL;
  preft_error err;
  if (preft_jinja_render(tmpl, source, ctx, &out, &err) != -1) fail_msg("%s rendered [%s]", tmpl, out);
  assert_null(out);
  if (!strstr(err.msg, needle1)) fail_msg("error '%s' does not mention '%s'", err.msg, needle1);
  if (needle2 && !strstr(err.msg, needle2)) fail_msg("error '%s' does not mention '%s'", err.msg, needle2);
  cJSON_Delete(ctx);
}
