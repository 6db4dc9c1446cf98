/* cli_tasks.c - `preft tasks run | check | list | reward | base`: terminal
 * tasks in bubblewrap sandboxes (docs/TASKS.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "cli/cli.h"
#include "server/client.h"
#include "tasks/env_base.h"
#include "tasks/run.h"
#include "tasks/task.h"

#define TASKS_DEFAULT_URL "http://127.0.0.1:8080/v1"
#define EXIT_INTERRUPTED 130

static volatile sig_atomic_t g_cancel;

static void on_signal(int sig) {
  (void)sig;
  __atomic_add_fetch(&g_cancel, 1, __ATOMIC_RELAXED); /* read by the job's threads: 1 stop, 2 leave now */
}

static void catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* After a job abandoned at a second interrupt: its workers still run; leave now
 * (each sandbox dies with preft). */
static void exit_interrupted(void) {
  fflush(stdout);
  fflush(stderr);
  _exit(EXIT_INTERRUPTED);
}

/* The layer cache: --cache, else $PREFT_TASKS_CACHE, else ~/.cache/preft/tasks (heap). */
static char *cache_dir(const char *opt) {
  if (opt) return preft_xstrdup(opt);
  const char *env = getenv("PREFT_TASKS_CACHE");
  if (env && *env) return preft_xstrdup(env);
  const char *home = getenv("HOME");
  char buf[1024];
  snprintf(buf, sizeof buf, "%s/.cache/preft/tasks", home && *home ? home : "/tmp");
  return preft_xstrdup(buf);
}

/* The base: --base, else $PREFT_TASKS_BASE, else NULL (the host's root). A
 * folder made by `preft tasks base` (DIR/base.json beside DIR/root) means
 * its DIR/root. */
static const char *base_dir(const char *opt) {
  static char resolved[4096];
  const char *env = getenv("PREFT_TASKS_BASE");
  const char *b = opt ? opt : env && *env ? env : NULL;
  if (!b) return NULL;
  char *json = preft_path_join(b, "base.json"), *root = preft_path_join(b, "root");
  if (preft_file_exists(json) && preft_file_exists(root) && strlen(root) < sizeof resolved) {
    snprintf(resolved, sizeof resolved, "%s", root);
    b = resolved;
  }
  free(json);
  free(root);
  return b;
}

#define COMMON_HELP                                                                           \
  "  --cache DIR              built environment layers (default $PREFT_TASKS_CACHE, else\n"   \
  "                           ~/.cache/preft/tasks)\n"                                        \
  "  --base DIR               base root file system, or a folder `preft tasks base` made\n"   \
  "                           (default $PREFT_TASKS_BASE, else the host's root, read-only)\n" \
  "  --timeout-multiplier X   scale every timeout of the tasks (default 1)\n"

/* ---- run ---- */

static void run_usage(FILE *out) {
  fprintf(
      out,
      "usage: preft tasks run --path DIR [-t NAME]... --agent oracle|nop|terminus -o JOBS_DIR [options]\n"
      "       mpirun -np N preft tasks run ... --job-name JOB   (the trials spread over N ranks)\n\n"
      "Runs an agent on every task under DIR (or DIR itself when it is a task), each attempt a trial\n"
      "in a sandbox of its own, and writes JOBS_DIR/JOB/ (one folder per trial, result.json).\n"
      "Sharded (--shard I/N, or each rank of mpirun): the job's trials, task by task and attempt by\n"
      "attempt, are dealt out round-robin, shard I runs every N-th from the I-th; each shard writes its\n"
      "trial folders and result-shard-I-of-N.json into JOBS_DIR/JOB, and `preft tasks merge` (under\n"
      "mpirun: rank 0, when every rank is done) writes the job's result.json, as one run would.\n\n"
      "  --path DIR               the tasks (required)\n"
      "  -t, --task NAME          only this task (a shell pattern; repeatable)\n"
      "  --agent A                oracle (the task's solution), nop (nothing) or terminus (required)\n"
      "  --url URL                terminus: OpenAI-compatible endpoint (default " TASKS_DEFAULT_URL
      ")\n"
      "  --model M                terminus: the model to ask for (default: the first the endpoint lists)\n"
      "  --api-key KEY            terminus: bearer token (default $OPENAI_API_KEY, else none)\n"
      "  --max-episodes N         terminus: model turns per trial (default 0: until done or timeout)\n"
      "  --temperature T          terminus: sampling temperature (default 0.7)\n"
      "  --n-concurrent N         trials at once (default 1)\n"
      "  --n-attempts K           attempts per task (default 1); pass@k for k <= K\n"
      "  -o, --jobs-dir DIR       where the job folder goes (required)\n"
      "  --job-name NAME          the job folder's name (default: the start time; required sharded)\n"
      "  --shard I/N              run only shard I (1..N) of the job's trials\n"
      "  --json FILE              also write the summary there (\"-\": stdout)\n"
      "  --quiet                  no progress table\n" COMMON_HELP
      "\nThe summary {\"mean_reward\", \"n_trials\", \"n_errors\", \"pass_at_k\", \"trials\": [...]} is\n"
      "printed as JSON on stdout unless --json names a file.\n"
      "exit: 0 the job ran (whatever the rewards), 1 error, 2 bad command line, 130 interrupted\n");
}

static int print_or_write_json(const char *path, const cJSON *j) {
  if (!path || !strcmp(path, "-")) {
    char *s = cJSON_Print(j);
    printf("%s\n", s);
    free(s);
    fflush(stdout);
    return 0;
  }
  preft_error err;
  if (cli_write_json(path, j, &err) != 0) {
    fprintf(stderr, "preft tasks: %s\n", err.msg);
    return -1;
  }
  return 0;
}

/* The id of the first model the endpoint lists (GET URL/models), heap; NULL
 * (err) when it cannot be asked. "default" when it lists none. */
static char *first_model(const char *url, const char *api_key, preft_error *err) {
  preft_client *c = preft_client_new(url, api_key && *api_key ? api_key : NULL, 10);
  preft_http_response r;
  char *id = NULL;
  if (preft_client_get(c, "/models", &r, err) != 0) {
    preft_client_free(c);
    return NULL;
  }
  cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
  const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
  const cJSON *name = first ? cJSON_GetObjectItem(first, "id") : NULL;
  id = preft_xstrdup(cJSON_IsString(name) ? name->valuestring : "default");
  cJSON_Delete(j);
  preft_http_response_free(&r);
  preft_client_free(c);
  return id;
}

/* "I/N" with 1 <= I <= N: *index = I - 1, *count = N. */
static int parse_shard(const char *s, int *index, int *count) {
  int i, n, used = 0;
  if (sscanf(s, "%d/%d%n", &i, &n, &used) != 2 || s[used] != 0 || n < 1 || i < 1 || i > n) {
    fprintf(stderr, "preft tasks run: --shard expects I/N with 1 <= I <= N, got '%s'\n", s);
    return -1;
  }
  *index = i - 1;
  *count = n;
  return 0;
}

/* Prints (or writes to --json) the summary of a finished job; exit code. */
static int job_done(int r, cJSON *summary, char *job_dir, const char *json, bool print) {
  int rc = CLI_EXIT_OK;
  if (print && print_or_write_json(json, summary) != 0) rc = CLI_EXIT_ERROR;
  fprintf(stderr, "preft tasks run: job folder %s\n", job_dir);
  if (r == 2) exit_interrupted();
  if (r == 1) rc = EXIT_INTERRUPTED;
  cJSON_Delete(summary);
  free(job_dir);
  return rc;
}

static int tasks_run(int argc, char **argv, const cli_dist *d) {
  const char *path = NULL, *agent = NULL, *url = NULL, *model = NULL, *api_key = NULL, *jobs = NULL,
             *job_name = NULL, *json = NULL, *cache = NULL, *base = NULL, *shard = NULL;
  const char *names_v[256];
  cli_strs names = {names_v, 0, 256, false};
  long n_concurrent = 1, n_attempts = 1, max_episodes = 0;
  double mult = 1, temperature = 0.7;
  bool quiet = false;
  const cli_opt opts[] = {
      {"--path", NULL, CLI_STR, &path},
      {"--task", "-t", CLI_STRS, &names},
      {"--agent", NULL, CLI_STR, &agent},
      {"--url", NULL, CLI_STR, &url},
      {"--model", NULL, CLI_STR, &model},
      {"--api-key", NULL, CLI_STR, &api_key},
      {"--max-episodes", NULL, CLI_INT, &max_episodes, 0, 100000},
      {"--temperature", NULL, CLI_FLOAT, &temperature, 0, 10},
      {"--n-concurrent", NULL, CLI_INT, &n_concurrent, 1, 256},
      {"--n-attempts", NULL, CLI_INT, &n_attempts, 1, 1000},
      {"--timeout-multiplier", NULL, CLI_FLOAT, &mult, 0.001, 1000},
      {"--jobs-dir", "-o", CLI_STR, &jobs},
      {"--job-name", NULL, CLI_STR, &job_name},
      {"--shard", NULL, CLI_STR, &shard},
      {"--json", NULL, CLI_STR, &json},
      {"--cache", NULL, CLI_STR, &cache},
      {"--base", NULL, CLI_STR, &base},
      {"--quiet", NULL, CLI_FLAG, &quiet},
      {NULL},
  };
  int pr = cli_parse("tasks run", argc, argv, opts, run_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!path || !agent || !jobs) {
    fprintf(stderr, "preft tasks run: --path, --agent and -o are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  int shard_index = 0, shard_count = 1;
  if (shard && parse_shard(shard, &shard_index, &shard_count) != 0) return CLI_EXIT_USAGE;
  if (d->size > 1) {
    if (shard) {
      fprintf(stderr, "preft tasks run: under mpirun each rank is a shard; leave out --shard\n");
      return CLI_EXIT_USAGE;
    }
    shard_index = d->rank;
    shard_count = d->size;
    quiet = quiet || d->rank != 0; /* one progress display: rank 0's shard */
  }
  if (shard_count > 1 && !job_name) {
    fprintf(stderr,
            "preft tasks run: a sharded run needs --job-name (every shard writes into that job folder)\n");
    return CLI_EXIT_USAGE;
  }
  int kind = preft_agent_parse(agent);
  if (kind < 0) {
    fprintf(stderr, "preft tasks run: --agent expects oracle, nop or terminus, got '%s'\n", agent);
    return CLI_EXIT_USAGE;
  }
  if (kind != PREFT_AGENT_TERMINUS && (url || model || api_key || max_episodes)) {
    fprintf(stderr,
            "preft tasks run: --url, --model, --api-key and --max-episodes are for --agent terminus\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_task **tasks;
  int n_tasks;
  if (preft_task_list(path, names.items, names.n, &tasks, &n_tasks, &err) != 0) {
    fprintf(stderr, "preft tasks run: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  if (!api_key) api_key = getenv("OPENAI_API_KEY");
  if (!url) url = TASKS_DEFAULT_URL;
  char *model_found = NULL;
  if (kind == PREFT_AGENT_TERMINUS) {
    preft_client_global_init(); /* libcurl, before the workers start */
    if (!model && !(model = model_found = first_model(url, api_key, &err))) {
      fprintf(stderr, "preft tasks run: %s (is the server up? --model M skips this question)\n", err.msg);
      preft_task_list_free(tasks, n_tasks);
      return CLI_EXIT_ERROR;
    }
  }
  preft_terminus_opts term = {.url = url,
                              .model = model,
                              .api_key = api_key && *api_key ? api_key : NULL,
                              .max_episodes = (int)max_episodes,
                              .temperature = temperature};
  char *cache_path = cache_dir(cache);
  preft_run_opts ro = {.tasks = tasks,
                       .n_tasks = n_tasks,
                       .agent = (preft_agent_kind)kind,
                       .terminus = &term,
                       .n_concurrent = (int)n_concurrent,
                       .n_attempts = (int)n_attempts,
                       .timeout_multiplier = mult,
                       .jobs_dir = jobs,
                       .job_name = job_name,
                       .cache_dir = cache_path,
                       .base_dir = base_dir(base),
                       .progress = !quiet,
                       .shard_index = shard_index,
                       .shard_count = shard_count,
                       .cancel = &g_cancel};
  catch_signals();
  cJSON *summary;
  char *job_dir;
  int r = preft_run_job(&ro, &summary, &job_dir, &err);
  int rc = CLI_EXIT_OK;
  if (r < 0) {
    fprintf(stderr, "preft tasks run: %s\n", err.msg);
    rc = CLI_EXIT_ERROR;
  } else if (d->size > 1 && r == 0) {
    /* every rank's shard is written: rank 0 merges them into the job's result */
    char *dir = preft_xstrdup(job_dir);
    rc = job_done(r, summary, job_dir, NULL, false);
    cJSON *merged = NULL;
    if (cli_dist_barrier(d, 1, &err) != 0 || (d->rank == 0 && preft_run_merge(dir, &merged, &err) != 0)) {
      fprintf(stderr, "preft tasks run: %s\n", err.msg);
      rc = CLI_EXIT_ERROR;
    } else if (d->rank == 0) {
      rc = job_done(0, merged, preft_xstrdup(dir), json, true);
    }
    free(dir);
  } else {
    rc = job_done(r, summary, job_dir, json, true);
  }
  free(cache_path);
  free(model_found);
  preft_task_list_free(tasks, n_tasks);
  return rc;
}

/* ---- merge ---- */

static void merge_usage(FILE *out) {
  fprintf(out,
          "usage: preft tasks merge JOB_DIR [--json FILE]\n\n"
          "Writes JOB_DIR/result.json from the result-shard-I-of-N.json files that the shards of a\n"
          "sharded job (`preft tasks run --shard I/N --job-name JOB`) wrote there: the trials in the\n"
          "job's order, mean reward, errors and pass@k over all of them, as one run of the whole job\n"
          "would have written. Every shard must be there.\n\n"
          "  --json FILE   also write the summary there (\"-\": stdout, the default)\n"
          "exit: 0 merged, 1 a shard is missing or does not belong, 2 bad command line\n");
}

/* the first argument when it is not an option: removed from argv */
static const char *take_positional(int *argc, char **argv);

static int tasks_merge(int argc, char **argv) {
  const char *dir = take_positional(&argc, argv), *json = NULL;
  const cli_opt opts[] = {
      {"--json", NULL, CLI_STR, &json},
      {NULL},
  };
  int pr = cli_parse("tasks merge", argc, argv, opts, merge_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!dir) {
    fprintf(stderr, "preft tasks merge: which job folder? (preft tasks merge JOB_DIR)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  cJSON *summary;
  if (preft_run_merge(dir, &summary, &err) != 0) {
    fprintf(stderr, "preft tasks merge: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  int rc = print_or_write_json(json, summary) != 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
  cJSON_Delete(summary);
  return rc;
}

/* ---- check ---- */

static void check_usage(FILE *out) {
  fprintf(
      out,
      "usage: preft tasks check TASK_DIR [options]\n\n"
      "Builds the task's environment, then runs the oracle (must get reward 1) and nop (must get\n"
      "less) in fresh sandboxes: a task that passes is solvable and not solved from the start.\n\n"
      "  -o, --jobs-dir DIR       keep the trial folders there (default: a temporary folder, "
      "removed)\n" COMMON_HELP
      "\nexit: 0 the task checks out, 1 it does not (or an error), 2 bad command line, 130 interrupted\n");
}

/* the first argument when it is not an option: removed from argv */
static const char *take_positional(int *argc, char **argv) {
  if (*argc < 2 || argv[1][0] == '-') return NULL;
  const char *p = argv[1];
  for (int i = 1; i + 1 < *argc; i++) argv[i] = argv[i + 1];
  (*argc)--;
  return p;
}

static int rm_rf(const char *dir) {
  char *cmd = preft_xmalloc(strlen(dir) * 4 + 32);
  char *w = cmd + sprintf(cmd, "rm -rf -- '");
  for (const char *p = dir; *p; p++) {
    if (*p == '\'')
      w += sprintf(w, "'\\''");
    else
      *w++ = *p;
  }
  strcpy(w, "'");
  int r = system(cmd);
  free(cmd);
  return r;
}

/* One trial of `agent` in a job of its own; its reward and error. Returns 0,
 * -1 (err) when the job could not be made, 1 when interrupted. */
static int one_trial(preft_task *t, preft_agent_kind agent, const char *commands, const char *jobs,
                     const char *job_name, const char *cache, const char *base, double mult, double *reward,
                     char *error, size_t error_size, preft_error *err) {
  preft_task *list[1] = {t};
  preft_run_opts ro = {.tasks = list,
                       .n_tasks = 1,
                       .agent = agent,
                       .commands = commands,
                       .n_concurrent = 1,
                       .n_attempts = 1,
                       .timeout_multiplier = mult,
                       .jobs_dir = jobs,
                       .job_name = job_name,
                       .cache_dir = cache,
                       .base_dir = base,
                       .cancel = &g_cancel};
  cJSON *summary;
  char *job_dir;
  int r = preft_run_job(&ro, &summary, &job_dir, err);
  if (r < 0) return -1;
  if (r == 2) exit_interrupted();
  if (r == 1) {
    cJSON_Delete(summary);
    free(job_dir);
    return 1;
  }
  const cJSON *tr = cJSON_GetArrayItem(cJSON_GetObjectItem(summary, "trials"), 0);
  *reward = tr ? cJSON_GetObjectItem(tr, "reward")->valuedouble : 0;
  const cJSON *e = tr ? cJSON_GetObjectItem(tr, "error") : NULL;
  snprintf(error, error_size, "%s", cJSON_IsString(e) ? e->valuestring : "");
  cJSON_Delete(summary);
  free(job_dir);
  return 0;
}

static int tasks_check(int argc, char **argv) {
  const char *dir = take_positional(&argc, argv);
  const char *jobs = NULL, *cache = NULL, *base = NULL;
  double mult = 1;
  const cli_opt opts[] = {
      {"--jobs-dir", "-o", CLI_STR, &jobs},
      {"--cache", NULL, CLI_STR, &cache},
      {"--base", NULL, CLI_STR, &base},
      {"--timeout-multiplier", NULL, CLI_FLOAT, &mult, 0.001, 1000},
      {NULL},
  };
  int pr = cli_parse("tasks check", argc, argv, opts, check_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!dir) {
    fprintf(stderr, "preft tasks check: which task? (preft tasks check TASK_DIR)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_task *t;
  if (preft_task_load(dir, &t, &err) != 0) {
    fprintf(stderr, "preft tasks check: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  char tmpl[] = "/tmp/preft-tasks-check-XXXXXX";
  char *tmp = NULL;
  if (!jobs) {
    if (!(tmp = mkdtemp(tmpl))) {
      fprintf(stderr, "preft tasks check: cannot make a temporary folder\n");
      preft_task_free(t);
      return CLI_EXIT_ERROR;
    }
    jobs = tmp;
  }
  char *cache_path = cache_dir(cache);
  catch_signals();
  printf("task %s (%s)\n", t->name,
         t->format == PREFT_TASK_TB2 ? "Terminal-Bench 2.x" : "Terminal-Bench 1.0");
  fflush(stdout);
  int rc = CLI_EXIT_OK;
  const preft_agent_kind agents[2] = {PREFT_AGENT_ORACLE, PREFT_AGENT_NOP};
  for (int k = 0; k < 2; k++) {
    double reward;
    char error[512], name[64];
    snprintf(name, sizeof name, "check-%s", preft_agent_name(agents[k]));
    int r = one_trial(t, agents[k], NULL, jobs, name, cache_path, base_dir(base), mult, &reward, error,
                      sizeof error, &err);
    if (r != 0) {
      if (r < 0) fprintf(stderr, "preft tasks check: %s\n", err.msg);
      rc = r < 0 ? CLI_EXIT_ERROR : EXIT_INTERRUPTED;
      break;
    }
    bool ok = k == 0 ? reward >= 1.0 : reward < 1.0;
    printf("  %-7s reward %g: %s%s%s\n", preft_agent_name(agents[k]), reward,
           ok ? (k == 0 ? "passes" : "fails, as it should")
              : (k == 0 ? "FAILS" : "PASSES without doing anything"),
           error[0] ? "; error: " : "", error);
    fflush(stdout);
    if (!ok) rc = CLI_EXIT_ERROR;
  }
  if (rc != EXIT_INTERRUPTED) printf("%s\n", rc == CLI_EXIT_OK ? "ok" : "the task does not check out");
  if (tmp)
    rm_rf(tmp);
  else
    printf("trial folders under %s/check-oracle and %s/check-nop\n", jobs, jobs);
  free(cache_path);
  preft_task_free(t);
  return rc;
}

/* ---- list ---- */

static void list_usage(FILE *out) {
  fprintf(out,
          "usage: preft tasks list --path DIR [--json]\n\n"
          "Lists the tasks under DIR: name, format, difficulty, timeouts, internet. Every task is\n"
          "read in full: a malformed one is an error naming its file and field.\n\n"
          "  --path DIR   the tasks (required)\n"
          "  --json       one JSON object per task instead of the table\n"
          "exit: 0 ok, 1 a task is malformed, 2 bad command line\n");
}

static const char *meta_str(const preft_task *t, const char *key) {
  const cJSON *v = cJSON_GetObjectItem(t->metadata, key);
  return cJSON_IsString(v) ? v->valuestring : "-";
}

static int tasks_list(int argc, char **argv) {
  const char *path = NULL;
  bool json = false;
  const cli_opt opts[] = {
      {"--path", NULL, CLI_STR, &path},
      {"--json", NULL, CLI_FLAG, &json},
      {NULL},
  };
  int pr = cli_parse("tasks list", argc, argv, opts, list_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!path) {
    fprintf(stderr, "preft tasks list: --path is required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_task **tasks;
  int n;
  if (preft_task_list(path, NULL, 0, &tasks, &n, &err) != 0) {
    fprintf(stderr, "preft tasks list: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  if (!json)
    printf("%-32s %-6s %-10s %-22s %8s %8s %8s\n", "task", "format", "difficulty", "category", "agent_s",
           "tests_s", "internet");
  for (int k = 0; k < n; k++) {
    const preft_task *t = tasks[k];
    if (json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", t->name);
      cJSON_AddStringToObject(o, "dir", t->dir);
      cJSON_AddStringToObject(o, "format", t->format == PREFT_TASK_TB2 ? "tb2" : "tb1");
      cJSON_AddNumberToObject(o, "agent_timeout_sec", t->agent_timeout_s);
      cJSON_AddNumberToObject(o, "verifier_timeout_sec", t->verifier_timeout_s);
      cJSON_AddBoolToObject(o, "allow_internet", t->allow_internet);
      cJSON_AddNumberToObject(o, "memory_mb", (double)t->memory_mb);
      cJSON_AddNumberToObject(o, "cpus", t->cpus);
      cJSON_AddBoolToObject(o, "has_solution", t->solution_dir != NULL);
      cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(t->metadata, true));
      char *s = cJSON_PrintUnformatted(o);
      printf("%s\n", s);
      free(s);
      cJSON_Delete(o);
    } else {
      printf("%-32s %-6s %-10s %-22s %8.0f %8.0f %8s\n", t->name, t->format == PREFT_TASK_TB2 ? "tb2" : "tb1",
             meta_str(t, "difficulty"), meta_str(t, "category"), t->agent_timeout_s, t->verifier_timeout_s,
             t->allow_internet ? "yes" : "no");
    }
  }
  if (!json) printf("%d task%s\n", n, n == 1 ? "" : "s");
  preft_task_list_free(tasks, n);
  return CLI_EXIT_OK;
}

/* ---- reward ---- */

static void reward_usage(FILE *out) {
  fprintf(
      out,
      "usage: preft tasks reward --path DIR [options] < LINES\n\n"
      "Reads {\"prompt\", \"completion\", \"answer\"} JSON lines on stdin; for each, runs the completion\n"
      "as the agent's shell commands (the contents of its ``` fenced blocks when it has any, else\n"
      "all of it) in a fresh trial of the task named by \"answer\", and prints the reward on a line\n"
      "of its own (flushed), so that it serves as\n"
      "  preft train rl --reward-cmd \"preft tasks reward --path tasks\"\n"
      "A trial that fails to run prints 0 (the reason on stderr).\n\n"
      "  --path DIR               the tasks (required)\n"
      "  -o, --jobs-dir DIR       keep each trial's folder there (default: temporary, removed)\n" COMMON_HELP
      "\nexit: 0 at the end of stdin, 1 a line that is not such JSON or names no task,\n"
      "      2 bad command line, 130 interrupted\n");
}

static int tasks_reward(int argc, char **argv) {
  const char *path = NULL, *jobs = NULL, *cache = NULL, *base = NULL;
  double mult = 1;
  const cli_opt opts[] = {
      {"--path", NULL, CLI_STR, &path},
      {"--jobs-dir", "-o", CLI_STR, &jobs},
      {"--cache", NULL, CLI_STR, &cache},
      {"--base", NULL, CLI_STR, &base},
      {"--timeout-multiplier", NULL, CLI_FLOAT, &mult, 0.001, 1000},
      {NULL},
  };
  int pr = cli_parse("tasks reward", argc, argv, opts, reward_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!path) {
    fprintf(stderr, "preft tasks reward: --path is required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_task **tasks;
  int n_tasks;
  if (preft_task_list(path, NULL, 0, &tasks, &n_tasks, &err) != 0) {
    fprintf(stderr, "preft tasks reward: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  char tmpl[] = "/tmp/preft-tasks-reward-XXXXXX";
  char *tmp = NULL;
  if (!jobs) {
    if (!(tmp = mkdtemp(tmpl))) {
      fprintf(stderr, "preft tasks reward: cannot make a temporary folder\n");
      preft_task_list_free(tasks, n_tasks);
      return CLI_EXIT_ERROR;
    }
    jobs = tmp;
  }
  char *cache_path = cache_dir(cache);
  catch_signals();
  int rc = CLI_EXIT_OK;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0;
  while ((len = getline(&line, &cap, stdin)) >= 0) {
    lineno++;
    if (len == 0 || strspn(line, " \t\r\n") == (size_t)len) continue;
    cJSON *j = cJSON_Parse(line);
    const cJSON *completion = cJSON_GetObjectItem(j, "completion"),
                *answer = cJSON_GetObjectItem(j, "answer");
    if (!cJSON_IsObject(j) || !cJSON_IsString(completion) || !cJSON_IsString(answer)) {
      fprintf(stderr,
              "preft tasks reward: stdin:%ld: expected {\"prompt\", \"completion\", \"answer\"} with string "
              "completion and answer\n",
              lineno);
      cJSON_Delete(j);
      rc = CLI_EXIT_ERROR;
      break;
    }
    preft_task *t = NULL;
    for (int k = 0; k < n_tasks && !t; k++)
      if (!strcmp(tasks[k]->name, answer->valuestring)) t = tasks[k];
    if (!t) {
      fprintf(stderr, "preft tasks reward: stdin:%ld: answer '%s' names no task under %s\n", lineno,
              answer->valuestring, path);
      cJSON_Delete(j);
      rc = CLI_EXIT_ERROR;
      break;
    }
    char *commands = preft_trial_commands_from_completion(completion->valuestring);
    char name[64], error[512];
    snprintf(name, sizeof name, "reward-%ld", lineno);
    double reward = 0;
    int r = one_trial(t, PREFT_AGENT_COMMANDS, commands, jobs, name, cache_path, base_dir(base), mult,
                      &reward, error, sizeof error, &err);
    if (r == 1) { /* interrupted: no reward for this line */
      free(commands);
      cJSON_Delete(j);
      rc = EXIT_INTERRUPTED;
      break;
    }
    if (r < 0) {
      fprintf(stderr, "preft tasks reward: stdin:%ld: %s\n", lineno, err.msg);
      reward = 0;
    } else if (error[0]) {
      fprintf(stderr, "preft tasks reward: stdin:%ld (%s): %s\n", lineno, t->name, error);
    }
    printf("%.17g\n", reward);
    fflush(stdout);
    if (tmp) {
      char *d = preft_path_join(jobs, name);
      rm_rf(d);
      free(d);
    }
    free(commands);
    cJSON_Delete(j);
  }
  free(line);
  if (tmp) rm_rf(tmp);
  free(cache_path);
  preft_task_list_free(tasks, n_tasks);
  return rc;
}

/* ---- base ---- */

static void base_usage(FILE *out) {
  fprintf(
      out,
      "usage: preft tasks base -o DIR [--mirror URL --suite NAME] [--packages A,B]\n\n"
      "Makes a clean Debian root file system with debootstrap (minbase), from the mirror and release\n"
      "the host's apt uses, into DIR/root, for --base DIR (instead of the host's root). Once made,\n"
      "it is found again at once. Takes minutes and the network to the mirror; needs root.\n\n"
      "  -o, --out DIR      where the base goes: DIR/root, DIR/base.json, DIR/debootstrap.log (required)\n"
      "  --mirror URL       Debian mirror (default: the host's apt sources)\n"
      "  --suite NAME       release, such as bookworm (default: the host's)\n"
      "  --packages LIST    packages besides minbase, comma-separated (default " PREFT_ENV_BASE_PACKAGES
      ")\n"
      "  --timeout S        give up after S seconds (default 3600)\n"
      "exit: 0 ok, 1 error, 2 bad command line\n");
}

static int tasks_base(int argc, char **argv) {
  const char *out = NULL, *mirror = NULL, *suite = NULL, *packages = NULL;
  double timeout = 3600;
  const cli_opt opts[] = {
      {"--out", "-o", CLI_STR, &out},
      {"--mirror", NULL, CLI_STR, &mirror},
      {"--suite", NULL, CLI_STR, &suite},
      {"--packages", NULL, CLI_STR, &packages},
      {"--timeout", NULL, CLI_FLOAT, &timeout, 1, 1e6},
      {NULL},
  };
  int pr = cli_parse("tasks base", argc, argv, opts, base_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!out) {
    fprintf(stderr, "preft tasks base: -o is required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  char *log = preft_path_join(out, "debootstrap.log");
  preft_env_base_opts o = {
      .mirror = mirror, .suite = suite, .packages = packages, .log_path = log, .timeout_s = timeout};
  fprintf(stderr, "preft tasks base: debootstrap into %s/root (log: %s) ...\n", out, log);
  char *root;
  bool existed;
  preft_error err;
  int rc = preft_env_make_base(out, &o, &root, &existed, &err);
  free(log);
  if (rc != 0) {
    fprintf(stderr, "preft tasks base: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  fprintf(stderr, "preft tasks base: %s %s: use --base %s\n", root, existed ? "was there already" : "made",
          out);
  printf("%s\n", root);
  free(root);
  return CLI_EXIT_OK;
}

/* ---- dispatch ---- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft tasks COMMAND [options]   (preft tasks COMMAND --help for each)\n\n"
          "Terminal tasks (the Terminal-Bench 2.x and 1.0 formats) in bubblewrap sandboxes, without\n"
          "Docker (docs/TASKS.md).\n\ncommands:\n"
          "  run      run an agent on tasks: a folder per trial, a job result, a summary\n"
          "  merge    the job result of a sharded run (run --shard I/N) from its shards' results\n"
          "  check    build a task's environment and show that the oracle passes and nop fails\n"
          "  list     list the tasks under a folder (and check that each one reads)\n"
          "  reward   rewards for {\"prompt\", \"completion\", \"answer\"} lines on stdin (train rl "
          "--reward-cmd)\n"
          "  base     make a clean Debian base root file system with debootstrap\n");
}

int cli_tasks(int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  if (!strcmp(argv[1], "run")) {
    cli_dist d; /* under mpirun: this rank's shard of the job */
    int rc = cli_dist_open(&d, "tasks run");
    return rc != 0 ? rc : cli_dist_close(&d, tasks_run(argc - 1, argv + 1, &d));
  }
  if (!strcmp(argv[1], "merge")) return tasks_merge(argc - 1, argv + 1);
  if (!strcmp(argv[1], "check")) return tasks_check(argc - 1, argv + 1);
  if (!strcmp(argv[1], "list")) return tasks_list(argc - 1, argv + 1);
  if (!strcmp(argv[1], "reward")) return tasks_reward(argc - 1, argv + 1);
  if (!strcmp(argv[1], "base")) return tasks_base(argc - 1, argv + 1);
  fprintf(stderr, "preft tasks: unknown subcommand '%s' (run, merge, check, list, reward or base)\n",
          argv[1]);
  return CLI_EXIT_USAGE;
}
