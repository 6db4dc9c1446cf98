/* run.c - a job of trials on worker threads, its folder, its progress
 * table and its summary (run.h). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "base/timer.h"
#include "io/json_util.h"
#include "tasks/run.h"

typedef enum { SLOT_PENDING = 0, SLOT_RUNNING, SLOT_DONE, SLOT_INTERRUPTED } slot_state;

typedef struct slot {
  int index;         /* place in the whole job (sharded: the shard runs a subset) */
  int task, attempt; /* attempt is 1-based */
  slot_state state;
  preft_trial_result res;
  double started;
} slot;

typedef struct job {
  const preft_run_opts *o;
  char *dir;
  slot *slots;
  int n, next, done;
  int active; /* workers still running */
  pthread_mutex_t mu;
  pthread_cond_t cv;
} job;

double preft_pass_at_k(int n, int c, int k) {
  if (k > n || k <= 0) return NAN;
  if (n - c < k) return 1.0;
  double miss = 1.0; /* C(n-c, k) / C(n, k) */
  for (int i = n - c + 1; i <= n; i++) miss *= 1.0 - (double)k / i;
  return 1.0 - miss;
}

/* how many times the job was told to stop (signals) */
static int cancel_level(const preft_run_opts *o) {
  return o->cancel ? __atomic_load_n(o->cancel, __ATOMIC_RELAXED) : 0;
}
static bool cancelled(const preft_run_opts *o) { return cancel_level(o) > 0; }

static void *worker(void *arg) {
  job *j = arg;
  const preft_run_opts *o = j->o;
  for (;;) {
    pthread_mutex_lock(&j->mu);
    if (j->next >= j->n || cancelled(o)) {
      j->active--;
      pthread_cond_broadcast(&j->cv);
      pthread_mutex_unlock(&j->mu);
      return NULL;
    }
    slot *s = &j->slots[j->next++];
    s->state = SLOT_RUNNING;
    s->started = preft_now();
    pthread_mutex_unlock(&j->mu);

    const preft_task *t = o->tasks[s->task];
    char name[512];
    snprintf(name, sizeof name, "%s__%d", t->name, s->attempt);
    char *trial_dir = preft_path_join(j->dir, name);
    preft_trial_opts to = {.task = t,
                           .agent = o->agent,
                           .terminus = o->terminus,
                           .commands = o->commands,
                           .trial_dir = trial_dir,
                           .cache_dir = o->cache_dir,
                           .base_dir = o->base_dir,
                           .timeout_multiplier = o->timeout_multiplier,
                           .attempt = s->attempt,
                           .cancel = o->cancel};
    preft_trial_result r;
    preft_error err;
    if (preft_trial_run(&to, &r, &err) != 0) {
      memset(&r, 0, sizeof r);
      snprintf(r.error, sizeof r.error, "%.500s", err.msg);
    }
    free(trial_dir);
    pthread_mutex_lock(&j->mu);
    s->res = r;
    s->state = cancelled(o) ? SLOT_INTERRUPTED : SLOT_DONE; /* cut short: not in the summary */
    j->done++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
  }
}

/* ---- progress ---- */

static void progress_line(const job *j, const slot *s) {
  const preft_task *t = j->o->tasks[s->task];
  fprintf(stderr, "[%d/%d] %s #%d: reward %g (%.1f s)%s%s\n", j->done, j->n, t->name, s->attempt,
          s->res.reward, s->res.t_total, s->res.error[0] ? " error: " : "", s->res.error);
}

/* a line for each trial finished since the last call (slot.started < 0: reported) */
static void report_finished(job *j) {
  for (int k = 0; k < j->n; k++) {
    slot *s = &j->slots[k];
    if (s->state == SLOT_DONE && s->started >= 0) {
      progress_line(j, s);
      s->started = -1;
    }
  }
}

/* the table, redrawn in place; returns the lines drawn */
static int progress_table(const job *j, int prev_lines, double t0) {
  const preft_run_opts *o = j->o;
  if (prev_lines) fprintf(stderr, "\033[%dA\033[J", prev_lines);
  int lines = 0;
  double sum = 0;
  int errors = 0;
  for (int k = 0; k < j->n; k++)
    if (j->slots[k].state == SLOT_DONE) {
      sum += j->slots[k].res.reward;
      errors += j->slots[k].res.error[0] != 0;
    }
  fprintf(stderr, "%s: %d/%d trials done, mean reward %.3f, %d errors, %.0f s\n", preft_agent_name(o->agent),
          j->done, j->n, j->done ? sum / j->done : 0.0, errors, preft_now() - t0);
  fprintf(stderr, "  %-32s %9s %8s %7s %6s  %s\n", "task", "done", "running", "reward", "errors", "");
  lines += 2;
  int shown = 0;
  for (int ti = 0; ti < o->n_tasks; ti++) {
    int done = 0, running = 0, errs = 0;
    double rs = 0, since = 0;
    for (int k = 0; k < j->n; k++) {
      const slot *s = &j->slots[k];
      if (s->task != ti) continue;
      if (s->state == SLOT_DONE) done++, rs += s->res.reward, errs += s->res.error[0] != 0;
      if (s->state == SLOT_RUNNING) running++, since = preft_now() - s->started;
    }
    /* many tasks: only those running or done, at most 30 rows */
    if (o->n_tasks > 30 && !running && !done) continue;
    if (++shown > 30) continue;
    char d[32], rw[16], run[24];
    snprintf(d, sizeof d, "%d/%d", done, o->n_attempts > 0 ? o->n_attempts : 1);
    if (done)
      snprintf(rw, sizeof rw, "%.3f", rs / done);
    else
      snprintf(rw, sizeof rw, "-");
    run[0] = '\0';
    if (running) snprintf(run, sizeof run, "%d (%.0fs)", running, since);
    fprintf(stderr, "  %-32.32s %9s %8s %7s %6d\n", o->tasks[ti]->name, d, run, rw, errs);
    lines++;
  }
  fflush(stderr);
  return lines;
}

/* ---- summary ---- */

cJSON *preft_run_summary(const preft_run_trial *t, int n, const char *const *task_names, int n_tasks,
                         int attempts) {
  cJSON *s = cJSON_CreateObject();
  double sum = 0;
  int errors = 0;
  cJSON *trials = cJSON_CreateArray();
  for (int k = 0; k < n; k++) {
    const preft_run_trial *x = &t[k];
    bool failed = x->error && x->error[0];
    sum += x->reward;
    errors += failed;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", task_names[x->task]);
    cJSON_AddNumberToObject(o, "attempt", x->attempt);
    cJSON_AddNumberToObject(o, "reward", x->reward);
    if (failed)
      cJSON_AddStringToObject(o, "error", x->error);
    else
      cJSON_AddNullToObject(o, "error");
    cJSON_AddItemToArray(trials, o);
  }
  cJSON_AddNumberToObject(s, "mean_reward", n ? sum / n : 0.0);
  cJSON_AddNumberToObject(s, "n_trials", n);
  cJSON_AddNumberToObject(s, "n_errors", errors);
  cJSON *pk = cJSON_AddObjectToObject(s, "pass_at_k");
  for (int k = 1; k <= attempts; k++) {
    double tot = 0;
    int tasks = 0;
    for (int ti = 0; ti < n_tasks; ti++) {
      int tn = 0, tc = 0;
      for (int q = 0; q < n; q++) {
        if (t[q].task != ti) continue;
        tn++;
        tc += t[q].reward >= 1.0;
      }
      if (tn < k) continue; /* not enough finished attempts (interrupted) */
      tot += preft_pass_at_k(tn, tc, k);
      tasks++;
    }
    char key[16];
    snprintf(key, sizeof key, "%d", k);
    if (tasks) cJSON_AddNumberToObject(pk, key, tot / tasks);
  }
  cJSON_AddItemToObject(s, "trials", trials);
  return s;
}

/* The finished trials of the job (its shard), in order. */
static cJSON *summary_json(const job *j) {
  const preft_run_opts *o = j->o;
  preft_run_trial *t = preft_xcalloc((size_t)j->n + 1, sizeof *t);
  const char **names = preft_xcalloc((size_t)o->n_tasks + 1, sizeof *names);
  for (int k = 0; k < o->n_tasks; k++) names[k] = o->tasks[k]->name;
  int n = 0;
  for (int k = 0; k < j->n; k++) {
    const slot *x = &j->slots[k];
    if (x->state == SLOT_DONE)
      t[n++] = (preft_run_trial){
          .task = x->task, .attempt = x->attempt, .reward = x->res.reward, .error = x->res.error};
  }
  cJSON *s = preft_run_summary(t, n, names, o->n_tasks, o->n_attempts > 0 ? o->n_attempts : 1);
  free(names);
  free(t);
  return s;
}

/* What a shard's result adds for preft_run_merge: its place, the job's task
 * names and attempts, and each finished trial's slot and timings (in the
 * order of "trials"). */
static void add_shard_fields(const job *j, cJSON *res) {
  const preft_run_opts *o = j->o;
  cJSON *sh = cJSON_AddObjectToObject(res, "shard");
  cJSON_AddNumberToObject(sh, "index", o->shard_index + 1);
  cJSON_AddNumberToObject(sh, "count", o->shard_count);
  cJSON_AddNumberToObject(res, "n_attempts", o->n_attempts > 0 ? o->n_attempts : 1);
  cJSON *names = cJSON_AddArrayToObject(res, "task_names");
  for (int k = 0; k < o->n_tasks; k++) cJSON_AddItemToArray(names, cJSON_CreateString(o->tasks[k]->name));
  cJSON *slots = cJSON_AddArrayToObject(res, "slots");
  for (int k = 0; k < j->n; k++) {
    const slot *x = &j->slots[k];
    if (x->state != SLOT_DONE) continue;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "slot", x->index);
    cJSON_AddNumberToObject(e, "overhead", x->res.overhead);
    cJSON_AddNumberToObject(e, "total", x->res.t_total);
    cJSON_AddItemToArray(slots, e);
  }
}

static void iso_time(time_t t, char *buf, size_t n, const char *fmt) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, n, fmt, &tm);
}

static int make_job_dir(const preft_run_opts *o, char **out, preft_error *err) {
  char name[256];
  if (o->shard_count > 1 && !o->job_name)
    return preft_fail(err, "a sharded run needs --job-name: every shard writes into the same job folder");
  if (o->job_name)
    snprintf(name, sizeof name, "%s", o->job_name);
  else
    iso_time(time(NULL), name, sizeof name, "%Y-%m-%d__%H-%M-%S");
  if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
    return preft_fail(err, "job name '%s' must be a plain folder name", name);
  if (preft_mkdir_p(o->jobs_dir, err) != 0) return -1;
  if (o->shard_count > 1) { /* the shards share the folder: whoever comes first makes it */
    char *dir = preft_path_join(o->jobs_dir, name);
    if (preft_mkdir_p(dir, err) != 0) {
      free(dir);
      return -1;
    }
    *out = dir;
    return 0;
  }
  for (int k = 1; k < 1000; k++) {
    char full[300];
    if (k == 1)
      snprintf(full, sizeof full, "%s", name);
    else
      snprintf(full, sizeof full, "%s-%d", name, k);
    char *dir = preft_path_join(o->jobs_dir, full);
    if (mkdir(dir, 0755) == 0) {
      *out = dir;
      return 0;
    }
    int e = errno;
    free(dir);
    if (e != EEXIST)
      return preft_fail(err, "%s/%s: cannot create the job folder: %s", o->jobs_dir, full, strerror(e));
  }
  return preft_fail(err, "%s: too many jobs named %s", o->jobs_dir, name);
}

int preft_run_job(const preft_run_opts *o, cJSON **summary, char **job_dir, preft_error *err) {
  int attempts = o->n_attempts > 0 ? o->n_attempts : 1, workers = o->n_concurrent > 0 ? o->n_concurrent : 1;
  job j = {.o = o};
  if (make_job_dir(o, &j.dir, err) != 0) return -1;
  time_t started = time(NULL);
  double t0 = preft_now();
  char ts[32];
  /* config.json: what was run */
  cJSON *cfg = cJSON_CreateObject();
  cJSON_AddStringToObject(cfg, "agent", preft_agent_name(o->agent));
  if (o->agent == PREFT_AGENT_TERMINUS && o->terminus) {
    if (o->terminus->url) cJSON_AddStringToObject(cfg, "url", o->terminus->url);
    if (o->terminus->model) cJSON_AddStringToObject(cfg, "model", o->terminus->model);
  }
  cJSON_AddNumberToObject(cfg, "n_concurrent", workers);
  cJSON_AddNumberToObject(cfg, "n_attempts", attempts);
  cJSON_AddNumberToObject(cfg, "timeout_multiplier", o->timeout_multiplier > 0 ? o->timeout_multiplier : 1);
  cJSON *tl = cJSON_AddArrayToObject(cfg, "tasks");
  for (int k = 0; k < o->n_tasks; k++) cJSON_AddItemToArray(tl, cJSON_CreateString(o->tasks[k]->dir));
  if (o->base_dir) cJSON_AddStringToObject(cfg, "base", o->base_dir);
  char *cfg_path = preft_path_join(j.dir, "config.json");
  int rc = preft_json_save(cfg_path, cfg, err);
  free(cfg_path);
  cJSON_Delete(cfg);
  if (rc != 0) {
    free(j.dir);
    return -1;
  }

  bool sharded = o->shard_count > 1;
  j.slots = preft_xcalloc((size_t)(o->n_tasks * attempts) + 1, sizeof *j.slots);
  for (int t = 0, k = 0; t < o->n_tasks; t++)
    for (int a = 1; a <= attempts; a++, k++)
      if (!sharded || k % o->shard_count == o->shard_index)
        j.slots[j.n++] = (slot){.index = k, .task = t, .attempt = a};
  pthread_mutex_init(&j.mu, NULL);
  pthread_cond_init(&j.cv, NULL);
  if (workers > j.n) workers = j.n > 0 ? j.n : 1; /* a shard may have no trial */
  pthread_t *th = preft_xcalloc((size_t)workers, sizeof *th);
  j.active = workers;
  for (int k = 0; k < workers; k++) pthread_create(&th[k], NULL, worker, &j);

  /* wait for the workers; the first interrupt kills every trial's processes (the
   * trials then end by themselves), a second one abandons the workers */
  bool tty = o->progress && isatty(STDERR_FILENO);
  int drawn = 0;
  bool interrupted = false, abandoned = false;
  pthread_mutex_lock(&j.mu);
  while (j.active > 0) {
    if (cancel_level(o) > 0 && !interrupted) {
      interrupted = true;
      pthread_mutex_unlock(&j.mu);
      fprintf(stderr, "preft tasks: interrupted: stopping every trial (again to leave at once)\n");
      preft_trial_kill_all();
      pthread_mutex_lock(&j.mu);
      drawn = 0;
    }
    if (cancel_level(o) > 1) {
      abandoned = true;
      break;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 250 * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&j.cv, &j.mu, &until);
    if (o->progress && tty)
      drawn = progress_table(&j, drawn, t0);
    else if (o->progress)
      report_finished(&j);
  }
  if (!abandoned) {
    pthread_mutex_unlock(&j.mu);
    for (int k = 0; k < workers; k++) pthread_join(th[k], NULL);
    pthread_mutex_lock(&j.mu);
    if (o->progress && tty)
      progress_table(&j, drawn, t0);
    else if (o->progress)
      report_finished(&j);
  }

  cJSON *s = summary_json(&j);
  cJSON *res = cJSON_Duplicate(s, true);
  cJSON_AddStringToObject(res, "job", j.dir);
  cJSON_AddStringToObject(res, "agent", preft_agent_name(o->agent));
  cJSON_AddBoolToObject(res, "interrupted", interrupted);
  iso_time(started, ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ");
  cJSON_AddStringToObject(res, "started_at", ts);
  iso_time(time(NULL), ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ");
  cJSON_AddStringToObject(res, "finished_at", ts);
  cJSON_AddNumberToObject(res, "seconds", preft_now() - t0);
  double ov_sum = 0, ov_max = 0;
  int ov_n = 0;
  for (int k = 0; k < j.n; k++)
    if (j.slots[k].state == SLOT_DONE && j.slots[k].res.t_total > 0) {
      double ov = j.slots[k].res.overhead;
      ov_sum += ov;
      if (ov > ov_max) ov_max = ov;
      ov_n++;
    }
  cJSON *ov = cJSON_AddObjectToObject(res, "overhead_seconds");
  cJSON_AddNumberToObject(ov, "mean", ov_n ? ov_sum / ov_n : 0);
  cJSON_AddNumberToObject(ov, "max", ov_max);
  char shard_name[64];
  if (sharded) {
    add_shard_fields(&j, res);
    snprintf(shard_name, sizeof shard_name, "result-shard-%d-of-%d.json", o->shard_index + 1, o->shard_count);
  }
  char *res_path = preft_path_join(j.dir, sharded ? shard_name : "result.json");
  rc = preft_json_save(res_path, res, err);
  free(res_path);
  cJSON_Delete(res);
  if (abandoned) {
    /* the workers still run: leave the job's memory to the exit */
    *summary = s;
    *job_dir = preft_xstrdup(j.dir);
    return rc != 0 ? -1 : 2;
  }
  pthread_mutex_unlock(&j.mu);
  pthread_mutex_destroy(&j.mu);
  pthread_cond_destroy(&j.cv);
  free(th);
  free(j.slots);
  if (rc != 0) {
    cJSON_Delete(s);
    free(j.dir);
    return -1;
  }
  *summary = s;
  *job_dir = j.dir;
  return interrupted ? 1 : 0;
}
