/* run.h - a job: every task times every attempt, run as trials by
 * --n-concurrent worker threads, into a job folder
 *
 *   JOBS_DIR/JOB/                   JOB: the job's name (default: the start time)
 *     config.json                   what was run
 *     TASK__ATTEMPT/                one folder per trial (trial.h)
 *     result.json                   the summary below, plus the options and timings
 *
 * and a summary {"mean_reward", "n_trials", "n_errors", "pass_at_k",
 * "trials": [{"task", "attempt", "reward", "error"}]}: pass_at_k maps each
 * k <= attempts to the unbiased estimate 1 - C(n-c, k)/C(n, k) averaged over
 * tasks (c: attempts with reward >= 1). While it runs, a progress table is
 * drawn on stderr (redrawn in place on a terminal, a line per finished
 * trial otherwise).
 *
 * Sharded (shard_count N > 1): the job's trials, in order (task by task,
 * attempt by attempt), are dealt out round-robin: shard I (0-based) runs
 * trials k with k mod N = I. Every shard writes into the same folder
 * JOBS_DIR/JOB (--job-name is required: the shards must agree on it) its
 * trial folders, config.json and, instead of result.json,
 *   result-shard-<I+1>-of-<N>.json   its summary, plus each trial's place
 *                                    in the job ("slot"), the job's task
 *                                    names and attempts;
 * preft_run_merge (run_merge.c) then writes the one result.json a single
 * run would have written, pass@k recomputed over every shard's trials. */
#ifndef PREFT_TASKS_RUN_H
#define PREFT_TASKS_RUN_H

#include <signal.h>
#include <stdbool.h>

#include "tasks/trial.h"

typedef struct preft_run_opts {
  preft_task *const *tasks;
  int n_tasks;
  preft_agent_kind agent;
  const preft_terminus_opts *terminus;
  const char *commands; /* PREFT_AGENT_COMMANDS: the shell text of every trial */
  int n_concurrent;     /* <= 0: 1 */
  int n_attempts;       /* <= 0: 1 */
  double timeout_multiplier;
  const char *jobs_dir;
  const char *job_name; /* NULL: the start time, YYYY-MM-DD__HH-MM-SS */
  const char *cache_dir;
  const char *base_dir;
  bool progress;                /* draw the progress table on stderr */
  int shard_index, shard_count; /* shard_count > 1: run only shard shard_index (0-based) of the job */
  volatile sig_atomic_t
      *cancel; /* set (by a signal handler): stop all sandboxes, write what is done, return */
} preft_run_opts;

/* Runs the job. Returns 0 with *summary (caller frees with cJSON_Delete)
 * and *job_dir (heap) when the job ran, whatever the trials' rewards; -1
 * when the job folder could not be made. When *cancel becomes non-zero (a
 * signal handler adds 1), every process of the running trials is killed
 * (preft_trial_kill_all), the trials end and stop their sandboxes, and it
 * returns 1 with the summary of the trials that had finished; the job's
 * result.json says "interrupted": true. Should *cancel reach 2 before the
 * trials ended, it returns 2 at once without waiting for them: the caller
 * must exit without touching the job's memory. */
int preft_run_job(const preft_run_opts *o, struct cJSON **summary, char **job_dir, preft_error *err);

/* The pass@k estimate for n attempts with c successes. */
double preft_pass_at_k(int n, int c, int k);

/* A finished trial as the summary counts it. */
typedef struct preft_run_trial {
  int task, attempt; /* index into the job's tasks; 1-based */
  double reward;
  const char *error; /* "" or NULL: none */
} preft_run_trial;

/* The summary {"mean_reward", "n_trials", "n_errors", "pass_at_k",
 * "trials"} of n finished trials, listed in the order given; pass@k for
 * k <= attempts averages the tasks with at least k finished attempts. */
struct cJSON *preft_run_summary(const preft_run_trial *t, int n, const char *const *task_names, int n_tasks,
                                int attempts);

/* Merges the result-shard-*-of-N.json files of a sharded job's folder into
 * its result.json (the layout of a single run's, "shards": N added) and
 * returns the summary in *summary (cJSON_Delete). Fails, writing nothing,
 * naming the file, when a shard is missing, twice there, of another job
 * (other tasks, attempts or shard count) or holds a trial another holds. */
int preft_run_merge(const char *job_dir, struct cJSON **summary, preft_error *err);

#endif
