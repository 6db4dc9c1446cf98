/* terminus_conv.c - the terminus agent's conversation and its budget.
 *
 * Tokens are estimated without a tokenizer: 4 for a message's framing plus
 * one per 4 bytes. Once the endpoint reports usage.prompt_tokens for a
 * request, the ratio between that and the estimate of what was sent
 * calibrates every later estimate (a byte-level tokenizer counts about four
 * times more, a large BPE vocabulary a little less). To stay under the
 * budget the oldest turns after the system prompt and the task are dropped,
 * an assistant+user pair at a time; when only the newest pair is left and
 * it is still too long, the middle of its assistant message is cut out,
 * then the middle of the newest message. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "server/sse.h" /* srv_buf */
#include "tasks/terminus_int.h"

void preft_term_conv_init(preft_term_conv *c) {
  memset(c, 0, sizeof *c);
  c->n_keep = 2;
  c->tokens_per_est = 1.0;
}

void preft_term_conv_free(preft_term_conv *c) {
  for (int i = 0; i < c->n; i++) free(c->m[i].content);
  free(c->m);
  memset(c, 0, sizeof *c);
}

void preft_term_conv_add(preft_term_conv *c, const char *role, const char *content) {
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 16;
    c->m = preft_xrealloc(c->m, (size_t)c->cap * sizeof *c->m);
  }
  c->m[c->n].role = role;
  c->m[c->n].content = preft_xstrdup(content);
  c->n++;
}

int64_t preft_term_msg_estimate(const preft_term_msg *m) { return 4 + ((int64_t)strlen(m->content) + 3) / 4; }

int64_t preft_term_conv_raw(const preft_term_conv *c) {
  int64_t t = 0;
  for (int i = 0; i < c->n; i++) t += preft_term_msg_estimate(&c->m[i]);
  return t;
}

static int64_t calibrated(const preft_term_conv *c, int64_t raw) {
  return (int64_t)ceil((double)raw * c->tokens_per_est);
}

int64_t preft_term_conv_tokens(const preft_term_conv *c) { return calibrated(c, preft_term_conv_raw(c)); }

void preft_term_conv_calibrate(preft_term_conv *c, int64_t prompt_tokens, int64_t raw_estimate_sent) {
  if (prompt_tokens <= 0 || raw_estimate_sent <= 0) return;
  double r = (double)prompt_tokens / (double)raw_estimate_sent;
  c->tokens_per_est = r < 0.25 ? 0.25 : r > 8 ? 8 : r;
}

static void drop(preft_term_conv *c, int at, int count) {
  for (int i = at; i < at + count; i++) free(c->m[i].content);
  memmove(c->m + at, c->m + at + count, (size_t)(c->n - at - count) * sizeof *c->m);
  c->n -= count;
  c->n_dropped += count;
}

int preft_term_conv_trim(preft_term_conv *c, int64_t budget) {
  int dropped = 0;
  /* turns after the kept messages alternate assistant, user, ..., user (the
   * newest): dropping the oldest pair keeps that order, down to one pair */
  while (preft_term_conv_tokens(c) > budget && c->n - c->n_keep >= 4) {
    drop(c, c->n_keep, 2);
    dropped += 2;
  }
  /* then the newest pair's own text: the assistant's reply first (the
   * output the model has not seen yet matters more), then the output */
  for (int i = c->n - 2; i < c->n; i++) {
    int64_t over = preft_term_conv_tokens(c) - budget;
    if (over <= 0 || i < c->n_keep) continue;
    preft_term_msg *m = &c->m[i];
    size_t len = strlen(m->content);
    /* bytes to remove: over tokens at the calibrated 4 bytes per token, plus the note's own length */
    size_t cut = (size_t)ceil((double)over / c->tokens_per_est * 4.0) + 100;
    if (len <= 120) continue; /* the note would be longer */
    size_t keep = len > cut ? len - cut : 0;
    char *shorter = preft_term_truncate(m->content, keep);
    free(m->content);
    m->content = shorter;
  }
  return dropped;
}

char *preft_term_conv_request(const preft_term_conv *c, const char *model, double temperature,
                              int max_tokens) {
  srv_buf b = {0};
  preft_srv_buf_puts(&b, "{\"model\":");
  preft_srv_buf_json_str(&b, model ? model : "", model ? strlen(model) : 0);
  preft_srv_buf_puts(&b, ",\"messages\":[");
  for (int i = 0; i < c->n; i++) {
    preft_srv_buf_printf(&b, "%s{\"role\":\"%s\",\"content\":", i ? "," : "", c->m[i].role);
    preft_srv_buf_json_str(&b, c->m[i].content, strlen(c->m[i].content));
    preft_srv_buf_puts(&b, "}");
  }
  preft_srv_buf_puts(&b, "],\"temperature\":");
  preft_srv_buf_json_num(&b, temperature);
  if (max_tokens > 0) preft_srv_buf_printf(&b, ",\"max_tokens\":%d", max_tokens);
  preft_srv_buf_puts(&b, ",\"stream\":false}");
  return b.p;
}
