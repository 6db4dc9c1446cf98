/* trial.c - one trial of a task (trial.h). */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "base/timer.h"
#include "io/json_util.h"
#include "tasks/env_build.h"
#include "tasks/fs_tree.h"
#include "tasks/reward.h"
#include "tasks/sandbox.h"
#include "tasks/text_buf.h"
#include "tasks/trial.h"

/* The sandboxes of running trials, for preft_trial_kill_all (Ctrl-C). Each
 * trial stops its own sandbox; the kill only ends every process in them,
 * so that the trials' commands return and the trials end by themselves. */
static pthread_mutex_t g_running_mu = PTHREAD_MUTEX_INITIALIZER;
static preft_sandbox **g_running;
static int g_n_running, g_cap_running;
static bool g_killing;

static void kill_sandbox(preft_sandbox *sb) {
  int pid = preft_sandbox_init_pid(sb);
  if (pid > 0) kill(pid, SIGKILL); /* PID 1 of its namespace: the kernel ends every process in it */
}

/* Registers a started sandbox; false (and it is killed) when a kill-all came first. */
static bool register_running(preft_sandbox *sb) {
  pthread_mutex_lock(&g_running_mu);
  if (g_n_running == g_cap_running) {
    g_cap_running = g_cap_running ? 2 * g_cap_running : 16;
    g_running = preft_xrealloc(g_running, (size_t)g_cap_running * sizeof *g_running);
  }
  g_running[g_n_running++] = sb;
  bool killing = g_killing;
  if (killing) kill_sandbox(sb);
  pthread_mutex_unlock(&g_running_mu);
  return !killing;
}

static void unregister_running(preft_sandbox *sb) {
  pthread_mutex_lock(&g_running_mu);
  for (int k = 0; k < g_n_running; k++)
    if (g_running[k] == sb) {
      g_running[k] = g_running[--g_n_running];
      break;
    }
  pthread_mutex_unlock(&g_running_mu);
}

void preft_trial_kill_all(void) {
  pthread_mutex_lock(&g_running_mu);
  g_killing = true;
  for (int k = 0; k < g_n_running; k++) kill_sandbox(g_running[k]);
  pthread_mutex_unlock(&g_running_mu);
}

const char *preft_agent_name(preft_agent_kind k) {
  switch (k) {
    case PREFT_AGENT_ORACLE:
      return "oracle";
    case PREFT_AGENT_NOP:
      return "nop";
    case PREFT_AGENT_TERMINUS:
      return "terminus";
    case PREFT_AGENT_COMMANDS:
      return "commands";
  }
  return "?";
}

int preft_agent_parse(const char *s) {
  if (!strcmp(s, "oracle")) return PREFT_AGENT_ORACLE;
  if (!strcmp(s, "nop")) return PREFT_AGENT_NOP;
  if (!strcmp(s, "terminus")) return PREFT_AGENT_TERMINUS;
  return -1;
}

char *preft_trial_commands_from_completion(const char *c) {
  text_buf b = {0};
  const char *p = c;
  bool any = false;
  for (;;) {
    const char *open = strstr(p, "```");
    if (!open) break;
    const char *body = strchr(open + 3, '\n'); /* past the info string (```bash) */
    if (!body) break;
    body++;
    const char *close = strstr(body, "```");
    if (!close) break;
    text_buf_put(&b, body, (size_t)(close - body));
    if (close > body && close[-1] != '\n') text_buf_putc(&b, '\n');
    any = true;
    p = close + 3;
  }
  if (!any) {
    text_buf_free(&b);
    return preft_xstrdup(c);
  }
  return text_buf_take(&b);
}

static void set_error(preft_trial_result *r, const char *fmt, const char *detail) {
  if (r->error[0]) return; /* the first error is the one that counts */
  char msg[2200];
  snprintf(msg, sizeof msg, fmt, detail);
  size_t n = strlen(msg);
  if (n >= sizeof r->error) n = sizeof r->error - 1;
  memcpy(r->error, msg, n);
  r->error[n] = 0;
}

static bool cancelled(const preft_trial_opts *o) {
  return o->cancel && __atomic_load_n(o->cancel, __ATOMIC_RELAXED);
}

static void iso_now(char *buf, size_t n) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* NAME=VALUE lists merged: later ones override earlier ones of the same name (heap array of borrowed strings)
 */
static const char **merge_env(char *const *a, char *const *b) {
  int n = 0;
  for (char *const *p = a; p && *p; p++) n++;
  for (char *const *p = b; p && *p; p++) n++;
  const char **out = preft_xcalloc((size_t)n + 1, sizeof *out);
  int k = 0;
  char *const *lists[2] = {a, b};
  for (int l = 0; l < 2; l++)
    for (char *const *p = lists[l]; p && *p; p++) {
      size_t nl = strcspn(*p, "=");
      int j = 0;
      while (j < k && !(strncmp(out[j], *p, nl) == 0 && out[j][nl] == '=')) j++;
      out[j] = *p;
      if (j == k) k++;
    }
  out[k] = NULL;
  return out;
}

static cJSON *result_json(const preft_trial_opts *o, const preft_trial_result *r, const char *started,
                          const preft_reward *rw) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "task", o->task->name);
  cJSON_AddStringToObject(j, "task_dir", o->task->dir);
  cJSON_AddNumberToObject(j, "attempt", o->attempt);
  cJSON_AddStringToObject(j, "agent", preft_agent_name(o->agent));
  cJSON_AddNumberToObject(j, "reward", r->reward);
  cJSON_AddStringToObject(j, "reward_source", r->reward_source);
  if (r->reward_ok)
    cJSON_AddNullToObject(j, "reward_error");
  else
    cJSON_AddStringToObject(j, "reward_error", r->reward_reason);
  if (rw && rw->values) cJSON_AddItemToObject(j, "rewards", cJSON_Duplicate(rw->values, true));
  if (r->error[0])
    cJSON_AddStringToObject(j, "error", r->error);
  else
    cJSON_AddNullToObject(j, "error");
  cJSON_AddBoolToObject(j, "agent_timed_out", r->agent_timed_out);
  cJSON_AddBoolToObject(j, "verifier_timed_out", r->verifier_timed_out);
  cJSON_AddNumberToObject(j, "verifier_exit_code", r->verifier_exit);
  cJSON_AddBoolToObject(j, "env_cached", r->env_cached);
  cJSON_AddStringToObject(j, "limits", r->limits);
  cJSON *tok = cJSON_AddObjectToObject(j, "tokens");
  cJSON_AddNumberToObject(tok, "prompt", (double)r->prompt_tokens);
  cJSON_AddNumberToObject(tok, "completion", (double)r->completion_tokens);
  cJSON_AddNumberToObject(j, "episodes", r->episodes);
  cJSON *t = cJSON_AddObjectToObject(j, "timings");
  cJSON_AddNumberToObject(t, "env_build", r->t_env);
  cJSON_AddNumberToObject(t, "sandbox_start", r->t_start);
  cJSON_AddNumberToObject(t, "agent", r->t_agent);
  cJSON_AddNumberToObject(t, "copy_tests", r->t_copy);
  cJSON_AddNumberToObject(t, "verifier", r->t_verifier);
  cJSON_AddNumberToObject(t, "sandbox_stop", r->t_stop);
  cJSON_AddNumberToObject(t, "total", r->t_total);
  cJSON_AddNumberToObject(t, "overhead", r->overhead);
  cJSON_AddNumberToObject(j, "timeout_multiplier", o->timeout_multiplier > 0 ? o->timeout_multiplier : 1);
  cJSON_AddStringToObject(j, "started_at", started);
  char done[32];
  iso_now(done, sizeof done);
  cJSON_AddStringToObject(j, "finished_at", done);
  return j;
}

/* the agent's step; errors go into res */
static void run_agent(const preft_trial_opts *o, preft_sandbox *sb, const char *agent_dir, double timeout,
                      preft_trial_result *res) {
  const preft_task *t = o->task;
  preft_error e;
  preft_exec_result x;
  char *log = NULL;
  double t0 = preft_now();
  switch (o->agent) {
    case PREFT_AGENT_NOP:
      break;
    case PREFT_AGENT_ORACLE: {
      if (!t->solution_dir) {
        set_error(res, "oracle: the task has no reference solution (%s)",
                  t->format == PREFT_TASK_TB2 ? "solution/solve.sh" : "solution.sh");
        break;
      }
      char script[300];
      snprintf(script, sizeof script, "/solution/%s", t->solution_script);
      const char *argv[] = {"bash", script, NULL};
      log = preft_path_join(agent_dir, "oracle.txt");
      if (preft_sandbox_exec(sb, argv, timeout, log, &x, &e) != 0)
        set_error(res, "oracle: %s", e.msg);
      else if (x.timed_out)
        res->agent_timed_out = true;
      if (x.limits[0]) snprintf(res->limits, sizeof res->limits, "%s", x.limits);
      break;
    }
    case PREFT_AGENT_COMMANDS: {
      char *script = preft_path_join(agent_dir, "commands.sh");
      const char *text = o->commands ? o->commands : "";
      if (preft_write_atomic(script, text, strlen(text), &e) != 0) {
        set_error(res, "commands: %s", e.msg);
        free(script);
        break;
      }
      free(script);
      const char *argv[] = {"bash", "/logs/agent/commands.sh", NULL};
      log = preft_path_join(agent_dir, "commands.txt");
      if (preft_sandbox_exec(sb, argv, timeout, log, &x, &e) != 0)
        set_error(res, "commands: %s", e.msg);
      else if (x.timed_out)
        res->agent_timed_out = true;
      if (x.limits[0]) snprintf(res->limits, sizeof res->limits, "%s", x.limits);
      break;
    }
    case PREFT_AGENT_TERMINUS: {
      preft_terminus_opts to = o->terminus ? *o->terminus : (preft_terminus_opts){0};
      to.log_dir = agent_dir;
      preft_agent_result ar;
      memset(&ar, 0, sizeof ar);
      if (preft_terminus_run(sb, t->instruction, &to, timeout, &ar, &e) != 0) {
        set_error(res, "terminus: %s", e.msg);
      } else {
        if (ar.timed_out) res->agent_timed_out = true;
        if (ar.error[0]) set_error(res, "terminus: %s", ar.error);
      }
      res->prompt_tokens = ar.prompt_tokens;
      res->completion_tokens = ar.completion_tokens;
      res->episodes = ar.episodes;
      break;
    }
  }
  free(log);
  res->t_agent = preft_now() - t0;
  if (res->agent_timed_out) {
    char msg[64];
    snprintf(msg, sizeof msg, "%.1f", timeout);
    set_error(res, "agent timed out after %s s", msg);
  }
}

/* copies the tests in and runs them; the reward into res */
static void run_verifier(const preft_trial_opts *o, preft_sandbox *sb, const char *verifier_dir,
                         double timeout, preft_trial_result *res, preft_reward *rw) {
  const preft_task *t = o->task;
  preft_error e;
  double t0 = preft_now();
  /* /logs/verifier was writable all along: what the agent left there (a
   * reward.txt of its own) must not pass for the verifier's. */
  if (preft_fs_empty(verifier_dir, &e) != 0) {
    set_error(res, "emptying the verifier folder: %s", e.msg);
    return;
  }
  if (t->tests_dir && preft_sandbox_copy_in(sb, t->tests_dir, "/tests", &e) != 0) {
    set_error(res, "copying the tests in: %s", e.msg);
    return;
  }
  const char *name = strrchr(t->test_script, '/') + 1;
  char inside[300];
  snprintf(inside, sizeof inside, "/tests/%s", name);
  if (t->format == PREFT_TASK_TB1 && preft_sandbox_copy_in(sb, t->test_script, inside, &e) != 0) {
    set_error(res, "copying run-tests.sh in: %s", e.msg);
    return;
  }
  res->t_copy = preft_now() - t0;
  /* env NAME=VALUE... bash /tests/test.sh */
  int n_env = 0;
  for (char **p = t->verifier_env; *p; p++) n_env++;
  const char **argv = preft_xcalloc((size_t)n_env + 5, sizeof *argv);
  int k = 0;
  argv[k++] = "env";
  for (int j = 0; j < n_env; j++) argv[k++] = t->verifier_env[j];
  if (t->format == PREFT_TASK_TB1) argv[k++] = "TEST_DIR=/tests";
  argv[k++] = "bash";
  argv[k++] = inside;
  argv[k] = NULL;
  char *log = preft_path_join(verifier_dir, "test-stdout.txt");
  preft_exec_result x;
  t0 = preft_now();
  int rc = preft_sandbox_exec(sb, argv, timeout, log, &x, &e);
  res->t_verifier = preft_now() - t0;
  free(log);
  free(argv);
  if (rc != 0) {
    set_error(res, "verifier: %s", e.msg);
    return;
  }
  if (!res->limits[0] && x.limits[0]) snprintf(res->limits, sizeof res->limits, "%s", x.limits);
  res->verifier_exit = x.exit_code;
  if (x.timed_out) {
    res->verifier_timed_out = true;
    char msg[64];
    snprintf(msg, sizeof msg, "%.1f", timeout);
    set_error(res, "verifier timed out after %s s", msg);
    snprintf(res->reward_reason, sizeof res->reward_reason, "the verifier timed out");
    return;
  }
  if (t->format == PREFT_TASK_TB1) {
    res->reward = x.exit_code == 0 ? 1.0 : 0.0;
    res->reward_ok = true;
    snprintf(res->reward_source, sizeof res->reward_source, "exit status");
    return;
  }
  preft_reward_read(verifier_dir, rw);
  res->reward = rw->reward;
  res->reward_ok = rw->ok;
  snprintf(res->reward_source, sizeof res->reward_source, "%s", rw->source);
  snprintf(res->reward_reason, sizeof res->reward_reason, "%s", rw->reason);
}

int preft_trial_run(const preft_trial_opts *o, preft_trial_result *res, preft_error *err) {
  const preft_task *t = o->task;
  double mult = o->timeout_multiplier > 0 ? o->timeout_multiplier : 1.0;
  memset(res, 0, sizeof *res);
  res->verifier_exit = -1;
  snprintf(res->reward_reason, sizeof res->reward_reason, "the verifier did not run");
  char started[32];
  iso_now(started, sizeof started);
  double t_begin = preft_now();
  char *agent_dir = preft_path_join(o->trial_dir, "agent"),
       *verifier_dir = preft_path_join(o->trial_dir, "verifier");
  char *build_log = preft_path_join(o->trial_dir, "env-build.log"),
       *result_path = preft_path_join(o->trial_dir, "result.json");
  preft_env_layer layer;
  memset(&layer, 0, sizeof layer);
  preft_sandbox *sb = NULL;
  preft_reward rw;
  memset(&rw, 0, sizeof rw);
  const char **env = NULL;
  preft_error e;
  int rc = -1;
  bool have_layer = false;
  char *task_abs = NULL, *task_parent = NULL;
  if (preft_mkdir_p(agent_dir, err) != 0 || preft_mkdir_p(verifier_dir, err) != 0) goto out;

  /* 1. the environment */
  double t0 = preft_now();
  preft_env_build_opts bo = {.env_dir = t->env_dir,
                             .base_dir = o->base_dir,
                             .cache_dir = o->cache_dir,
                             .timeout_s = t->build_timeout_s * mult,
                             .network = true,
                             .log_path = build_log};
  if (cancelled(o))
    set_error(res, "%s", "interrupted");
  else if (preft_env_build(&bo, &layer, &e) != 0)
    set_error(res, "environment: %s", e.msg);
  else
    have_layer = true;
  res->t_env = preft_now() - t0;
  res->env_cached = have_layer && layer.cached;

  /* 2. the sandbox */
  if (have_layer && !cancelled(o)) {
    env = merge_env(layer.env, t->env);
    preft_sandbox_opts so = {.layer_dir = layer.lower,
                             .trial_dir = o->trial_dir,
                             .workdir = t->workdir ? t->workdir : layer.workdir,
                             .network = t->allow_internet,
                             .env = env,
                             .limits = {.cpus = t->cpus,
                                        .memory_mb = t->memory_mb,
                                        .storage_mb = t->storage_mb,
                                        .max_pids = o->max_pids > 0 ? o->max_pids : 1024}};
    so.binds[so.n_binds++] = (preft_sandbox_bind){agent_dir, "/logs/agent", false};
    so.binds[so.n_binds++] = (preft_sandbox_bind){verifier_dir, "/logs/verifier", false};
    if (o->agent == PREFT_AGENT_ORACLE && t->solution_dir)
      so.binds[so.n_binds++] = (preft_sandbox_bind){t->solution_dir, "/solution", true};
    /* with the host's root as the base, the task's folder (tests, solution) and its
     * parent (the other tasks) would be readable inside: hidden */
    task_abs = realpath(t->dir, NULL);
    if (task_abs) {
      so.masks[so.n_masks++] = task_abs;
      task_parent = preft_xstrdup(task_abs);
      char *slash = strrchr(task_parent, '/');
      if (slash) *slash = 0;
      if (strchr(task_parent + 1, '/')) so.masks[so.n_masks++] = task_parent; /* not "/" nor "/tmp" */
    }
    t0 = preft_now();
    int sr = preft_sandbox_start(&so, &sb, &e);
    res->t_start = preft_now() - t0;
    if (sr != 0) {
      sb = NULL;
      set_error(res, "sandbox: %s", e.msg);
    } else if (!register_running(sb)) {
      set_error(res, "%s", "interrupted");
    }
  }

  /* 3. the agent, 4. the tests */
  if (sb && !cancelled(o)) run_agent(o, sb, agent_dir, t->agent_timeout_s * mult, res);
  if (sb && !cancelled(o)) run_verifier(o, sb, verifier_dir, t->verifier_timeout_s * mult, res, &rw);
  if (cancelled(o)) set_error(res, "%s", "interrupted");

  /* 5. always stop */
  t0 = preft_now();
  if (sb) {
    unregister_running(sb);
    preft_sandbox_stop(sb);
  }
  res->t_stop = preft_now() - t0;
  res->t_total = preft_now() - t_begin;
  res->overhead = res->t_total - res->t_agent - res->t_verifier;
  if (!res->reward_ok) res->reward = 0;

  cJSON *j = result_json(o, res, started, &rw);
  rc = preft_json_save(result_path, j, err);
  cJSON_Delete(j);
out:
  preft_reward_clear(&rw);
  free(env);
  free(task_abs);
  free(task_parent);
  if (have_layer) preft_env_layer_clear(&layer);
  free(agent_dir);
  free(verifier_dir);
  free(build_log);
  free(result_path);
  return rc;
}
