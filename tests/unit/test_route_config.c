/* test_route_config.c - `preft route`'s replica URLs and configuration:
 * which URLs become HAProxy `server` addresses (names, IPv4, [IPv6], a
 * trailing slash) and which are refused with a message naming them (another
 * scheme, a path, no port, a port out of range, characters that could break
 * out of the configuration line); the configuration hashes on the body's
 * "model" with the fallback header, health-checks /health, lists every
 * replica once, and refuses repeated replicas and bad options. HAProxy itself
 * checks the text in tests/e2e/route_haproxy.sh (`haproxy -c`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "server/haproxy_config.h"

static void accepted(const char *url, const char *want) {
  char buf[300];
  preft_error err;
  int rc = preft_route_parse_replica(url, buf, sizeof buf, &err);
  if (rc) fail_msg("%s refused: %s", url, err.msg);
  assert_string_equal(buf, want);
}

static void refused(const char *url, const char *why) {
  char buf[300];
  preft_error err;
  assert_int_equal(preft_route_parse_replica(url, buf, sizeof buf, &err), -1);
  if (!strstr(err.msg, url)) fail_msg("error does not name the URL: %s", err.msg);
  if (!strstr(err.msg, why)) fail_msg("error for %s does not say '%s': %s", url, why, err.msg);
}

static void replica_urls(void **s) {
  (void)s;
  accepted("http://127.0.0.1:8001", "127.0.0.1:8001");
  accepted("http://127.0.0.1:8001/", "127.0.0.1:8001");
  accepted("http://replica-2.internal:80", "replica-2.internal:80");
  accepted("http://[::1]:9000", "[::1]:9000");
  accepted("http://h:065535", "h:65535");
  refused("https://a:1", "plain HTTP");
  refused("a:1", "http://");
  refused("http://a", "no port");
  refused("http://a/", "no port");
  refused("http://a:0", "1-65535");
  refused("http://a:65536", "1-65535");
  refused("http://a:-1", "1-65535");
  refused("http://a:x", "1-65535");
  refused("http://a:1/v1", "without a path");
  refused("http://a:1 extra", "without a path");
  refused("http://a\nb:1", "does not belong");
  refused("http://a b:1", "does not belong");
  refused("http://:1", "no host");
  refused("http://[::1:1", "unterminated");
  refused("http://[::g]:1", "IPv6");
}

static void configuration(void **s) {
  (void)s;
  const char *urls[] = {"http://10.0.0.1:8000", "http://10.0.0.2:8000/"};
  preft_route_opts o = preft_route_defaults();
  o.replicas = urls;
  o.n_replicas = 2;
  char *cfg;
  preft_error err;
  assert_int_equal(preft_route_config(&o, &cfg, &err), 0);
  assert_non_null(strstr(cfg, "json_query('$.model')"));
  assert_non_null(strstr(cfg, "req.hdr(X-Preft-Adapter)"));
  assert_non_null(strstr(cfg, "balance hash var(txn.adapter)"));
  assert_non_null(strstr(cfg, "hash-type consistent"));
  assert_non_null(strstr(cfg, "option httpchk GET /health"));
  assert_non_null(strstr(cfg, "bind 0.0.0.0:8000"));
  assert_non_null(strstr(cfg, "server replica0 10.0.0.1:8000\n"));
  assert_non_null(strstr(cfg, "server replica1 10.0.0.2:8000\n"));
  assert_null(strstr(cfg, "server replica2"));
  assert_null(strstr(cfg, "hash-balance-factor"));
  assert_null(strstr(cfg, "stats enable"));
  free(cfg);

  o.balance_factor = 150;
  o.stats = "127.0.0.1:9000";
  assert_int_equal(preft_route_config(&o, &cfg, &err), 0);
  assert_non_null(strstr(cfg, "hash-balance-factor 150\n"));
  assert_non_null(strstr(cfg, "bind 127.0.0.1:9000\n  stats enable"));
  free(cfg);

  const char *twice[] = {"http://h:1", "http://h:1/"};
  o.replicas = twice;
  assert_int_equal(preft_route_config(&o, &cfg, &err), -1);
  assert_non_null(strstr(err.msg, "twice"));
  o.replicas = urls;
  o.balance_factor = 50;
  assert_int_equal(preft_route_config(&o, &cfg, &err), -1);
  assert_non_null(strstr(err.msg, "balance factor 50"));
  o.balance_factor = 0;
  o.header = "X-A\r\nB";
  assert_int_equal(preft_route_config(&o, &cfg, &err), -1);
  assert_non_null(strstr(err.msg, "header"));
  o.header = "X-Adapter";
  o.stats = "9000";
  assert_int_equal(preft_route_config(&o, &cfg, &err), -1);
  assert_non_null(strstr(err.msg, "ADDR:PORT"));
  o.stats = NULL;
  o.bind = "0.0.0.0\nlisten x";
  assert_int_equal(preft_route_config(&o, &cfg, &err), -1);
  assert_non_null(strstr(err.msg, "bind address"));
  o.bind = "0.0.0.0";
  o.n_replicas = 0;
  assert_int_equal(preft_route_config(&o, &cfg, &err), -1);
  assert_non_null(strstr(err.msg, "no replicas"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replica_urls),
      cmocka_unit_test(configuration),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
