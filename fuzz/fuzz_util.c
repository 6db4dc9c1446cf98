/* fuzz_util.c - the temporary directory and file helpers of fuzz_util.h. */
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PREFT_FUZZ_DATA
#error "PREFT_FUZZ_DATA (the tests/data folder) must be defined"
#endif

static char dir[256];

/* Removes the temporary directory and what the targets wrote in it. */
static void remove_tmpdir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", dir);
}

const char *fuzz_tmpdir(void) {
  if (!dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/preft-fuzz-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
      perror("fuzz: mkdtemp");
      abort();
    }
    atexit(remove_tmpdir);
  }
  return dir;
}

const char *fuzz_write(const char *name, const uint8_t *data, size_t n) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", fuzz_tmpdir(), name);
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
    perror(path);
    abort();
  }
  return path;
}

void fuzz_copy_data(const char *rel, const char *name) {
  char src[512];
  snprintf(src, sizeof src, "%s/%s", PREFT_FUZZ_DATA, rel);
  FILE *f = fopen(src, "rb");
  if (!f) {
    perror(src);
    abort();
  }
  size_t cap = 1 << 16, n = 0, got;
  uint8_t *buf = malloc(cap);
  while ((got = fread(buf + n, 1, cap - n, f)) > 0)
    if ((n += got) == cap) buf = realloc(buf, cap *= 2);
  fclose(f);
  fuzz_write(name, buf, n);
  free(buf);
}

char *fuzz_cstr(const uint8_t *data, size_t n) {
  char *s = malloc(n + 1);
  if (n) memcpy(s, data, n);
  s[n] = 0;
  return s;
}
