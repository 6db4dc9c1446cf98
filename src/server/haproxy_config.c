/* haproxy_config.c - writes the HAProxy configuration of `preft route`. */
#include "server/haproxy_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

preft_route_opts preft_route_defaults(void) {
  return (preft_route_opts){
      .bind = "0.0.0.0",
      .port = 8000,
      .header = "X-Preft-Adapter",
      .check_ms = 1000,
      .fall = 2,
      .rise = 2,
      .timeout_s = 600,
      .connect_ms = 2000,
      .retries = 3,
      .maxconn = 4096,
      .body_kb = 256,
  };
}

static int host_char(int c) { return isalnum(c) || c == '.' || c == '-' || c == '_'; }

int preft_route_parse_replica(const char *url, char *buf, size_t n, preft_error *err) {
  static const char scheme[] = "http://";
  if (strncmp(url, scheme, sizeof scheme - 1))
    return preft_fail(err, "replica '%s': expected http://HOST:PORT (preft serve speaks plain HTTP)", url);
  const char *host = url + sizeof scheme - 1, *end;
  if (*host == '[') { /* [IPv6] */
    end = strchr(host, ']');
    if (!end || end == host + 1) return preft_fail(err, "replica '%s': unterminated [IPv6] address", url);
    for (const char *p = host + 1; p < end; p++)
      if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
        return preft_fail(err, "replica '%s': '%c' in an IPv6 address", url, *p);
    end++;
  } else {
    end = host;
    while (host_char((unsigned char)*end)) end++;
    if (end == host) return preft_fail(err, "replica '%s': no host", url);
  }
  if (*end != ':') {
    if (*end == '\0' || *end == '/') return preft_fail(err, "replica '%s': no port", url);
    return preft_fail(err, "replica '%s': '%c' does not belong in a host name", url, *end);
  }
  const char *port = end + 1;
  char *stop;
  long p = strtol(port, &stop, 10);
  if (stop == port || !isdigit((unsigned char)*port) || p < 1 || p > 65535)
    return preft_fail(err, "replica '%s': the port must be 1-65535", url);
  if (*stop == '/') stop++;
  if (*stop) return preft_fail(err, "replica '%s': a replica is HOST:PORT, without a path", url);
  int len = snprintf(buf, n, "%.*s:%ld", (int)(end - host), host, p);
  if (len < 0 || (size_t)len >= n) return preft_fail(err, "replica '%s': too long", url);
  return 0;
}

static int header_ok(const char *h) {
  if (!*h) return 0;
  for (; *h; h++)
    if (!isalnum((unsigned char)*h) && *h != '-' && *h != '_') return 0;
  return 1;
}

/* What may stand in a `bind` line: names, IPv4/IPv6 addresses, ports, '*'. */
static int address_ok(const char *a) {
  for (; *a; a++)
    if (!host_char((unsigned char)*a) && *a != ':' && *a != '*' && *a != '[' && *a != ']') return 0;
  return 1;
}

static int check_opts(const preft_route_opts *o, preft_error *err) {
  if (o->n_replicas < 1) return preft_fail(err, "no replicas: give at least one http://HOST:PORT");
  if (!o->header || !header_ok(o->header))
    return preft_fail(err, "header '%s': a header name is letters, digits, '-' and '_'",
                      o->header ? o->header : "");
  if (!o->bind || !*o->bind) return preft_fail(err, "no bind address");
  if (!address_ok(o->bind)) return preft_fail(err, "bind address '%s': not an address", o->bind);
  if (o->stats && (!*o->stats || !address_ok(o->stats) || !strchr(o->stats, ':')))
    return preft_fail(err, "statistics address '%s': expected ADDR:PORT", o->stats);
  if (o->port < 1 || o->port > 65535) return preft_fail(err, "port %d: must be 1-65535", o->port);
  if (o->balance_factor != 0 && o->balance_factor < 100)
    return preft_fail(err, "balance factor %d: 0 (strict affinity) or at least 100", o->balance_factor);
  return 0;
}

int preft_route_config(const preft_route_opts *o, char **out, preft_error *err) {
  if (check_opts(o, err)) return -1;
  char(*servers)[300] = preft_xcalloc((size_t)o->n_replicas, sizeof *servers);
  for (int i = 0; i < o->n_replicas; i++) {
    if (preft_route_parse_replica(o->replicas[i], servers[i], sizeof servers[i], err)) goto fail;
    for (int j = 0; j < i; j++)
      if (!strcmp(servers[i], servers[j])) {
        preft_fail(err, "replica '%s' is given twice", o->replicas[i]);
        goto fail;
      }
  }
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  PREFT_ASSERT(f);
  fprintf(f,
          "# haproxy.cfg written by `preft route`: requests go to the replica that\n"
          "# consistent hashing assigns to the adapter they name (the JSON body's\n"
          "# \"model\", else the %s header), so that each adapter stays warm\n"
          "# on one replica. Check with `haproxy -c -f FILE`, run with `haproxy -f FILE`.\n"
          "global\n"
          "  log stdout format raw local0 info\n"
          "  maxconn %d\n"
          "  tune.bufsize %d\n"
          "\n"
          "defaults\n"
          "  mode http\n"
          "  log global\n"
          "  option httplog\n"
          "  timeout connect %dms\n"
          "  timeout client %ds\n"
          "  timeout server %ds\n"
          "  timeout http-request 30s\n"
          "  timeout queue 30s\n"
          "  # a request that never reached a replica is tried on another one\n"
          "  retries %d\n"
          "  option redispatch 1\n"
          "\n"
          "frontend preft\n"
          "  bind %s:%d\n"
          "  # wait for the body, so that its \"model\" can pick the replica\n"
          "  option http-buffer-request\n"
          "  http-request set-var(txn.adapter) req.body,json_query('$.model') if { req.body_size gt 0 }\n"
          "  http-request set-var(txn.adapter) req.hdr(%s) if !{ var(txn.adapter) -m found }\n"
          "  default_backend replicas\n"
          "\n"
          "backend replicas\n"
          "  balance hash var(txn.adapter)\n"
          "  hash-type consistent crc32\n",
          o->header, o->maxconn, o->body_kb * 1024, o->connect_ms, o->timeout_s, o->timeout_s, o->retries,
          o->bind, o->port, o->header);
  if (o->balance_factor) fprintf(f, "  hash-balance-factor %d\n", o->balance_factor);
  fprintf(f,
          "  retry-on conn-failure empty-response response-timeout\n"
          "  option httpchk GET /health\n"
          "  http-check expect status 200\n"
          "  default-server check inter %dms fall %d rise %d\n",
          o->check_ms, o->fall, o->rise);
  for (int i = 0; i < o->n_replicas; i++) fprintf(f, "  server replica%d %s\n", i, servers[i]);
  if (o->stats)
    fprintf(f,
            "\n"
            "frontend stats\n"
            "  bind %s\n"
            "  stats enable\n"
            "  stats uri /\n"
            "  stats refresh 5s\n",
            o->stats);
  fclose(f);
  free(servers);
  *out = text;
  return 0;
fail:
  free(servers);
  return -1;
}
