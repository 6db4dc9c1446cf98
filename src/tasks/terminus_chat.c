/* terminus_chat.c - one chat completion for the terminus agent, through the
 * project's libcurl client (server/client.h) against any OpenAI-compatible
 * endpoint: the assistant's text, the token usage, and errors that say what
 * the endpoint answered. */
#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>

#include "base/timer.h"
#include "tasks/terminus_int.h"

void preft_term_chat_result_free(preft_term_chat_result *r) {
  free(r->content);
  memset(r, 0, sizeof *r);
}

/* A usage count, or -1 when absent, negative or too large for an int64_t
 * (a count of 1e101 tokens is no count: converting it would be undefined). */
static int64_t usage_field(const cJSON *usage, const char *name) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(usage, name);
  return cJSON_IsNumber(f) && f->valuedouble >= 0 && f->valuedouble < 9.2e18 ? (int64_t)f->valuedouble : -1;
}

int preft_term_chat_parse(const char *body, preft_term_chat_result *out, preft_error *err) {
  memset(out, 0, sizeof *out);
  out->prompt_tokens = out->completion_tokens = -1;
  cJSON *j = cJSON_Parse(body);
  if (!j) return preft_fail(err, "chat response is not JSON (starts \"%.60s\")", body);
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
  const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
  const cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
  if (!cJSON_IsObject(msg)) {
    cJSON_Delete(j);
    return preft_fail(err, "chat response has no choices[0].message");
  }
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (content && !cJSON_IsNull(content) && !cJSON_IsString(content)) {
    cJSON_Delete(j);
    return preft_fail(err, "chat response: choices[0].message.content is not a string");
  }
  out->content = preft_xstrdup(cJSON_IsString(content) ? content->valuestring : "");
  const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
  if (cJSON_IsString(fr)) snprintf(out->finish_reason, sizeof out->finish_reason, "%s", fr->valuestring);
  const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
  if (cJSON_IsObject(usage)) {
    out->prompt_tokens = usage_field(usage, "prompt_tokens");
    out->completion_tokens = usage_field(usage, "completion_tokens");
  }
  cJSON_Delete(j);
  return 0;
}

/* The endpoint's own message for a failed request: error.message of an
 * OpenAI-style error body, else the start of the body. */
static void endpoint_message(const char *body, char *buf, size_t cap) {
  cJSON *j = cJSON_Parse(body);
  const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
  const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
  if (cJSON_IsString(m))
    snprintf(buf, cap, "%s", m->valuestring);
  else if (cJSON_IsString(e))
    snprintf(buf, cap, "%s", e->valuestring);
  else
    snprintf(buf, cap, "%.200s", body);
  cJSON_Delete(j);
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

int preft_term_chat(preft_client *c, const char *body, double deadline, preft_term_chat_result *out,
                    preft_error *err) {
  memset(out, 0, sizeof *out);
  for (int attempt = 0;; attempt++) {
    double left = deadline - preft_now();
    if (left <= 0) return preft_fail(err, "chat request: out of time");
    preft_client_set_timeout(c, left);
    preft_http_response r;
    bool retry = false;
    if (preft_client_post(c, "/chat/completions", body, NULL, NULL, &r, err) != 0) {
      retry = true;
    } else if (r.status == 200) {
      int rc = preft_term_chat_parse(r.body, out, err);
      preft_http_response_free(&r);
      return rc;
    } else {
      char msg[400];
      endpoint_message(r.body, msg, sizeof msg);
      preft_fail(err, "chat endpoint answered %ld: %s", r.status, msg);
      retry = r.status >= 500 || r.status == 429;
      preft_http_response_free(&r);
    }
    if (!retry || attempt == 2 || deadline - preft_now() < 2.0) return -1;
    sleep_s(1.0);
  }
}

int64_t preft_term_model_context(preft_client *c, const char *model) {
  preft_http_response r;
  preft_error err;
  preft_client_set_timeout(c, 10);
  if (preft_client_get(c, "/models", &r, &err) != 0) return 0;
  int64_t n = 0;
  cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
  const cJSON *data = j ? cJSON_GetObjectItemCaseSensitive(j, "data") : NULL;
  const cJSON *m;
  if (!cJSON_IsArray(data)) data = NULL;
  cJSON_ArrayForEach(m, data) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(m, "max_model_len");
    bool same = cJSON_IsString(id) && model && !strcmp(id->valuestring, model);
    if (cJSON_IsNumber(len) && len->valuedouble > 0 && (same || !n)) n = (int64_t)len->valuedouble;
    if (same) break;
  }
  cJSON_Delete(j);
  preft_http_response_free(&r);
  return n;
}
