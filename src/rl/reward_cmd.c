/* reward_cmd.c - rewards from the task's verifier or from a reward command
 * (`--reward-cmd`): `/bin/sh -c CMD` started once and kept running; for each
 * completion one JSON line {"prompt", "completion", "answer"} goes to its
 * stdin and one number comes back on its stdout, within the timeout.
 *
 * The child runs in its own process group (a shell pipeline dies with it);
 * a command that exits, hangs or prints garbage is killed and reaped, and
 * the rewarder reports which line it failed on. Writing to a command that
 * has exited does not raise SIGPIPE in the caller: the signal is blocked
 * around the write and a pending one consumed. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "rl/rl_task.h"

enum { MAX_REPLY = 4096 };

struct preft_rl_rewarder {
  char *cmd;           /* NULL: the verifier */
  double timeout_s;    /* per answer; <= 0: none */
  pid_t pid;           /* 0 once reaped */
  int to_child;        /* its stdin, -1 once closed */
  int from_child;      /* its stdout */
  long line;           /* JSON lines sent so far */
  int failed;          /* unusable after an error */
  char buf[MAX_REPLY]; /* bytes read past the last reply */
  size_t have;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int preft_rl_rewarder_open(const char *cmd, double timeout_s, preft_rl_rewarder **out, preft_error *err) {
  preft_rl_rewarder *rw = preft_xcalloc(1, sizeof *rw);
  rw->timeout_s = timeout_s;
  rw->to_child = rw->from_child = -1;
  if (!cmd) {
    *out = rw;
    return 0;
  }
  if (!cmd[0]) {
    free(rw);
    return preft_fail(err, "--reward-cmd is empty");
  }
  int in[2], outp[2];
  if (pipe2(in, O_CLOEXEC) != 0) {
    free(rw);
    return preft_fail(err, "reward command: pipe: %s", strerror(errno));
  }
  if (pipe2(outp, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    free(rw);
    return preft_fail(err, "reward command: pipe: %s", strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(in[0]), close(in[1]), close(outp[0]), close(outp[1]);
    free(rw);
    return preft_fail(err, "reward command: fork: %s", strerror(e));
  }
  if (pid == 0) { /* the child: only async-signal-safe calls until exec */
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in[0], 0) < 0 || dup2(outp[1], 1) < 0) _exit(127);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid); /* also here: no race with the kill of a fast failure */
  close(in[0]);
  close(outp[1]);
  rw->cmd = preft_xstrdup(cmd);
  rw->pid = pid;
  rw->to_child = in[1];
  rw->from_child = outp[0];
  fcntl(rw->to_child, F_SETFL, fcntl(rw->to_child, F_GETFL) | O_NONBLOCK);
  *out = rw;
  return 0;
}

/* Closes the pipes and reaps the command: waits up to a second for it to
 * exit (kill_it == 0), else kills its process group. Describes how it ended. */
static void stop_child(preft_rl_rewarder *rw, int kill_it, char *how, size_t how_size) {
  if (rw->to_child >= 0) close(rw->to_child);
  if (rw->from_child >= 0) close(rw->from_child);
  rw->to_child = rw->from_child = -1;
  if (rw->pid <= 0) return;
  int status = 0;
  pid_t r = 0;
  for (int i = 0; !kill_it && i < 100 && (r = waitpid(rw->pid, &status, WNOHANG)) == 0; i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (r != rw->pid) {
    kill(-rw->pid, SIGKILL);
    kill(rw->pid, SIGKILL);
    while (waitpid(rw->pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (how) snprintf(how, how_size, "it stopped answering and was killed");
  } else if (how && WIFEXITED(status)) {
    snprintf(how, how_size, "it exited with status %d", WEXITSTATUS(status));
  } else if (how && WIFSIGNALED(status)) {
    snprintf(how, how_size, "it was killed by signal %d", WTERMSIG(status));
  }
  rw->pid = 0;
}

static int fail_child(preft_rl_rewarder *rw, preft_error *err, const char *what) {
  rw->failed = 1;
  stop_child(rw, 1, NULL, 0);
  return preft_fail(err, "reward command '%s', line %ld: %s", rw->cmd, rw->line, what);
}

/* The command ended (EOF or EPIPE): reap it and say how. */
static int fail_exited(preft_rl_rewarder *rw, preft_error *err) {
  char how[96], what[160];
  rw->failed = 1;
  stop_child(rw, 0, how, sizeof how);
  snprintf(what, sizeof what, "the command stopped before answering (%s)", how);
  return preft_fail(err, "reward command '%s', line %ld: %s", rw->cmd, rw->line, what);
}

/* poll() on one descriptor until the deadline (< 0: none). 1 ready, 0
 * timed out, -1 error. */
static int wait_fd(int fd, short events, double deadline) {
  for (;;) {
    int ms = -1;
    if (deadline >= 0) {
      double left = deadline - now_s();
      if (left <= 0) return 0;
      ms = (int)ceil(left * 1000.0);
    }
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, ms);
    if (r > 0) return 1;
    if (r == 0) continue; /* re-check the deadline */
    if (errno != EINTR) return -1;
  }
}

/* Writes all of data without SIGPIPE; 0, -1 on a closed pipe, -2 on timeout. */
static int write_all(int fd, const char *data, size_t n, double deadline) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  sigset_t pending;
  sigpending(&pending);
  int was_pending = sigismember(&pending, SIGPIPE);
  int rc = 0;
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w > 0) {
      data += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = wait_fd(fd, POLLOUT, deadline);
      if (r == 0) {
        rc = -2;
        break;
      }
      if (r > 0) continue;
    }
    rc = -1;
    break;
  }
  if (rc == -1 && !was_pending) { /* consume the SIGPIPE our write raised */
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

static int score_one(preft_rl_rewarder *rw, const preft_rl_prompt *p, const char *completion, double *reward,
                     preft_error *err) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "prompt", p->prompt ? p->prompt : "");
  cJSON_AddStringToObject(o, "completion", completion ? completion : "");
  cJSON_AddStringToObject(o, "answer", p->answer ? p->answer : "");
  char *json = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  size_t len = strlen(json);
  json = preft_xrealloc(json, len + 2);
  json[len++] = '\n';
  json[len] = 0;
  rw->line++;
  double deadline = rw->timeout_s > 0 ? now_s() + rw->timeout_s : -1;
  int wr = write_all(rw->to_child, json, len, deadline);
  free(json);
  char what[200];
  if (wr == -2) {
    snprintf(what, sizeof what, "the command did not read its input within %gs (killed)", rw->timeout_s);
    return fail_child(rw, err, what);
  }
  if (wr != 0) return fail_exited(rw, err);
  for (;;) {
    char *nl = memchr(rw->buf, '\n', rw->have);
    if (nl) {
      *nl = 0;
      char *s = rw->buf, *end;
      while (*s == ' ' || *s == '\t') s++;
      double v = strtod(s, &end);
      while (*end == ' ' || *end == '\t' || *end == '\r') end++;
      if (end == s || *end || !isfinite(v)) {
        char shown[64];
        snprintf(shown, sizeof shown, "%.60s", rw->buf);
        snprintf(what, sizeof what, "the command printed '%s'%s, not one finite number", shown,
                 strlen(rw->buf) > 60 ? "..." : "");
        return fail_child(rw, err, what);
      }
      *reward = v;
      size_t used = (size_t)(nl - rw->buf) + 1;
      memmove(rw->buf, rw->buf + used, rw->have - used);
      rw->have -= used;
      return 0;
    }
    if (rw->have == sizeof rw->buf) {
      snprintf(what, sizeof what, "the command printed over %d bytes without a newline", MAX_REPLY);
      return fail_child(rw, err, what);
    }
    int r = wait_fd(rw->from_child, POLLIN, deadline);
    if (r == 0) {
      snprintf(what, sizeof what, "no answer within %gs (the command was killed)", rw->timeout_s);
      return fail_child(rw, err, what);
    }
    ssize_t got = r > 0 ? read(rw->from_child, rw->buf + rw->have, sizeof rw->buf - rw->have) : -1;
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return fail_exited(rw, err);
    rw->have += (size_t)got;
  }
}

int preft_rl_rewarder_score(preft_rl_rewarder *rw, const preft_rl_prompt *prompts,
                            const char *const *completions, int n, double *rewards, preft_error *err) {
  if (!rw->cmd) {
    for (int i = 0; i < n; i++) rewards[i] = preft_rl_verify(&prompts[i], completions[i]);
    return 0;
  }
  if (rw->failed)
    return preft_fail(err, "reward command '%s': stopped after an earlier error (line %ld)", rw->cmd,
                      rw->line);
  for (int i = 0; i < n; i++)
    if (score_one(rw, &prompts[i], completions[i], &rewards[i], err) != 0) return -1;
  return 0;
}

void preft_rl_rewarder_free(preft_rl_rewarder *rw) {
  if (!rw) return;
  stop_child(rw, 0, NULL, 0);
  free(rw->cmd);
  free(rw);
}
