/* conn_guard.c - per-phase deadlines and the connection budget (see
 * conn_guard.h). */
#include "server/conn_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/error.h"
#include "base/timer.h"
#include "server/request_head.h"
#include "server/server_int.h"

#define GUARD_TICK_MS 200 /* how often deadlines are checked */

struct srv_sock {
  int fd;
  srv_sock_phase phase;
  double since, deadline; /* phase start; when a HEADERS or BODY phase expires */
  bool shut;              /* answered and shut down, waiting for its thread to close it */
  srv_sock *prev, *next;
};

/* Writes a whole JSON error response straight to the socket (nothing else
 * writes to it in the HEADERS and BODY phases) and shuts the socket down:
 * its libmicrohttpd thread sees the end of input and closes it. Called with
 * the lock held. */
static void shut_with_error(srv_guard *g, srv_sock *k, int status, const char *code, const char *msg) {
  srv_api_error e;
  preft_srv_fail(&e, status, status == 503 ? "server_error" : "invalid_request_error", code, NULL, "%s", msg);
  srv_buf out = {0};
  preft_srv_error_response(&e, &out);
  ssize_t w = send(k->fd, out.p, out.len, MSG_DONTWAIT | MSG_NOSIGNAL); /* best effort */
  (void)w;
  shutdown(k->fd, SHUT_RDWR);
  k->shut = true;
  preft_srv_count_status(g->server, status);
  preft_srv_buf_free(&out);
}

static void expire(srv_guard *g, srv_sock *k) {
  char msg[200];
  if (k->phase == SOCK_BODY)
    snprintf(msg, sizeof msg, "the request body did not arrive within %.0f s (the server's --body-timeout)",
             g->body_s);
  else
    snprintf(msg, sizeof msg,
             "the request headers did not arrive within %.0f s (the server's --header-timeout)", g->header_s);
  shut_with_error(g, k, 408, "request_timeout", msg);
}

static void *watchdog(void *arg) {
  srv_guard *g = arg;
  pthread_mutex_lock(&g->mu);
  while (!g->stop) {
    double now = preft_now();
    for (srv_sock *k = g->socks; k; k = k->next)
      if (k->phase != SOCK_ANSWERING && !k->shut && now >= k->deadline) expire(g, k);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += GUARD_TICK_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&g->cv, &g->mu, &ts);
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

int preft_srv_guard_start(srv_guard *g, preft_server *s, int max_socks, double header_s, double body_s,
                          double idle_s) {
  memset(g, 0, sizeof *g);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->server = s;
  g->max_socks = max_socks;
  g->header_s = header_s;
  g->body_s = body_s;
  g->idle_s = idle_s;
  if (pthread_create(&g->thread, NULL, watchdog, g) != 0) return -1;
  g->running = true;
  return 0;
}

void preft_srv_guard_stop(srv_guard *g) {
  if (g->running) {
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    g->running = false;
  }
  pthread_mutex_lock(&g->mu);
  while (g->socks) { /* only when libmicrohttpd did not report every close */
    srv_sock *k = g->socks;
    g->socks = k->next;
    free(k);
  }
  pthread_mutex_unlock(&g->mu);
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

srv_sock *preft_srv_guard_open(srv_guard *g, int fd) {
  srv_sock *k = preft_xcalloc(1, sizeof *k);
  k->fd = fd;
  k->phase = SOCK_HEADERS;
  k->since = preft_now();
  k->deadline = k->since + g->header_s;
  pthread_mutex_lock(&g->mu);
  k->next = g->socks;
  if (g->socks) g->socks->prev = k;
  g->socks = k;
  int live = 0;
  srv_sock *victim = NULL;
  for (srv_sock *x = g->socks; x; x = x->next) {
    if (x->shut) continue;
    live++;
    if (x != k && x->phase != SOCK_ANSWERING && (!victim || x->since <= victim->since)) victim = x;
  }
  if (live > g->max_socks) {
    char msg[200];
    if (victim) {
      snprintf(msg, sizeof msg,
               "the server needed this connection for another client: %d connections are open (its "
               "--max-connections) and this one was still sending its request",
               g->max_socks);
      shut_with_error(g, victim, 408, "request_timeout", msg);
    } else {
      snprintf(msg, sizeof msg, "the server is answering %d connections, its limit; retry later",
               g->max_socks);
      shut_with_error(g, k, 503, "too_many_connections", msg);
    }
  }
  pthread_mutex_unlock(&g->mu);
  return k;
}

void preft_srv_guard_phase(srv_guard *g, srv_sock *k, srv_sock_phase phase, bool keep_alive) {
  if (!k) return;
  pthread_mutex_lock(&g->mu);
  k->phase = phase;
  k->since = preft_now();
  k->deadline = k->since + (phase == SOCK_BODY ? g->body_s : g->header_s) + (keep_alive ? g->idle_s : 0);
  pthread_mutex_unlock(&g->mu);
}

void preft_srv_guard_close(srv_guard *g, srv_sock *k) {
  if (!k) return;
  pthread_mutex_lock(&g->mu);
  if (k->prev)
    k->prev->next = k->next;
  else
    g->socks = k->next;
  if (k->next) k->next->prev = k->prev;
  pthread_mutex_unlock(&g->mu);
  free(k);
}
