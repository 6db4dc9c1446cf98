/* test_tasks_load.c - task folders (src/tasks/task_load.c): the fixture
 * tasks of tests/data/tasks (TB 2.x and TB 1.0) read field by field, task
 * lists and name filters, Docker-style sizes, and malformed tasks written
 * here one by one, each failing with the file, line and field named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "tasks/reward.h"
#include "tasks/task.h"
#include "testutil.h"

static void tb2_fixture_fields(void **s) {
  (void)s;
  char *dir = test_data_path("tasks/hello");
  preft_task *t;
  preft_error err;
  if (preft_task_load(dir, &t, &err) != 0) fail_msg("%s", err.msg);
  assert_string_equal(t->name, "hello");
  assert_int_equal(t->format, PREFT_TASK_TB2);
  assert_string_equal(t->instruction,
                      "Create the file /app/hello.txt that contains the single line `hello`.\n");
  assert_true(t->agent_timeout_s == 60.0);
  assert_true(t->verifier_timeout_s == 30.0);
  assert_true(t->build_timeout_s == 120.0);
  assert_string_equal(t->docker_image, "debian:bookworm-slim");
  assert_true(t->cpus == 1.0);
  assert_int_equal(t->memory_mb, 1024); /* memory = "1G" */
  assert_int_equal(t->storage_mb, 512);
  assert_false(t->allow_internet);
  assert_string_equal(t->verifier_env[0], "EXPECTED=hello");
  assert_null(t->verifier_env[1]);
  assert_null(t->env[0]);
  assert_null(t->workdir);
  char want[1024];
  snprintf(want, sizeof want, "%s/environment", dir);
  assert_string_equal(t->env_dir, want);
  snprintf(want, sizeof want, "%s/solution", dir);
  assert_string_equal(t->solution_dir, want);
  assert_string_equal(t->solution_script, "solve.sh");
  snprintf(want, sizeof want, "%s/tests/test.sh", dir);
  assert_string_equal(t->test_script, want);
  assert_string_equal(cJSON_GetObjectItem(t->metadata, "difficulty")->valuestring, "easy");
  assert_string_equal(cJSON_GetObjectItem(t->metadata, "version")->valuestring, "1.0");
  preft_task_free(t);
  free(dir);
}

static void tb2_defaults(void **s) {
  (void)s;
  char *dir = test_data_path("tasks/badreward");
  preft_task *t;
  preft_error err;
  if (preft_task_load(dir, &t, &err) != 0) fail_msg("%s", err.msg);
  /* Harbor's defaults for what task.toml leaves out */
  assert_true(t->cpus == 1.0);
  assert_int_equal(t->memory_mb, 2048);
  assert_int_equal(t->storage_mb, 10240);
  assert_true(t->build_timeout_s == 600.0);
  assert_null(t->docker_image);
  preft_task_free(t);
  free(dir);
}

static void tb1_fixture_fields(void **s) {
  (void)s;
  char *dir = test_data_path("tasks/legacy");
  preft_task *t;
  preft_error err;
  if (preft_task_load(dir, &t, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(t->format, PREFT_TASK_TB1);
  assert_string_equal(t->instruction, "Write the word \"legacy\" into /app/out.txt.");
  assert_true(t->agent_timeout_s == 60.0);
  assert_true(t->verifier_timeout_s == 30.0);
  assert_string_equal(t->env_dir, dir);
  assert_string_equal(t->solution_dir, dir);
  assert_string_equal(t->solution_script, "solution.sh");
  char want[1024];
  snprintf(want, sizeof want, "%s/run-tests.sh", dir);
  assert_string_equal(t->test_script, want);
  snprintf(want, sizeof want, "%s/tests", dir);
  assert_string_equal(t->tests_dir, want);
  cJSON *tags = cJSON_GetObjectItem(t->metadata, "tags");
  assert_int_equal(cJSON_GetArraySize(tags), 2);
  assert_string_equal(cJSON_GetArrayItem(tags, 1)->valuestring, "tb1");
  assert_null(cJSON_GetObjectItem(t->metadata, "instruction"));
  preft_task_free(t);
  free(dir);
}

static void lists_and_filters(void **s) {
  (void)s;
  char *root = test_data_path("tasks");
  preft_task **ts;
  int n;
  preft_error err;
  if (preft_task_list(root, NULL, 0, &ts, &n, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(n, 4);
  const char *want[] = {"badreward", "hello", "legacy", "slow"};
  for (int k = 0; k < n; k++) assert_string_equal(ts[k]->name, want[k]);
  preft_task_list_free(ts, n);
  const char *names[] = {"h*", "slow"};
  assert_int_equal(preft_task_list(root, names, 2, &ts, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_string_equal(ts[0]->name, "hello");
  assert_string_equal(ts[1]->name, "slow");
  preft_task_list_free(ts, n);
  const char *unknown[] = {"hello", "nope"};
  assert_int_equal(preft_task_list(root, unknown, 2, &ts, &n, &err), -1);
  assert_non_null(strstr(err.msg, "no task matches 'nope'"));
  /* a task folder itself is a list of one */
  char *one = test_data_path("tasks/legacy");
  assert_int_equal(preft_task_list(one, NULL, 0, &ts, &n, &err), 0);
  assert_int_equal(n, 1);
  preft_task_list_free(ts, n);
  free(one);
  char *none = test_data_path("toml");
  assert_int_equal(preft_task_list(none, NULL, 0, &ts, &n, &err), -1);
  assert_non_null(strstr(err.msg, "no tasks"));
  free(none);
  free(root);
}

/* the repository's task suite (tasks/), when there is one, reads in full */
static void suite_reads(void **s) {
  (void)s;
  char *root = test_data_path("../../tasks");
  struct stat st;
  if (stat(root, &st) != 0) {
    free(root);
    skip();
  }
  preft_task **ts;
  int n;
  preft_error err;
  if (preft_task_list(root, NULL, 0, &ts, &n, &err) != 0) fail_msg("%s", err.msg);
  assert_true(n >= 1);
  for (int k = 0; k < n; k++) {
    assert_non_null(ts[k]->instruction);
    assert_non_null(ts[k]->solution_dir); /* every suite task has a reference solution */
  }
  preft_task_list_free(ts, n);
  free(root);
}

static void sizes(void **s) {
  (void)s;
  assert_int_equal(preft_task_parse_size_mb("2G"), 2048);
  assert_int_equal(preft_task_parse_size_mb("2g"), 2048);
  assert_int_equal(preft_task_parse_size_mb("2GB"), 2048);
  assert_int_equal(preft_task_parse_size_mb("2Gi"), 2048);
  assert_int_equal(preft_task_parse_size_mb("512M"), 512);
  assert_int_equal(preft_task_parse_size_mb("1.5g"), 1536);
  assert_int_equal(preft_task_parse_size_mb("1T"), 1048576);
  assert_int_equal(preft_task_parse_size_mb("1024k"), 1);
  assert_int_equal(preft_task_parse_size_mb("1025k"), 2);   /* rounded up */
  assert_int_equal(preft_task_parse_size_mb("1048576"), 1); /* bytes */
  assert_int_equal(preft_task_parse_size_mb("1b"), 1);
  assert_int_equal(preft_task_parse_size_mb("lots"), -1);
  assert_int_equal(preft_task_parse_size_mb("2X"), -1);
  assert_int_equal(preft_task_parse_size_mb("-1G"), -1);
  assert_int_equal(preft_task_parse_size_mb(""), -1);
  assert_int_equal(preft_task_parse_size_mb("2G extra"), -1);
}

/* ---- malformed tasks, written into a fresh folder each ---- */

static void put(const char *dir, const char *rel, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  char *slash = strrchr(p, '/');
  *slash = 0;
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
  assert_int_equal(system(cmd), 0);
  *slash = '/';
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

typedef struct bad_case {
  const char *toml;        /* task.toml (NULL: none) */
  const char *yaml;        /* task.yaml (NULL: none) */
  const char *skip;        /* a file of the complete task left out */
  const char *instruction; /* replaces instruction.md's text when not NULL */
  const char *want;        /* the error must contain this (after the folder's path) */
} bad_case;

static void malformed_tasks_name_file_and_field(void **s) {
  (void)s;
  const bad_case cases[] = {
      {"[verifier]\ntimeout_sec = \"fast\"\n", NULL, NULL, NULL,
       "/task.toml:2: [verifier] timeout_sec: expected a number, found a string"},
      {"[agent]\ntimeout_sec = -1\n", NULL, NULL, NULL,
       "/task.toml:2: [agent] timeout_sec: -1 is out of range"},
      {"[environment]\nmemory = \"lots\"\n", NULL, NULL, NULL,
       "/task.toml:2: [environment] memory: 'lots' is not a size"},
      {"[environment]\nmemory = 2\n", NULL, NULL, NULL,
       "/task.toml:2: [environment] memory: expected a size such as \"2G\", found an integer"},
      {"[environment]\n\nmemory_mb = 1.5\n", NULL, NULL, NULL,
       "/task.toml:3: [environment] memory_mb: expected a whole number of megabytes"},
      {"[environment]\nallow_internet = \"yes\"\n", NULL, NULL, NULL,
       "/task.toml:2: [environment] allow_internet: expected true or false, found a string"},
      {"[environment]\nenv = { 1X = \"a\" }\n", NULL, NULL, NULL,
       "/task.toml:2: [environment] env.1X: not a valid environment variable name"},
      {"[verifier.env]\nA = 1\n", NULL, NULL, NULL,
       "/task.toml:2: [verifier] env.A: expected a string, found an integer"},
      {"[environment]\nworkdir = \"app\"\n", NULL, NULL, NULL,
       "/task.toml:2: [environment] workdir: 'app' is not an absolute path"},
      {"agent = 1\n", NULL, NULL, NULL, "/task.toml:1: agent: expected a table ([agent])"},
      {"version = 1\n", NULL, NULL, NULL, "/task.toml:1: version: expected a string"},
      {"[agent]\ntimeout_sec = 1\n[agent]\n", NULL, NULL, NULL, "/task.toml:3: 'agent' is defined twice"},
      {"[environment]\ncpus = [1]\n", NULL, NULL, NULL,
       "/task.toml:2: [environment] cpus: expected a number, found an array"},
      {"", NULL, "instruction.md", NULL, "/instruction.md: missing instruction.md"},
      {"", NULL, NULL, " \n\t\n", "/instruction.md: the instruction is empty"},
      {"", NULL, "environment/Dockerfile", NULL, "/environment/Dockerfile: missing environment/Dockerfile"},
      {"", NULL, "tests/test.sh", NULL, "/tests/test.sh: missing tests/test.sh"},
      {NULL, NULL, NULL, NULL, ": not a task folder (neither task.toml nor task.yaml)"},
      {NULL, "author_name: x\n", NULL, NULL, "/task.yaml: instruction: missing or empty"},
      {NULL, "instruction: do it\nmax_agent_timeout_sec: soon\n", NULL, NULL,
       "/task.yaml:2: max_agent_timeout_sec: expected a number, found a string"},
      {NULL, "instruction: [1, 2]\n", NULL, NULL,
       "/task.yaml:1: instruction: expected a string, found an array"},
      {NULL, "instruction: x\n  bad: indent\n", NULL, NULL, "/task.yaml:2: unexpected indentation"},
      {NULL, "- a\n- b\n", NULL, NULL, "/task.yaml: expected a mapping of task fields, found an array"},
      {NULL, "instruction: do it\n", "Dockerfile", NULL, "/Dockerfile: missing Dockerfile"},
      {NULL, "instruction: do it\n", "run-tests.sh", NULL, "/run-tests.sh: missing run-tests.sh"},
  };
  char *tmp = test_tmpdir();
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const bad_case *c = &cases[k];
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/bad%zu", tmp, k);
    mkdir(dir, 0755);
    if (c->toml) {
      put(dir, "task.toml", c->toml);
      const char *files[][2] = {{"instruction.md", c->instruction ? c->instruction : "Do it.\n"},
                                {"environment/Dockerfile", "FROM x\n"},
                                {"tests/test.sh", "echo 1 > /logs/verifier/reward.txt\n"},
                                {"solution/solve.sh", "true\n"}};
      for (int j = 0; j < 4; j++)
        if (!c->skip || strcmp(c->skip, files[j][0])) put(dir, files[j][0], files[j][1]);
    } else if (c->yaml) {
      put(dir, "task.yaml", c->yaml);
      const char *files[][2] = {
          {"Dockerfile", "FROM x\n"}, {"run-tests.sh", "true\n"}, {"solution.sh", "true\n"}};
      for (int j = 0; j < 3; j++)
        if (!c->skip || strcmp(c->skip, files[j][0])) put(dir, files[j][0], files[j][1]);
    }
    preft_task *t = NULL;
    preft_error err;
    if (preft_task_load(dir, &t, &err) == 0) fail_msg("case %zu loaded, but it is malformed", k);
    char want[1200];
    snprintf(want, sizeof want, "%s%s", dir, c->want);
    if (strncmp(err.msg, want, strlen(want)))
      fail_msg("case %zu: error\n  '%s'\nexpected\n  '%s...'", k, err.msg, want);
  }
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  assert_int_equal(system(cmd), 0);
  free(tmp);
}

/* ---- rewards ---- */

static void reward_txt(const char *text, bool ok, double want, const char *reason) {
  preft_reward r;
  preft_reward_from_txt(text, &r);
  if (r.ok != ok || r.reward != want || (reason && !strstr(r.reason, reason)))
    fail_msg("reward.txt '%s': got %g ok=%d '%s'", text, r.reward, r.ok, r.reason);
  preft_reward_clear(&r);
}

static void reward_json(const char *text, bool ok, double want, const char *reason) {
  preft_reward r;
  preft_reward_from_json(text, &r);
  if (r.ok != ok || r.reward != want || (reason && !strstr(r.reason, reason)))
    fail_msg("reward.json '%s': got %g ok=%d '%s'", text, r.reward, r.ok, r.reason);
  preft_reward_clear(&r);
}

static void rewards(void **s) {
  (void)s;
  reward_txt("1", true, 1, NULL);
  reward_txt(" 0.25\n", true, 0.25, NULL);
  reward_txt("-1e-1", true, -0.1, NULL);
  reward_txt("", false, 0, "empty");
  reward_txt(" \n\n", false, 0, "empty");
  reward_txt("passed!\n", false, 0, "not one number: 'passed! '");
  reward_txt("1 1", false, 0, "not one number");
  reward_txt("0.5x", false, 0, "not one number");
  reward_txt("nan", false, 0, "not a finite number");
  reward_txt("inf", false, 0, "not a finite number");
  reward_json("{\"reward\": 0.75, \"other\": 1}", true, 0.75, NULL);
  reward_json("{\"a\": 1, \"b\": 0}", true, 0.5, NULL); /* no "reward": the mean */
  reward_json("{\"a\": 1, \"b\": \"x\"}", false, 0, "'b' is not a finite number");
  reward_json("{\"a\": {\"b\": 1}}", false, 0, "'a' is not a finite number");
  reward_json("{}", false, 0, "non-empty object");
  reward_json("[1]", false, 0, "non-empty object");
  reward_json("{\"reward\": 1", false, 0, "not valid JSON");
  reward_json("", false, 0, "not valid JSON");
  /* files: reward.txt wins over reward.json; neither is a reason */
  char *dir = test_tmpdir();
  preft_reward r;
  preft_reward_read(dir, &r);
  assert_false(r.ok);
  assert_non_null(strstr(r.reason, "neither reward.txt nor reward.json"));
  preft_reward_clear(&r);
  put(dir, "reward.json", "{\"reward\": 0.5}");
  preft_reward_read(dir, &r);
  assert_true(r.ok && r.reward == 0.5);
  assert_string_equal(r.source, "reward.json");
  assert_non_null(r.values);
  preft_reward_clear(&r);
  put(dir, "reward.txt", "1\n");
  preft_reward_read(dir, &r);
  assert_true(r.ok && r.reward == 1.0);
  assert_string_equal(r.source, "reward.txt");
  preft_reward_clear(&r);
  /* what a sandbox could plant in its verifier folder reads as no reward:
   * a symlink (to a host file with a good number), a FIFO (no hang) */
  char *host_file = preft_path_join(dir, "elsewhere.txt");
  put(dir, "elsewhere.txt", "1\n");
  char *txt = preft_path_join(dir, "reward.txt");
  unlink(txt);
  assert_int_equal(symlink(host_file, txt), 0);
  preft_reward_read(dir, &r);
  assert_false(r.ok);
  assert_true(r.reward == 0);
  assert_non_null(strstr(r.reason, "not a plain file"));
  preft_reward_clear(&r);
  unlink(txt);
  assert_int_equal(mkfifo(txt, 0644), 0);
  preft_reward_read(dir, &r);
  assert_false(r.ok);
  assert_non_null(strstr(r.reason, "not a plain file"));
  preft_reward_clear(&r);
  free(txt);
  free(host_file);
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tb2_fixture_fields),
      cmocka_unit_test(tb2_defaults),
      cmocka_unit_test(tb1_fixture_fields),
      cmocka_unit_test(lists_and_filters),
      cmocka_unit_test(suite_reads),
      cmocka_unit_test(sizes),
      cmocka_unit_test(malformed_tasks_name_file_and_field),
      cmocka_unit_test(rewards),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
