/* client.c - libcurl HTTP client with a server-sent events parser (client.h). */
#include "server/client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "server/sse.h"

struct preft_client {
  CURL *curl;
  char *base;
  struct curl_slist *headers;
  double timeout_s;
};

typedef struct {
  CURL *curl;
  preft_http_response *out;
  srv_buf body;
  srv_buf pending; /* bytes of an event not yet complete */
  int mode;        /* 0: not decided, 1: event stream, 2: plain body */
  preft_sse_fn fn;
  void *ctx;
  bool aborted;
} transfer;

void preft_client_global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

preft_client *preft_client_new(const char *base_url, const char *api_key, double timeout_s) {
  preft_client *c = preft_xcalloc(1, sizeof *c);
  c->curl = curl_easy_init();
  PREFT_ASSERT(c->curl);
  size_t n = strlen(base_url);
  while (n && base_url[n - 1] == '/') n--;
  c->base = preft_xmalloc(n + 1);
  memcpy(c->base, base_url, n);
  c->base[n] = 0;
  c->timeout_s = timeout_s;
  c->headers = curl_slist_append(NULL, "Content-Type: application/json");
  if (api_key) {
    srv_buf h = {0};
    preft_srv_buf_printf(&h, "Authorization: Bearer %s", api_key);
    c->headers = curl_slist_append(c->headers, h.p);
    preft_srv_buf_free(&h);
  }
  return c;
}

void preft_client_free(preft_client *c) {
  if (!c) return;
  curl_easy_cleanup(c->curl);
  curl_slist_free_all(c->headers);
  free(c->base);
  free(c);
}

void preft_client_set_timeout(preft_client *c, double timeout_s) { c->timeout_s = timeout_s; }

/* Delivers each complete event (ended by a blank line) of t->pending. */
static void sse_events(transfer *t) {
  size_t start = 0;
  for (;;) {
    char *p = t->pending.p + start;
    char *end = strstr(p, "\n\n");
    if (!end) break;
    *end = 0;
    for (char *line = p; line && *line && !t->aborted;) {
      char *nl = strchr(line, '\n');
      if (nl) *nl = 0;
      if (!strncmp(line, "data:", 5)) {
        const char *d = line + 5 + (line[5] == ' ');
        t->out->n_events++;
        if (t->fn && !t->fn(t->ctx, d, strlen(d))) t->aborted = true;
      }
      line = nl ? nl + 1 : NULL;
    }
    start = (size_t)(end - t->pending.p) + 2;
  }
  if (start) {
    memmove(t->pending.p, t->pending.p + start, t->pending.len - start + 1);
    t->pending.len -= start;
  }
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp) {
  transfer *t = userp;
  size_t n = size * nmemb;
  if (t->mode == 0) {
    long status = 0;
    char *ct = NULL;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &ct);
    t->mode = status == 200 && ct && strstr(ct, "text/event-stream") ? 1 : 2;
  }
  if (t->mode == 2) {
    preft_srv_buf_put(&t->body, data, n);
    return n;
  }
  /* normalise CRLF framing to LF as it arrives */
  for (size_t i = 0; i < n;) {
    const char *cr = memchr(data + i, '\r', n - i);
    size_t k = cr ? (size_t)(cr - (data + i)) : n - i;
    preft_srv_buf_put(&t->pending, data + i, k);
    i += k + (cr != NULL);
  }
  sse_events(t);
  return t->aborted ? 0 : n;
}

static int perform(preft_client *c, const char *path, const char *json, preft_sse_fn fn, void *ctx,
                   preft_http_response *out, preft_error *err) {
  memset(out, 0, sizeof *out);
  transfer t = {.curl = c->curl, .out = out, .fn = fn, .ctx = ctx};
  srv_buf url = {0};
  preft_srv_buf_printf(&url, "%s%s", c->base, path);
  CURL *h = c->curl;
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url.p);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (c->timeout_s > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->timeout_s * 1000));
  if (json) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
  }
  CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
  preft_srv_buf_free(&url);
  preft_srv_buf_free(&t.pending);
  if (!t.body.p) preft_srv_buf_put(&t.body, "", 0);
  out->body = t.body.p;
  out->len = t.body.len;
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t.aborted)) {
    preft_http_response_free(out);
    preft_fail(err, "%s%s: %s", c->base, path, curl_easy_strerror(rc));
    return -1;
  }
  return 0;
}

int preft_client_get(preft_client *c, const char *path, preft_http_response *out, preft_error *err) {
  return perform(c, path, NULL, NULL, NULL, out, err);
}

int preft_client_post(preft_client *c, const char *path, const char *json, preft_sse_fn fn, void *ctx,
                      preft_http_response *out, preft_error *err) {
  return perform(c, path, json, fn, ctx, out, err);
}

void preft_http_response_free(preft_http_response *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}
