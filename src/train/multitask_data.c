/* multitask_data.c - reading, tokenizing and batching the multitask data
 * sets, and their metrics (see multitask_data.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "train/multitask_data.h"

const char *preft_mt_file_name(preft_bt_task task, const char *split) {
  bool train = strcmp(split, "train") == 0;
  switch (task) {
    case PREFT_BT_SST:
      return train ? "ids-sst-train.csv" : "ids-sst-dev.csv";
    case PREFT_BT_PARA:
      return train ? "quora-train.csv" : "quora-dev.csv";
    default:
      return train ? "sts-train.csv" : "sts-dev.csv";
  }
}

/* Splits line (modified in place) at tabs into at most max fields. */
static int split_tabs(char *line, char **f, int max) {
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == '\t') {
      *p = 0;
      f[n++] = p + 1;
    }
  return n;
}

/* CSV unquoting in place: "x ""y"" z" -> x "y" z */
static char *unquote(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = 0;
  if (n < 2 || s[0] != '"' || s[n - 1] != '"') return s;
  char *w = s;
  for (size_t i = 1; i + 1 < n; i++) {
    *w++ = s[i];
    if (s[i] == '"' && s[i + 1] == '"' && i + 2 < n) i++;
  }
  *w = 0;
  return s;
}

static int column(char **f, int n, const char *name) {
  for (int i = 0; i < n; i++) {
    char *c = f[i];
    size_t len = strlen(c);
    while (len && (c[len - 1] == '\r' || c[len - 1] == '\n')) c[--len] = 0;
    if (strcmp(c, name) == 0) return i;
  }
  return -1;
}

static void to_ints(const int32_t *src, size_t n, int max_len, int **dst, int **types, const int32_t *tsrc,
                    int *count) {
  int k = (int)n > max_len ? max_len : (int)n;
  *dst = malloc(sizeof(int) * (size_t)(k ? k : 1));
  if (types) *types = malloc(sizeof(int) * (size_t)(k ? k : 1));
  for (int i = 0; i < k; i++) {
    (*dst)[i] = src[i];
    if (types) (*types)[i] = tsrc ? tsrc[i] : 0;
  }
  if ((int)n > k) { /* cut: keep the final [SEP] (and its type) */
    (*dst)[k - 1] = src[n - 1];
    if (types) (*types)[k - 1] = tsrc ? tsrc[n - 1] : 0;
  }
  *count = k;
}

static int encode(const preft_tokenizer *tok, const char *a, const char *b, int max_len, int **ids,
                  int **types, int *n, preft_error *err) {
  int32_t *i32, *t32;
  size_t count;
  if (preft_tokenizer_encode_pair(tok, a, strlen(a), b, b ? strlen(b) : 0, true, &i32, &t32, &count, err) !=
      0)
    return -1;
  to_ints(i32, count, max_len, ids, types, t32, n);
  free(i32);
  free(t32);
  return 0;
}

int preft_mt_load(preft_mt_set *s, const char *path, preft_bt_task task, const preft_tokenizer *tok,
                  int max_len, int limit, preft_error *err) {
  memset(s, 0, sizeof *s);
  s->task = task;
  char *text;
  size_t size;
  if (preft_read_file(path, &text, &size, err) != 0) return -1;
  const char *need[3];
  int nneed = task == PREFT_BT_SST ? 2 : 3;
  if (task == PREFT_BT_SST) {
    need[0] = "sentence", need[1] = "sentiment";
  } else {
    need[0] = "sentence1", need[1] = "sentence2",
    need[2] = task == PREFT_BT_PARA ? "is_duplicate" : "similarity";
  }
  int col[3] = {-1, -1, -1}, cap = 0, rc = 0, lineno = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    char *f[16];
    int nf = split_tabs(line, f, 16);
    if (lineno == 1) {
      for (int k = 0; k < nneed; k++)
        if ((col[k] = column(f, nf, need[k])) < 0) {
          rc = preft_fail(err, "%s: line 1: no column '%s' in the header", path, need[k]);
          goto out;
        }
      continue;
    }
    if (limit > 0 && s->n >= limit) break;
    for (int k = 0; k < nneed; k++)
      if (col[k] >= nf) {
        rc = preft_fail(err, "%s: line %d: %d fields, column '%s' is field %d", path, lineno, nf, need[k],
                        col[k] + 1);
        goto out;
      }
    char *lab = unquote(f[col[nneed - 1]]), *end;
    double y = strtod(lab, &end);
    if (end == lab || !isfinite(y) || (task == PREFT_BT_SST && (y != floor(y) || y < 0 || y > 4)) ||
        (task == PREFT_BT_PARA && y != 0 && y != 1) || (task == PREFT_BT_STS && (y < 0 || y > 5))) {
      rc = preft_fail(err, "%s: line %d: label '%s' is not a valid %s label", path, lineno, lab,
                      preft_bt_task_names[task]);
      goto out;
    }
    if (s->n == cap) {
      cap = cap ? 2 * cap : 1024;
      s->ex = preft_xrealloc(s->ex, sizeof *s->ex * (size_t)cap);
    }
    preft_mt_example *e = &s->ex[s->n];
    memset(e, 0, sizeof *e);
    e->label = (float)y;
    char *a = unquote(f[col[0]]), *b = task == PREFT_BT_SST ? NULL : unquote(f[col[1]]);
    if (encode(tok, a, b, max_len, &e->ids, &e->types, &e->n, err) != 0) {
      rc = -1;
      goto fail_line;
    }
    if (b) {
      int *t = NULL;
      if (encode(tok, a, NULL, max_len, &e->ids_a, &t, &e->n_a, err) != 0) goto fail_line_e;
      free(t);
      if (encode(tok, b, NULL, max_len, &e->ids_b, &t, &e->n_b, err) != 0) goto fail_line_e;
      free(t);
    }
    s->n++;
    continue;
  fail_line_e:
    s->n++; /* freed with the set */
  fail_line : {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    rc = preft_fail(err, "%s: line %d: %s", path, lineno, msg);
    goto out;
  }
  }
  if (rc == 0 && s->n == 0) rc = preft_fail(err, "%s: no examples", path);
out:
  free(text);
  if (rc != 0) preft_mt_free(s);
  return rc;
}

void preft_mt_free(preft_mt_set *s) {
  for (int i = 0; i < s->n; i++) {
    free(s->ex[i].ids);
    free(s->ex[i].types);
    free(s->ex[i].ids_a);
    free(s->ex[i].ids_b);
  }
  free(s->ex);
  memset(s, 0, sizeof *s);
}

void preft_mt_batch_make(preft_mt_batch *mb, const preft_mt_set *s, const int *idx, int n, bool siamese) {
  bool two = siamese && s->task != PREFT_BT_SST;
  int S = two ? 2 * n : n, T = 1;
  for (int i = 0; i < n; i++) {
    const preft_mt_example *e = &s->ex[idx[i]];
    if (two) {
      if (e->n_a > T) T = e->n_a;
      if (e->n_b > T) T = e->n_b;
    } else if (e->n > T) {
      T = e->n;
    }
  }
  if (S * T > mb->cap_rows) {
    mb->ids = preft_xrealloc(mb->ids, sizeof(int) * (size_t)S * T);
    mb->types = preft_xrealloc(mb->types, sizeof(int) * (size_t)S * T);
    mb->cap_rows = S * T;
  }
  if (S > mb->cap_seqs) {
    mb->lengths = preft_xrealloc(mb->lengths, sizeof(int) * (size_t)S);
    mb->labels = preft_xrealloc(mb->labels, sizeof(float) * (size_t)S);
    mb->cap_seqs = S;
  }
  memset(mb->ids, 0, sizeof(int) * (size_t)S * T);
  memset(mb->types, 0, sizeof(int) * (size_t)S * T);
  for (int i = 0; i < n; i++) {
    const preft_mt_example *e = &s->ex[idx[i]];
    mb->labels[i] = e->label;
    if (!two) {
      memcpy(mb->ids + (size_t)i * T, e->ids, sizeof(int) * (size_t)e->n);
      memcpy(mb->types + (size_t)i * T, e->types, sizeof(int) * (size_t)e->n);
      mb->lengths[i] = e->n;
      continue;
    }
    memcpy(mb->ids + (size_t)i * T, e->ids_a, sizeof(int) * (size_t)e->n_a);
    memcpy(mb->ids + (size_t)(n + i) * T, e->ids_b, sizeof(int) * (size_t)e->n_b);
    mb->lengths[i] = e->n_a;
    mb->lengths[n + i] = e->n_b;
  }
  mb->n = n;
  mb->b = (preft_bert_batch){
      .n_seqs = S, .seq_len = T, .ids = mb->ids, .types = mb->types, .lengths = mb->lengths};
}

void preft_mt_batch_free(preft_mt_batch *mb) {
  free(mb->ids);
  free(mb->types);
  free(mb->lengths);
  free(mb->labels);
  memset(mb, 0, sizeof *mb);
}

double preft_mt_prediction(preft_bt_task t, const float *out) {
  if (t == PREFT_BT_SST) {
    int best = 0;
    for (int k = 1; k < 5; k++)
      if (out[k] > out[best]) best = k;
    return best;
  }
  if (t == PREFT_BT_PARA) return out[0] > 0 ? 1.0 : 0.0;
  return out[0];
}

double preft_mt_metric(preft_bt_task t, const float *out, const float *labels, int n) {
  if (n <= 0) return NAN;
  int w = preft_bt_task_width(t);
  if (t != PREFT_BT_STS) {
    int ok = 0;
    for (int i = 0; i < n; i++) ok += preft_mt_prediction(t, out + (size_t)i * w) == labels[i];
    return (double)ok / n;
  }
  double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
  for (int i = 0; i < n; i++) mx += out[i], my += labels[i];
  mx /= n, my /= n;
  for (int i = 0; i < n; i++) {
    double dx = out[i] - mx, dy = labels[i] - my;
    sxx += dx * dx, syy += dy * dy, sxy += dx * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
}

double preft_mt_score(double sst, double para, double sts) { return (sst + para + (sts + 1.0) / 2.0) / 3.0; }
