/* mlm_data.c - the pretraining text (State of the Union ranges,
 * Moby-Dick chapters), its sequences and BERT's masking (see mlm.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "train/mlm.h"

static void push(preft_mlm_texts *out, char *text, size_t len) {
  out->t = preft_xrealloc(out->t, sizeof *out->t * (size_t)(out->n + 1));
  out->t[out->n++] = (preft_mlm_text){text, len};
}

void preft_mlm_texts_free(preft_mlm_texts *t) {
  for (int i = 0; i < t->n; i++) free(t->t[i].text);
  free(t->t);
  memset(t, 0, sizeof *t);
}

int preft_mlm_add_sotu(preft_mlm_texts *out, const char *split_tsv, const char *sotu_dir, const char *which,
                       preft_error *err) {
  char *tsv;
  size_t size;
  if (preft_read_file(split_tsv, &tsv, &size, err) != 0) return -1;
  int rc = 0, lineno = 0, added = 0;
  char *save = NULL;
  for (char *line = strtok_r(tsv, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
    if (++lineno == 1) continue; /* header: split president party year file start end */
    char *f[8];
    int nf = 0;
    f[nf++] = line;
    for (char *p = line; *p && nf < 8; p++)
      if (*p == '\t') *p = 0, f[nf++] = p + 1;
    if (nf != 7) {
      rc = preft_fail(err, "%s: line %d: %d fields, expected 7", split_tsv, lineno, nf);
      break;
    }
    if (strcmp(f[0], which) != 0) continue;
    char *end1, *end2;
    long long a = strtoll(f[5], &end1, 10), b = strtoll(f[6], &end2, 10);
    char *path = preft_path_join(sotu_dir, f[4]), *text = NULL;
    size_t tlen;
    if (*end1 || *end2 || a < 0 || b <= a) {
      rc = preft_fail(err, "%s: line %d: bad byte range %s-%s", split_tsv, lineno, f[5], f[6]);
    } else if (preft_read_file(path, &text, &tlen, err) != 0) {
      rc = -1;
    } else if ((size_t)b > tlen) {
      rc = preft_fail(err, "%s: line %d: range ends at %lld, past the %zu bytes of %s", split_tsv, lineno, b,
                      tlen, path);
    } else {
      char *part = preft_xmalloc((size_t)(b - a) + 1);
      memcpy(part, text + a, (size_t)(b - a));
      part[b - a] = 0;
      push(out, part, (size_t)(b - a));
      added++;
    }
    free(text);
    free(path);
  }
  free(tsv);
  if (rc == 0 && added == 0) rc = preft_fail(err, "%s: no '%s' rows", split_tsv, which);
  return rc;
}

static int name_cmp(const void *a, const void *b) {
  const char *x = *(const char *const *)a, *y = *(const char *const *)b;
  int nx = atoi(x + 8), ny = atoi(y + 8); /* chapter_N.txt in book order; epilogue last */
  if (strncmp(x, "chapter_", 8) != 0) nx = 1 << 30;
  if (strncmp(y, "chapter_", 8) != 0) ny = 1 << 30;
  return nx != ny ? (nx < ny ? -1 : 1) : strcmp(x, y);
}

int preft_mlm_add_moby_dick(preft_mlm_texts *out, const char *dir, preft_error *err) {
  DIR *d = opendir(dir);
  if (!d)
    return preft_fail(err, "%s: cannot open the Moby-Dick folder (scripts/fetch-moby-dick.sh fetches it)",
                      dir);
  char **names = NULL;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    bool chapter =
        strncmp(e->d_name, "chapter_", 8) == 0 && len > 4 && strcmp(e->d_name + len - 4, ".txt") == 0;
    if (!chapter && strcmp(e->d_name, "epilogue.txt") != 0) continue;
    names = preft_xrealloc(names, sizeof *names * (size_t)(n + 1));
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, name_cmp);
  int rc = n == 0 ? preft_fail(err, "%s: no chapter_*.txt files", dir) : 0;
  for (int i = 0; i < n; i++) {
    char *path = preft_path_join(dir, names[i]), *text;
    size_t len;
    if (rc == 0 && preft_read_file(path, &text, &len, err) == 0)
      push(out, text, len);
    else
      rc = -1;
    free(path);
    free(names[i]);
  }
  free(names);
  return rc;
}

void preft_mlm_seqs_free(preft_mlm_seqs *s) {
  free(s->ids);
  free(s->word_start);
  free(s->start);
  free(s->len);
  memset(s, 0, sizeof *s);
}

int preft_mlm_make_seqs(const preft_tokenizer *tok, const preft_mlm_texts *texts, int max_len,
                        preft_mlm_seqs *out, preft_error *err) {
  memset(out, 0, sizeof *out);
  int cls = preft_tokenizer_token_to_id(tok, "[CLS]"), sep = preft_tokenizer_token_to_id(tok, "[SEP]");
  if (cls < 0 || sep < 0) return preft_fail(err, "the vocabulary has no [CLS] or [SEP]");
  int V = preft_tokenizer_vocab_size(tok);
  uint8_t *cont = preft_xcalloc((size_t)V, 1); /* "##" pieces */
  for (int i = 0; i < V; i++) {
    const char *s = preft_tokenizer_id_to_token(tok, i);
    cont[i] = s && s[0] == '#' && s[1] == '#';
  }
  int64_t cap_tok = 1 << 20;
  int cap_seq = 1 << 12;
  out->ids = preft_xmalloc(sizeof(int) * (size_t)cap_tok);
  out->word_start = preft_xmalloc((size_t)cap_tok);
  out->start = preft_xmalloc(sizeof(int64_t) * (size_t)cap_seq);
  out->len = preft_xmalloc(sizeof(int) * (size_t)cap_seq);
  int chunk = max_len - 2, rc = 0;
  for (int i = 0; i < texts->n && rc == 0; i++) {
    int32_t *ids;
    size_t n;
    if (preft_tokenizer_encode(tok, texts->t[i].text, texts->t[i].len, false, &ids, &n, err) != 0) {
      rc = -1;
      break;
    }
    for (size_t k = 0; k < n; k += (size_t)chunk) {
      int m = (int)(n - k < (size_t)chunk ? n - k : (size_t)chunk);
      if (m < 8 && k > 0) break; /* a short tail */
      if (out->total + m + 2 > cap_tok) {
        cap_tok *= 2;
        out->ids = preft_xrealloc(out->ids, sizeof(int) * (size_t)cap_tok);
        out->word_start = preft_xrealloc(out->word_start, (size_t)cap_tok);
      }
      if (out->n == cap_seq) {
        cap_seq *= 2;
        out->start = preft_xrealloc(out->start, sizeof(int64_t) * (size_t)cap_seq);
        out->len = preft_xrealloc(out->len, sizeof(int) * (size_t)cap_seq);
      }
      int64_t s = out->total;
      out->start[out->n] = s;
      out->len[out->n++] = m + 2;
      out->ids[s] = cls;
      out->word_start[s] = 0;
      for (int j = 0; j < m; j++) {
        int id = ids[k + (size_t)j];
        out->ids[s + 1 + j] = id;
        out->word_start[s + 1 + j] = (uint8_t)!cont[id];
      }
      out->ids[s + m + 1] = sep;
      out->word_start[s + m + 1] = 0;
      out->total += m + 2;
    }
    free(ids);
  }
  free(cont);
  if (rc == 0 && out->n == 0) rc = preft_fail(err, "no sequences: the texts are empty");
  if (rc != 0) preft_mlm_seqs_free(out);
  return rc;
}

int preft_mlm_mask(const preft_mlm_mask_opts *o, int *ids, const uint8_t *word_start, int B, int T,
                   const int *lengths, preft_rng *r, int *rows, int *targets) {
  int count = 0;
  for (int b = 0; b < B; b++) {
    int *x = ids + (size_t)b * T, len = lengths[b], inner = len - 2;
    const uint8_t *ws = word_start + (size_t)b * T;
    if (inner <= 0) continue;
    int want = (int)(o->prob * inner + 0.5);
    if (want < 1) want = 1;
    uint8_t *chosen = preft_xcalloc((size_t)len, 1);
    int got = 0;
    /* candidate units (tokens, or whole words) in a random order */
    int *unit = preft_xmalloc(sizeof(int) * (size_t)inner), nu = 0;
    for (int t = 1; t <= inner; t++)
      if (!o->whole_word || ws[t] || t == 1) unit[nu++] = t;
    for (int i = nu - 1; i > 0; i--) {
      int j = (int)preft_rng_below(r, (uint64_t)i + 1), tmp = unit[i];
      unit[i] = unit[j], unit[j] = tmp;
    }
    for (int u = 0; u < nu && got < want; u++) {
      int t = unit[u], end = t + 1;
      if (o->whole_word)
        while (end <= inner && !ws[end]) end++;
      if (o->whole_word && got > 0 && got + (end - t) > want + want / 2) continue; /* do not overshoot far */
      for (int k = t; k < end; k++) chosen[k] = 1, got++;
    }
    for (int t = 1; t <= inner; t++) {
      if (!chosen[t]) continue;
      rows[count] = b * T + t;
      targets[count++] = x[t];
      double u = preft_rng_uniform(r);
      if (u < 0.8)
        x[t] = o->mask_id;
      else if (u < 0.9)
        x[t] = o->first_normal + (int)preft_rng_below(r, (uint64_t)(o->vocab - o->first_normal));
    }
    free(unit);
    free(chosen);
  }
  return count;
}
