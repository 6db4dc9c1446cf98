/* sandbox.c - a trial's sandbox (see sandbox.h).
 *
 * Start: a child of preft enters a private mount namespace, mounts an
 * overlay (lower: the layer, upper/work: under the trial folder, or on a
 * size-limited tmpfs when storage is limited) and becomes bubblewrap, which
 * binds the merged tree as / in new PID, IPC, UTS (and network) namespaces
 * and runs `sleep infinity` as the sandbox's long-lived process. Nothing of
 * this is visible on the host: the mounts live and die with the namespace.
 *
 * Exec: a child joins the sandbox's namespaces with setns, chroots into its
 * root, drops the capabilities Docker also drops, and forks the command
 * under a small reaper (a child subreaper inside the PID namespace), so
 * that everything the command starts stays in one tree that a timeout kills
 * (frozen with SIGSTOP first, then SIGKILL). Joining takes about a
 * millisecond, against tens for a bubblewrap per command.
 *
 * Stop: SIGKILL to the sandbox's PID 1 takes the whole PID namespace down,
 * then the cgroups and the trial's overlay state are removed. */
#include "tasks/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "base/fork_child.h"
#include "base/log.h"
#include "tasks/fs_tree.h"
#include "tasks/sandbox_internal.h"

extern char **environ;

#define MAX_EXECS 16 /* execs running at once in one sandbox */

struct preft_sandbox {
  pid_t bwrap_pid; /* our child, bubblewrap's monitor */
  pid_t init_pid;  /* PID 1 inside, as the host sees it */
  char root[64];   /* /proc/<init>/root */
  char *state_dir; /* <trial>/.sandbox: upper, work, merged */
  char *kept_work; /* the work folder beside a kept upper layer, or NULL */
  char *workdir;
  char **env;
  sb_limits limits;
  pthread_mutex_t mu; /* guards execs */
  pid_t execs[MAX_EXECS];
  struct preft_sandbox *next;
};

static pthread_mutex_t g_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static preft_sandbox *g_registry;
static unsigned g_counter;

/* Docker's default capabilities: what a root process in a task keeps. */
static const int kept_caps[] = {0 /* CHOWN */,
                                1 /* DAC_OVERRIDE */,
                                3 /* FOWNER */,
                                4 /* FSETID */,
                                5 /* KILL */,
                                6 /* SETGID */,
                                7 /* SETUID */,
                                8 /* SETPCAP */,
                                10 /* NET_BIND_SERVICE */,
                                13 /* NET_RAW */,
                                18 /* SYS_CHROOT */,
                                27 /* MKNOD */,
                                29 /* AUDIT_WRITE */,
                                31 /* SETFCAP */};
static const char *const kept_cap_names[] = {
    "CAP_CHOWN",      "CAP_DAC_OVERRIDE", "CAP_FOWNER",      "CAP_FSETID",           "CAP_KILL",
    "CAP_SETGID",     "CAP_SETUID",       "CAP_SETPCAP",     "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
    "CAP_SYS_CHROOT", "CAP_MKNOD",        "CAP_AUDIT_WRITE", "CAP_SETFCAP"};
#define N_KEPT_CAPS ((int)(sizeof kept_caps / sizeof kept_caps[0]))

static const char *const default_env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                          "HOME=/root", "TERM=xterm", NULL};

static char **copy_env(const char *const *env) {
  if (!env) env = default_env;
  int n = 0;
  while (env[n]) n++;
  char **out = preft_xcalloc((size_t)n + 1, sizeof *out);
  for (int i = 0; i < n; i++) out[i] = preft_xstrdup(env[i]);
  return out;
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/* The full path of an executable found on $PATH (heap), or NULL. */
static char *find_on_path(const char *name) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  char *copy = preft_xstrdup(path);
  char *found = NULL;
  for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir && !found;
       dir = strtok_r(NULL, ":", &save)) {
    char *p = preft_path_join(dir, name);
    if (access(p, X_OK) == 0)
      found = p;
    else
      free(p);
  }
  free(copy);
  return found;
}

/* ---- a growable argv -------------------------------------------------------------- */

typedef struct {
  char **v;
  int n, cap;
} strv;

static void strv_add(strv *a, const char *s) {
  if (a->n + 2 > a->cap) {
    a->cap = a->cap ? a->cap * 2 : 64;
    a->v = preft_xrealloc(a->v, sizeof *a->v * (size_t)a->cap);
  }
  a->v[a->n++] = preft_xstrdup(s);
  a->v[a->n] = NULL;
}

/* ---- the child that becomes bubblewrap ---------------------------------------------- */

typedef struct {
  const char *state_dir, *upper, *work, *merged;
  const char *overlay_opts;
  const char *tmpfs_opts; /* NULL: upper on disk */
  /* When the base (the last lower layer) holds another layer (the host's
   * root holds the layer cache), overlayfs refuses the pair ("overlapping
   * lowerdir"): the base is first mounted as an overlay of its own (over an
   * empty folder on a small tmpfs), a separate file system. */
  const char *wrap_base, *wrap_tmpfs, *wrap_empty, *wrap_mnt, *wrap_opts;
  const char *bwrap;
  char **argv;
  int ready_fd, info_fd, err_fd, log_fd;
  const sb_limits *limits;
} holder_plan;

/* Closes every descriptor from `first` on but `keep` (-1: none); async-signal-safe. */
static void close_fds_except(int first, int keep) {
  if (keep >= first) {
    if (keep > first && syscall(SYS_close_range, (unsigned)first, (unsigned)keep - 1, 0) != 0)
      for (int fd = first; fd < keep; fd++) close(fd);
    first = keep + 1;
  }
  if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0) return;
  for (int fd = first; fd < 65536; fd++) close(fd);
}

/* Async-signal-safe report of a failure to the parent, then exit. */
static void holder_fail(int err_fd, const char *what, const char *path) {
  const char *parts[] = {what, " ", path, ": ", fork_child_errno_text(errno)};
  fork_child_say(err_fd, parts, 5);
  _exit(127);
}

static void holder_main(const holder_plan *p) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (unshare(CLONE_NEWNS) != 0) holder_fail(p->err_fd, "cannot make a mount namespace", "");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    holder_fail(p->err_fd, "cannot make / private", "");
  if (p->tmpfs_opts) {
    if (mount("preft-sandbox", p->state_dir, "tmpfs", MS_NOSUID | MS_NODEV, p->tmpfs_opts) != 0)
      holder_fail(p->err_fd, "cannot mount a tmpfs on", p->state_dir);
    if (mkdir(p->upper, 0755) != 0) holder_fail(p->err_fd, "cannot create", p->upper);
    if (mkdir(p->work, 0755) != 0) holder_fail(p->err_fd, "cannot create", p->work);
    if (mkdir(p->merged, 0755) != 0) holder_fail(p->err_fd, "cannot create", p->merged);
  }
  if (p->wrap_base) {
    if (mkdir(p->wrap_tmpfs, 0755) != 0 && errno != EEXIST)
      holder_fail(p->err_fd, "cannot create", p->wrap_tmpfs);
    if (mkdir(p->wrap_mnt, 0755) != 0 && errno != EEXIST)
      holder_fail(p->err_fd, "cannot create", p->wrap_mnt);
    if (mount("preft-empty", p->wrap_tmpfs, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755") != 0)
      holder_fail(p->err_fd, "cannot mount a tmpfs on", p->wrap_tmpfs);
    if (mkdir(p->wrap_empty, 0755) != 0) holder_fail(p->err_fd, "cannot create", p->wrap_empty);
    if (mount("overlay", p->wrap_mnt, "overlay", MS_RDONLY, p->wrap_opts) != 0)
      holder_fail(p->err_fd, "cannot mount the base", p->wrap_opts);
  }
  if (mount("overlay", p->merged, "overlay", 0, p->overlay_opts) != 0)
    holder_fail(p->err_fd, "cannot mount the overlay", p->overlay_opts);
  if (sb_limits_enter(p->limits) != 0) holder_fail(p->err_fd, "cannot apply the limits", p->limits->desc);
  /* fds 3 (ready) and 4 (info) for bubblewrap and the init command. */
  int ready = fcntl(p->ready_fd, F_DUPFD, 10), info = fcntl(p->info_fd, F_DUPFD, 10);
  if (ready < 0 || info < 0 || dup2(ready, 3) < 0 || dup2(info, 4) < 0) holder_fail(p->err_fd, "dup2", "");
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) dup2(devnull, 0);
  if (p->log_fd >= 0) {
    dup2(p->log_fd, 1);
    dup2(p->log_fd, 2);
  }
  close_fds_except(5, p->err_fd); /* err_fd: closed by the exec itself (close-on-exec) */
  execve(p->bwrap, p->argv, environ);
  holder_fail(p->err_fd, "cannot run", p->bwrap);
}

/* Reads until EOF or `want` seen (or the deadline); returns bytes read. */
static ssize_t read_until(int fd, char *buf, size_t cap, const char *want, int timeout_ms) {
  size_t n = 0;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (n + 1 < cap) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int left = timeout_ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    if (left <= 0) break;
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t k = read(fd, buf + n, cap - 1 - n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    n += (size_t)k;
    buf[n] = 0;
    if (want && strstr(buf, want)) break;
  }
  buf[n] = 0;
  return (ssize_t)n;
}

/* The last line(s) of the sandbox log, for an error message. */
static void log_tail(const char *path, char *out, size_t cap) {
  out[0] = 0;
  char *text = NULL;
  size_t size = 0;
  preft_error e;
  if (preft_read_file(path, &text, &size, &e) != 0) return;
  while (size > 0 && (text[size - 1] == '\n' || text[size - 1] == ' ')) text[--size] = 0;
  size_t start = size > cap - 1 ? size - (cap - 1) : 0;
  snprintf(out, cap, "%s", text + start);
  for (char *c = out; *c; c++)
    if (*c == '\n') *c = ' ';
  free(text);
}

static _Atomic int g_registry_owner; /* the process whose sandboxes these are (not a forked child) */

static void stop_all_at_exit(void) { preft_sandbox_stop_all(); }
static void register_at_exit(void) {
  g_registry_owner = (int)getpid();
  atexit(stop_all_at_exit);
}

static void registry_add(preft_sandbox *sb) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, register_at_exit);
  pthread_mutex_lock(&g_registry_mu);
  sb->next = g_registry;
  g_registry = sb;
  pthread_mutex_unlock(&g_registry_mu);
}

static void registry_remove(preft_sandbox *sb) {
  pthread_mutex_lock(&g_registry_mu);
  for (preft_sandbox **p = &g_registry; *p; p = &(*p)->next)
    if (*p == sb) {
      *p = sb->next;
      break;
    }
  pthread_mutex_unlock(&g_registry_mu);
}

static bool path_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

/* Absolute, symlink-free path of an existing folder (heap), or a copy. */
static char *abs_path(const char *p) {
  char *r = realpath(p, NULL);
  return r ? r : preft_xstrdup(p);
}

static void add_mask(strv *a, const char *host_path) {
  if (!host_path || !path_exists(host_path)) return;
  char *abs = abs_path(host_path);
  if (strcmp(abs, "/") != 0) {
    strv_add(a, "--tmpfs");
    strv_add(a, abs);
  }
  free(abs);
}

/* Whether base, the last entry of the layer list, is an ancestor of
 * another entry (base points into layers). */
static bool layers_nest(const char *layers, const char *base) {
  size_t before = (size_t)(base - layers) - 1, bn = strlen(base);
  char *copy = preft_xmalloc(before + 1);
  memcpy(copy, layers, before);
  copy[before] = 0;
  bool nest = false;
  for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
    if (strcmp(base, "/") == 0 || (strncmp(d, base, bn) == 0 && d[bn] == '/')) nest = true;
  free(copy);
  return nest;
}

static int check_layers(const char *layers, preft_error *err) {
  char *copy = preft_xstrdup(layers);
  int rc = 0;
  for (char *save = NULL, *d = strtok_r(copy, ":", &save); d && rc == 0; d = strtok_r(NULL, ":", &save)) {
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
      rc = preft_fail(err, "sandbox: layer %s is not a folder", d);
  }
  free(copy);
  return rc;
}

int preft_sandbox_start(const preft_sandbox_opts *o, preft_sandbox **out, preft_error *err) {
  *out = NULL;
  if (!o->layer_dir || !o->trial_dir) return preft_fail(err, "sandbox: layer_dir and trial_dir are required");
  if (o->n_binds < 0 || o->n_binds > PREFT_SANDBOX_MAX_BINDS || o->n_masks < 0 ||
      o->n_masks > PREFT_SANDBOX_MAX_MASKS)
    return preft_fail(err, "sandbox: too many binds or masks");
  if (geteuid() != 0)
    return preft_fail(err, "sandbox: needs root (an overlay over the layer in a private mount namespace)");
  char *bwrap = find_on_path("bwrap");
  if (!bwrap) return preft_fail(err, "sandbox: bwrap not found on PATH (install the bubblewrap package)");
  if (check_layers(o->layer_dir, err) != 0) {
    free(bwrap);
    return -1;
  }
  if (preft_mkdir_p(o->trial_dir, err) != 0) {
    free(bwrap);
    return -1;
  }
  preft_sandbox *sb = preft_xcalloc(1, sizeof *sb);
  pthread_mutex_init(&sb->mu, NULL);
  char *trial = abs_path(o->trial_dir);
  sb->state_dir = preft_path_join(trial, ".sandbox");
  sb->workdir = preft_xstrdup(o->workdir && *o->workdir ? o->workdir : "/");
  sb->env = copy_env(o->env);
  preft_error rm_err;
  if (preft_fs_remove(sb->state_dir, &rm_err) != 0) preft_log(PREFT_LOG_WARN, "sandbox: %s", rm_err.msg);
  char *upper, *work;
  if (o->upper_dir) {
    upper = abs_path(o->upper_dir);
    size_t n = strlen(upper) + 6;
    work = preft_xmalloc(n);
    snprintf(work, n, "%s.work", upper);
    sb->kept_work = preft_xstrdup(work);
    if (preft_fs_remove(work, &rm_err) != 0) preft_log(PREFT_LOG_WARN, "sandbox: %s", rm_err.msg);
  } else {
    upper = preft_path_join(sb->state_dir, "upper");
    work = preft_path_join(sb->state_dir, "work");
  }
  char *merged = preft_path_join(sb->state_dir, "merged");
  char *log_path = preft_path_join(trial, "sandbox.log");
  bool on_tmpfs = o->limits.storage_mb > 0 && !o->upper_dir;
  int rc = -1;
  strv a = {0};
  char overlay_opts[8192], tmpfs_opts[64], wrap_opts[PATH_MAX + 64];
  char *wrap_tmpfs = NULL, *wrap_empty = NULL, *wrap_mnt = NULL;
  int ready[2] = {-1, -1}, info[2] = {-1, -1}, errp[2] = {-1, -1}, log_fd = -1;
  if (preft_mkdir_p(sb->state_dir, err) != 0) goto done;
  if (!on_tmpfs && (preft_mkdir_p(upper, err) != 0 || preft_mkdir_p(work, err) != 0)) goto done;
  if (preft_mkdir_p(merged, err) != 0) goto done;
  /* the base wrapped when it holds another lower layer */
  char *lower = preft_xstrdup(o->layer_dir);
  const char *base_layer = strrchr(o->layer_dir, ':');
  base_layer = base_layer ? base_layer + 1 : NULL;
  if (base_layer && layers_nest(o->layer_dir, base_layer)) {
    wrap_tmpfs = preft_path_join(sb->state_dir, "empty");
    wrap_empty = preft_path_join(wrap_tmpfs, "d");
    wrap_mnt = preft_path_join(sb->state_dir, "base");
    snprintf(wrap_opts, sizeof wrap_opts, "lowerdir=%s:%s", base_layer, wrap_empty);
    lower[base_layer - o->layer_dir] = 0;
    char *joined = preft_xmalloc(strlen(lower) + strlen(wrap_mnt) + 1);
    memcpy(joined, lower, strlen(lower));
    memcpy(joined + strlen(lower), wrap_mnt, strlen(wrap_mnt) + 1);
    free(lower);
    lower = joined;
  }
  int on =
      snprintf(overlay_opts, sizeof overlay_opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
  free(lower);
  if (on >= (int)sizeof overlay_opts) {
    preft_fail(err, "sandbox: layer list too long");
    goto done;
  }
  snprintf(tmpfs_opts, sizeof tmpfs_opts, "size=%lldm,mode=0755", (long long)o->limits.storage_mb);

  char name[64];
  pthread_mutex_lock(&g_registry_mu);
  unsigned id = ++g_counter;
  pthread_mutex_unlock(&g_registry_mu);
  snprintf(name, sizeof name, "preft-sandbox-%d-%u", (int)getpid(), id);
  sb_limits_setup(&sb->limits, &o->limits, name);

  /* bubblewrap's command line */
  strv_add(&a, bwrap);
  strv_add(&a, "--bind");
  strv_add(&a, merged);
  strv_add(&a, "/");
  strv_add(&a, "--proc");
  strv_add(&a, "/proc");
  strv_add(&a, "--dev");
  strv_add(&a, "/dev");
  strv_add(&a, "--ro-bind");
  strv_add(&a, "/sys");
  strv_add(&a, "/sys");
  strv_add(&a, "--perms");
  strv_add(&a, "1777");
  if (on_tmpfs) {
    char size[32];
    snprintf(size, sizeof size, "%lld", (long long)o->limits.storage_mb << 20);
    strv_add(&a, "--size");
    strv_add(&a, size);
  }
  strv_add(&a, "--tmpfs");
  strv_add(&a, "/tmp");
  add_mask(&a, trial);
  char *job = preft_xstrdup(trial);
  char *slash = strrchr(job, '/');
  if (slash && slash != job) {
    *slash = 0;
    /* The job folder (other trials), unless it is a top-level folder such as
     * /root or /tmp: trial folders belong in a job folder. */
    if (strchr(job + 1, '/')) add_mask(&a, job);
  }
  free(job);
  for (int i = 0; i < o->n_masks; i++) add_mask(&a, o->masks[i]);
  for (int i = 0; i < o->n_binds; i++) {
    if (!o->binds[i].host || !o->binds[i].inside) continue;
    char *host = abs_path(o->binds[i].host);
    strv_add(&a, o->binds[i].read_only ? "--ro-bind" : "--bind");
    strv_add(&a, host);
    strv_add(&a, o->binds[i].inside);
    free(host);
  }
  strv_add(&a, "--unshare-pid");
  strv_add(&a, "--unshare-ipc");
  strv_add(&a, "--unshare-uts");
  strv_add(&a, "--hostname");
  strv_add(&a, "sandbox");
  if (!o->network) strv_add(&a, "--unshare-net");
  strv_add(&a, "--die-with-parent");
  strv_add(&a, "--cap-drop");
  strv_add(&a, "ALL");
  for (int i = 0; i < N_KEPT_CAPS; i++) {
    strv_add(&a, "--cap-add");
    strv_add(&a, kept_cap_names[i]);
  }
  strv_add(&a, "--chdir");
  strv_add(&a, "/");
  strv_add(&a, "--info-fd");
  strv_add(&a, "4");
  strv_add(&a, "--");
  strv_add(&a, "/bin/sh");
  strv_add(&a, "-c");
  strv_add(&a, "echo ready >&3; exec sleep infinity 3>&- 4>&-");

  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(info, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
    preft_fail(err, "sandbox: pipe: %s", strerror(errno));
    goto done;
  }
  log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  holder_plan plan = {.state_dir = sb->state_dir,
                      .upper = upper,
                      .work = work,
                      .merged = merged,
                      .overlay_opts = overlay_opts,
                      .tmpfs_opts = on_tmpfs ? tmpfs_opts : NULL,
                      .wrap_base = wrap_mnt ? base_layer : NULL,
                      .wrap_tmpfs = wrap_tmpfs,
                      .wrap_empty = wrap_empty,
                      .wrap_mnt = wrap_mnt,
                      .wrap_opts = wrap_opts,
                      .bwrap = bwrap,
                      .argv = a.v,
                      .ready_fd = ready[1],
                      .info_fd = info[1],
                      .err_fd = errp[1],
                      .log_fd = log_fd,
                      .limits = &sb->limits};
  pid_t pid = fork();
  if (pid < 0) {
    preft_fail(err, "sandbox: fork: %s", strerror(errno));
    goto done;
  }
  if (pid == 0) holder_main(&plan);
  sb->bwrap_pid = pid;
  close(ready[1]);
  close(info[1]);
  close(errp[1]);
  ready[1] = info[1] = errp[1] = -1;

  char msg[512];
  if (read_until(errp[0], msg, sizeof msg, NULL, 30000) > 0) {
    preft_fail(err, "sandbox: %s", msg);
    goto fail_child;
  }
  char info_buf[512];
  read_until(info[0], info_buf, sizeof info_buf, "}", 30000);
  char *cp = strstr(info_buf, "\"child-pid\"");
  int init = cp ? atoi(strchr(cp, ':') ? strchr(cp, ':') + 1 : "0") : 0;
  char ready_buf[64];
  read_until(ready[0], ready_buf, sizeof ready_buf, "ready", 30000);
  if (init <= 0 || !strstr(ready_buf, "ready")) {
    char tail[400];
    log_tail(log_path, tail, sizeof tail);
    preft_fail(err, "sandbox: bubblewrap did not start: %s", tail[0] ? tail : "(no output)");
    goto fail_child;
  }
  sb->init_pid = init;
  snprintf(sb->root, sizeof sb->root, "/proc/%d/root", init);
  registry_add(sb);
  *out = sb;
  rc = 0;
  goto done;

fail_child:
  kill(sb->bwrap_pid, SIGKILL);
  waitpid(sb->bwrap_pid, NULL, 0);
  sb->bwrap_pid = 0;

done:
  for (int i = 0; i < 2; i++) {
    if (ready[i] >= 0) close(ready[i]);
    if (info[i] >= 0) close(info[i]);
    if (errp[i] >= 0) close(errp[i]);
  }
  if (log_fd >= 0) close(log_fd);
  free_strv(a.v);
  free(upper);
  free(work);
  free(merged);
  free(wrap_tmpfs);
  free(wrap_empty);
  free(wrap_mnt);
  free(log_path);
  free(trial);
  free(bwrap);
  if (rc != 0) {
    sb_limits_kill(&sb->limits);
    sb_limits_remove(&sb->limits);
    preft_error e2;
    (void)preft_fs_remove(sb->state_dir, &e2);
    if (sb->kept_work) (void)preft_fs_remove(sb->kept_work, &e2);
    free(sb->kept_work);
    free(sb->state_dir);
    free(sb->workdir);
    free_strv(sb->env);
    pthread_mutex_destroy(&sb->mu);
    free(sb);
  }
  return rc;
}

/* ---- entering a running sandbox -------------------------------------------------- */

typedef struct {
  int ns_fds[5];
  int root_fd;
} sandbox_door;

static const char *const ns_names[5] = {"ipc", "uts", "net", "pid", "mnt"};

/* Opens the sandbox's namespaces and root (before fork: may allocate). */
static int door_open(const preft_sandbox *sb, sandbox_door *d, preft_error *err) {
  for (int i = 0; i < 5; i++) d->ns_fds[i] = -1;
  d->root_fd = -1;
  char path[96];
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)sb->init_pid, ns_names[i]);
    d->ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (d->ns_fds[i] < 0) break;
  }
  d->root_fd = open(sb->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->root_fd < 0 || d->ns_fds[4] < 0) {
    for (int i = 0; i < 5; i++)
      if (d->ns_fds[i] >= 0) close(d->ns_fds[i]);
    if (d->root_fd >= 0) close(d->root_fd);
    return preft_fail(err, "sandbox: it is no longer running (its process %d is gone)", (int)sb->init_pid);
  }
  return 0;
}

static void door_close(sandbox_door *d) {
  for (int i = 0; i < 5; i++)
    if (d->ns_fds[i] >= 0) close(d->ns_fds[i]);
  if (d->root_fd >= 0) close(d->root_fd);
}

/* In a child: joins the namespaces and the root. Async-signal-safe. */
static int door_enter(const sandbox_door *d) {
  for (int i = 0; i < 5; i++)
    if (setns(d->ns_fds[i], 0) != 0) return -1;
  if (fchdir(d->root_fd) != 0 || chroot(".") != 0 || chdir("/") != 0) return -1;
  return 0;
}

static void drop_capabilities(void) {
  for (int cap = 0; cap < 64; cap++) {
    bool keep = false;
    for (int i = 0; i < N_KEPT_CAPS; i++) keep |= kept_caps[i] == cap;
    if (!keep && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
  }
}

static void write_str(int fd, const char *s) { fork_child_say(fd, &s, 1); }

static int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

/* The exec child: joins the sandbox, then runs argv under a reaper. */
static void exec_child(const preft_sandbox *sb, const sandbox_door *d, const char *const *argv,
                       const char *workdir, char *const *env, int log_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  setsid();
  if (sb_limits_enter(&sb->limits) != 0) {
    write_str(log_fd >= 0 ? log_fd : 2, "preft sandbox: cannot join the cgroup\n");
    _exit(126);
  }
  if (door_enter(d) != 0) {
    write_str(log_fd >= 0 ? log_fd : 2, "preft sandbox: cannot enter the sandbox\n");
    _exit(126);
  }
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) dup2(devnull, 0);
  int out = log_fd >= 0 ? log_fd : devnull;
  if (out >= 0) {
    dup2(out, 1);
    dup2(out, 2);
  }
  drop_capabilities();
  /* Nothing preft holds open (other trials' pipes, sockets, a host folder
   * opened by another thread without O_CLOEXEC) reaches the command. */
  close_fds_except(3, -1);
  pid_t reaper = fork(); /* the first process in the PID namespace */
  if (reaper < 0) _exit(126);
  if (reaper == 0) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t cmd = fork();
    if (cmd < 0) _exit(126);
    if (cmd == 0) {
      if (chdir(workdir) != 0) {
        const char *parts[] = {"preft sandbox: no working directory ", workdir, "\n"};
        fork_child_say(2, parts, 3);
        _exit(126);
      }
      environ = (char **)env;
      execvp(argv[0], (char *const *)argv);
      const char *parts[] = {"preft sandbox: cannot run ", argv[0], ": ", fork_child_errno_text(errno), "\n"};
      fork_child_say(2, parts, 5);
      _exit(127);
    }
    for (;;) {
      int status;
      pid_t w = waitpid(-1, &status, 0);
      if (w == cmd) _exit(status_code(status));
      if (w < 0 && errno != EINTR) _exit(126);
    }
  }
  int status;
  while (waitpid(reaper, &status, 0) < 0)
    if (errno != EINTR) _exit(126);
  _exit(status_code(status));
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void track_exec(preft_sandbox *sb, pid_t pid, bool add) {
  pthread_mutex_lock(&sb->mu);
  for (int i = 0; i < MAX_EXECS; i++) {
    if (add && sb->execs[i] == 0) {
      sb->execs[i] = pid;
      break;
    }
    if (!add && sb->execs[i] == pid) {
      sb->execs[i] = 0;
      break;
    }
  }
  pthread_mutex_unlock(&sb->mu);
}

int preft_sandbox_exec(preft_sandbox *sb, const char *const *argv, double timeout_s, const char *log_path,
                       preft_exec_result *res, preft_error *err) {
  return preft_sandbox_exec_in(sb, argv, NULL, NULL, timeout_s, log_path, res, err);
}

int preft_sandbox_exec_in(preft_sandbox *sb, const char *const *argv, const char *workdir,
                          const char *const *env, double timeout_s, const char *log_path,
                          preft_exec_result *res, preft_error *err) {
  if (!workdir || !*workdir) workdir = sb->workdir;
  char *const *envp = env ? (char *const *)env : sb->env;
  memset(res, 0, sizeof *res);
  snprintf(res->limits, sizeof res->limits, "%s", sb->limits.desc);
  if (!argv || !argv[0]) return preft_fail(err, "sandbox exec: empty command");
  int log_fd = -1;
  if (log_path) {
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return preft_fail(err, "sandbox exec: cannot open %s: %s", log_path, strerror(errno));
  }
  sandbox_door d;
  if (door_open(sb, &d, err) != 0) {
    if (log_fd >= 0) close(log_fd);
    return -1;
  }
  /* log_fd must survive into the child: clear close-on-exec there. */
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0) {
    door_close(&d);
    if (log_fd >= 0) close(log_fd);
    return preft_fail(err, "sandbox exec: fork: %s", strerror(errno));
  }
  if (pid == 0) {
    if (log_fd >= 0) {
      int flags = fcntl(log_fd, F_GETFD);
      fcntl(log_fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    exec_child(sb, &d, argv, workdir, envp, log_fd);
  }
  door_close(&d);
  if (log_fd >= 0) close(log_fd);
  track_exec(sb, pid, true);

  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  bool watchdog = sb->limits.want.max_pids > 0 && !sb->limits.pids_enforced;
  bool over_pids = false;
  for (;;) {
    double left_ms = timeout_s > 0 ? (t0 + timeout_s - now_s()) * 1000.0 : 1e9;
    if (left_ms <= 0) {
      res->timed_out = true;
      break;
    }
    int slice = left_ms > 1e8 ? 100000000 : (int)left_ms + 1;
    if (watchdog && slice > 50) slice = 50;
    if (pidfd >= 0) {
      struct pollfd pfd = {pidfd, POLLIN, 0};
      int r = poll(&pfd, 1, slice);
      if (r > 0) break;
      if (r < 0 && errno != EINTR) break;
    } else {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        /* reaped here: report it as is */
        res->exit_code = status_code(status);
        res->seconds = now_s() - t0;
        track_exec(sb, pid, false);
        return 0;
      }
      struct timespec ts = {0, 5000000L};
      nanosleep(&ts, NULL);
    }
    if (watchdog) {
      pid_t *kids = malloc(sizeof *kids * (size_t)(sb->limits.want.max_pids + 8));
      int n = kids ? sb_proc_descendants(pid, kids, (int)sb->limits.want.max_pids + 8) : 0;
      free(kids);
      if (n > sb->limits.want.max_pids + 2) { /* + the exec's own two helpers */
        over_pids = true;
        break;
      }
    }
  }
  if (res->timed_out || over_pids) sb_proc_kill_tree(pid);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) close(pidfd);
  track_exec(sb, pid, false);
  res->seconds = now_s() - t0;
  res->exit_code = status_code(status);
  if (over_pids && log_path) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dprintf(fd, "\npreft sandbox: killed: more than %lld processes\n", (long long)sb->limits.want.max_pids);
      close(fd);
    }
  }
  return 0;
}

/* The copy's child: in the sandbox's namespaces and root (so that a symlink
 * the sandbox planted on the way resolves inside it, never on the host),
 * makes the folders of `parent` and sends an open descriptor of it back
 * over sock (SCM_RIGHTS), or one line saying why not. Only system calls:
 * the copy itself, which allocates, is the parent's, through that
 * descriptor (see fork_child.h). */
static void copy_door_child(const sandbox_door *d, const char *parent, int sock) {
  const char *why = "cannot enter the sandbox", *what = "";
  char buf[PATH_MAX];
  if (door_enter(d) != 0) goto fail;
  size_t n = strlen(parent);
  if (n >= sizeof buf) {
    errno = ENAMETOOLONG;
    why = "cannot create";
    what = parent;
    goto fail;
  }
  memcpy(buf, parent, n + 1);
  for (size_t i = 1; i <= n; i++) { /* mkdir -p */
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
      why = "cannot create";
      what = buf;
      goto fail;
    }
    buf[i] = c;
  }
  int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    why = "cannot open";
    what = parent;
    goto fail;
  }
  char ok = 'F';
  struct iovec iov = {&ok, 1};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  _exit(sendmsg(sock, &m, 0) == 1 ? 0 : 1);
fail:;
  const char *parts[] = {"E", why, " ", what, ": ", fork_child_errno_text(errno)};
  fork_child_say(sock, parts, 6);
  _exit(1);
}

/* Receives the copy child's answer: a descriptor (returned), or -1 with its
 * reason in why. Waits at most timeout_ms. */
static int copy_door_receive(int sock, char *why, size_t why_size, int timeout_ms) {
  why[0] = 0;
  struct pollfd pfd = {sock, POLLIN, 0};
  int r;
  while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  if (r == 0) {
    snprintf(why, why_size, "the sandbox did not answer in %d s", timeout_ms / 1000);
    return -1;
  }
  char text[600];
  struct iovec iov = {text, sizeof text - 1};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  ssize_t k;
  while ((k = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  int fd = -1;
  for (struct cmsghdr *c = k > 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(&fd, CMSG_DATA(c), sizeof fd);
  if (fd >= 0) return fd;
  text[k > 0 ? k : 0] = 0;
  snprintf(why, why_size, "%s", k > 1 && text[0] == 'E' ? text + 1 : "failed");
  return -1;
}

/* Splits an absolute path into its folder and last name ("/" is "/" and
 * "."); trailing slashes are dropped. Fails on a last name "..". */
static int split_inside_path(const char *path, char *parent, size_t parent_size, char *name,
                             size_t name_size) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  if (n >= parent_size) return -1;
  memcpy(parent, path, n);
  parent[n] = 0;
  char *last = strrchr(parent, '/');
  const char *base = last[1] ? last + 1 : ".";
  if (strcmp(base, "..") == 0 || strlen(base) >= name_size) return -1;
  snprintf(name, name_size, "%s", base);
  if (last == parent)
    parent[1] = 0;
  else
    *last = 0;
  return 0;
}

int preft_sandbox_copy_in(preft_sandbox *sb, const char *host_path, const char *inside_path,
                          preft_error *err) {
  char parent[PATH_MAX], name[NAME_MAX + 1];
  if (!inside_path || inside_path[0] != '/')
    return preft_fail(err, "sandbox copy: %s is not an absolute path", inside_path ? inside_path : "(null)");
  if (split_inside_path(inside_path, parent, sizeof parent, name, sizeof name) != 0)
    return preft_fail(err, "sandbox copy: %s does not name a file to copy to", inside_path);
  char *src_dir = preft_xstrdup(host_path), *slash = strrchr(src_dir, '/');
  const char *src_name = host_path;
  if (slash) {
    src_name = host_path + (slash - src_dir) + 1;
    if (slash == src_dir)
      slash[1] = 0;
    else
      *slash = 0;
  } else {
    free(src_dir);
    src_dir = preft_xstrdup(".");
  }
  int src_fd = open(src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(src_dir);
  if (src_fd < 0) return preft_fail(err, "sandbox copy: %s: %s", host_path, strerror(errno));
  struct stat st;
  if (fstatat(src_fd, src_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    close(src_fd);
    return preft_fail(err, "sandbox copy: %s: %s", host_path, strerror(errno));
  }
  sandbox_door d;
  if (door_open(sb, &d, err) != 0) {
    close(src_fd);
    return -1;
  }
  int sock[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) != 0) {
    close(src_fd);
    door_close(&d);
    return preft_fail(err, "sandbox copy: socketpair: %s", strerror(errno));
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(sock[0]);
    copy_door_child(&d, parent, sock[1]);
  }
  int fork_errno = errno;
  close(sock[1]);
  door_close(&d);
  if (pid < 0) {
    close(sock[0]);
    close(src_fd);
    return preft_fail(err, "sandbox copy: fork: %s", strerror(fork_errno));
  }
  char why[600];
  int dst_fd = copy_door_receive(sock[0], why, sizeof why, 60000);
  close(sock[0]);
  if (dst_fd < 0) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int rc = 0;
  if (dst_fd < 0) {
    rc = preft_fail(err, "sandbox copy %s -> %s: %s", host_path, inside_path, why);
  } else {
    /* The descriptor is the folder inside the sandbox: the copy goes down
     * from it by single names that it never follows as symlinks. */
    preft_error e;
    if (preft_fs_copy_at(src_fd, src_name, dst_fd, name, &e) != 0)
      rc = preft_fail(err, "sandbox copy %s -> %s: %s", host_path, inside_path, e.msg);
    close(dst_fd);
  }
  close(src_fd);
  return rc;
}

int preft_sandbox_read_file(preft_sandbox *sb, const char *inside_path, size_t max_bytes, char **out,
                            size_t *out_size, preft_error *err) {
  *out = NULL;
  *out_size = 0;
  if (!inside_path || inside_path[0] != '/')
    return preft_fail(err, "sandbox read: %s is not an absolute path", inside_path ? inside_path : "(null)");
  sandbox_door d;
  if (door_open(sb, &d, err) != 0) return -1;
  int data[2], msg[2];
  if (pipe2(data, O_CLOEXEC) != 0) {
    door_close(&d);
    return preft_fail(err, "sandbox read: pipe: %s", strerror(errno));
  }
  if (pipe2(msg, O_CLOEXEC) != 0) {
    close(data[0]);
    close(data[1]);
    door_close(&d);
    return preft_fail(err, "sandbox read: pipe: %s", strerror(errno));
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(data[0]);
    close(msg[0]);
    if (door_enter(&d) != 0) {
      write_str(msg[1], "cannot enter the sandbox");
      _exit(1);
    }
    int fd = open(inside_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      write_str(msg[1], fd < 0 ? fork_child_errno_text(errno) : "not a regular file");
      _exit(1);
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(data[1], buf + off, (size_t)(n - off));
        if (w <= 0) _exit(1); /* the reader stopped: too long */
        off += w;
      }
    _exit(n < 0 ? 1 : 0);
  }
  close(data[1]);
  close(msg[1]);
  door_close(&d);
  if (pid < 0) {
    close(data[0]);
    close(msg[0]);
    return preft_fail(err, "sandbox read: fork: %s", strerror(errno));
  }
  size_t cap = 4096, n = 0;
  char *text = preft_xmalloc(cap);
  bool too_long = false;
  for (;;) {
    if (n + 1 >= cap) {
      cap *= 2;
      text = preft_xrealloc(text, cap);
    }
    ssize_t k = read(data[0], text + n, cap - 1 - n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    n += (size_t)k;
    if (n > max_bytes) {
      too_long = true;
      break;
    }
  }
  close(data[0]);
  char why[300];
  read_until(msg[0], why, sizeof why, NULL, 10000);
  close(msg[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (too_long) {
    free(text);
    return preft_fail(err, "sandbox read %s: longer than %zu bytes", inside_path, max_bytes);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    free(text);
    return preft_fail(err, "sandbox read %s: %s", inside_path, why[0] ? why : "failed");
  }
  text[n] = 0;
  *out = text;
  *out_size = n;
  return 0;
}

const char *preft_sandbox_root(const preft_sandbox *sb) { return sb && sb->init_pid > 0 ? sb->root : NULL; }
const char *preft_sandbox_limits_desc(const preft_sandbox *sb) { return sb->limits.desc; }
int preft_sandbox_init_pid(const preft_sandbox *sb) { return (int)sb->init_pid; }

void preft_sandbox_stop(preft_sandbox *sb) {
  if (!sb) return;
  registry_remove(sb);
  /* PID 1 of the namespace first: the kernel kills every process in it. */
  if (sb->init_pid > 0) kill(sb->init_pid, SIGKILL);
  pthread_mutex_lock(&sb->mu);
  for (int i = 0; i < MAX_EXECS; i++)
    if (sb->execs[i] > 0) sb_proc_kill_tree(sb->execs[i]);
  pthread_mutex_unlock(&sb->mu);
  /* bubblewrap reaps its child (our PID 1) and exits; kill it if it does not. */
  if (sb->bwrap_pid > 0) {
    int status;
    pid_t w = 0;
    for (int i = 0; i < 2000 && (w = waitpid(sb->bwrap_pid, &status, WNOHANG)) == 0; i++) {
      struct timespec ts = {0, 1000000L};
      nanosleep(&ts, NULL);
    }
    if (w == 0) {
      kill(sb->bwrap_pid, SIGKILL);
      while (waitpid(sb->bwrap_pid, NULL, 0) < 0 && errno == EINTR) {
      }
    }
  }
  sb_limits_kill(&sb->limits);
  sb_limits_remove(&sb->limits);
  preft_error e;
  if (preft_fs_remove(sb->state_dir, &e) != 0) preft_log(PREFT_LOG_WARN, "sandbox stop: %s", e.msg);
  if (sb->kept_work && preft_fs_remove(sb->kept_work, &e) != 0)
    preft_log(PREFT_LOG_WARN, "sandbox stop: %s", e.msg);
  free(sb->kept_work);
  free(sb->state_dir);
  free(sb->workdir);
  free_strv(sb->env);
  pthread_mutex_destroy(&sb->mu);
  free(sb);
}

void preft_sandbox_stop_all(void) {
  int owner = g_registry_owner;
  if (owner != 0 && (int)getpid() != owner) return; /* a fork's copy: not ours to stop */
  for (;;) {
    pthread_mutex_lock(&g_registry_mu);
    preft_sandbox *sb = g_registry;
    pthread_mutex_unlock(&g_registry_mu);
    if (!sb) break;
    preft_sandbox_stop(sb);
  }
}
