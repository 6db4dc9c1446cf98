/* data_jsonl.c - SFT examples from JSONL (see data.h for the formats and
 * the truncation rule), the dataset container and shuffling (splits are in
 * data_split.c). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "train/data.h"
#include "train/rng.h"

/* ---- the container --------------------------------------------------------- */

void preft_dataset_add(preft_dataset *ds, const int *ids, const uint8_t *loss, int n, int prompt_len,
                       int max_tokens) {
  int p0 = 0, keep_p = prompt_len, keep_c = n - prompt_len;
  if (max_tokens > 0 && n > max_tokens) {
    int P = prompt_len, C = n - prompt_len, T = max_tokens;
    int want = T / 2 > T - C ? T / 2 : T - C;
    keep_p = P < want ? P : want;
    keep_c = T - keep_p;
    p0 = P - keep_p;
    ds->truncated++;
  }
  if (ds->n == ds->cap) {
    ds->cap = ds->cap ? ds->cap * 2 : 64;
    ds->ex = preft_xrealloc(ds->ex, sizeof *ds->ex * (size_t)ds->cap);
  }
  preft_example *e = &ds->ex[ds->n++];
  e->n = keep_p + keep_c;
  e->prompt_len = keep_p;
  e->ids = preft_xmalloc(sizeof(int) * (size_t)e->n);
  e->loss = preft_xmalloc((size_t)e->n);
  memcpy(e->ids, ids + p0, sizeof(int) * (size_t)e->n);
  memcpy(e->loss, loss + p0, (size_t)e->n);
  ds->tokens += e->n;
  for (int t = 1; t < e->n; t++) ds->targets += e->loss[t];
}

void preft_dataset_free(preft_dataset *ds) {
  for (int i = 0; i < ds->n; i++) {
    free(ds->ex[i].ids);
    free(ds->ex[i].loss);
  }
  free(ds->ex);
  memset(ds, 0, sizeof *ds);
}

void preft_shuffle_indices(int *idx, int n, uint64_t seed, int64_t epoch) {
  preft_rng r;
  preft_rng_seed(&r, seed ^ ((uint64_t)epoch * 0xd1b54a32d192ed03ull + 0x8cb92ba72f3d8dd7ull));
  for (int i = 0; i < n; i++) idx[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)preft_rng_below(&r, (uint64_t)i + 1);
    int t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
}

/* ---- building token sequences ------------------------------------------------- */

typedef struct {
  int *ids;
  uint8_t *loss;
  int n, cap;
} seq_buf;

static void seq_push(seq_buf *s, const int32_t *ids, size_t n, uint8_t loss) {
  if (s->n + (int)n > s->cap) {
    s->cap = (s->n + (int)n) * 2 + 16;
    s->ids = preft_xrealloc(s->ids, sizeof(int) * (size_t)s->cap);
    s->loss = preft_xrealloc(s->loss, (size_t)s->cap);
  }
  for (size_t i = 0; i < n; i++) {
    s->ids[s->n] = ids[i];
    s->loss[s->n++] = loss;
  }
}

static int encode_push(seq_buf *s, const preft_data_opts *o, const char *text, size_t len, bool special,
                       uint8_t loss, int *count, preft_error *err) {
  int32_t *ids;
  size_t n;
  if (preft_tokenizer_encode(o->tok, text, len, special, &ids, &n, err) != 0) return -1;
  seq_push(s, ids, n, loss);
  free(ids);
  if (count) *count = (int)n;
  return 0;
}

static int ids_push(seq_buf *s, const cJSON *arr, const char *field, int vocab, uint8_t loss,
                    preft_error *err) {
  if (!cJSON_IsArray(arr)) return preft_fail(err, "field \"%s\" must be an array of token ids", field);
  const cJSON *v;
  cJSON_ArrayForEach(v, arr) {
    /* Range first: converting a double outside int's range is undefined. */
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
    if (!(d >= 0.0 && d < (double)vocab) || d != floor(d))
      return preft_fail(err, "field \"%s\" holds something other than a token id in [0, %d)", field, vocab);
    int32_t id = (int32_t)d;
    seq_push(s, &id, 1, loss);
  }
  return 0;
}

/* {"messages": [...]}: render prefixes; the text between the prefix ending
 * in the generation prompt and the prefix including assistant turn i is
 * that turn's tokens. */
static int chat_example(seq_buf *s, const cJSON *msgs, const preft_data_opts *o, int *prompt_len,
                        preft_error *err) {
  if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
    return preft_fail(err, "field \"messages\" must be a non-empty array");
  int n = cJSON_GetArraySize(msgs), last_asst = -1;
  for (int i = 0; i < n; i++) {
    const cJSON *m = cJSON_GetArrayItem(msgs, i), *role = cJSON_GetObjectItem(m, "role"),
                *content = cJSON_GetObjectItem(m, "content");
    if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content))
      return preft_fail(err, "message %d needs string fields \"role\" and \"content\"", i);
    if (!strcmp(role->valuestring, "assistant")) last_asst = i;
  }
  if (last_asst < 0) return preft_fail(err, "the conversation has no assistant turn to train on");
  if (!preft_tokenizer_chat_template(o->tok)) return preft_fail(err, "the tokenizer has no chat template");
  size_t done = 0; /* characters of the rendering already tokenised */
  char *prev = NULL;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    const cJSON *m = cJSON_GetArrayItem(msgs, i);
    if (strcmp(cJSON_GetObjectItem(m, "role")->valuestring, "assistant") != 0) continue;
    cJSON *pre = cJSON_CreateArray(), *full;
    for (int k = 0; k < i; k++) cJSON_AddItemToArray(pre, cJSON_Duplicate(cJSON_GetArrayItem(msgs, k), 1));
    full = cJSON_Duplicate(pre, 1);
    cJSON_AddItemToArray(full, cJSON_Duplicate(m, 1));
    char *pj = cJSON_PrintUnformatted(pre), *fj = cJSON_PrintUnformatted(full);
    char *ptext = NULL, *ftext = NULL;
    rc = preft_chat_template_render(o->tok, pj, true, &ptext, err);
    if (rc == 0) rc = preft_chat_template_render(o->tok, fj, false, &ftext, err);
    if (rc == 0) {
      size_t pl = strlen(ptext);
      if (strncmp(ftext, ptext, pl) != 0 || pl < done)
        rc = preft_fail(
            err, "the chat template renders assistant turn %d in a way that does not extend its prompt", i);
      if (rc == 0) {
        rc = encode_push(s, o, ptext + done, pl - done, false, 0, NULL, err);
        if (i == last_asst) *prompt_len = s->n;
        int got = 0;
        if (rc == 0) rc = encode_push(s, o, ftext + pl, strlen(ftext) - pl, false, 1, &got, err);
        if (rc == 0 && got == 0) rc = preft_fail(err, "assistant turn %d tokenises to nothing", i);
        done = strlen(ftext);
      }
    }
    free(prev);
    prev = ftext;
    free(ptext);
    cJSON_free(pj);
    cJSON_free(fj);
    cJSON_Delete(pre);
    cJSON_Delete(full);
  }
  free(prev);
  return rc;
}

static int parse_line(seq_buf *s, const char *line, size_t len, const preft_data_opts *o, int *prompt_len,
                      preft_error *err) {
  s->n = 0;
  if (len == 0) return preft_fail(err, "empty line");
  cJSON *root = cJSON_ParseWithLength(line, len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return preft_fail(err, "not a JSON object");
  }
  const cJSON *prompt = cJSON_GetObjectItem(root, "prompt"), *comp = cJSON_GetObjectItem(root, "completion");
  const cJSON *msgs = cJSON_GetObjectItem(root, "messages");
  const cJSON *pids = cJSON_GetObjectItem(root, "prompt_ids"),
              *cids = cJSON_GetObjectItem(root, "completion_ids");
  int rc = 0;
  if (pids || cids) {
    rc = ids_push(s, pids, "prompt_ids", o->vocab, 0, err);
    *prompt_len = s->n;
    if (rc == 0) rc = ids_push(s, cids, "completion_ids", o->vocab, 1, err);
    if (rc == 0 && s->n == *prompt_len) rc = preft_fail(err, "field \"completion_ids\" is empty");
    if (rc == 0 && *prompt_len == 0) rc = preft_fail(err, "field \"prompt_ids\" is empty");
  } else if (!o->tok) {
    rc = preft_fail(err, "text examples need a tokenizer (the model directory has no tokenizer.json)");
  } else if (msgs) {
    rc = chat_example(s, msgs, o, prompt_len, err);
  } else if (cJSON_IsString(prompt) && cJSON_IsString(comp)) {
    rc = encode_push(s, o, prompt->valuestring, strlen(prompt->valuestring), true, 0, NULL, err);
    *prompt_len = s->n;
    int got = 0;
    if (rc == 0) rc = encode_push(s, o, comp->valuestring, strlen(comp->valuestring), false, 1, &got, err);
    if (rc == 0 && got == 0) rc = preft_fail(err, "the completion tokenises to nothing");
    if (rc == 0 && *prompt_len == 0) rc = preft_fail(err, "the prompt tokenises to nothing");
    if (rc == 0 && o->eos_id >= 0) {
      int32_t e = o->eos_id;
      seq_push(s, &e, 1, 1);
    }
  } else {
    rc = preft_fail(err,
                    "expected string fields \"prompt\" and \"completion\", a \"messages\" array, or "
                    "\"prompt_ids\" and \"completion_ids\"");
  }
  for (int i = 0; rc == 0 && i < s->n; i++)
    if (s->ids[i] >= o->vocab)
      rc = preft_fail(err, "token id %d is outside the model's vocabulary of %d", s->ids[i], o->vocab);
  cJSON_Delete(root);
  return rc;
}

int preft_dataset_load_jsonl(preft_dataset *ds, const char *path, const preft_data_opts *o,
                             preft_error *err) {
  char *text;
  size_t size;
  if (preft_read_file(path, &text, &size, err) != 0) return -1;
  seq_buf s = {0};
  int line_no = 0, rc = 0;
  size_t pos = 0;
  while (pos < size) {
    size_t end = pos;
    while (end < size && text[end] != '\n') end++;
    line_no++;
    size_t len = end - pos;
    if (len && text[pos + len - 1] == '\r') len--;
    int prompt_len = 0;
    preft_error le;
    if (parse_line(&s, text + pos, len, o, &prompt_len, &le) != 0) {
      if (o->on_bad_line == PREFT_BAD_LINE_STOP) {
        rc = preft_fail(err, "%s:%d: %s (use --on-bad-line skip to skip bad lines)", path, line_no, le.msg);
        break;
      }
      fprintf(stderr, "preft: skipping %s:%d: %s\n", path, line_no, le.msg);
      ds->bad_lines++;
    } else {
      preft_dataset_add(ds, s.ids, s.loss, s.n, prompt_len, o->max_tokens);
    }
    pos = end + 1;
  }
  free(s.ids);
  free(s.loss);
  free(text);
  if (rc == 0 && ds->n == 0) rc = preft_fail(err, "%s: no usable examples", path);
  return rc;
}
