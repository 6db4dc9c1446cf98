/* env_base.c - a debootstrapped Debian as the base of environments (see
 * env_base.h). */
#include "tasks/env_base.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "base/fork_child.h"
#include "tasks/apt_sources.h"
#include "tasks/fs_tree.h"

char **preft_env_base_argv(const char *target, const char *mirror, const char *suite, const char *packages) {
  char include[1024];
  snprintf(include, sizeof include, "--include=%s",
           packages && *packages ? packages : PREFT_ENV_BASE_PACKAGES);
  const char *v[] = {"debootstrap", "--variant=minbase", include, suite, target, mirror, NULL};
  int n = 0;
  while (v[n]) n++;
  char **argv = preft_xcalloc((size_t)n + 1, sizeof *argv);
  for (int i = 0; i < n; i++) argv[i] = preft_xstrdup(v[i]);
  return argv;
}

void preft_env_base_argv_free(char **argv) {
  if (!argv) return;
  for (char **p = argv; *p; p++) free(*p);
  free(argv);
}

/* Runs argv with output to log (or /dev/null), killing its process group
 * at the timeout. Returns the exit status, 124 at the timeout, -1 when it
 * could not start. */
static int run_logged(char **argv, const char *log_path, double timeout_s, preft_error *err) {
  int log_fd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
  if (log_path && log_fd < 0) return preft_fail(err, "cannot open %s: %s", log_path, strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    if (log_fd >= 0) close(log_fd);
    return preft_fail(err, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    int out = log_fd >= 0 ? log_fd : open("/dev/null", O_WRONLY);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    execvp(argv[0], argv);
    const char *parts[] = {"cannot run ", argv[0], ": ", fork_child_errno_text(errno), "\n"};
    fork_child_say(2, parts, 5);
    _exit(127);
  }
  if (log_fd >= 0) close(log_fd);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  bool timed_out = false;
  for (;;) {
    int slice = 1000;
    if (timeout_s > 0) {
      struct timespec t;
      clock_gettime(CLOCK_MONOTONIC, &t);
      double left = timeout_s - ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9);
      if (left <= 0) {
        timed_out = true;
        break;
      }
      if (left * 1000 < slice) slice = (int)(left * 1000) + 1;
    }
    if (pidfd >= 0) {
      struct pollfd p = {pidfd, POLLIN, 0};
      if (poll(&p, 1, slice) > 0) break;
    } else {
      if (waitpid(pid, NULL, WNOHANG) != 0) break; /* (reaped: status lost, reported as failure below) */
      usleep(100000);
    }
  }
  if (timed_out) kill(-pid, SIGKILL);
  int status = 0;
  pid_t w;
  while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) close(pidfd);
  if (timed_out) return 124;
  if (w < 0) return 1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int write_base_json(const char *path, const char *mirror, const char *suite, const char *packages,
                           preft_error *err) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "mirror", mirror);
  cJSON_AddStringToObject(j, "suite", suite);
  cJSON_AddStringToObject(j, "variant", "minbase");
  cJSON_AddStringToObject(j, "packages", packages);
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  int rc = preft_write_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

int preft_env_make_base(const char *dir, const preft_env_base_opts *o, char **root_out, bool *existed,
                        preft_error *err) {
  *root_out = NULL;
  *existed = false;
  if (preft_mkdir_p(dir, err) != 0) return -1;
  char *root = preft_path_join(dir, "root"), *tmp = preft_path_join(dir, "root.tmp");
  char *json = preft_path_join(dir, "base.json"), *lock = preft_path_join(dir, "base.lock");
  char *mirror = NULL, *suite = NULL;
  char **argv = NULL;
  int rc = -1, lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0) {
    preft_fail(err, "cannot lock %s: %s", lock, strerror(errno));
    goto done;
  }
  if (preft_file_exists(json) && preft_file_exists(root)) {
    *existed = true;
    rc = 0;
    goto done;
  }
  if (geteuid() != 0) {
    preft_fail(err, "debootstrap needs root");
    goto done;
  }
  if (o->mirror && o->suite) {
    mirror = preft_xstrdup(o->mirror);
    suite = preft_xstrdup(o->suite);
  } else {
    preft_apt_sources src;
    if (preft_apt_sources_load("/", &src, err) != 0) goto done;
    char *m, *s;
    int found = preft_apt_sources_debian_mirror(&src, &m, &s, err);
    preft_apt_sources_free(&src);
    if (found != 0) {
      preft_fail_prefix(err, "base: pass the mirror and the suite");
      goto done;
    }
    mirror = o->mirror ? preft_xstrdup(o->mirror) : m;
    suite = o->suite ? preft_xstrdup(o->suite) : s;
    if (o->mirror) free(m);
    if (o->suite) free(s);
  }
  const char *packages = o->packages && *o->packages ? o->packages : PREFT_ENV_BASE_PACKAGES;
  preft_error e2;
  if (preft_fs_remove(tmp, &e2) != 0) {
    preft_fail(err, "%s", e2.msg);
    goto done;
  }
  argv = preft_env_base_argv(tmp, mirror, suite, packages);
  int status = run_logged(argv, o->log_path, o->timeout_s, err);
  if (status < 0) goto done;
  if (status != 0) {
    preft_fail(err, "debootstrap %s %s from %s %s (exit %d; log: %s)", suite, tmp, mirror,
               status == 124 ? "ran past its timeout" : "failed", status,
               o->log_path ? o->log_path : "not kept");
    goto done;
  }
  if (preft_fs_remove(root, &e2) != 0 || rename(tmp, root) != 0) {
    preft_fail(err, "cannot move %s to %s: %s", tmp, root, strerror(errno));
    goto done;
  }
  if (write_base_json(json, mirror, suite, packages, err) != 0) goto done;
  rc = 0;
done:
  if (lock_fd >= 0) close(lock_fd);
  if (rc == 0) {
    *root_out = root;
    root = NULL;
  }
  preft_env_base_argv_free(argv);
  free(root);
  free(tmp);
  free(json);
  free(lock);
  free(mirror);
  free(suite);
  return rc;
}
