/* error.c - error message formatting and allocation helpers. */
#include "base/error.h"

#include <stdarg.h>
#include <string.h>

int preft_fail(preft_error *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return -1;
}

int preft_fail_prefix(preft_error *err, const char *fmt, ...) {
  if (err) {
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3, m = strnlen(old, rest);
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = 0;
  }
  return -1;
}

static void out_of_memory(size_t n) {
  fprintf(stderr, "preft: out of memory allocating %zu bytes\n", n);
  abort();
}

void *preft_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) out_of_memory(n);
  return p;
}

void *preft_xcalloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) out_of_memory(count * size);
  return p;
}

void *preft_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) out_of_memory(n);
  return q;
}

char *preft_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = preft_xmalloc(n);
  memcpy(d, s, n);
  return d;
}
