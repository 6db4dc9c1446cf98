/* conn_guard.h - deadlines and a connection budget for the HTTP server's
 * sockets, so that slow or idle clients cannot hold its connection threads.
 *
 * Every connection is in one phase: HEADERS (waiting for a request's
 * headers: a new connection, or a kept-alive one after its last response),
 * BODY (reading the body) or ANSWERING (the request is being served: no
 * deadline, a generation may take minutes). HEADERS and BODY have
 * deadlines; a watchdog thread answers a connection past its deadline with
 * a 408 JSON error and shuts its socket down, which ends its libmicrohttpd
 * thread. When a new connection would pass the connection budget, the
 * connection that has been reading the longest (HEADERS or BODY) is evicted
 * the same way, so slow clients cannot keep a client that sends its request
 * promptly out; when every connection is ANSWERING the newcomer gets 503.
 *
 * The watchdog only ever shuts a socket down while holding the guard's lock,
 * and a connection leaves the guard (under that lock) before libmicrohttpd
 * closes its descriptor, so a descriptor number is never touched after it
 * could have been reused. */
#ifndef PREFT_SERVER_CONN_GUARD_H
#define PREFT_SERVER_CONN_GUARD_H

#include <pthread.h>
#include <stdbool.h>

typedef struct srv_sock srv_sock;
typedef struct preft_server preft_server;

typedef enum { SOCK_HEADERS, SOCK_BODY, SOCK_ANSWERING } srv_sock_phase;

typedef struct srv_guard {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool running, stop;
  srv_sock *socks; /* every open connection, oldest last */
  int n_socks, max_socks;
  double header_s, body_s, idle_s;
  preft_server *server; /* for the status counters */
} srv_guard;

/* Starts the watchdog thread; returns 0 or -1 (no thread). */
int preft_srv_guard_start(srv_guard *g, preft_server *s, int max_socks, double header_s, double body_s,
                          double idle_s);
/* Stops the thread (connections left are libmicrohttpd's to close). */
void preft_srv_guard_stop(srv_guard *g);
/* A new connection on fd, in the HEADERS phase; evicts the longest-reading
 * connection when the budget is passed. Returns the handle to pass below. */
srv_sock *preft_srv_guard_open(srv_guard *g, int fd);
/* Moves a connection to a phase, starting that phase's deadline. After a
 * response (keep_alive) the next request's headers are due within the idle
 * timeout plus the header timeout. */
void preft_srv_guard_phase(srv_guard *g, srv_sock *k, srv_sock_phase phase, bool keep_alive);
/* The connection is closing: forget it (before its descriptor is closed). */
void preft_srv_guard_close(srv_guard *g, srv_sock *k);

#endif
