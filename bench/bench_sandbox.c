/* bench_sandbox.c - what a trial's sandbox costs: start (overlay, mount
 * namespace, bubblewrap), one command (`true`, joined with setns), and stop
 * (PID namespace killed, overlay removed), on the host's root as the layer;
 * and the same command through a fresh `bwrap` per command, for scale.
 *
 * Usage: bench_sandbox [--runs N] [--dir DIR]   (root; default 20 runs)
 * Prints the best and median milliseconds of each phase. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "tasks/fs_tree.h"
#include "tasks/sandbox.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void row(const char *name, double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  printf("| %-34s | %8.2f | %8.2f |\n", name, v[0], v[n / 2]);
}

int main(int argc, char **argv) {
  int runs = 20;
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      dir = argv[++i];
    else {
      fprintf(stderr, "usage: bench_sandbox [--runs N] [--dir DIR]\n");
      return 2;
    }
  }
  if (runs < 1) runs = 1;
  char tmpl[] = "/var/tmp/preft-bench-sandbox-XXXXXX";
  if (!dir) dir = mkdtemp(tmpl);
  if (!dir) return 1;
  char *jobs = preft_path_join(dir, "jobs");
  char *trial = preft_path_join(jobs, "t");
  double *start = calloc((size_t)runs, sizeof(double)), *exec = calloc((size_t)runs, sizeof(double));
  double *stop = calloc((size_t)runs, sizeof(double)), *total = calloc((size_t)runs, sizeof(double));
  double *fresh = calloc((size_t)runs, sizeof(double));
  preft_error err;
  const char *cmd[] = {"true", NULL};
  for (int r = 0; r < runs; r++) {
    preft_sandbox_opts o = {.layer_dir = "/", .trial_dir = trial, .workdir = "/"};
    preft_sandbox *sb;
    double t0 = now_ms();
    if (preft_sandbox_start(&o, &sb, &err) != 0) {
      fprintf(stderr, "bench_sandbox: %s\n", err.msg);
      return 1;
    }
    double t1 = now_ms();
    preft_exec_result res;
    if (preft_sandbox_exec(sb, cmd, 10, NULL, &res, &err) != 0 || res.exit_code != 0) {
      fprintf(stderr, "bench_sandbox: exec failed: %s\n", err.msg);
      return 1;
    }
    double t2 = now_ms();
    preft_sandbox_stop(sb);
    double t3 = now_ms();
    start[r] = t1 - t0;
    exec[r] = t2 - t1;
    stop[r] = t3 - t2;
    total[r] = t3 - t0;
    double f0 = now_ms();
    int rc = system(
        "bwrap --ro-bind / / --proc /proc --dev /dev --unshare-pid --unshare-ipc --unshare-uts "
        "--unshare-net --die-with-parent true");
    fresh[r] = now_ms() - f0;
    if (rc != 0) fresh[r] = -1;
  }
  printf("sandbox on the host's root, %d runs (milliseconds)\n\n", runs);
  printf("| %-34s | %8s | %8s |\n|---|---:|---:|\n", "phase", "best", "median");
  row("start", start, runs);
  row("exec `true` (setns)", exec, runs);
  row("stop", stop, runs);
  row("start + exec + stop", total, runs);
  row("a fresh bwrap per command, `true`", fresh, runs);
  preft_fs_remove(dir, &err);
  free(jobs);
  free(trial);
  free(start);
  free(exec);
  free(stop);
  free(total);
  free(fresh);
  return 0;
}
