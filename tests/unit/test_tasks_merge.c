/* test_tasks_merge.c - the job result of a sharded run (preft_run_merge)
 * from shard files written here by hand: task A's three attempts ran on
 * three shards (rewards 1, 0, 0), task B's on the same three (0, 0, 1 with
 * an error on attempt 2), so pass@k is only computable from all of them:
 * pass@1 = (1/3 + 1/3)/2, pass@2 = 1 - C(2,2)/C(3,2) = 2/3 for each task,
 * pass@3 = 1; the trials come back in the job's order. Refused, writing no
 * result.json: a missing shard, a trial at another shard's slot, a shard
 * of another job's tasks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/file.h"
#include "tasks/run.h"
#include "testutil.h"

/* One trial of a shard file: task, attempt, reward, error (NULL none), slot. */
typedef struct {
  const char *task;
  int attempt;
  double reward;
  const char *error;
  int slot;
} trial;

static void write_shard(const char *dir, int index, int count, const char *names_json, const trial *t,
                        int n) {
  cJSON *j = cJSON_CreateObject(), *trials = cJSON_AddArrayToObject(j, "trials"),
        *slots = cJSON_AddArrayToObject(j, "slots"), *sh = cJSON_AddObjectToObject(j, "shard");
  cJSON_AddNumberToObject(sh, "index", index);
  cJSON_AddNumberToObject(sh, "count", count);
  cJSON_AddNumberToObject(j, "n_attempts", 3);
  cJSON_AddItemToObject(j, "task_names", cJSON_Parse(names_json));
  cJSON_AddStringToObject(j, "agent", "oracle");
  cJSON_AddStringToObject(j, "started_at", index == 2 ? "2026-01-01T00:00:01Z" : "2026-01-01T00:00:05Z");
  cJSON_AddStringToObject(j, "finished_at", index == 3 ? "2026-01-01T00:01:00Z" : "2026-01-01T00:00:30Z");
  cJSON_AddNumberToObject(j, "seconds", 10.0 * index);
  cJSON_AddBoolToObject(j, "interrupted", false);
  for (int k = 0; k < n; k++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", t[k].task);
    cJSON_AddNumberToObject(o, "attempt", t[k].attempt);
    cJSON_AddNumberToObject(o, "reward", t[k].reward);
    if (t[k].error)
      cJSON_AddStringToObject(o, "error", t[k].error);
    else
      cJSON_AddNullToObject(o, "error");
    cJSON_AddItemToArray(trials, o);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "slot", t[k].slot);
    cJSON_AddNumberToObject(s, "overhead", 0.5 * (k + 1));
    cJSON_AddNumberToObject(s, "total", 2.0);
    cJSON_AddItemToArray(slots, s);
  }
  char name[64];
  snprintf(name, sizeof name, "result-shard-%d-of-%d.json", index, count);
  char *path = preft_path_join(dir, name), *text = cJSON_Print(j);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  free(text);
  free(path);
  cJSON_Delete(j);
}

/* slots: A#1 0, A#2 1, A#3 2, B#1 3, B#2 4, B#3 5; shard i (1-based) of 3 holds slots k with k mod 3 = i-1 */
static const trial S1[] = {{"A", 1, 1, NULL, 0}, {"B", 1, 0, NULL, 3}};
static const trial S2[] = {{"A", 2, 0, NULL, 1}, {"B", 2, 0, "agent timed out", 4}};
static const trial S3[] = {{"A", 3, 0, NULL, 2}, {"B", 3, 1, NULL, 5}};
#define NAMES "[\"A\", \"B\"]"

static double num(const cJSON *j, const char *key) { return cJSON_GetObjectItem(j, key)->valuedouble; }

static void merges_three_shards(void **s) {
  (void)s;
  char *dir = test_tmpdir();
  write_shard(dir, 2, 3, NAMES, S2, 2); /* written out of order: the merge orders them */
  write_shard(dir, 1, 3, NAMES, S1, 2);
  write_shard(dir, 3, 3, NAMES, S3, 2);
  cJSON *sum = NULL;
  preft_error err;
  if (preft_run_merge(dir, &sum, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal((int)num(sum, "n_trials"), 6);
  assert_int_equal((int)num(sum, "n_errors"), 1);
  assert_true(fabs(num(sum, "mean_reward") - 2.0 / 6) < 1e-15);
  const cJSON *pk = cJSON_GetObjectItem(sum, "pass_at_k");
  assert_true(fabs(num(pk, "1") - 1.0 / 3) < 1e-15);
  assert_true(fabs(num(pk, "2") - 2.0 / 3) < 1e-15);
  assert_true(fabs(num(pk, "3") - 1.0) < 1e-15);
  const char *order[6] = {"A", "A", "A", "B", "B", "B"};
  for (int k = 0; k < 6; k++) {
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(sum, "trials"), k);
    assert_string_equal(cJSON_GetObjectItem(t, "task")->valuestring, order[k]);
    assert_int_equal((int)num(t, "attempt"), k % 3 + 1);
  }
  cJSON_Delete(sum);
  /* result.json: the summary plus the job's span and the shards */
  char *path = preft_path_join(dir, "result.json");
  char *text;
  size_t len;
  assert_int_equal(preft_read_file(path, &text, &len, &err), 0);
  cJSON *res = cJSON_Parse(text);
  assert_string_equal(cJSON_GetObjectItem(res, "started_at")->valuestring, "2026-01-01T00:00:01Z");
  assert_string_equal(cJSON_GetObjectItem(res, "finished_at")->valuestring, "2026-01-01T00:01:00Z");
  assert_true(num(res, "seconds") == 30.0);
  assert_int_equal((int)num(res, "shards"), 3);
  assert_true(fabs(num(cJSON_GetObjectItem(res, "overhead_seconds"), "max") - 1.0) < 1e-15);
  cJSON_Delete(res);
  free(text);
  free(path);
  free(dir);
}

/* merge must fail with a message containing want, leaving no result.json */
static void refuses(const char *dir, const char *want) {
  cJSON *sum = NULL;
  preft_error err;
  assert_int_not_equal(preft_run_merge(dir, &sum, &err), 0);
  if (!strstr(err.msg, want)) fail_msg("error '%s' does not say '%s'", err.msg, want);
  char *path = preft_path_join(dir, "result.json");
  assert_false(preft_file_exists(path));
  free(path);
}

static void refuses_bad_shards(void **s) {
  (void)s;
  char *dir = test_tmpdir();
  write_shard(dir, 1, 3, NAMES, S1, 2);
  write_shard(dir, 3, 3, NAMES, S3, 2);
  refuses(dir, "shard 2 of 3 is missing");
  const trial wrong[] = {{"A", 2, 0, NULL, 1}, {"B", 1, 0, NULL, 3}}; /* slot 3 is shard 1's */
  write_shard(dir, 2, 3, NAMES, wrong, 2);
  refuses(dir, "does not belong at slot 3 of shard 2");
  write_shard(dir, 2, 3, "[\"A\", \"C\"]", S2, 1);
  refuses(dir, "another job's shard");
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(merges_three_shards),
      cmocka_unit_test(refuses_bad_shards),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
