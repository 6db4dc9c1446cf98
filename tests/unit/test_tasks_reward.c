/* test_tasks_reward.c - `preft tasks reward` through the RL library's own
 * reward-command client (src/rl/reward_cmd.c), as `train rl --reward-cmd`
 * runs it: one long-lived process, one JSON line in and one number out per
 * completion. The completions of the fixture task hello (tests/data/tasks)
 * that create the file get 1, the others 0, in order, over one process.
 * Needs root and bubblewrap (skipped without them) and $PREFT_BIN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rl/rl_task.h"
#include "testutil.h"

static void rewards_over_the_reward_cmd_protocol(void **s) {
  (void)s;
  const char *bin = getenv("PREFT_BIN");
  if (!bin || geteuid() != 0 || system("command -v bwrap >/dev/null 2>&1") != 0) skip();
  char *tasks = test_data_path("tasks");
  char *cache = test_tmpdir();
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' tasks reward --path '%s' --cache '%s'", bin, tasks, cache);
  preft_rl_rewarder *rw;
  preft_error err;
  if (preft_rl_rewarder_open(cmd, 60.0 * test_time_scale(), &rw, &err) != 0) fail_msg("%s", err.msg);
  preft_rl_prompt p[4] = {{.prompt = "make hello", .answer = "hello"},
                          {.prompt = "make hello", .answer = "hello"},
                          {.prompt = "make legacy", .answer = "legacy"},
                          {.prompt = "make hello", .answer = "hello"}};
  const char *completions[4] = {"```bash\necho hello > /app/hello.txt\n```", "echo goodbye > /app/hello.txt",
                                "echo legacy > /app/out.txt", "printf 'hello\\n' > /app/hello.txt"};
  double rewards[4] = {-1, -1, -1, -1};
  if (preft_rl_rewarder_score(rw, p, completions, 4, rewards, &err) != 0) fail_msg("%s", err.msg);
  assert_true(rewards[0] == 1.0);
  assert_true(rewards[1] == 0.0);
  assert_true(rewards[2] == 1.0);
  assert_true(rewards[3] == 1.0);
  /* the same process again: each trial is fresh (the earlier file is gone) */
  const char *nothing[1] = {"true"};
  double again = -1;
  if (preft_rl_rewarder_score(rw, p, nothing, 1, &again, &err) != 0) fail_msg("%s", err.msg);
  assert_true(again == 0.0);
  preft_rl_rewarder_free(rw);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
  assert_int_equal(system(cmd), 0);
  free(cache);
  free(tasks);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rewards_over_the_reward_cmd_protocol),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
