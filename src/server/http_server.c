/* http_server.c - libmicrohttpd glue: one thread per connection, request
 * bodies collected up to a limit, authentication, routing to the endpoint
 * functions (openai_routes.c, metrics.c), server-sent event streams, and the
 * graceful drain on shutdown.
 *
 * Why one thread per connection: a connection thread may block while its
 * request waits in the engine (whole responses) or between tokens (streams),
 * which keeps every route a plain sequential function. The engine thread
 * never waits on a connection: it only appends to a request's event queue.
 * A client that goes away is noticed when a write fails or, while nothing is
 * written, by polling its socket for a hang-up (sse.c), and its engine
 * requests are cancelled, which frees their KV blocks. */
#include "server/http_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timer.h"
#include "engine/token_trie.h"
#include "model/bert.h"
#include "server/front_end.h"
#include "server/request_head.h"
#include "server/server_int.h"

/* libmicrohttpd's memory per connection: room well past the largest head
 * front_end.c lets through (request_head.h). */
#define SRV_MHD_MEMORY (128u << 10)

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void preft_srv_count_status(preft_server *s, int status) {
  int i = 0;
  while (preft_srv_status_codes[i] && preft_srv_status_codes[i] != status) i++;
  atomic_fetch_add(&s->status_count[i], 1);
}

static void add_header(struct MHD_Response *resp, const char *k, const char *v) {
  if (MHD_add_response_header(resp, k, v) != MHD_YES) PREFT_WARN("server: cannot add header %s", k);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  ssize_t n = preft_srv_gen_read(cls, buf, max);
  return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls) { preft_srv_gen_free(cls); }

static enum MHD_Result send_reply(preft_server *s, struct MHD_Connection *conn, srv_conn *c, srv_reply *r) {
  struct MHD_Response *resp;
  if (r->stream) {
    resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, r->stream, stream_free);
    if (!resp) {
      preft_srv_gen_free(r->stream);
      return MHD_NO;
    }
    add_header(resp, "Cache-Control", "no-cache");
    add_header(resp, "X-Accel-Buffering", "no");
  } else if (r->body.len) {
    resp = MHD_create_response_from_buffer(r->body.len, r->body.p, MHD_RESPMEM_MUST_FREE);
    if (resp) memset(&r->body, 0, sizeof r->body); /* the response owns the buffer now */
  } else {
    resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  }
  preft_srv_buf_free(&r->body);
  if (!resp) return MHD_NO;
  add_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
  add_header(resp, "Connection", "close"); /* each request's head passes front_end.c's check */
  preft_srv_cors_headers(s, conn, c, resp);
  if (r->status == 405 || c->preflight) add_header(resp, "Allow", "GET, POST, OPTIONS");
  if (r->status == 401) add_header(resp, "WWW-Authenticate", "Bearer");
  if (r->status == 429) add_header(resp, "Retry-After", "1"); /* the queue moves within a step or two */
  c->status = r->status;
  preft_srv_count_status(s, r->status);
  enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result send_error(preft_server *s, struct MHD_Connection *conn, srv_conn *c, int status,
                                  const char *type, const char *code, const char *msg) {
  srv_api_error e;
  preft_srv_fail(&e, status, type, code, NULL, "%s", msg);
  srv_reply r = {0};
  preft_srv_reply_error(&r, &e);
  return send_reply(s, conn, c, &r);
}

/* Constant-time comparison of the Authorization header with "Bearer KEY"
 * (the scheme is case-insensitive and may be followed by several spaces,
 * RFC 9110 section 11.1). */
static bool authorized(const preft_server *s, struct MHD_Connection *conn) {
  if (!s->api_key) return true;
  const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return false;
  h += 6;
  while (*h == ' ' || *h == '\t') h++;
  size_t a = strlen(h), b = strlen(s->api_key);
  unsigned diff = (unsigned)(a != b);
  for (size_t i = 0; i < b; i++) diff |= (unsigned char)s->api_key[i] ^ (unsigned char)(i < a ? h[i] : 0);
  return diff == 0;
}

static bool is(const char *method, const char *m) { return !strcmp(method, m); }

static enum MHD_Result add_len(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
  return MHD_YES;
}

/* The bytes of a request's head that libmicrohttpd parsed (URL, query
 * arguments, headers), give or take the separators. */
static size_t head_bytes(struct MHD_Connection *conn, const char *url) {
  size_t n = strlen(url);
  MHD_get_connection_values(conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, add_len, &n);
  return n;
}

static srv_sock *conn_sock(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static void route(preft_server *s, struct MHD_Connection *conn, srv_conn *c, const char *url,
                  const char *method, srv_reply *r) {
  bool get = is(method, "GET") || is(method, "HEAD"), post = is(method, "POST");
  srv_api_error e;
  const char *want = NULL;
  if (is(method, "OPTIONS")) return preft_srv_route_preflight(s, conn, c, r);
  if (!strcmp(url, "/v1/completions")) {
    if (post) return preft_srv_route_generate(s, c, SRV_COMPLETION, r);
    want = "POST";
  } else if (!strcmp(url, "/v1/chat/completions")) {
    if (post) return preft_srv_route_generate(s, c, SRV_CHAT, r);
    want = "POST";
  } else if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11)) {
    if (get)
      return preft_srv_route_models(s, url[10] == '/' ? url + 11 : NULL,
                                    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after"),
                                    MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit"), r);
    want = "GET";
  } else if (!strcmp(url, "/v1/load_lora_adapter")) {
    if (post) return preft_srv_route_load_adapter(s, c, r);
    want = "POST";
  } else if (!strcmp(url, "/v1/unload_lora_adapter")) {
    if (post) return preft_srv_route_unload_adapter(s, c, r);
    want = "POST";
  } else if (!strcmp(url, "/health")) {
    if (get) {
      bool draining = atomic_load(&s->draining);
      r->status = draining ? 503 : 200;
      r->content_type = "application/json";
      preft_srv_buf_puts(&r->body, draining ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}");
      return;
    }
    want = "GET";
  } else if (!strcmp(url, "/metrics")) {
    if (get) return preft_srv_route_metrics(s, r);
    want = "GET";
  } else if (!strcmp(url, "/tokenize") || !strcmp(url, "/detokenize")) {
    if (post) return (url[1] == 't' ? preft_srv_route_tokenize : preft_srv_route_detokenize)(s, c, r);
    want = "POST";
  } else if (!strcmp(url, "/v1/embeddings")) {
    if (post) return preft_srv_route_embeddings(s, c, r);
    want = "POST";
  } else if (!strcmp(url, "/version")) {
    if (get) return preft_srv_route_version(s, r);
    want = "GET";
  } else if (!strcmp(url, "/")) {
    if (get) return preft_srv_route_page(s, r);
    want = "GET";
  } else {
    preft_srv_fail(&e, 404, "invalid_request_error", "not_found", NULL, "no route for %s %s", method, url);
    return preft_srv_reply_error(r, &e);
  }
  preft_srv_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "%s %s is not allowed; use %s",
                 method, url, want);
  preft_srv_reply_error(r, &e);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
  preft_server *s = cls;
  srv_conn *c = *con_cls;
  if (!c) {
    c = preft_xcalloc(1, sizeof *c);
    c->cpu0 = thread_cpu();
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    c->http11 = !strcmp(version, MHD_HTTP_VERSION_1_1);
    *con_cls = c;
    pthread_mutex_lock(&s->mu);
    s->n_conns++;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->http_requests, 1);
    /* libmicrohttpd's inactivity timeout stays behind the body deadline, so the client gets a 408 */
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->guard.body_s + 1);
    preft_srv_guard_phase(&s->guard, conn_sock(conn), SOCK_BODY, false);
    /* Refuse before reading a body: a head too large, wrong key, or a declared size over the limit. */
    char msg[128];
    if (strlen(url) > SRV_MAX_URL) {
      snprintf(msg, sizeof msg, "the request's URL is longer than %d bytes", SRV_MAX_URL);
      return send_error(s, conn, c, 414, "invalid_request_error", "uri_too_long", msg);
    }
    if (head_bytes(conn, url) > SRV_MAX_HEAD) {
      snprintf(msg, sizeof msg, "the request's headers are larger than %d bytes", SRV_MAX_HEAD);
      return send_error(s, conn, c, 431, "invalid_request_error", "headers_too_large", msg);
    }
    if (!strncmp(url, "/v1/", 4) && strcmp(method, "OPTIONS") != 0 && !authorized(s, conn))
      return send_error(s, conn, c, 401, "invalid_request_error", "invalid_api_key",
                        "missing or wrong API key: send 'Authorization: Bearer KEY'");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->max_body) {
      snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes", s->max_body);
      return send_error(s, conn, c, 413, "invalid_request_error", "request_too_large", msg);
    }
    return MHD_YES;
  }
  if (*upload_size) {
    if (!c->too_big && c->body.len + *upload_size > s->max_body) {
      c->too_big = true;
      preft_srv_buf_free(&c->body);
    }
    if (!c->too_big) preft_srv_buf_put(&c->body, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (c->too_big) {
    char msg[128];
    snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes", s->max_body);
    return send_error(s, conn, c, 413, "invalid_request_error", "request_too_large", msg);
  }
  if (!c->body.p) preft_srv_buf_put(&c->body, "", 0); /* routes get a NUL-terminated body */
  /* A generation may wait in the engine longer than any timeout. */
  MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
  preft_srv_guard_phase(&s->guard, conn_sock(conn), SOCK_ANSWERING, false);
  srv_reply r = {0};
  route(s, conn, c, url, method, &r);
  return send_reply(s, conn, c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  preft_server *s = cls;
  srv_conn *c = *con_cls;
  if (!c) return;
  *con_cls = NULL;
  atomic_fetch_add(&s->http_cpu_nanos, (long)((thread_cpu() - c->cpu0) * 1e9));
  preft_srv_buf_free(&c->body);
  free(c);
  /* back to the idle timeout and the header deadline for the next request on this connection */
  MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->guard.idle_s);
  preft_srv_guard_phase(&s->guard, conn_sock(conn), SOCK_HEADERS, true);
  pthread_mutex_lock(&s->mu);
  s->n_conns--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  preft_server *s = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = ci ? preft_srv_guard_open(&s->guard, ci->connect_fd) : NULL;
  } else {
    preft_srv_guard_close(&s->guard, *socket_context);
    *socket_context = NULL;
  }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  if (preft_log_get_level() < PREFT_LOG_DEBUG) return;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n') msg[--n] = 0;
  PREFT_DEBUG("microhttpd: %s", msg);
}

int preft_server_start(preft_server **out, preft_engine *engine, const preft_tokenizer *tok,
                       const preft_generation_config *gen, const preft_server_config *cfg, preft_error *err) {
  const preft_model *m = engine ? preft_engine_model(engine) : NULL;
  if (!m && !cfg->encoder) return preft_fail(err, "the server needs a serving engine or an encoder");
  const char *host = cfg->host ? cfg->host : "127.0.0.1";
  if (cfg->port < 0 || cfg->port > 65535) return preft_fail(err, "port %d is out of range", cfg->port);
  char root[PATH_MAX];
  struct stat st;
  if (cfg->adapter_root &&
      (!realpath(cfg->adapter_root, root) || stat(root, &st) != 0 || !S_ISDIR(st.st_mode)))
    return preft_fail(err, "the adapter root '%s' is not a directory", cfg->adapter_root);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
  char port[16];
  snprintf(port, sizeof port, "%d", cfg->port);
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai != 0) return preft_fail(err, "cannot resolve host '%s': %s", host, gai_strerror(gai));

  preft_server *s = preft_xcalloc(1, sizeof *s);
  s->engine = engine;
  s->encoder = m ? NULL : cfg->encoder;
  s->tok = tok;
  s->model_name = preft_xstrdup(cfg->model_name ? cfg->model_name : "preft");
  s->api_key = cfg->api_key && *cfg->api_key ? preft_xstrdup(cfg->api_key) : NULL;
  s->max_body = cfg->max_body ? cfg->max_body : 8u << 20;
  s->max_context = cfg->max_context > 0 ? cfg->max_context : m ? m->cfg.max_pos : s->encoder->cfg.max_pos;
  s->vocab = m ? m->cfg.vocab : s->encoder->cfg.vocab;
  size_t per_token = tok ? preft_tokenizer_max_bytes_per_token(tok) : 0;
  s->max_prompt_bytes = per_token ? (size_t)s->max_context * per_token : 0;
  if (cfg->adapter_root) s->adapter_root = preft_xstrdup(root);
  s->created = (long)time(NULL);
  if (cfg->n_cors_origins > 0) {
    s->cors = preft_xcalloc((size_t)cfg->n_cors_origins, sizeof *s->cors);
    for (int i = 0; i < cfg->n_cors_origins; i++) s->cors[i] = preft_xstrdup(cfg->cors_origins[i]);
    s->n_cors = cfg->n_cors_origins;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->trie_mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  /* End-of-sequence ids, as `preft generate` gathers them. */
  const int32_t *tok_eos = NULL;
  int n_tok_eos = tok ? preft_tokenizer_eos_ids(tok, &tok_eos) : 0;
  if (gen)
    for (int i = 0; i < gen->n_eos; i++) s->eos_ids[s->n_eos++] = gen->eos_ids[i];
  for (int i = 0; m && i < m->cfg.n_eos; i++) s->eos_ids[s->n_eos++] = m->cfg.eos_ids[i];
  for (int i = 0; i < n_tok_eos && i < PREFT_MAX_EOS; i++) s->eos_ids[s->n_eos++] = tok_eos[i];
  /* Sampling defaults: the model's generation_config.json, greedy without it. */
  s->defaults = (preft_sampling){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0};
  if (gen && gen->do_sample)
    s->defaults = (preft_sampling){.temperature = (float)gen->temperature,
                                   .top_k = gen->top_k,
                                   .top_p = (float)gen->top_p,
                                   .min_p = (float)gen->min_p};

  int max_conns = cfg->max_connections > 0 ? cfg->max_connections : 1024;
  if (preft_srv_guard_start(&s->guard, s, max_conns, cfg->header_timeout_s > 0 ? cfg->header_timeout_s : 10,
                            cfg->body_timeout_s > 0 ? cfg->body_timeout_s : 60,
                            cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : 30) != 0) {
    freeaddrinfo(ai);
    preft_fail(err, "cannot start the server's connection watchdog thread");
    preft_server_stop(s);
    return -1;
  }
  /* connections come from front_end.c (MHD_add_connection), not a socket of libmicrohttpd's */
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                   MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                               s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                               /* room above the budget for connections being evicted (conn_guard.h) */
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)(max_conns + max_conns / 4 + 16),
                               /* a new connection: behind the header deadline (408 first) */
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->guard.header_s + 1,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SRV_MHD_MEMORY,
                               MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
  preft_error ferr = {0};
  if (!s->daemon || preft_srv_front_start(&s->front, s, ai, max_conns, s->guard.header_s, &ferr) != 0) {
    freeaddrinfo(ai);
    if (!s->daemon)
      preft_fail(err, "cannot start libmicrohttpd");
    else
      preft_fail(err, "cannot listen on %s port %d (in use, or not an address of this machine?): %s", host,
                 cfg->port, ferr.msg);
    preft_server_stop(s);
    return -1;
  }
  freeaddrinfo(ai);
  s->port = preft_srv_front_port(s->front);
  *out = s;
  return 0;
}

int preft_server_port(const preft_server *s) { return s->port; }

/* Waits until nothing is in flight or the deadline passes; true when idle. */
static bool wait_idle(preft_server *s, double deadline) {
  pthread_mutex_lock(&s->mu);
  while ((s->n_conns > 0 || s->n_gens > 0) && preft_now() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  bool idle = s->n_conns == 0 && s->n_gens == 0;
  pthread_mutex_unlock(&s->mu);
  return idle;
}

int preft_server_drain(preft_server *s, double timeout_s) {
  atomic_store(&s->draining, true);
  preft_srv_front_quiesce(s->front);
  if (wait_idle(s, preft_now() + timeout_s)) return 0;
  int cancelled = preft_srv_cancel_all(s);
  PREFT_WARN("server: drain timeout after %.0f s, cancelled %d requests", timeout_s, cancelled);
  wait_idle(s, preft_now() + 10.0);
  return cancelled;
}

void preft_server_stop(preft_server *s) {
  if (!s) return;
  preft_srv_front_stop(s->front); /* first: it hands connections to the daemon */
  if (s->daemon) MHD_stop_daemon(s->daemon);
  preft_srv_guard_stop(&s->guard);
  pthread_mutex_destroy(&s->mu);
  preft_srv_grammar_cache_free(s);
  pthread_mutex_destroy(&s->trie_mu);
  if (s->trie) preft_token_trie_free(s->trie);
  free(s->trie);
  pthread_cond_destroy(&s->cv);
  free(s->model_name);
  free(s->api_key);
  free(s->adapter_root);
  for (int i = 0; i < s->n_cors; i++) free(s->cors[i]);
  free(s->cors);
  free(s);
}
