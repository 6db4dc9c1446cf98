/* sandbox.h - a trial's sandbox: bubblewrap over a private overlay, the
 * Docker-free stand-in for a task container (`preft tasks`).
 *
 * A sandbox is a long-lived set of namespaces (mount, PID, IPC, UTS, and a
 * network namespace with loopback only unless networking is asked for)
 * whose root is a writable overlay of its own over a read-only layer (the
 * environment built from the task's Dockerfile). Commands run inside it as
 * root, as `docker exec` would; when the sandbox stops, every process in it
 * is killed and the overlay removed, whatever happened before.
 *
 *   preft_sandbox_opts o = {.layer_dir = layer, .trial_dir = "jobs/t1", .workdir = "/app"};
 *   preft_sandbox *sb;
 *   if (preft_sandbox_start(&o, &sb, &err) != 0) ...
 *   const char *argv[] = {"bash", "-c", "make test", NULL};
 *   preft_exec_result r;
 *   preft_sandbox_exec(sb, argv, 60.0, "jobs/t1/agent/out.txt", &r, &err);
 *   preft_sandbox_stop(sb);
 */
#ifndef PREFT_TASKS_SANDBOX_H
#define PREFT_TASKS_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/base.h"

#define PREFT_SANDBOX_MAX_BINDS 8
#define PREFT_SANDBOX_MAX_MASKS 8

typedef struct preft_sandbox_bind {
  const char *host;   /* a folder or file on the host */
  const char *inside; /* where it appears inside */
  bool read_only;
} preft_sandbox_bind;

/* Resource limits of a trial; 0 means no limit. Applied through cgroup v2
 * where the machine allows it, otherwise through rlimits (per process). */
typedef struct preft_sandbox_limits {
  double cpus;
  int64_t memory_mb;
  int64_t storage_mb; /* size of the writable overlay (a tmpfs upper layer) */
  int64_t max_pids;
} preft_sandbox_limits;

typedef struct preft_sandbox_opts {
  const char *layer_dir;  /* the root file system, read-only: one folder, or an overlay lowerdir
                           * list, top layer first, joined by ':' */
  const char *trial_dir;  /* the trial's own folder on the host (overlay state lives under it) */
  const char *workdir;    /* working directory inside; NULL: / */
  bool network;           /* false: loopback only */
  const char *const *env; /* NAME=VALUE strings, NULL-terminated; NULL: a minimal PATH/HOME/TERM */
  preft_sandbox_bind binds[PREFT_SANDBOX_MAX_BINDS];
  int n_binds;
  preft_sandbox_limits limits;
  /* Host folders hidden inside behind an empty tmpfs (with the host's root
   * as the base, the sandbox could read them: the task's tests and
   * solution, other jobs). The trial's own folder and its parent (the job
   * folder, other trials) are always hidden; absent paths are skipped. */
  const char *masks[PREFT_SANDBOX_MAX_MASKS];
  int n_masks;
  /* NULL: the writable layer is the trial's own and removed at stop. Else
   * this folder is the writable (upper) layer and is kept after stop: an
   * environment build's result. Its overlay work folder is UPPER.work. */
  const char *upper_dir;
} preft_sandbox_opts;

typedef struct preft_sandbox preft_sandbox;

/* Starts the sandbox. Fails naming what was missing (bwrap, overlay support,
 * the layer) or what the kernel refused. */
int preft_sandbox_start(const preft_sandbox_opts *o, preft_sandbox **out, preft_error *err);

typedef struct preft_exec_result {
  int exit_code;    /* the command's exit status; 128+N when killed by signal N */
  bool timed_out;   /* killed at the timeout (with its whole process tree) */
  double seconds;   /* wall time */
  char limits[128]; /* which limits applied: "cgroup v2: memory, pids" or "rlimit: ..." */
} preft_exec_result;

/* Runs argv inside the sandbox (as root, in its namespaces and root, from
 * the workdir) with stdin from /dev/null; stdout and stderr appended to
 * log_path on the host (NULL: discarded). timeout_s <= 0: no timeout.
 * Returns 0 when the command ran (whatever its exit code), -1 when it could
 * not be run. */
int preft_sandbox_exec(preft_sandbox *sb, const char *const *argv, double timeout_s, const char *log_path,
                       preft_exec_result *res, preft_error *err);
/* preft_sandbox_exec from another working directory and/or with another
 * environment (NULL: the sandbox's). */
int preft_sandbox_exec_in(preft_sandbox *sb, const char *const *argv, const char *workdir,
                          const char *const *env, double timeout_s, const char *log_path,
                          preft_exec_result *res, preft_error *err);
/* Copies a host file or folder (recursively) to a path inside. */
int preft_sandbox_copy_in(preft_sandbox *sb, const char *host_path, const char *inside_path,
                          preft_error *err);
/* Reads a file inside the sandbox (at most max_bytes; more is an error),
 * resolving its path inside the sandbox: a symlink planted there cannot
 * point the read at a host file. *out is heap, NUL-terminated. */
int preft_sandbox_read_file(preft_sandbox *sb, const char *inside_path, size_t max_bytes, char **out,
                            size_t *out_size, preft_error *err);
/* The host path under which the sandbox's root is visible while it runs;
 * NULL when not available. Careful: a path opened through it follows an
 * absolute symlink planted inside to the HOST's file; read with
 * preft_sandbox_read_file, or read bound folders (/logs) on the host. */
const char *preft_sandbox_root(const preft_sandbox *sb);
/* Kills every process inside, unmounts and removes the overlay, frees sb.
 * Safe on NULL. Never fails silently: problems are logged. */
void preft_sandbox_stop(preft_sandbox *sb);
/* Kills and removes every sandbox still running in this process (called on
 * SIGINT/SIGTERM and at exit, so that Ctrl-C leaves nothing behind). Not
 * async-signal-safe: a signal handler sets a flag, the main thread calls
 * this. Should preft die without calling it, each sandbox dies with it
 * (bubblewrap --die-with-parent) and its mounts go with its namespace; only
 * an on-disk upper layer under the trial folder stays behind. */
void preft_sandbox_stop_all(void);
/* The limits the sandbox applies ("cgroup v1: pids 64, memory 512 MB"). */
const char *preft_sandbox_limits_desc(const preft_sandbox *sb);
/* The host pid of the sandbox's init (pid 1 inside), for tests and logs. */
int preft_sandbox_init_pid(const preft_sandbox *sb);

#endif
