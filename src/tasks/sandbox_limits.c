/* sandbox_limits.c - a trial's resource limits: a cgroup v2 folder where the
 * machine delegates one, else cgroup v1 folders (memory, pids, cpu) where
 * they are writable, else per-process rlimits. The folder is made under the
 * cgroup preft itself runs in, so the limits nest inside any limit the
 * machine already put on preft. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "tasks/sandbox_internal.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static int write_text(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  int rc = (w == (ssize_t)n) ? 0 : -1;
  if (close(fd) != 0) rc = -1;
  return rc;
}

static int write_file_in(const char *dir, const char *name, const char *text) {
  char path[3 * PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return write_text(path, text);
}

/* The cgroup path of this process for a v1 controller ("memory"), or for v2
 * when ctl is NULL (the "0::" line). */
static int own_cgroup(const char *ctl, char *out, size_t cap) {
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (!f) return -1;
  char line[1024];
  int rc = -1;
  while (rc != 0 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = 0;
    *c2 = 0;
    const char *ctls = c1 + 1, *path = c2 + 1;
    bool match = false;
    if (!ctl) {
      match = strcmp(line, "0") == 0 && *ctls == 0;
    } else {
      char list[256];
      snprintf(list, sizeof list, "%s", ctls);
      for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, ctl) == 0) match = true;
    }
    if (match && strlen(path) < cap) {
      snprintf(out, cap, "%s", path);
      rc = 0;
    }
  }
  fclose(f);
  return rc;
}

static bool file_has_word(const char *path, const char *word) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  char buf[512];
  bool found = false;
  while (!found && fscanf(f, "%511s", buf) == 1) found = strcmp(buf, word) == 0;
  fclose(f);
  return found;
}

/* Removes the empty cgroup folders of sandboxes whose preft process is
 * gone (one killed outright cannot remove its own). */
static void sweep_stale(const char *parent) {
  DIR *d = opendir(parent);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int pid;
    unsigned n;
    if (sscanf(e->d_name, "preft-sandbox-%d-%u", &pid, &n) != 2 || pid <= 0) continue;
    if (pid == (int)getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;
    char dir[2 * PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", parent, e->d_name);
    (void)rmdir(dir); /* fails, and stays, while a process is still in it */
  }
  closedir(d);
}

/* Adds one folder for the sandbox; returns its index or -1. */
static int add_cgroup(sb_limits *s, const char *parent, const char *name) {
  if (s->n_cgroups == SB_MAX_CGROUPS) return -1;
  sweep_stale(parent);
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s/%s", parent, name) >= (int)sizeof dir) return -1;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
  int i = s->n_cgroups++;
  snprintf(s->cgroups[i], sizeof s->cgroups[i], "%s", dir);
  snprintf(s->procs_files[i], sizeof s->procs_files[i], "%s/cgroup.procs", dir);
  return i;
}

static void append_desc(sb_limits *s, const char *fmt, long long v) {
  size_t len = strlen(s->desc);
  if (len >= sizeof s->desc) return;
  char part[64];
  snprintf(part, sizeof part, fmt, v);
  snprintf(s->desc + len, sizeof s->desc - len, "%s%s", s->desc[len - 1] == ':' ? " " : ", ", part);
}

/* Moves this process into PARENT/preft when it is the only process in
 * PARENT (so that PARENT may enable controllers for its children). */
static bool move_to_leaf(const char *parent) {
  char path[2 * PATH_MAX];
  snprintf(path, sizeof path, "%s/cgroup.procs", parent);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  int pid, n = 0;
  bool only_us = true;
  while (fscanf(f, "%d", &pid) == 1) {
    n++;
    only_us &= pid == (int)getpid();
  }
  fclose(f);
  if (!only_us || n == 0) return false;
  snprintf(path, sizeof path, "%s/preft", parent);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return false;
  char pid_text[32];
  snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());
  bool ok = write_file_in(path, "cgroup.procs", pid_text) == 0;
  errno = 0;
  return ok;
}

static bool setup_v2(sb_limits *s, const char *name) {
  const char *roots[] = {CGROUP_ROOT, CGROUP_ROOT "/unified"};
  char own[PATH_MAX];
  if (own_cgroup(NULL, own, sizeof own) != 0) return false;
  for (int r = 0; r < 2; r++) {
    char parent[PATH_MAX + 64], ctl_file[PATH_MAX + 128];
    snprintf(parent, sizeof parent, "%s%s", roots[r], strcmp(own, "/") == 0 ? "" : own);
    snprintf(ctl_file, sizeof ctl_file, "%s/cgroup.controllers", parent);
    bool need_mem = s->want.memory_mb > 0, need_pids = s->want.max_pids > 0, need_cpu = s->want.cpus > 0;
    if (!file_has_word(ctl_file, "pids") || (need_mem && !file_has_word(ctl_file, "memory"))) continue;
    /* Enable the controllers for children. cgroup v2 refuses that while
     * the cgroup holds processes ("no internal processes"): when preft is
     * alone in it, preft moves into a leaf of its own first. */
    snprintf(ctl_file, sizeof ctl_file, "%s/cgroup.subtree_control", parent);
    const char *enable = need_mem ? "+pids +memory" : "+pids";
    if (write_text(ctl_file, enable) != 0 &&
        !(errno == EBUSY && move_to_leaf(parent) && write_text(ctl_file, enable) == 0))
      continue;
    if (need_cpu) (void)write_text(ctl_file, "+cpu");
    int i = add_cgroup(s, parent, name);
    if (i < 0) continue;
    s->kind = SB_LIMITS_CGROUP_V2;
    snprintf(s->desc, sizeof s->desc, "cgroup v2:");
    char v[64];
    if (need_mem) {
      snprintf(v, sizeof v, "%lld", (long long)s->want.memory_mb << 20);
      if (write_file_in(s->cgroups[i], "memory.max", v) == 0)
        append_desc(s, "memory %lld MB", s->want.memory_mb);
      (void)write_file_in(s->cgroups[i], "memory.swap.max", "0");
    }
    if (need_pids) {
      snprintf(v, sizeof v, "%lld", (long long)s->want.max_pids);
      if (write_file_in(s->cgroups[i], "pids.max", v) == 0) {
        s->pids_enforced = true;
        append_desc(s, "pids %lld", s->want.max_pids);
      }
    }
    if (need_cpu) {
      snprintf(v, sizeof v, "%lld 100000", (long long)(s->want.cpus * 100000.0));
      if (write_file_in(s->cgroups[i], "cpu.max", v) == 0)
        append_desc(s, "cpu %lld%%", (long long)(s->want.cpus * 100));
    }
    return true;
  }
  return false;
}

static bool setup_v1(sb_limits *s, const char *name) {
  struct {
    const char *ctl;
    bool needed;
  } ctls[] = {{"pids", s->want.max_pids > 0}, {"memory", s->want.memory_mb > 0}, {"cpu", s->want.cpus > 0}};
  snprintf(s->desc, sizeof s->desc, "cgroup v1:");
  for (int c = 0; c < 3; c++) {
    if (!ctls[c].needed) continue;
    char own[PATH_MAX], parent[PATH_MAX + 64];
    if (own_cgroup(ctls[c].ctl, own, sizeof own) != 0) continue;
    snprintf(parent, sizeof parent, CGROUP_ROOT "/%s%s", ctls[c].ctl, strcmp(own, "/") == 0 ? "" : own);
    int i = add_cgroup(s, parent, name);
    if (i < 0) continue;
    char v[64];
    bool ok = false;
    if (c == 0) {
      snprintf(v, sizeof v, "%lld", (long long)s->want.max_pids);
      ok = write_file_in(s->cgroups[i], "pids.max", v) == 0;
      if (ok) {
        s->pids_enforced = true;
        append_desc(s, "pids %lld", s->want.max_pids);
      }
    } else if (c == 1) {
      snprintf(v, sizeof v, "%lld", (long long)s->want.memory_mb << 20);
      ok = write_file_in(s->cgroups[i], "memory.limit_in_bytes", v) == 0;
      if (ok) append_desc(s, "memory %lld MB", s->want.memory_mb);
    } else {
      snprintf(v, sizeof v, "%lld", (long long)(s->want.cpus * 100000.0));
      ok = write_file_in(s->cgroups[i], "cpu.cfs_period_us", "100000") == 0 &&
           write_file_in(s->cgroups[i], "cpu.cfs_quota_us", v) == 0;
      if (ok) append_desc(s, "cpu %lld%%", (long long)(s->want.cpus * 100));
    }
    if (!ok) {
      rmdir(s->cgroups[i]);
      s->n_cgroups--;
    }
  }
  if (s->n_cgroups == 0) return false;
  s->kind = SB_LIMITS_CGROUP_V1;
  return true;
}

void sb_limits_setup(sb_limits *s, const preft_sandbox_limits *want, const char *name) {
  memset(s, 0, sizeof *s);
  s->want = *want;
  if (want->memory_mb <= 0 && want->max_pids <= 0 && want->cpus <= 0) {
    snprintf(s->desc, sizeof s->desc, "none");
    return;
  }
  /* PREFT_SANDBOX_LIMITS=rlimit skips the cgroups (to test the fallback). */
  const char *force = getenv("PREFT_SANDBOX_LIMITS");
  bool cgroups = !(force && strcmp(force, "rlimit") == 0);
  if (cgroups && setup_v2(s, name)) return;
  sb_limits_remove(s);
  if (!cgroups || !setup_v1(s, name)) {
    s->kind = SB_LIMITS_RLIMIT;
    snprintf(s->desc, sizeof s->desc, "rlimit:");
  }
  bool need_mem = want->memory_mb > 0 && !strstr(s->desc, "memory");
  bool need_pids = want->max_pids > 0 && !s->pids_enforced;
  if (s->kind == SB_LIMITS_CGROUP_V1 && (need_mem || need_pids)) {
    size_t len = strlen(s->desc);
    snprintf(s->desc + len, sizeof s->desc - len, "; rlimit:");
  }
  if (need_mem) append_desc(s, "address space %lld MB", want->memory_mb);
  if (need_pids) append_desc(s, "processes %lld (watchdog)", want->max_pids);
}

/* Decimal text of v into buf (async-signal-safe). */
static void utoa(unsigned long v, char *buf) {
  char tmp[24];
  int n = 0;
  do tmp[n++] = (char)('0' + v % 10), v /= 10;
  while (v);
  for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = 0;
}

int sb_limits_enter(const sb_limits *s) {
  char pid[24];
  utoa((unsigned long)getpid(), pid);
  for (int i = 0; i < s->n_cgroups; i++)
    if (write_text(s->procs_files[i], pid) != 0) return -1;
  bool rl_memory = s->want.memory_mb > 0 && (s->kind == SB_LIMITS_RLIMIT || strstr(s->desc, "address space"));
  if (rl_memory) {
    /* Address space: a bound on memory per process (cruder than a cgroup:
     * mapped but untouched memory counts). */
    struct rlimit r = {(rlim_t)s->want.memory_mb << 20, (rlim_t)s->want.memory_mb << 20};
    if (setrlimit(RLIMIT_AS, &r) != 0) return -1;
  }
  return 0;
}

void sb_limits_kill(const sb_limits *s) {
  for (int i = 0; i < s->n_cgroups; i++) {
    if (s->kind == SB_LIMITS_CGROUP_V2 && write_file_in(s->cgroups[i], "cgroup.kill", "1") == 0) continue;
    for (int pass = 0; pass < 100; pass++) {
      FILE *f = fopen(s->procs_files[i], "r");
      if (!f) break;
      int pid, n = 0;
      while (fscanf(f, "%d", &pid) == 1) {
        kill(pid, SIGKILL);
        n++;
      }
      fclose(f);
      if (n == 0) break;
      struct timespec ts = {0, 2000000L};
      nanosleep(&ts, NULL);
    }
  }
}

void sb_limits_remove(sb_limits *s) {
  for (int i = s->n_cgroups - 1; i >= 0; i--) {
    /* A cgroup folder can be removed once its last process is reaped. */
    for (int tries = 0; tries < 200; tries++) {
      if (rmdir(s->cgroups[i]) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) {
        preft_log(PREFT_LOG_WARN, "sandbox: cannot remove cgroup %s: %s", s->cgroups[i], strerror(errno));
        break;
      }
      struct timespec ts = {0, 5000000L};
      nanosleep(&ts, NULL);
    }
  }
  s->n_cgroups = 0;
}
