/* sandbox_internal.h - the parts of a sandbox that sandbox.c composes:
 * resource limits (cgroup v2, cgroup v1 or rlimits) and process trees on the
 * host (finding, stopping and killing every descendant of a process). */
#ifndef PREFT_TASKS_SANDBOX_INTERNAL_H
#define PREFT_TASKS_SANDBOX_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "tasks/sandbox.h"

enum { SB_LIMITS_NONE = 0, SB_LIMITS_CGROUP_V2, SB_LIMITS_CGROUP_V1, SB_LIMITS_RLIMIT };

#define SB_MAX_CGROUPS 3 /* v1: one folder per controller (memory, pids, cpu) */

typedef struct sb_limits {
  int kind;
  preft_sandbox_limits want;
  char cgroups[SB_MAX_CGROUPS][PATH_MAX];          /* folders made for this sandbox */
  char procs_files[SB_MAX_CGROUPS][PATH_MAX + 16]; /* their cgroup.procs */
  int n_cgroups;
  bool pids_enforced; /* a pids controller holds max_pids */
  char desc[128];     /* said in preft_exec_result.limits */
} sb_limits;

/* Makes the cgroup(s) for a sandbox named `name` (or settles on rlimits).
 * Never fails: where nothing can be enforced, desc says so. */
void sb_limits_setup(sb_limits *s, const preft_sandbox_limits *want, const char *name);
/* In a child before exec: joins the cgroups and sets the rlimits.
 * Async-signal-safe (only system calls). Returns -1 on failure. */
int sb_limits_enter(const sb_limits *s);
/* Kills every process in the cgroups (until none is left). */
void sb_limits_kill(const sb_limits *s);
/* Removes the cgroup folders (after sb_limits_kill). */
void sb_limits_remove(sb_limits *s);

/* Every descendant of root (not root itself), found through /proc; returns
 * how many were written to pids (at most cap). */
int sb_proc_descendants(pid_t root, pid_t *pids, int cap);
/* Stops root and all its descendants, then kills them all (SIGKILL), until
 * none is left; a process that forks while this runs is caught because the
 * tree is frozen with SIGSTOP first. Does not reap root. */
void sb_proc_kill_tree(pid_t root);

#endif
