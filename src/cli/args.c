/* args.c - option parsing helpers shared by the subcommands. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli/cli.h"
#include "model/adapter.h"
#include "tensor/gemm.h"

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
      fprintf(stderr,
              "preft %s: --ids expects comma-separated non-negative integers, bad at offset %ld of '%s'\n",
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

int cli_parse_dtype(const char *cmd, const char *opt, const char *s, preft_dtype *out) {
  if (!strcmp(s, "f32"))
    *out = PREFT_F32;
  else if (!strcmp(s, "f16"))
    *out = PREFT_F16;
  else if (!strcmp(s, "bf16"))
    *out = PREFT_BF16;
  else {
    fprintf(stderr, "preft %s: %s expects f32, f16 or bf16, got '%s'\n", cmd, opt, s);
    return -1;
  }
  return 0;
}

/* Parses one option's value into its destination. */
static int parse_value(const char *cmd, const cli_opt *o, const char *v) {
  switch (o->kind) {
    case CLI_STR:
      *(const char **)o->dst = v;
      return 0;
    case CLI_STRS: {
      cli_strs *s = o->dst;
      if (s->n == s->max || !*v) {
        fprintf(stderr, "preft %s: %s takes up to %d non-empty values\n", cmd, o->name, s->max);
        return -1;
      }
      s->items[s->n++] = v;
      return 0;
    }
    case CLI_INT:
      return cli_parse_int(cmd, o->name, v, (long)o->lo, (long)o->hi, o->dst);
    case CLI_FLOAT: {
      double *d = o->dst;
      if (cli_parse_float(cmd, o->name, v, d) != 0) return -1;
      if (*d < o->lo || *d > o->hi) {
        fprintf(stderr, "preft %s: %s must be in [%g, %g], got %s\n", cmd, o->name, o->lo, o->hi, v);
        return -1;
      }
      return 0;
    }
    case CLI_DTYPE:
      return cli_parse_dtype(cmd, o->name, v, o->dst);
    case CLI_MODE: {
      preft_adapter_mode m;
      if (preft_adapter_mode_parse(v, &m) != 0) {
        fprintf(stderr, "preft %s: %s expects all or prefill, got '%s'\n", cmd, o->name, v);
        return -1;
      }
      *(int *)o->dst = (int)m;
      return 0;
    }
    case CLI_MATMUL: {
      int p = preft_matmul_precision_parse(v);
      if (p < 0) {
        fprintf(stderr, "preft %s: %s expects exact or bf16, got '%s'\n", cmd, o->name, v);
        return -1;
      }
      preft_matmul_set_precision((preft_matmul_precision)p);
      return 0;
    }
    case CLI_QUANTIZE: {
      int t = preft_dtype_parse(v);
      if (t < 0 || !preft_dtype_is_quant((preft_dtype)t)) {
        fprintf(stderr, "preft %s: %s expects q8_0, q4_0, q5_0, q4_k or q6_k, got '%s'\n", cmd, o->name, v);
        return -1;
      }
      cli_quantize = t;
      return 0;
    }
    case CLI_LORA_DTYPE: {
      if (preft_lora_dtype_parse(v) == -2) {
        fprintf(stderr, "preft %s: %s expects auto, float16 or bfloat16, got '%s'\n", cmd, o->name, v);
        return -1;
      }
      cli_lora_dtype = v;
      return 0;
    }
    case CLI_IDS: {
      cli_ids *ids = o->dst;
      free(ids->v);
      ids->v = NULL;
      return cli_parse_ids(cmd, v, &ids->v, &ids->n);
    }
    default:
      return -1;
  }
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*usage)(FILE *out)) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      usage(stdout);
      return 1;
    }
    const cli_opt *o = opts;
    while (o->name && strcmp(a, o->name) != 0 && !(o->alias && !strcmp(a, o->alias))) o++;
    if (!o->name) {
      fprintf(stderr, "preft %s: unknown option '%s' (see --help)\n", cmd, a);
      return -1;
    }
    if (o->kind == CLI_FLAG) {
      *(bool *)o->dst = true;
      continue;
    }
    const char *v = cli_value(cmd, argc, argv, &i);
    if (!v || parse_value(cmd, o, v) != 0) return -1;
    if (o->kind == CLI_STRS && ((cli_strs *)o->dst)->greedy)
      while (i + 1 < argc && argv[i + 1][0] != '-')
        if (parse_value(cmd, o, argv[++i]) != 0) return -1;
  }
  return 0;
}

void cli_default_list(int **out, int *n, const int *dflt, int count) {
  *out = preft_xmalloc(sizeof(int) * (size_t)count);
  memcpy(*out, dflt, sizeof(int) * (size_t)count);
  *n = count;
}

int cli_require_positive(const char *cmd, const char *opt, const int *v, int n) {
  for (int i = 0; i < n; i++)
    if (v[i] < 1) {
      fprintf(stderr, "preft %s: %s values must be >= 1, got %d\n", cmd, opt, v[i]);
      return -1;
    }
  return 0;
}
