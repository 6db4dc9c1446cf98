/* cli_route.c - `preft route`: the HAProxy configuration that routes
 * requests to `preft serve` replicas by adapter (server/haproxy_config.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/file.h"
#include "cli/cli.h"
#include "server/haproxy_config.h"

#define MAX_REPLICAS 256

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: preft route --replicas URL [URL...] [--port P] [--bind ADDR] [-o haproxy.cfg]\n\n"
      "Writes an HAProxy configuration (Debian's haproxy 2.6 or later) that puts several\n"
      "`preft serve` replicas behind one address and sends every request to the replica\n"
      "that consistent hashing assigns to the adapter it names (the JSON body's \"model\",\n"
      "else a header), so that each adapter's weights and prefix cache stay warm on one\n"
      "replica. Replicas are health-checked (GET /health); one that fails leaves the ring\n"
      "and only its adapters move; a request that never reached a replica is retried on\n"
      "another. Run it with `haproxy -f haproxy.cfg` (docs/SCALING.md).\n\n"
      "  --replicas URL...      http://HOST:PORT of each replica (repeatable, or several after one flag)\n"
      "  --port P               port the router listens on (default 8000)\n"
      "  --bind ADDR            address it listens on (default 0.0.0.0)\n"
      "  --header NAME          header naming the adapter when the body has no \"model\"\n"
      "                         (default X-Preft-Adapter)\n"
      "  --check-ms N           health check interval (default 1000)\n"
      "  --fall N, --rise N     failed / passed checks before a replica leaves / rejoins (2, 2)\n"
      "  --timeout-s N          inactivity limit of a request, client and replica side (600)\n"
      "  --retries N            tries on other replicas for a request that never reached one (3)\n"
      "  --maxconn N            concurrent client connections (4096)\n"
      "  --body-kb N            request bytes buffered to find \"model\" (256); a body longer than\n"
      "                         that is routed by the header, else to any replica\n"
      "  --balance-factor N     0 (default): strict affinity; N >= 100: no replica takes more than\n"
      "                         N/100 times the mean load, hot adapters spill over\n"
      "  --stats ADDR:PORT      also serve HAProxy's statistics page there\n"
      "  -o FILE                write the configuration to FILE (atomically; default stdout)\n");
}

int cli_route(int argc, char **argv) {
  const char *urls[MAX_REPLICAS];
  cli_strs replicas = {.items = urls, .max = MAX_REPLICAS, .greedy = true};
  preft_route_opts o = preft_route_defaults();
  const char *out_path = NULL;
  long port = o.port, check_ms = o.check_ms, fall = o.fall, rise = o.rise, timeout_s = o.timeout_s,
       retries = o.retries, maxconn = o.maxconn, body_kb = o.body_kb, balance = 0;
  const cli_opt opts[] = {
      {"--replicas", NULL, CLI_STRS, &replicas, 0, 0},
      {"--port", NULL, CLI_INT, &port, 1, 65535},
      {"--bind", NULL, CLI_STR, &o.bind, 0, 0},
      {"--header", NULL, CLI_STR, &o.header, 0, 0},
      {"--check-ms", NULL, CLI_INT, &check_ms, 10, 3600000},
      {"--fall", NULL, CLI_INT, &fall, 1, 100},
      {"--rise", NULL, CLI_INT, &rise, 1, 100},
      {"--timeout-s", NULL, CLI_INT, &timeout_s, 1, 86400},
      {"--retries", NULL, CLI_INT, &retries, 0, 100},
      {"--maxconn", NULL, CLI_INT, &maxconn, 1, 1000000},
      {"--body-kb", NULL, CLI_INT, &body_kb, 16, 65536},
      {"--balance-factor", NULL, CLI_INT, &balance, 0, 100000},
      {"--stats", NULL, CLI_STR, &o.stats, 0, 0},
      {"-o", "--output", CLI_STR, &out_path, 0, 0},
      {NULL},
  };
  int r = cli_parse("route", argc, argv, opts, usage);
  if (r) return cli_parse_exit(r);
  if (replicas.n == 0) {
    fprintf(stderr, "preft route: needs --replicas URL... (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  o.replicas = replicas.items;
  o.n_replicas = replicas.n;
  o.port = (int)port;
  o.check_ms = (int)check_ms;
  o.fall = (int)fall;
  o.rise = (int)rise;
  o.timeout_s = (int)timeout_s;
  o.retries = (int)retries;
  o.maxconn = (int)maxconn;
  o.body_kb = (int)body_kb;
  o.balance_factor = (int)balance;
  char *cfg;
  preft_error err;
  if (preft_route_config(&o, &cfg, &err)) {
    fprintf(stderr, "preft route: %s\n", err.msg);
    return CLI_EXIT_USAGE;
  }
  int rc = CLI_EXIT_OK;
  if (!out_path) {
    fputs(cfg, stdout);
  } else if (preft_write_atomic(out_path, cfg, strlen(cfg), &err)) {
    fprintf(stderr, "preft route: %s\n", err.msg);
    rc = CLI_EXIT_ERROR;
  }
  free(cfg);
  return rc;
}
