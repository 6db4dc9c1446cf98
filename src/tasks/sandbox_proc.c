/* sandbox_proc.c - process trees on the host: every descendant of a process
 * found through /proc, and a kill that freezes the tree before it kills it,
 * so that a fork bomb cannot outrun it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tasks/sandbox_internal.h"

typedef struct {
  pid_t pid, ppid;
} proc_link;

/* The parent of pid from /proc/pid/stat ("pid (comm) state ppid ..."); -1 when gone. */
static pid_t read_ppid(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
  if (!p || p[1] == 0) return -1;
  int ppid = -1;
  char state;
  if (sscanf(p + 2, "%c %d", &state, &ppid) != 2) return -1;
  return (pid_t)ppid;
}

/* All (pid, ppid) pairs of the host; heap array. */
static proc_link *read_links(int *n_out) {
  int n = 0, cap = 1024;
  proc_link *links = malloc(sizeof *links * (size_t)cap);
  DIR *d = opendir("/proc");
  if (!d || !links) {
    if (d) closedir(d);
    free(links);
    *n_out = 0;
    return NULL;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    pid_t ppid = read_ppid((pid_t)pid);
    if (ppid < 0) continue;
    if (n == cap) {
      cap *= 2;
      proc_link *grown = realloc(links, sizeof *links * (size_t)cap);
      if (!grown) break;
      links = grown;
    }
    links[n++] = (proc_link){(pid_t)pid, ppid};
  }
  closedir(d);
  *n_out = n;
  return links;
}

int sb_proc_descendants(pid_t root, pid_t *pids, int cap) {
  int n_links;
  proc_link *links = read_links(&n_links);
  if (!links) return 0;
  int n = 0;
  /* Breadth first: the frontier is pids[done..n). A process appears once
   * because each has one parent. */
  pid_t *found = malloc(sizeof *found * (size_t)(n_links + 1));
  if (!found) {
    free(links);
    return 0;
  }
  int n_found = 0, head = 0;
  found[n_found++] = root;
  while (head < n_found) {
    pid_t parent = found[head++];
    for (int i = 0; i < n_links; i++)
      if (links[i].ppid == parent && links[i].pid != root) found[n_found++] = links[i].pid;
  }
  for (int i = 1; i < n_found && n < cap; i++) pids[n++] = found[i];
  free(found);
  free(links);
  return n;
}

/* The state letter of a process (R, S, T, Z, ...); 0 when it is gone. */
static char proc_state(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

void sb_proc_kill_tree(pid_t root) {
  enum { CAP = 65536 };
  pid_t *pids = malloc(sizeof *pids * CAP);
  if (!pids) {
    kill(root, SIGKILL);
    return;
  }
  /* Freeze: stop the root, then keep stopping descendants until every one
   * is seen stopped (SIGSTOP takes effect asynchronously: a fork under way
   * can still finish, and its child starts running). */
  kill(root, SIGSTOP);
  for (int pass = 0; pass < 500; pass++) {
    int n = sb_proc_descendants(root, pids, CAP);
    bool all = true;
    for (int i = 0; i < n; i++) {
      char st = proc_state(pids[i]);
      if (st != 'T' && st != 't' && st != 'Z' && st != 'X' && st != 0) {
        kill(pids[i], SIGSTOP);
        all = false;
      }
    }
    if (all) break;
    sleep_ms(1);
  }
  /* Kill: the whole frozen tree, then whatever is still there; then wait
   * (up to a second) until each has exited: a killed process lingers a
   * moment, and one reparented out of the tree is no longer found by it. */
  pid_t *killed = malloc(sizeof *killed * CAP);
  int n_killed = 0;
  for (int pass = 0; pass < 200; pass++) {
    int n = sb_proc_descendants(root, pids, CAP);
    for (int i = 0; i < n; i++) {
      kill(pids[i], SIGKILL);
      if (killed && n_killed < CAP) killed[n_killed++] = pids[i];
    }
    if (pass == 0) kill(root, SIGKILL);
    if (n == 0) break;
    sleep_ms(1);
  }
  for (int i = 0; killed && i < n_killed; i++)
    for (int tries = 0; tries < 1000; tries++) {
      char st = proc_state(killed[i]);
      if (st == 0 || st == 'Z' || st == 'X') break;
      sleep_ms(1); /* no second kill: the pid could belong to someone else by now */
    }
  free(killed);
  free(pids);
}
