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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timer.h"
#include "server/server_int.h"

/* Seconds an idle connection (between requests, or a client sending its
 * request slowly) is kept. While a request is being answered there is no
 * timeout: a generation may wait in the queue or run for minutes. */
#ifndef SRV_IDLE_TIMEOUT_S
#define SRV_IDLE_TIMEOUT_S 120
#endif

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void count_status(preft_server *s, int status) {
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
  if (r->status == 405) add_header(resp, "Allow", "GET, POST");
  if (r->status == 401) add_header(resp, "WWW-Authenticate", "Bearer");
  c->status = r->status;
  count_status(s, r->status);
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

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static bool authorized(const preft_server *s, struct MHD_Connection *conn) {
  if (!s->api_key) return true;
  const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
  h += 7;
  size_t a = strlen(h), b = strlen(s->api_key);
  unsigned diff = (unsigned)(a != b);
  for (size_t i = 0; i < b; i++) diff |= (unsigned char)s->api_key[i] ^ (unsigned char)(i < a ? h[i] : 0);
  return diff == 0;
}

static bool is(const char *method, const char *m) { return !strcmp(method, m); }

static void route(preft_server *s, srv_conn *c, const char *url, const char *method, srv_reply *r) {
  bool get = is(method, "GET") || is(method, "HEAD"), post = is(method, "POST");
  srv_api_error e;
  const char *want = NULL;
  if (!strcmp(url, "/v1/completions")) {
    if (post) return preft_srv_route_generate(s, c, SRV_COMPLETION, r);
    want = "POST";
  } else if (!strcmp(url, "/v1/chat/completions")) {
    if (post) return preft_srv_route_generate(s, c, SRV_CHAT, r);
    want = "POST";
  } else if (!strcmp(url, "/v1/models") || !strncmp(url, "/v1/models/", 11)) {
    if (get) return preft_srv_route_models(s, url[10] == '/' ? url + 11 : NULL, r);
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
    *con_cls = c;
    pthread_mutex_lock(&s->mu);
    s->n_conns++;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->http_requests, 1);
    /* Refuse before reading a body: wrong key, or a declared size over the limit. */
    if (!strncmp(url, "/v1/", 4) && !authorized(s, conn))
      return send_error(s, conn, c, 401, "invalid_request_error", "invalid_api_key",
                        "missing or wrong API key: send 'Authorization: Bearer KEY'");
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > s->max_body) {
      char msg[128];
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
  /* A generation may wait in the engine longer than the idle timeout. */
  MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
  srv_reply r = {0};
  route(s, c, url, method, &r);
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
  /* back to the idle timeout for the next request on this connection */
  MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)SRV_IDLE_TIMEOUT_S);
  pthread_mutex_lock(&s->mu);
  s->n_conns--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
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
  const preft_model *m = preft_engine_model(engine);
  const char *host = cfg->host ? cfg->host : "127.0.0.1";
  if (cfg->port < 0 || cfg->port > 65535) return preft_fail(err, "port %d is out of range", cfg->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
  char port[16];
  snprintf(port, sizeof port, "%d", cfg->port);
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai != 0) return preft_fail(err, "cannot resolve host '%s': %s", host, gai_strerror(gai));

  preft_server *s = preft_xcalloc(1, sizeof *s);
  s->engine = engine;
  s->tok = tok;
  s->model_name = preft_xstrdup(cfg->model_name ? cfg->model_name : "preft");
  s->api_key = cfg->api_key && *cfg->api_key ? preft_xstrdup(cfg->api_key) : NULL;
  s->max_body = cfg->max_body ? cfg->max_body : 8u << 20;
  s->max_context = cfg->max_context > 0 ? cfg->max_context : m->cfg.max_pos;
  s->vocab = m->cfg.vocab;
  s->created = (long)time(NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  /* End-of-sequence ids, as `preft generate` gathers them. */
  const int32_t *tok_eos = NULL;
  int n_tok_eos = tok ? preft_tokenizer_eos_ids(tok, &tok_eos) : 0;
  if (gen)
    for (int i = 0; i < gen->n_eos; i++) s->eos_ids[s->n_eos++] = gen->eos_ids[i];
  for (int i = 0; i < m->cfg.n_eos; i++) s->eos_ids[s->n_eos++] = m->cfg.eos_ids[i];
  for (int i = 0; i < n_tok_eos && i < PREFT_MAX_EOS; i++) s->eos_ids[s->n_eos++] = tok_eos[i];
  /* Sampling defaults: the model's generation_config.json, greedy without it. */
  s->defaults = (preft_sampling){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0};
  if (gen && gen->do_sample)
    s->defaults = (preft_sampling){.temperature = (float)gen->temperature,
                                   .top_k = gen->top_k,
                                   .top_p = (float)gen->top_p,
                                   .min_p = (float)gen->min_p};

  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                   MHD_USE_ITC | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
                               (unsigned)(cfg->max_connections > 0 ? cfg->max_connections : 1024),
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SRV_IDLE_TIMEOUT_S,
                               MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                               NULL, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!s->daemon) {
    preft_fail(err, "cannot listen on %s port %d (in use, or not an address of this machine?)", host,
               cfg->port);
    preft_server_stop(s);
    return -1;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : cfg->port;
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
  if (s->daemon) {
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
  }
  if (wait_idle(s, preft_now() + timeout_s)) return 0;
  int cancelled = preft_srv_cancel_all(s);
  PREFT_WARN("server: drain timeout after %.0f s, cancelled %d requests", timeout_s, cancelled);
  wait_idle(s, preft_now() + 10.0);
  return cancelled;
}

void preft_server_stop(preft_server *s) {
  if (!s) return;
  if (s->daemon) MHD_stop_daemon(s->daemon);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->model_name);
  free(s->api_key);
  free(s);
}
