/* cors.c - Cross-Origin Resource Sharing for browser clients
 * (`--cors-origin ORIGIN`, repeatable; `*` allows any origin).
 *
 * A request whose Origin header names an allowed origin gets
 * Access-Control-Allow-Origin (that origin, or `*` when any is allowed and
 * no credentials are involved), Vary: Origin, and Access-Control-Expose-Headers
 * for the headers a client may want to read. A preflight (OPTIONS with
 * Access-Control-Request-Method) from an allowed origin is answered 204
 * with Access-Control-Allow-Methods, the requested headers in
 * Access-Control-Allow-Headers and Access-Control-Max-Age; from any other
 * origin, 403 with an OpenAI-style error naming the option. OPTIONS never
 * needs the API key (browsers do not send credentials on a preflight).
 * Without --cors-origin no CORS header is ever sent, and OPTIONS is
 * answered 204 with Allow only: browsers then refuse cross-origin calls,
 * which is the safe default. */
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "server/server_int.h"

static bool origin_allowed(const preft_server *s, const char *origin) {
  if (!origin || !s->n_cors) return false;
  for (int i = 0; i < s->n_cors; i++)
    if (!strcmp(s->cors[i], "*") || !strcmp(s->cors[i], origin)) return true;
  return false;
}

static void add(struct MHD_Response *resp, const char *k, const char *v) {
  if (MHD_add_response_header(resp, k, v) != MHD_YES) PREFT_WARN("server: cannot add header %s", k);
}

void preft_srv_cors_headers(const preft_server *s, struct MHD_Connection *conn, const srv_conn *c,
                            struct MHD_Response *resp) {
  const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
  if (!origin_allowed(s, origin)) return;
  add(resp, "Access-Control-Allow-Origin", origin);
  add(resp, "Vary", "Origin");
  if (c->preflight) {
    add(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    add(resp, "Access-Control-Allow-Headers", h && *h ? h : "Authorization, Content-Type");
    add(resp, "Access-Control-Max-Age", "600");
  } else {
    add(resp, "Access-Control-Expose-Headers", "Retry-After, Content-Type");
  }
}

void preft_srv_route_preflight(preft_server *s, struct MHD_Connection *conn, srv_conn *c, srv_reply *r) {
  c->preflight = true;
  const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
  if (origin && s->n_cors && !origin_allowed(s, origin)) {
    srv_api_error e;
    preft_srv_fail(&e, 403, "invalid_request_error", "cors_origin_not_allowed", NULL,
                   "the origin '%.200s' is not allowed: start the server with --cors-origin %.200s", origin,
                   origin);
    preft_srv_reply_error(r, &e);
    return;
  }
  r->status = 204;
}
