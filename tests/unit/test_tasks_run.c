/* test_tasks_run.c - the parts of a job that need no sandbox: the pass@k
 * estimate against the ratio of binomial coefficients computed exactly
 * here, the commands `tasks reward` takes from a completion, agent names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/run.h"
#include "tasks/trial.h"

/* C(n, k) exactly (n <= 30 fits in a double exactly) */
static double binom(int n, int k) {
  if (k < 0 || k > n) return 0;
  double r = 1;
  for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
  return round(r);
}

static void pass_at_k_matches_binomials(void **s) {
  (void)s;
  for (int n = 1; n <= 20; n++)
    for (int c = 0; c <= n; c++)
      for (int k = 1; k <= n; k++) {
        double want = 1.0 - binom(n - c, k) / binom(n, k);
        double got = preft_pass_at_k(n, c, k);
        if (fabs(got - want) > 1e-12) fail_msg("pass@%d n=%d c=%d: %.17g, want %.17g", k, n, c, got, want);
      }
  assert_true(preft_pass_at_k(3, 0, 1) == 0.0);
  assert_true(preft_pass_at_k(3, 3, 2) == 1.0);
  assert_true(fabs(preft_pass_at_k(4, 1, 1) - 0.25) < 1e-15);
  assert_true(isnan(preft_pass_at_k(2, 1, 3))); /* k > n: undefined */
}

static void commands_from_completions(void **s) {
  (void)s;
  struct {
    const char *completion, *want;
  } cases[] = {
      {"echo hi > /app/x", "echo hi > /app/x"},
      {"Run this:\n```bash\necho a\n```\nthen\n```\necho b\n```\n", "echo a\necho b\n"},
      {"```sh\nls```", "ls\n"},
      {"no fence ``` here", "no fence ``` here"}, /* an opening fence without a line is not a block */
      {"```bash\nunterminated", "```bash\nunterminated"},
      {"", ""},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char *got = preft_trial_commands_from_completion(cases[k].completion);
    if (strcmp(got, cases[k].want)) fail_msg("case %zu: got '%s', want '%s'", k, got, cases[k].want);
    free(got);
  }
}

static void agent_names(void **s) {
  (void)s;
  assert_int_equal(preft_agent_parse("oracle"), PREFT_AGENT_ORACLE);
  assert_int_equal(preft_agent_parse("nop"), PREFT_AGENT_NOP);
  assert_int_equal(preft_agent_parse("terminus"), PREFT_AGENT_TERMINUS);
  assert_int_equal(preft_agent_parse("commands"), -1); /* internal to `tasks reward` */
  assert_int_equal(preft_agent_parse("Oracle"), -1);
  assert_string_equal(preft_agent_name(PREFT_AGENT_COMMANDS), "commands");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pass_at_k_matches_binomials),
      cmocka_unit_test(commands_from_completions),
      cmocka_unit_test(agent_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
