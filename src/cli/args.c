/* args.c - option parsing helpers shared by the subcommands. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli/cli.h"

bool cli_is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "preft %s: %s expects an integer in [%ld, %ld], got '%s'\n", cmd, opt, lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v)) {
    fprintf(stderr, "preft %s: %s expects a number, got '%s'\n", cmd, opt, s);
    return -1;
  }
  *out = v;
  return 0;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "preft %s: option %s needs a value\n", cmd, argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

int cli_parse_ids(const char *cmd, const char *s, int **ids, int *n) {
  int cap = 16, count = 0;
  int *out = preft_xmalloc(sizeof(int) * (size_t)cap);
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno || end == p || v < 0 || v > INT_MAX || (*end && *end != ',')) {
      fprintf(stderr, "preft %s: --ids expects comma-separated non-negative integers, bad at offset %ld of '%s'\n",
              cmd, (long)(p - s), s);
      free(out);
      return -1;
    }
    if (count == cap) out = preft_xrealloc(out, sizeof(int) * (size_t)(cap *= 2));
    out[count++] = (int)v;
    p = *end ? end + 1 : end;
  }
  if (count == 0) {
    fprintf(stderr, "preft %s: --ids is empty\n", cmd);
    free(out);
    return -1;
  }
  *ids = out;
  *n = count;
  return 0;
}
