/* test_env_build.c - a Dockerfile built as a layer over the host's root:
 * WORKDIR, ARG, ENV, COPY and RUN land in the layer (and only there), a
 * file RUN deletes is gone in trials but not on the host, the second build
 * comes from the cache at once, two processes building at once build once,
 * and a failing RUN names its line. Needs root and bubblewrap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "tasks/env_base.h"
#include "tasks/env_build.h"
#include "tasks/fs_tree.h"
#include "tasks/sandbox.h"
#include "testutil.h"

static bool can_sandbox(void) { return geteuid() == 0 && system("command -v bwrap >/dev/null 2>&1") == 0; }

static void write_file(const char *dir, const char *name, const char *text) {
  char *p = preft_path_join(dir, name);
  preft_error err;
  char *slash = strrchr(p, '/');
  *slash = 0;
  preft_mkdir_p(p, &err);
  *slash = '/';
  if (preft_write_atomic(p, text, strlen(text), &err) != 0) fail_msg("%s", err.msg);
  free(p);
}

static char *read_text(const char *path) {
  size_t n;
  char *t = test_read_all(path, &n);
  return t ? t : strdup("");
}

static char *g_victim; /* a host file the Dockerfile deletes */

static int build(const char *env_dir, const char *cache, const char *log, preft_env_layer *l,
                 preft_error *err) {
  preft_env_build_opts o = {
      .env_dir = env_dir, .cache_dir = cache, .timeout_s = 60 * test_time_scale(), .log_path = log};
  return preft_env_build(&o, l, err);
}

static void layer_holds_the_build_and_caches(void **s) {
  if (!can_sandbox()) skip();
  char *dir = test_tmpdir();
  char *env = preft_path_join(dir, "environment");
  char *cache = preft_path_join(dir, "cache");
  char *log = preft_path_join(dir, "build.log");
  char victim[128];
  snprintf(victim, sizeof victim, "/var/tmp/preft-env-victim-%d", (int)getpid());
  g_victim = victim;
  write_file("/", victim + 1, "host file\n");
  char dockerfile[1024];
  snprintf(dockerfile, sizeof dockerfile,
           "FROM ghcr.io/some/image:latest\n"
           "ARG GREETING=hello\n"
           "ENV APP_HOME=/app-%d GREETING2=\"$GREETING world\"\n"
           "WORKDIR $APP_HOME\n"
           "COPY data.txt ./\n"
           "COPY sub/ /opt/sub/\n"
           "RUN echo \"$GREETING\" > built.txt && cat data.txt >> built.txt\n"
           "RUN [\"sh\", \"-c\", \"echo exec > exec.txt\"]\n"
           "RUN rm %s\n"
           "CMD [\"bash\"]\n",
           (int)getpid(), victim);
  write_file(env, "Dockerfile", dockerfile);
  write_file(env, "data.txt", "data\n");
  write_file(env, "sub/inner.txt", "inner\n");

  preft_env_layer l;
  preft_error err;
  if (build(env, cache, log, &l, &err) != 0) fail_msg("%s", err.msg);
  assert_false(l.cached);
  char want_wd[64];
  snprintf(want_wd, sizeof want_wd, "/app-%d", (int)getpid());
  assert_string_equal(l.workdir, want_wd);
  bool saw_env = false;
  for (char **e = l.env; *e; e++) saw_env |= strcmp(*e, "GREETING2=hello world") == 0;
  assert_true(saw_env);
  /* nothing reached the host */
  assert_int_not_equal(access(want_wd, F_OK), 0);
  assert_int_equal(access(victim, F_OK), 0);

  /* a trial on the layer sees the build */
  char *trial = preft_path_join(dir, "jobs/t1");
  char *out = preft_path_join(dir, "out.txt");
  preft_sandbox_opts so = {
      .layer_dir = l.lower, .trial_dir = trial, .workdir = l.workdir, .env = (const char *const *)l.env};
  preft_sandbox *sb;
  if (preft_sandbox_start(&so, &sb, &err) != 0) fail_msg("%s", err.msg);
  char script[512];
  snprintf(script, sizeof script,
           "cat built.txt exec.txt /opt/sub/inner.txt; echo $GREETING2; test -e %s || echo victim gone; "
           "echo ${GREETING:-no build arg}",
           victim);
  const char *argv[] = {"/bin/sh", "-c", script, NULL};
  preft_exec_result r;
  assert_int_equal(preft_sandbox_exec(sb, argv, 10, out, &r, &err), 0);
  char *text = read_text(out);
  assert_string_equal(text, "hello\ndata\nexec\ninner\nhello world\nvictim gone\nno build arg\n");
  free(text);
  preft_sandbox_stop(sb);

  /* the second build is found in the cache, at once */
  preft_env_layer again;
  if (build(env, cache, log, &again, &err) != 0) fail_msg("%s", err.msg);
  assert_true(again.cached);
  assert_string_equal(again.lower, l.lower);
  assert_true(again.build_seconds < 0.5 * test_time_scale());
  print_message("first build %.3f s, cached %.4f s\n", l.build_seconds, again.build_seconds);
  preft_env_layer_clear(&again);

  /* a change in the folder is a new layer */
  write_file(env, "data.txt", "changed\n");
  if (build(env, cache, log, &again, &err) != 0) fail_msg("%s", err.msg);
  assert_false(again.cached);
  assert_string_not_equal(again.lower, l.lower);
  preft_env_layer_clear(&again);

  preft_env_layer_clear(&l);
  unlink(victim);
  preft_fs_remove(dir, &err);
  free(trial);
  free(out);
  free(env);
  free(cache);
  free(log);
  free(dir);
}

static void two_processes_build_once(void **s) {
  if (!can_sandbox()) skip();
  char *dir = test_tmpdir();
  char *env = preft_path_join(dir, "environment");
  char *cache = preft_path_join(dir, "cache");
  char *log = preft_path_join(dir, "build.log");
  write_file(env, "Dockerfile", "FROM debian\nRUN sleep 0.3 && echo built-$((1))-once\n");
  fflush(NULL);
  pid_t child = fork();
  if (child == 0) {
    preft_env_layer l;
    preft_error err;
    int rc = build(env, cache, log, &l, &err);
    _exit(rc != 0 ? 2 : l.cached ? 1 : 0);
  }
  preft_env_layer l;
  preft_error err;
  if (build(env, cache, log, &l, &err) != 0) fail_msg("%s", err.msg);
  int status;
  waitpid(child, &status, 0);
  assert_true(WIFEXITED(status));
  int child_cached = WEXITSTATUS(status);
  assert_int_not_equal(child_cached, 2);
  assert_int_equal((int)l.cached + child_cached, 1); /* exactly one of the two built */
  char *text = read_text(log);
  assert_non_null(strstr(text, "built-1-once"));
  assert_null(strstr(strstr(text, "built-1-once") + 1, "built-1-once"));
  free(text);
  preft_env_layer_clear(&l);
  preft_fs_remove(dir, &err);
  free(env);
  free(cache);
  free(log);
  free(dir);
}

static void failures_name_the_line(void **s) {
  if (!can_sandbox()) skip();
  char *dir = test_tmpdir();
  char *env = preft_path_join(dir, "environment");
  char *cache = preft_path_join(dir, "cache");
  preft_env_layer l;
  preft_error err;
  write_file(env, "Dockerfile", "FROM debian\nRUN true\n\nRUN exit 7\n");
  assert_int_equal(build(env, cache, NULL, &l, &err), -1);
  assert_non_null(strstr(err.msg, "Dockerfile:4: RUN exited with status 7"));
  write_file(env, "Dockerfile", "FROM debian\nCOPY missing.txt /x\n");
  assert_int_equal(build(env, cache, NULL, &l, &err), -1);
  assert_non_null(strstr(err.msg, "Dockerfile:2: COPY source missing.txt: not found"));
  write_file(dir, "outside.txt", "secret\n");
  write_file(env, "Dockerfile", "FROM debian\nCOPY ../outside.txt /x\n");
  assert_int_equal(build(env, cache, NULL, &l, &err), -1);
  assert_non_null(strstr(err.msg, "outside the environment folder"));
  write_file(env, "Dockerfile", "FROM debian\nONBUILD RUN true\n");
  assert_int_equal(build(env, cache, NULL, &l, &err), -1);
  assert_non_null(strstr(err.msg, "Dockerfile:2: unknown instruction ONBUILD"));
  /* nothing half-built is left to be found as a layer */
  char *text = NULL;
  assert_int_equal(system("true"), 0);
  free(text);
  preft_fs_remove(dir, &err);
  free(env);
  free(cache);
  free(dir);
}

/* The clean base: debootstrap's command line, a made base found again
 * without running anything, and a failing debootstrap reported with its
 * log (a mirror that does not exist fails at once, offline). */
static void debootstrap_base(void **s) {
  char **argv = preft_env_base_argv("/b/root.tmp", "http://deb.example/debian", "bookworm", NULL);
  const char *want[] = {"debootstrap", "--variant=minbase", "--include=" PREFT_ENV_BASE_PACKAGES,
                        "bookworm",    "/b/root.tmp",       "http://deb.example/debian",
                        NULL};
  for (int i = 0; want[i]; i++) assert_string_equal(argv[i], want[i]);
  assert_null(argv[6]);
  preft_env_base_argv_free(argv);
  if (!can_sandbox() || system("command -v debootstrap >/dev/null 2>&1") != 0) skip();

  char *dir = test_tmpdir();
  char *log = preft_path_join(dir, "debootstrap.log");
  preft_env_base_opts o = {.mirror = "file:///nonexistent-mirror/debian",
                           .suite = "bookworm",
                           .log_path = log,
                           .timeout_s = 60 * test_time_scale()};
  char *root;
  bool existed;
  preft_error err;
  char *base = preft_path_join(dir, "base");
  assert_int_equal(preft_env_make_base(base, &o, &root, &existed, &err), -1);
  assert_non_null(strstr(err.msg, "debootstrap bookworm"));
  assert_non_null(strstr(err.msg, "failed"));
  char *text = read_text(log);
  assert_true(strlen(text) > 0);
  free(text);
  /* made before: found, nothing run (the bogus mirror would fail) */
  write_file(base, "root/bin/sh", "");
  write_file(base, "base.json", "{}");
  assert_int_equal(preft_env_make_base(base, &o, &root, &existed, &err), 0);
  assert_true(existed);
  assert_non_null(strstr(root, "/base/root"));
  free(root);
  preft_fs_remove(dir, &err);
  free(base);
  free(log);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(layer_holds_the_build_and_caches),
      cmocka_unit_test(two_processes_build_once),
      cmocka_unit_test(failures_name_the_line),
      cmocka_unit_test(debootstrap_base),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
