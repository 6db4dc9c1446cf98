/* task.h - a terminal task as a folder, in the layout Harbor reads for
 * Terminal-Bench 2.x, or the older Terminal-Bench 1.0 layout.
 *
 *   TB 2.x                               TB 1.0
 *   NAME/instruction.md                  NAME/task.yaml (instruction: ...)
 *   NAME/task.toml                       NAME/Dockerfile (+ build context)
 *   NAME/environment/Dockerfile (+ ...)  NAME/solution.sh
 *   NAME/solution/solve.sh (+ ...)       NAME/run-tests.sh
 *   NAME/tests/test.sh (+ its files)     NAME/tests/ (+ its files)
 *
 * task.toml (every table and key optional; defaults as Harbor's):
 *   version = "1.0"
 *   [task]         free-form (name, description, ...), kept as metadata
 *   [metadata]     free-form (author, difficulty, category, tags, ...)
 *   [verifier]     timeout_sec = 600.0, env = {NAME = "value"}
 *   [agent]        timeout_sec = 600.0
 *   [environment]  build_timeout_sec = 600.0, docker_image = "...", cpus = 1,
 *                  memory_mb = 2048 (or memory = "2G"), storage_mb = 10240
 *                  (or storage = "10G"), allow_internet = true,
 *                  env = {NAME = "value"}, workdir = "/app"
 * A key of a known table with the wrong type, a negative limit, a size that
 * does not parse, a missing required file: an error naming the file and the
 * field ("tasks/x/task.toml:12: [environment] memory: ..."). Unknown keys are
 * ignored (newer Harbor versions add some).
 *
 *   preft_task *t;
 *   if (preft_task_load("tasks/fix-build", &t, &err) != 0) ...
 *   preft_task_free(t);
 */
#ifndef PREFT_TASKS_TASK_H
#define PREFT_TASKS_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/base.h"

typedef enum { PREFT_TASK_TB2 = 0, PREFT_TASK_TB1 } preft_task_format;

typedef struct preft_task {
  char *name; /* the folder's name */
  char *dir;  /* the folder as given */
  preft_task_format format;
  char *instruction; /* instruction.md, or task.yaml's instruction (or its first description) */

  double agent_timeout_s;    /* [agent] timeout_sec; TB 1.0: max_agent_timeout_sec (360) */
  double verifier_timeout_s; /* [verifier] timeout_sec; TB 1.0: max_test_timeout_sec (60) */
  char **verifier_env;       /* NAME=VALUE from [verifier] env, NULL-terminated (never NULL) */

  double build_timeout_s; /* [environment] build_timeout_sec */
  char *docker_image;     /* NULL when not given (informational: every image maps to the base) */
  double cpus;            /* 0: no limit */
  int64_t memory_mb;      /* 0: no limit */
  int64_t storage_mb;     /* 0: no limit */
  bool allow_internet;    /* false: loopback only */
  char **env;             /* NAME=VALUE from [environment] env, NULL-terminated (never NULL) */
  char *workdir;          /* [environment] workdir; NULL: the Dockerfile's last WORKDIR */

  char *env_dir; /* folder holding the Dockerfile: environment/ (TB 1.0: the task folder) */
  char *
      solution_dir; /* mounted as /solution for the oracle: solution/ (TB 1.0: the task folder); NULL: none */
  char *solution_script;  /* inside /solution: "solve.sh" (TB 1.0: "solution.sh") */
  char *tests_dir;        /* copied to /tests after the agent: tests/ (NULL: TB 1.0 without one) */
  char *test_script;      /* on the host: tests/test.sh (TB 1.0: run-tests.sh); run as /tests/<its name> */
  struct cJSON *metadata; /* [metadata] and [task] (TB 1.0: the other keys of task.yaml), as JSON */
} preft_task;

/* Loads the task in dir (TB 2.x when it has task.toml, TB 1.0 when it has
 * task.yaml). Fails naming the file and the field. */
int preft_task_load(const char *dir, preft_task **out, preft_error *err);
void preft_task_free(preft_task *t);

/* The tasks under root: root itself when it is a task, else each subfolder
 * that is one (sorted by name; folders without task.toml or task.yaml are
 * skipped). names: when n_names > 0, only those (an unknown name fails).
 * A malformed task fails the whole list, naming it. */
int preft_task_list(const char *root, const char *const *names, int n_names, preft_task ***out, int *n_out,
                    preft_error *err);
void preft_task_list_free(preft_task **tasks, int n);

/* Parses a size as Docker writes it ("2G", "512m", "1.5GB", "2Gi"; a bare
 * number is bytes) into megabytes, rounded up; -1 when it does not parse. */
int64_t preft_task_parse_size_mb(const char *s);

#endif
