/* wordpiece.c - the WordPiece model (BERT): greedy longest-match-first over
 * each pre-token, continuation pieces prefixed with "##", [UNK] for a word
 * with an unmatched remainder or more than max_input_chars_per_word
 * characters. Vocabularies come from tokenizer.json, vocab.txt (one token per
 * line, id = line number) or a JSON array of tokens (id = index). */
#include <string.h>

#include "base/file.h"
#include "text/tokenizer_int.h"

void preft_wordpiece_encode(const preft_wordpiece *w, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                            size_t *cap) {
  size_t nchars = 0;
  for (size_t i = 0; i < n; i++) nchars += ((uint8_t)s[i] & 0xC0) != 0x80;
  if (nchars > (size_t)w->max_chars) {
    if (w->unk_id >= 0) preft_ids_push(ids, n_ids, cap, w->unk_id);
    return;
  }
  size_t before = *n_ids, start = 0, pl = strlen(w->prefix);
  char stack[512];
  char *key = n + pl < sizeof stack ? stack : preft_xmalloc(n + pl + 1);
  while (start < n) {
    size_t end = n;
    int32_t found = -1;
    while (end > start) {
      size_t klen = 0;
      if (start > 0) {
        memcpy(key, w->prefix, pl);
        klen = pl;
      }
      memcpy(key + klen, s + start, end - start);
      klen += end - start;
      if (preft_strmap_get(&w->vocab, key, klen, &found)) break;
      found = -1;
      end--;
      while (end > start && ((uint8_t)s[end] & 0xC0) == 0x80) end--; /* back to a character boundary */
    }
    if (found < 0) {
      *n_ids = before;
      if (w->unk_id >= 0) preft_ids_push(ids, n_ids, cap, w->unk_id);
      break;
    }
    preft_ids_push(ids, n_ids, cap, found);
    start = end;
  }
  if (key != stack) free(key);
}

static void wp_defaults(preft_wordpiece *w, size_t n) {
  preft_strmap_init(&w->vocab, n);
  w->unk_id = -1;
  w->max_chars = 100;
  w->prefix = preft_xstrdup("##");
}

int preft_wordpiece_from_json(preft_tokenizer *t, const cJSON *model, preft_error *err) {
  preft_wordpiece *w = &t->wp;
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  if (!cJSON_IsObject(vocab))
    return preft_fail(err, "model (WordPiece): 'vocab' must be an object {token: id}");
  wp_defaults(w, (size_t)cJSON_GetArraySize(vocab));
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
  if (cJSON_IsString(p)) {
    free(w->prefix);
    w->prefix = preft_xstrdup(p->valuestring);
  }
  const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
  if (cJSON_IsNumber(mc) && mc->valueint > 0) w->max_chars = mc->valueint;
  const cJSON *e;
  cJSON_ArrayForEach(e, vocab) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= t->vocab_size)
      return preft_fail(err, "model.vocab['%s']: id must be an integer in [0, %d)", e->string, t->vocab_size);
    preft_strmap_put(&w->vocab, e->string, strlen(e->string), e->valueint);
    preft_tokenizer_set_token(t, e->valueint, e->string, strlen(e->string));
  }
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  if (cJSON_IsString(unk) &&
      !preft_strmap_get(&w->vocab, unk->valuestring, strlen(unk->valuestring), &w->unk_id))
    return preft_fail(err, "model.unk_token '%s' is not in the vocabulary", unk->valuestring);
  return 0;
}

/* Fills the vocabulary from a list of tokens (id = position). */
static void wp_from_list(preft_tokenizer *t, char **toks, size_t *lens, size_t n) {
  wp_defaults(&t->wp, n);
  for (size_t i = 0; i < n; i++) {
    if (!preft_strmap_get(&t->wp.vocab, toks[i], lens[i], &(int32_t){0}))
      preft_strmap_put(&t->wp.vocab, toks[i], lens[i], (int32_t)i);
    preft_tokenizer_set_token(t, (int32_t)i, toks[i], lens[i]);
  }
  preft_strmap_get(&t->wp.vocab, "[UNK]", 5, &t->wp.unk_id);
}

int preft_wordpiece_load_vocab(preft_tokenizer *t, const char *path, preft_error *err) {
  char *data;
  size_t size;
  if (preft_read_file(path, &data, &size, err)) return -1;
  char **toks = NULL;
  size_t *lens = NULL, n = 0, cap = 0;
  int rc = 0;
  cJSON *arr = NULL;
  size_t plen = strlen(path);
  if (plen >= 5 && !strcmp(path + plen - 5, ".json")) {
    const char *end = NULL;
    arr = cJSON_ParseWithLengthOpts(data, size, &end, false);
    if (!arr) {
      rc = preft_fail(err, "%s: malformed JSON near byte offset %zu", path, end ? (size_t)(end - data) : 0);
      goto out;
    }
    if (!cJSON_IsArray(arr)) {
      rc = preft_fail(err, "%s: expected a JSON array of token strings", path);
      goto out;
    }
    cap = (size_t)cJSON_GetArraySize(arr);
    toks = preft_xcalloc(cap + 1, sizeof *toks);
    lens = preft_xcalloc(cap + 1, sizeof *lens);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
      if (!cJSON_IsString(e)) {
        rc = preft_fail(err, "%s: element %zu is not a string", path, n);
        goto out;
      }
      toks[n] = e->valuestring;
      lens[n++] = strlen(e->valuestring);
    }
  } else {
    for (size_t i = 0; i <= size; i++) {
      if (i == size && (size == 0 || data[size - 1] == '\n')) break;
      size_t s = i;
      while (i < size && data[i] != '\n') i++;
      size_t e = i;
      if (e > s && data[e - 1] == '\r') e--;
      if (n == cap) {
        cap = cap ? cap * 2 : 1024;
        toks = preft_xrealloc(toks, cap * sizeof *toks);
        lens = preft_xrealloc(lens, cap * sizeof *lens);
      }
      toks[n] = data + s;
      lens[n++] = e - s;
    }
  }
  if (n == 0) {
    rc = preft_fail(err, "%s: empty vocabulary", path);
    goto out;
  }
  size_t bad = 0;
  for (size_t i = 0; i < n && !bad; i++)
    if (preft_utf8_validate((const uint8_t *)toks[i], lens[i]) != lens[i]) bad = i + 1;
  if (bad) {
    rc = preft_fail(err, "%s: token %zu is not valid UTF-8", path, bad - 1);
    goto out;
  }
  t->vocab_size = (int32_t)n;
  t->id_to_token = preft_xcalloc(n, sizeof *t->id_to_token);
  wp_from_list(t, toks, lens, n);
out:
  free(toks);
  free(lens);
  cJSON_Delete(arr);
  free(data);
  return rc;
}

void preft_wordpiece_free(preft_wordpiece *w) {
  if (w->vocab.slots) preft_strmap_free(&w->vocab);
  free(w->prefix);
  memset(w, 0, sizeof *w);
}
