/* client.h - a small HTTP client for preft's own server (and any
 * OpenAI-compatible one), on libcurl: GET and POST with JSON, and streamed
 * responses delivered as server-sent event payloads as they arrive. Used by
 * `preft bench serve` and the server tests.
 *
 * One preft_client per thread (it keeps its connection alive between
 * requests). Call preft_client_global_init once, before any thread starts.
 *
 *   preft_client *c = preft_client_new("http://127.0.0.1:8080", NULL);
 *   preft_http_response r;
 *   if (preft_client_post(c, "/v1/completions", body, on_data, ctx, &r, &err)) ...
 *   ... r.status, r.body ...
 *   preft_http_response_free(&r);
 *   preft_client_free(c);
 */
#ifndef PREFT_SERVER_CLIENT_H
#define PREFT_SERVER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

typedef struct preft_client preft_client;

typedef struct preft_http_response {
  long status;
  char *body; /* NUL-terminated; the whole body, or for a 200 event stream only what was not an event */
  size_t len;
  int n_events; /* SSE "data:" payloads delivered */
} preft_http_response;

/* Called for every "data:" payload of a 200 text/event-stream response
 * ("[DONE]" included), NUL-terminated. Return false to abort the transfer. */
typedef bool (*preft_sse_fn)(void *ctx, const char *data, size_t len);

void preft_client_global_init(void);
/* base_url: "http://host:port" (no trailing slash needed); api_key may be NULL.
 * timeout_s: per request, 0 for none. */
preft_client *preft_client_new(const char *base_url, const char *api_key, double timeout_s);
void preft_client_free(preft_client *c);
/* Changes the per-request timeout (seconds, 0 for none) of later requests. */
void preft_client_set_timeout(preft_client *c, double timeout_s);

/* 0 when a response arrived (any status), -1 on a transport error (refused,
 * reset, timeout) with err filled and *out empty (nothing to free). */
int preft_client_get(preft_client *c, const char *path, preft_http_response *out, preft_error *err);
/* POSTs a JSON body; with fn, event-stream payloads go to fn as they arrive. */
int preft_client_post(preft_client *c, const char *path, const char *json, preft_sse_fn fn, void *ctx,
                      preft_http_response *out, preft_error *err);
void preft_http_response_free(preft_http_response *r);

#endif
