/* haproxy_config.h - the HAProxy configuration that spreads requests over
 * `preft serve` replicas by adapter (`preft route`).
 *
 * Each request is hashed, with consistent hashing, on the adapter it names:
 * the JSON body's "model" (read with HAProxy's req.body and json_query), or a
 * header when the body has none. The same adapter therefore lands on the same
 * replica while the set of healthy replicas is unchanged, which keeps its
 * weights and its prefix cache warm there; a replica that fails its health
 * checks (GET /health) leaves the ring and only its adapters move. Requests
 * that never reached a replica (connection refused, or a replica that closed
 * without answering) are retried on another one.
 *
 *   preft_route_opts o = preft_route_defaults();
 *   o.replicas = urls; o.n_replicas = 3;
 *   char *cfg;
 *   if (preft_route_config(&o, &cfg, &err) != 0) ...   // haproxy.cfg text
 */
#ifndef PREFT_SERVER_HAPROXY_CONFIG_H
#define PREFT_SERVER_HAPROXY_CONFIG_H

#include "preft/base.h"

typedef struct preft_route_opts {
  const char *const *replicas; /* http://HOST:PORT of each `preft serve` */
  int n_replicas;
  const char *bind;   /* address the router listens on */
  int port;           /* its port */
  const char *header; /* names the adapter when the body does not */
  int check_ms;       /* health check interval */
  int fall, rise;     /* failed / passed checks before a replica leaves / rejoins */
  int timeout_s;      /* client and server inactivity limit (long generations stream) */
  int connect_ms;     /* connect timeout to a replica */
  int retries;        /* tries on other replicas for a request that never reached one */
  int maxconn;        /* concurrent client connections */
  int body_kb;        /* request bytes buffered to find "model" (HAProxy's tune.bufsize) */
  int balance_factor; /* 0: strict affinity; else hash-balance-factor (e.g. 150: no replica
                       * takes more than 1.5x the mean load; hot adapters spill over) */
  const char *stats;  /* NULL, or "ADDR:PORT" for HAProxy's statistics page */
} preft_route_opts;

/* Defaults: bind 0.0.0.0:8000, header X-Preft-Adapter, checks every 1000 ms
 * (fall 2, rise 2), timeouts 600 s / 2000 ms, 3 retries, 4096 connections,
 * 256 KB of body, strict affinity, no statistics page. */
preft_route_opts preft_route_defaults(void);

/* Parses http://HOST:PORT[/] (HOST a name, an IPv4 address or [IPv6]) into
 * "HOST:PORT" as HAProxy's `server` line takes it (buf of n bytes). Fails
 * naming the URL for another scheme, a path, a missing or bad port, or a
 * character that does not belong in a host name. */
int preft_route_parse_replica(const char *url, char *buf, size_t n, preft_error *err);

/* The whole haproxy.cfg as a heap string (caller frees). Fails naming the
 * bad replica URL or option (no replicas, a repeated replica, a header name
 * that is not a token). */
int preft_route_config(const preft_route_opts *o, char **out, preft_error *err);

#endif
