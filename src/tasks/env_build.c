/* env_build.c - builds a task's Dockerfile into an overlay layer over the
 * base, cached by the hash of the environment folder (see env_build.h).
 *
 * cache_dir/<key>/root is the layer (an overlay upper folder: whiteouts
 * and all), cache_dir/<key>/layer.json its working directory and
 * environment. The key hashes a format version, the base and every file of
 * the environment folder. A build runs in cache_dir/<key>.build and is
 * renamed into place when it succeeded; cache_dir/<key>.lock (flock)
 * makes a second process wait for the first build and then find it. */
#include "tasks/env_build.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "tasks/dockerfile.h"
#include "tasks/fs_tree.h"
#include "tasks/sandbox.h"
#include "tasks/sha256.h"

#define LAYER_FORMAT "preft-env-layer 1"

static const char *const default_env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                          "HOME=/root", "TERM=xterm", NULL};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- NAME=VALUE lists -------------------------------------------------------------- */

typedef struct {
  char **v; /* NULL-terminated */
  int n;
} envlist;

static void env_set(envlist *e, const char *name, const char *value) {
  size_t nl = strlen(name);
  size_t len = nl + strlen(value) + 2;
  char *kv = preft_xmalloc(len);
  snprintf(kv, len, "%s=%s", name, value);
  for (int i = 0; i < e->n; i++)
    if (strncmp(e->v[i], name, nl) == 0 && e->v[i][nl] == '=') {
      free(e->v[i]);
      e->v[i] = kv;
      return;
    }
  e->v = preft_xrealloc(e->v, sizeof *e->v * (size_t)(e->n + 2));
  e->v[e->n++] = kv;
  e->v[e->n] = NULL;
}

static void env_set_kv(envlist *e, const char *kv) {
  const char *eq = strchr(kv, '=');
  if (!eq) return;
  char name[256];
  snprintf(name, sizeof name, "%.*s", (int)(eq - kv > 255 ? 255 : eq - kv), kv);
  env_set(e, name, eq + 1);
}

static void env_free(envlist *e) {
  for (int i = 0; i < e->n; i++) free(e->v[i]);
  free(e->v);
  e->v = NULL;
  e->n = 0;
}

void preft_env_layer_clear(preft_env_layer *l) {
  free(l->lower);
  free(l->workdir);
  if (l->env)
    for (char **p = l->env; *p; p++) free(*p);
  free(l->env);
  memset(l, 0, sizeof *l);
}

/* ---- the cache key ----------------------------------------------------------------- */

static int layer_key(const char *env_dir, const char *base, char key[65], preft_error *err) {
  preft_sha256 s;
  preft_sha256_init(&s);
  char head[PATH_MAX + 64];
  int n = snprintf(head, sizeof head, "%s\nbase %s\n", LAYER_FORMAT, base);
  preft_sha256_update(&s, head, (size_t)n);
  if (preft_sha256_tree(env_dir, &s, err) != 0) return -1;
  uint8_t d[32];
  preft_sha256_final(&s, d);
  preft_sha256_hex(d, key);
  return 0;
}

/* ---- layer.json -------------------------------------------------------------------- */

static int write_layer_json(const char *path, const char *base, const char *workdir, const envlist *env,
                            const char *dockerfile_notes, preft_error *err) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "format", LAYER_FORMAT);
  cJSON_AddStringToObject(j, "base", base);
  cJSON_AddStringToObject(j, "workdir", workdir);
  cJSON *arr = cJSON_AddArrayToObject(j, "env");
  for (int i = 0; i < env->n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(env->v[i]));
  cJSON_AddStringToObject(j, "notes", dockerfile_notes ? dockerfile_notes : "");
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  int rc = preft_write_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

static int read_layer_json(const char *path, preft_env_layer *out, preft_error *err) {
  char *text = NULL;
  size_t size = 0;
  if (preft_read_file(path, &text, &size, err) != 0) return -1;
  cJSON *j = cJSON_ParseWithLength(text, size);
  free(text);
  const cJSON *wd = cJSON_GetObjectItemCaseSensitive(j, "workdir");
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(j, "env");
  if (!j || !cJSON_IsString(wd) || !cJSON_IsArray(env)) {
    cJSON_Delete(j);
    return preft_fail(err, "%s: not a layer description (workdir, env)", path);
  }
  out->workdir = preft_xstrdup(wd->valuestring);
  int n = cJSON_GetArraySize(env), k = 0;
  out->env = preft_xcalloc((size_t)n + 1, sizeof *out->env);
  const cJSON *e;
  cJSON_ArrayForEach(e, env) if (cJSON_IsString(e)) out->env[k++] = preft_xstrdup(e->valuestring);
  cJSON_Delete(j);
  return 0;
}

/* ---- building ---------------------------------------------------------------------- */

/* Whether the host has a route out (a default route on an interface). */
static bool host_has_network(void) {
  FILE *f = fopen("/proc/net/route", "r");
  if (!f) return false;
  char line[512];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    char iface[64], dest[16];
    if (sscanf(line, "%63s %15s", iface, dest) == 2 && strcmp(dest, "00000000") == 0 &&
        strcmp(iface, "lo") != 0)
      found = true;
  }
  fclose(f);
  return found;
}

typedef struct {
  const preft_env_build_opts *o;
  const char *dockerfile; /* path, for errors */
  preft_sandbox *sb;
  preft_df_vars vars; /* ARG and ENV for expansion */
  envlist env;        /* ENV: the layer's environment */
  envlist args;       /* ARG values: RUN sees them too */
  char *workdir;
  double deadline;
  FILE *log;
} build_state;

static void logf_line(build_state *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_line(build_state *b, const char *fmt, ...) {
  if (!b->log) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(b->log, fmt, ap);
  va_end(ap);
  fputc('\n', b->log);
  fflush(b->log);
}

/* An absolute path inside from a Dockerfile path (relative to WORKDIR). */
static char *inside_path(const char *workdir, const char *p) {
  if (p[0] == '/') return preft_xstrdup(p);
  size_t n = strlen(workdir) + strlen(p) + 2;
  char *s = preft_xmalloc(n);
  snprintf(s, n, "%s%s%s", workdir, workdir[strlen(workdir) - 1] == '/' ? "" : "/", p);
  return s;
}

static int run_argv(build_state *b, const char *const *argv, int line, preft_error *err) {
  double left = b->o->timeout_s > 0 ? b->deadline - now_s() : 0;
  if (b->o->timeout_s > 0 && left <= 0)
    return preft_fail(err, "%s:%d: the build ran past its timeout of %.0f s", b->dockerfile, line,
                      b->o->timeout_s);
  envlist run = {0};
  for (int i = 0; i < b->args.n; i++) env_set_kv(&run, b->args.v[i]);
  for (int i = 0; i < b->env.n; i++) env_set_kv(&run, b->env.v[i]);
  if (b->log) fflush(b->log);
  preft_exec_result r;
  int rc = preft_sandbox_exec_in(b->sb, argv, b->workdir, (const char *const *)run.v, left, b->o->log_path,
                                 &r, err);
  env_free(&run);
  if (rc != 0) return preft_fail_prefix(err, "%s:%d", b->dockerfile, line);
  if (r.timed_out)
    return preft_fail(err, "%s:%d: the build ran past its timeout of %.0f s", b->dockerfile, line,
                      b->o->timeout_s);
  if (r.exit_code != 0)
    return preft_fail(err, "%s:%d: RUN exited with status %d (build log: %s)", b->dockerfile, line,
                      r.exit_code, b->o->log_path ? b->o->log_path : "not kept");
  return 0;
}

static int do_workdir(build_state *b, const preft_df_instr *in, preft_error *err) {
  char *p = preft_df_expand(in->args[0], &b->vars, err);
  if (!p) return preft_fail_prefix(err, "%s:%d: WORKDIR", b->dockerfile, in->line);
  char *dir = inside_path(b->workdir, p);
  free(p);
  free(b->workdir);
  b->workdir = dir;
  const char *argv[] = {"mkdir", "-p", dir, NULL};
  char *saved = b->workdir;
  b->workdir = "/";
  int rc = run_argv(b, argv, in->line, err);
  b->workdir = saved;
  return rc;
}

static int do_env(build_state *b, const preft_df_instr *in, preft_error *err) {
  for (int i = 0; i + 1 < in->n_args; i += 2) {
    char *v = preft_df_expand(in->args[i + 1], &b->vars, err);
    if (!v) return preft_fail_prefix(err, "%s:%d: ENV %s", b->dockerfile, in->line, in->args[i]);
    preft_df_vars_set(&b->vars, in->args[i], v);
    env_set(&b->env, in->args[i], v);
    free(v);
  }
  return 0;
}

static int do_arg(build_state *b, const preft_df_instr *in, preft_error *err) {
  for (int i = 0; i + 1 < in->n_args; i += 2) {
    if (!in->args[i + 1]) {
      if (!preft_df_vars_get(&b->vars, in->args[i])) preft_df_vars_set(&b->vars, in->args[i], "");
      continue;
    }
    char *v = preft_df_expand(in->args[i + 1], &b->vars, err);
    if (!v) return preft_fail_prefix(err, "%s:%d: ARG %s", b->dockerfile, in->line, in->args[i]);
    preft_df_vars_set(&b->vars, in->args[i], v);
    env_set(&b->args, in->args[i], v);
    free(v);
  }
  return 0;
}

/* Whether path (after symlinks) lies inside dir (both absolute, resolved). */
static bool within(const char *dir, const char *path) {
  size_t n = strlen(dir);
  return strncmp(dir, path, n) == 0 && (path[n] == '/' || path[n] == 0);
}

static bool inside_is_dir(build_state *b, const char *p) {
  const char *root = preft_sandbox_root(b->sb);
  if (!root) return false;
  char full[PATH_MAX];
  if (snprintf(full, sizeof full, "%s%s", root, p) >= (int)sizeof full) return false;
  struct stat st;
  return stat(full, &st) == 0 && S_ISDIR(st.st_mode);
}

static int do_copy(build_state *b, const preft_df_instr *in, preft_error *err) {
  char *ctx = realpath(b->o->env_dir, NULL);
  if (!ctx) return preft_fail(err, "%s: %s", b->o->env_dir, strerror(errno));
  char *dest_raw = preft_df_expand(in->args[in->n_args - 1], &b->vars, err);
  if (!dest_raw) {
    free(ctx);
    return preft_fail_prefix(err, "%s:%d: %s", b->dockerfile, in->line, in->keyword);
  }
  char *dest = inside_path(b->workdir, dest_raw);
  bool dest_is_dir = dest_raw[strlen(dest_raw) - 1] == '/' || in->n_args > 2;
  free(dest_raw);
  int rc = 0;
  for (int i = 0; i < in->n_args - 1 && rc == 0; i++) {
    char *src = preft_df_expand(in->args[i], &b->vars, err);
    if (!src) {
      rc = preft_fail_prefix(err, "%s:%d: %s", b->dockerfile, in->line, in->keyword);
      break;
    }
    char pattern[PATH_MAX];
    snprintf(pattern, sizeof pattern, "%s/%s", ctx, src);
    glob_t g;
    int gr = glob(pattern, GLOB_NOSORT, NULL, &g);
    if (gr != 0) {
      rc = preft_fail(err, "%s:%d: %s source %s: not found in %s", b->dockerfile, in->line, in->keyword, src,
                      b->o->env_dir);
      free(src);
      if (gr != GLOB_NOMATCH) globfree(&g);
      break;
    }
    if (g.gl_pathc > 1) dest_is_dir = true;
    for (size_t k = 0; k < g.gl_pathc && rc == 0; k++) {
      char *real = realpath(g.gl_pathv[k], NULL);
      if (!real || !within(ctx, real)) {
        rc = preft_fail(err, "%s:%d: %s source %s is outside the environment folder", b->dockerfile, in->line,
                        in->keyword, src);
        free(real);
        break;
      }
      struct stat st;
      stat(real, &st);
      char *target;
      if (S_ISDIR(st.st_mode) || (!dest_is_dir && !inside_is_dir(b, dest))) {
        target = preft_xstrdup(dest); /* a folder's contents go into dest; a file becomes dest */
      } else {
        const char *base = strrchr(real, '/') + 1;
        size_t len = strlen(dest) + strlen(base) + 2;
        target = preft_xmalloc(len);
        snprintf(target, len, "%s%s%s", dest, dest[strlen(dest) - 1] == '/' ? "" : "/", base);
      }
      logf_line(b, "preft build: %s %s -> %s", in->keyword, g.gl_pathv[k] + strlen(ctx) + 1, target);
      if (preft_sandbox_copy_in(b->sb, real, target, err) != 0)
        rc = preft_fail_prefix(err, "%s:%d: %s", b->dockerfile, in->line, in->keyword);
      free(target);
      free(real);
    }
    globfree(&g);
    free(src);
  }
  free(dest);
  free(ctx);
  return rc;
}

static int build_steps(build_state *b, const preft_dockerfile *df, preft_error *err) {
  for (int i = 0; i < df->n; i++) {
    const preft_df_instr *in = &df->v[i];
    if (in->note) logf_line(b, "preft build: %s:%d: %s: %s", b->dockerfile, in->line, in->keyword, in->note);
    int rc = 0;
    switch (in->kind) {
      case PREFT_DF_FROM: {
        char *image = preft_df_expand(in->args[0], &b->vars, err);
        if (!image) return preft_fail_prefix(err, "%s:%d: FROM", b->dockerfile, in->line);
        logf_line(b, "preft build: FROM %s: built on the base %s", image,
                  b->o->base_dir ? b->o->base_dir : "/ (the host's root, read-only)");
        free(image);
        break;
      }
      case PREFT_DF_WORKDIR:
        rc = do_workdir(b, in, err);
        break;
      case PREFT_DF_ENV:
        rc = do_env(b, in, err);
        break;
      case PREFT_DF_ARG:
        rc = do_arg(b, in, err);
        break;
      case PREFT_DF_COPY:
        rc = do_copy(b, in, err);
        break;
      case PREFT_DF_RUN:
        logf_line(b, "preft build: %s:%d: RUN %s", b->dockerfile, in->line, in->args[in->n_args - 1]);
        rc = run_argv(b, (const char *const *)in->args, in->line, err);
        break;
      case PREFT_DF_IGNORED:
        break;
    }
    if (rc != 0) return rc;
  }
  return 0;
}

static bool safe_for_overlay(const char *p) { return !strchr(p, ':') && !strchr(p, ','); }

static int build_layer(const preft_env_build_opts *o, const preft_dockerfile *df, const char *dockerfile,
                       const char *base, const char *build_dir, preft_error *err) {
  preft_error e2;
  if (preft_fs_remove(build_dir, &e2) != 0) return preft_fail(err, "%s", e2.msg);
  char *root = preft_path_join(build_dir, "root");
  char *trial = preft_path_join(build_dir, "trial");
  int rc = -1;
  build_state b = {0};
  b.o = o;
  b.dockerfile = dockerfile;
  b.workdir = preft_xstrdup("/");
  b.deadline = now_s() + o->timeout_s;
  for (int i = 0; default_env[i]; i++) env_set_kv(&b.env, default_env[i]);
  preft_df_vars_set(&b.vars, "PATH", default_env[0] + 5);
  if (o->log_path) b.log = fopen(o->log_path, "a");
  if (preft_mkdir_p(root, err) != 0 || preft_mkdir_p(trial, err) != 0) goto done;
  bool net = o->network && host_has_network();
  if (o->network && !net) logf_line(&b, "preft build: the host has no network: RUN runs without it");
  preft_sandbox_opts so = {.layer_dir = base, .trial_dir = trial, .network = net, .upper_dir = root};
  if (preft_sandbox_start(&so, &b.sb, err) != 0) {
    preft_fail_prefix(err, "%s", dockerfile);
    goto done;
  }
  rc = build_steps(&b, df, err);
  preft_sandbox_stop(b.sb);
  b.sb = NULL;
  if (rc == 0) {
    char *json = preft_path_join(build_dir, "layer.json");
    rc = write_layer_json(json, base, b.workdir, &b.env, NULL, err);
    free(json);
  }
  if (rc == 0 && preft_fs_remove(trial, &e2) != 0) rc = preft_fail(err, "%s", e2.msg);
done:
  if (b.log) fclose(b.log);
  preft_df_vars_free(&b.vars);
  env_free(&b.env);
  env_free(&b.args);
  free(b.workdir);
  free(root);
  free(trial);
  return rc;
}

int preft_env_build(const preft_env_build_opts *o, preft_env_layer *out, preft_error *err) {
  memset(out, 0, sizeof *out);
  double t0 = now_s();
  if (!o->env_dir || !o->cache_dir)
    return preft_fail(err, "environment build: env_dir and cache_dir are required");
  char *dockerfile = preft_path_join(o->env_dir, "Dockerfile");
  preft_dockerfile df;
  if (preft_dockerfile_load(dockerfile, &df, err) != 0) {
    free(dockerfile);
    return -1;
  }
  char *base = NULL, *cache = NULL, *layer_dir = NULL, *build_dir = NULL, *lock_path = NULL, *json = NULL;
  int lock_fd = -1, rc = -1;
  if (o->base_dir) {
    base = realpath(o->base_dir, NULL);
    char sh[PATH_MAX];
    snprintf(sh, sizeof sh, "%s/bin/sh", base ? base : "");
    if (base && access(sh, X_OK) != 0) {
      /* the folder `preft tasks base -o DIR` made: DIR/root is the root */
      snprintf(sh, sizeof sh, "%s/root/bin/sh", base);
      if (access(sh, X_OK) == 0) {
        char *root = preft_path_join(base, "root");
        free(base);
        base = root;
      }
    }
    if (!base || access(sh, X_OK) != 0) {
      preft_fail(err, "base %s is not a root file system (no bin/sh): make one with `preft tasks base`",
                 o->base_dir);
      goto done;
    }
  } else {
    base = preft_xstrdup("/");
  }
  if (preft_mkdir_p(o->cache_dir, err) != 0) goto done;
  cache = realpath(o->cache_dir, NULL);
  if (!cache || !safe_for_overlay(cache) || !safe_for_overlay(base)) {
    preft_fail(err, "cache %s or base %s: paths with ':' or ',' cannot be overlay layers", o->cache_dir,
               base);
    goto done;
  }
  char key[65];
  if (layer_key(o->env_dir, base, key, err) != 0) goto done;
  layer_dir = preft_path_join(cache, key);
  size_t n = strlen(layer_dir) + 8;
  build_dir = preft_xmalloc(n);
  snprintf(build_dir, n, "%s.build", layer_dir);
  lock_path = preft_xmalloc(n);
  snprintf(lock_path, n, "%s.lock", layer_dir);
  json = preft_path_join(layer_dir, "layer.json");
  lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0) {
    preft_fail(err, "cannot lock %s: %s", lock_path, strerror(errno));
    goto done;
  }
  if (access(json, F_OK) == 0) {
    out->cached = true;
  } else {
    if (build_layer(o, &df, dockerfile, base, build_dir, err) != 0) goto done;
    if (rename(build_dir, layer_dir) != 0) {
      preft_fail(err, "cannot move %s to %s: %s", build_dir, layer_dir, strerror(errno));
      goto done;
    }
  }
  if (read_layer_json(json, out, err) != 0) goto done;
  size_t ln = strlen(layer_dir) + strlen(base) + 8;
  out->lower = preft_xmalloc(ln);
  snprintf(out->lower, ln, "%s/root:%s", layer_dir, base);
  out->build_seconds = now_s() - t0;
  rc = 0;
done:
  if (lock_fd >= 0) close(lock_fd); /* closing releases the lock */
  if (rc != 0) preft_env_layer_clear(out);
  preft_dockerfile_free(&df);
  free(dockerfile);
  free(base);
  free(cache);
  free(layer_dir);
  free(build_dir);
  free(lock_path);
  free(json);
  return rc;
}
