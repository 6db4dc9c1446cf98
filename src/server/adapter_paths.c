/* adapter_paths.c - the gate in front of vLLM's runtime adapter endpoints:
 * off unless the server was started with runtime adapters allowed, and a
 * lora_path must name a directory inside the adapter root. Errors name only
 * what the client sent, never the host's directories or files. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "server/server_int.h"

int preft_srv_runtime_adapters_allowed(const preft_server *s, srv_api_error *e) {
  if (s->adapter_root) return 0;
  return preft_srv_fail(e, 404, "invalid_request_error", "not_found", NULL,
                        "runtime adapter loading is off (start the server with --allow-runtime-adapters)");
}

/* True when the relative path has no "..", "." or empty component. */
static bool plain_relative(const char *p) {
  if (!*p || *p == '/') return false;
  for (const char *c = p; *c;) {
    const char *end = strchr(c, '/');
    size_t n = end ? (size_t)(end - c) : strlen(c);
    if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return false;
    c += n + (end ? 1 : 0);
  }
  return true;
}

int preft_srv_adapter_path(const preft_server *s, const char *lora_path, char **out, srv_api_error *e) {
  *out = NULL;
  const char *root = s->adapter_root; /* a realpath() without a trailing slash */
  size_t rn = strlen(root);
  /* an absolute path is accepted when it spells out the root */
  const char *rel = lora_path;
  if (lora_path[0] == '/') {
    if (strncmp(lora_path, root, rn) != 0 || (lora_path[rn] != '/' && rn > 1))
      rel = NULL;
    else
      rel = lora_path + rn + (rn > 1);
  }
  char joined[PATH_MAX], real[PATH_MAX];
  bool ok = rel && plain_relative(rel) && strlen(rel) < sizeof joined - rn - 2;
  if (ok) snprintf(joined, sizeof joined, "%s/%s", root, rel);
  /* symbolic links may not lead out of the root either */
  ok = ok && realpath(joined, real) && strncmp(real, root, rn) == 0 && (real[rn] == '/' || rn == 1);
  if (!ok)
    return preft_srv_bad(e, "lora_path",
                         "'lora_path' must name an adapter directory inside the server's adapter root, as a "
                         "path relative to it without '..': '%s' is not one",
                         lora_path);
  *out = preft_xstrdup(real);
  return 0;
}

int preft_srv_adapter_load_error(const preft_server *s, const char *lora_path, const char *detail,
                                 srv_api_error *e) {
  PREFT_WARN("server: adapter '%s' does not load: %s", lora_path, detail);
  /* the detail names files under the root: keep only their part below it */
  char msg[sizeof e->message];
  size_t rn = strlen(s->adapter_root), o = 0;
  for (const char *p = detail; *p && o + 1 < sizeof msg;) {
    if (!strncmp(p, s->adapter_root, rn) && p[rn] == '/') {
      p += rn + 1;
      continue;
    }
    msg[o++] = *p++;
  }
  msg[o] = 0;
  return preft_srv_fail(e, 400, "invalid_request_error", "adapter_load_failed", "lora_path", "%s", msg);
}
