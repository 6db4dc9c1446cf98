/* test_rl_task.c - RL tasks: the built-in generators are deterministic by
 * (seed, index), their answers are right (recomputed here from the prompt),
 * training and held-out seeds never share a problem; the verifiers; JSONL
 * task files and their FILE:LINE errors; reward commands that answer,
 * crash, hang or print garbage, with no zombie left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "rl/rl_task.h"
#include "testutil.h"

static preft_rl_task *open_task(const char *name) {
  preft_rl_task *t;
  preft_error err;
  if (preft_rl_task_open(name, NULL, &t, &err) != 0) fail_msg("%s", err.msg);
  return t;
}

static void expect_open_fails(const char *name, const char *file, const char *needle1, const char *needle2) {
  preft_rl_task *t = NULL;
  preft_error err = {{0}};
  assert_int_equal(preft_rl_task_open(name, file, &t, &err), -1);
  assert_null(t);
  if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
    fail_msg("error '%s' lacks '%s' / '%s'", err.msg, needle1, needle2 ? needle2 : "");
}

static void draws_are_deterministic_by_seed_and_index(void **state) {
  const char *names[] = {"addition", "reverse", "count", "addition:4", "count:12"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    preft_rl_task *a = open_task(names[k]), *b = open_task(names[k]);
    int differ = 0;
    for (int i = 0; i < 50; i++) {
      preft_rl_prompt p, q, r;
      preft_rl_task_draw(a, 7, i, &p);
      preft_rl_task_draw(b, 7, i, &q);
      preft_rl_task_draw(a, 8, i, &r);
      assert_string_equal(p.prompt, q.prompt);
      assert_string_equal(p.answer, q.answer);
      assert_int_equal(p.match, PREFT_RL_MATCH_FIRST_LINE);
      differ += strcmp(p.prompt, r.prompt) != 0;
      preft_rl_prompt_clear(&p);
      preft_rl_prompt_clear(&q);
      preft_rl_prompt_clear(&r);
    }
    assert_true(differ > 25); /* another seed, another stream */
    preft_rl_task_free(a);
    preft_rl_task_free(b);
  }
  /* --partial-credit: addition scored digit by digit, the other tasks as before */
  const char *partial[] = {"addition", "count"};
  for (int k = 0; k < 2; k++) {
    preft_rl_task *x = open_task(partial[k]);
    preft_rl_task_set_partial(x, true);
    preft_rl_prompt px;
    preft_rl_task_draw(x, 7, 0, &px);
    assert_int_equal(px.match, k == 0 ? PREFT_RL_MATCH_DIGITS : PREFT_RL_MATCH_FIRST_LINE);
    preft_rl_prompt_clear(&px);
    preft_rl_task_free(x);
  }
  /* pinned: a change here changes every task model's data and eval set */
  preft_rl_task *t = open_task("addition:2");
  preft_rl_prompt p;
  preft_rl_task_draw(t, 1, 0, &p);
  assert_string_equal(p.prompt, "Q: 08+52= A: "); /* 80+25, digits backwards */
  assert_string_equal(p.answer, "501");
  preft_rl_prompt_clear(&p);
  preft_rl_task_free(t);
}

/* The number whose digits, least significant first, are s: "501" -> 105. */
static unsigned backwards(const char *s) {
  unsigned v = 0;
  for (size_t i = strlen(s); i > 0; i--) v = v * 10 + (unsigned)(s[i - 1] - '0');
  return v;
}

static void answers_are_right(void **state) {
  preft_rl_task *add = open_task("addition:3"), *rev = open_task("reverse:4"), *cnt = open_task("count:9");
  int count_hist[10] = {0};
  for (int i = 0; i < 200; i++) {
    preft_rl_prompt p;
    unsigned a, b;
    preft_rl_task_draw(add, 3, i, &p);
    char ra[8], rb[8];
    assert_int_equal(sscanf(p.prompt, "Q: %7[0-9]+%7[0-9]= A:", ra, rb), 2);
    a = backwards(ra);
    b = backwards(rb);
    assert_true(a >= 100 && a <= 999 && b >= 100 && b <= 999);
    assert_true(p.prompt[strlen(p.prompt) - 1] == ' '); /* ends where the first digit starts */
    assert_int_equal(backwards(p.answer), a + b);
    assert_true(p.answer[strlen(p.answer) - 1] != '0'); /* no leading zero once read forwards */
    preft_rl_prompt_clear(&p);

    char w[4][16], want[80];
    preft_rl_task_draw(rev, 3, i, &p);
    assert_int_equal(sscanf(p.prompt, "Q: reverse %15s %15s %15s %15s A:", w[0], w[1], w[2], w[3]), 4);
    snprintf(want, sizeof want, "%s %s %s %s", w[3], w[2], w[1], w[0]);
    assert_string_equal(p.answer, want);
    preft_rl_prompt_clear(&p);

    char letter, word[64];
    preft_rl_task_draw(cnt, 3, i, &p);
    assert_int_equal(sscanf(p.prompt, "Q: count %c in %63s A:", &letter, word), 2);
    assert_int_equal(strlen(word), 9);
    int n = 0;
    for (char *c = word; *c; c++) n += *c == letter;
    assert_int_equal(strtol(p.answer, NULL, 10), n);
    count_hist[n]++;
    preft_rl_prompt_clear(&p);
  }
  /* count:9 asks for counts uniform in [0, 5]: no answer a guess gets often */
  for (int k = 0; k <= 5; k++) assert_in_range(count_hist[k], 15, 55);
  for (int k = 6; k <= 9; k++) assert_int_equal(count_hist[k], 0);
  preft_rl_task_free(add);
  preft_rl_task_free(rev);
  preft_rl_task_free(cnt);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void training_and_heldout_seeds_share_no_problem(void **state) {
  preft_rl_task *t = open_task("addition:2");
  enum { NT = 3000, NE = 300 };
  char **train = malloc(sizeof(char *) * NT);
  for (int i = 0; i < NT; i++) {
    preft_rl_prompt p;
    preft_rl_task_draw(t, (uint64_t)(1 + i % 5), i, &p);
    train[i] = p.prompt;
    free(p.answer);
  }
  qsort(train, NT, sizeof *train, cmp_str);
  for (int i = 0; i < NE; i++) {
    preft_rl_prompt p;
    preft_rl_task_draw(t, PREFT_RL_HELDOUT_SEED + (uint64_t)(i % 3), i, &p);
    char *key = p.prompt;
    assert_null(bsearch(&key, train, NT, sizeof *train, cmp_str));
    preft_rl_prompt_clear(&p);
  }
  for (int i = 0; i < NT; i++) free(train[i]);
  free(train);
  preft_rl_task_free(t);
}

static void task_names_and_levels(void **state) {
  preft_rl_task *t = open_task("addition");
  assert_string_equal(preft_rl_task_name(t), "addition:2");
  preft_rl_task_free(t);
  t = open_task("reverse:5");
  assert_string_equal(preft_rl_task_name(t), "reverse:5");
  preft_rl_task_free(t);
  expect_open_fails("addition:0", NULL, "addition:0", "[1, 9]");
  expect_open_fails("count:x", NULL, "count:x", "integer");
  expect_open_fails("reverse:3x", NULL, "reverse:3x", NULL);
  expect_open_fails("subtraction", NULL, "unknown task 'subtraction'", "addition, reverse, count");
  expect_open_fails(NULL, NULL, "either", NULL);
  assert_string_equal(preft_rl_task_names()[0], "addition");
  assert_non_null(strstr(preft_rl_task_help(), "count:N"));
}

static double verify(const char *answer, preft_rl_match m, const char *completion) {
  preft_rl_prompt p = {.prompt = "Q", .answer = (char *)answer, .match = m};
  return preft_rl_verify(&p, completion);
}

static void verifiers(void **state) {
  /* exact: surrounding whitespace does not count, anything else does */
  assert_true(verify("82", PREFT_RL_MATCH_EXACT, "  82\n") == 1.0);
  assert_true(verify("82", PREFT_RL_MATCH_EXACT, "82.") == 0.0);
  assert_true(verify("82", PREFT_RL_MATCH_EXACT, "8 2") == 0.0);
  assert_true(verify("", PREFT_RL_MATCH_EXACT, " \n") == 1.0);
  /* contains */
  assert_true(verify("cat", PREFT_RL_MATCH_CONTAINS, "the cat sat") == 1.0);
  assert_true(verify("cat", PREFT_RL_MATCH_CONTAINS, "the ca t") == 0.0);
  /* regex: anywhere, PCRE2 syntax, a bad pattern never matches */
  assert_true(verify("^\\s*4[0-9]\\b", PREFT_RL_MATCH_REGEX, " 42 apples") == 1.0);
  assert_true(verify("^\\s*4[0-9]\\b", PREFT_RL_MATCH_REGEX, "x 42") == 0.0);
  assert_true(verify("(?i)yes", PREFT_RL_MATCH_REGEX, "YES!") == 1.0);
  assert_true(verify("(", PREFT_RL_MATCH_REGEX, "(") == 0.0);
  assert_true(verify("b", PREFT_RL_MATCH_REGEX, "a\xff b") == 1.0); /* not UTF-8: matched byte-wise */
  /* number: the last number; negative, decimal, 12 == 12.0 */
  assert_true(verify("12", PREFT_RL_MATCH_NUMBER, "3 apples and 4 pears make 12") == 1.0);
  assert_true(verify("12", PREFT_RL_MATCH_NUMBER, "12 or maybe 13") == 0.0);
  assert_true(verify("-3.5", PREFT_RL_MATCH_NUMBER, "x = -3.50") == 1.0);
  assert_true(verify("12", PREFT_RL_MATCH_NUMBER, "12.0.") == 1.0);
  assert_true(verify("7", PREFT_RL_MATCH_NUMBER, "no digits") == 0.0);
  assert_true(verify("abc", PREFT_RL_MATCH_NUMBER, "abc 0") == 0.0);
  assert_true(verify("5", PREFT_RL_MATCH_NUMBER, "x5y") == 1.0);
  /* first number */
  assert_true(verify("12", PREFT_RL_MATCH_FIRST_NUMBER, " 12 then 13") == 1.0);
  assert_true(verify("13", PREFT_RL_MATCH_FIRST_NUMBER, " 12 then 13") == 0.0);
  /* first line: what the built-in tasks use */
  assert_true(verify("82", PREFT_RL_MATCH_FIRST_LINE, " 82\nQ: 1+2= A: 3\n") == 1.0);
  assert_true(verify("82", PREFT_RL_MATCH_FIRST_LINE, " 82") == 1.0);
  assert_true(verify("82", PREFT_RL_MATCH_FIRST_LINE, " 821\n") == 0.0);
  assert_true(verify("82", PREFT_RL_MATCH_FIRST_LINE, " 8\n82\n") == 0.0);
  assert_true(verify("sun dog cat", PREFT_RL_MATCH_FIRST_LINE, " sun dog cat \r\nQ:") == 1.0);
  assert_true(verify("82", PREFT_RL_MATCH_FIRST_LINE, "") == 0.0);
  /* digits: the share of places of the first line that agree, over the longer */
  assert_true(verify("28", PREFT_RL_MATCH_DIGITS, " 28\nQ: 1+2= A: 3\n") == 1.0);
  assert_true(verify("28", PREFT_RL_MATCH_DIGITS, " 29\n") == 0.5);
  assert_true(verify("28", PREFT_RL_MATCH_DIGITS, " 82\n") == 0.0);
  assert_true(verify("281", PREFT_RL_MATCH_DIGITS, "28") == 2.0 / 3.0); /* too short */
  assert_true(verify("28", PREFT_RL_MATCH_DIGITS, " 2811\n") == 0.5);   /* too long */
  assert_true(verify("28", PREFT_RL_MATCH_DIGITS, " 2\n8") == 0.5);     /* the first line only */
  assert_true(verify("28", PREFT_RL_MATCH_DIGITS, "") == 0.0);
  assert_true(verify("28", PREFT_RL_MATCH_DIGITS, " 28 \r\n") == 1.0);
  /* names */
  assert_int_equal(preft_rl_match_parse("digits"), PREFT_RL_MATCH_DIGITS);
  assert_int_equal(preft_rl_match_parse("first_line"), PREFT_RL_MATCH_FIRST_LINE);
  assert_int_equal(preft_rl_match_parse("fuzzy"), -1);
  assert_string_equal(preft_rl_match_name(PREFT_RL_MATCH_REGEX), "regex");
}

static char *write_tmp(const char *name, const char *text) {
  char *dir = test_tmpdir(), *path = preft_path_join(dir, name);
  preft_error err;
  if (preft_write_atomic(path, text, strlen(text), &err) != 0) fail_msg("%s", err.msg);
  free(dir);
  return path;
}

static void task_files(void **state) {
  char *good = write_tmp("good.jsonl",
                         "{\"prompt\": \"2+2=\", \"answer\": \"4\", \"match\": \"number\"}\n"
                         "{\"prompt\": \"say hi\", \"answer\": \"h(i|ello)\", \"match\": \"regex\"}\r\n"
                         "{\"prompt\": \"capital of France\", \"answer\": \"Paris\"}\n");
  preft_rl_task *t;
  preft_error err;
  assert_int_equal(preft_rl_task_open(NULL, good, &t, &err), 0);
  assert_int_equal(preft_rl_task_size(t), 3);
  /* each epoch of 3 draws visits every line once */
  for (int epoch = 0; epoch < 3; epoch++) {
    int seen = 0;
    for (int i = 0; i < 3; i++) {
      preft_rl_prompt p;
      preft_rl_task_draw(t, 5, epoch * 3 + i, &p);
      if (!strcmp(p.prompt, "2+2=")) seen |= 1, assert_int_equal(p.match, PREFT_RL_MATCH_NUMBER);
      if (!strcmp(p.prompt, "say hi")) seen |= 2, assert_int_equal(p.match, PREFT_RL_MATCH_REGEX);
      if (!strcmp(p.prompt, "capital of France")) seen |= 4, assert_int_equal(p.match, PREFT_RL_MATCH_EXACT);
      preft_rl_prompt_clear(&p);
    }
    assert_int_equal(seen, 7);
  }
  preft_rl_task_free(t);

  struct {
    const char *text, *needle;
  } bad[] = {
      {"{\"prompt\": \"a\", \"answer\": \"b\"}\nnot json\n", ":2: not a JSON object"},
      {"{\"answer\": \"b\"}\n", ":1: field \"prompt\" must be a string"},
      {"{\"prompt\": \"a\"}\n", ":1: field \"answer\" must be a string"},
      {"{\"prompt\": \"a\", \"answer\": 4}\n", ":1: field \"answer\" must be a string (write \"4\")"},
      {"{\"prompt\": \"a\", \"answer\": \"b\", \"match\": \"fuzzy\"}\n",
       ":1: field \"match\" must be one of"},
      {"{\"prompt\": \"a\", \"answer\": \"(x\", \"match\": \"regex\"}\n",
       ":1: field \"answer\" is not a valid regex"},
      {"{\"prompt\": \"a\", \"answer\": \"four\", \"match\": \"number\"}\n",
       ":1: field \"answer\" must be a number"},
      {"{\"prompt\": \"a\", \"answer\": \"b\"}\n\n{\"prompt\": \"c\", \"answer\": \"d\"}\n",
       ":2: empty line"},
      {"", "no prompts"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *path = write_tmp("bad.jsonl", bad[i].text);
    expect_open_fails(NULL, path, path, bad[i].needle);
    free(path);
  }
  expect_open_fails(NULL, "/nonexistent/tasks.jsonl", "/nonexistent/tasks.jsonl", NULL);
  free(good);
}

/* ---- reward commands --------------------------------------------------------- */

static const preft_rl_prompt P2[2] = {{"Q: 1+1= A:", "2", PREFT_RL_MATCH_FIRST_LINE},
                                      {"Q: 2+2= A:", "4", PREFT_RL_MATCH_FIRST_LINE}};

static void assert_no_children(void) {
  errno = 0;
  assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void reward_from_verifier_and_from_command(void **state) {
  const char *comps[2] = {" 2\nQ:", " 5"};
  double r[2] = {-1, -1};
  preft_error err;
  preft_rl_rewarder *rw;
  assert_int_equal(preft_rl_rewarder_open(NULL, 1.0, &rw, &err), 0);
  assert_int_equal(preft_rl_rewarder_score(rw, P2, comps, 2, r, &err), 0);
  assert_true(r[0] == 1.0 && r[1] == 0.0);
  preft_rl_rewarder_free(rw);

  /* a command that reads the JSON: 1 when the completion holds the answer */
  const char *cmd =
      "while IFS= read -r line; do case \"$line\" in *'\"completion\":\" 2'*) echo 1;; *) echo ' 0.25 ';; "
      "esac; done";
  assert_int_equal(preft_rl_rewarder_open(cmd, 10.0 * test_time_scale(), &rw, &err), 0);
  for (int round = 0; round < 3; round++) {
    r[0] = r[1] = -1;
    if (preft_rl_rewarder_score(rw, P2, comps, 2, r, &err) != 0) fail_msg("%s", err.msg);
    assert_true(r[0] == 1.0 && r[1] == 0.25);
  }
  preft_rl_rewarder_free(rw);
  assert_no_children();
}

/* Opens cmd, scores n completions, expects failure naming needles. */
static void expect_score_fails(const char *cmd, double timeout, int n, const char *completion, const char *n1,
                               const char *n2) {
  preft_rl_rewarder *rw;
  preft_error err;
  assert_int_equal(preft_rl_rewarder_open(cmd, timeout, &rw, &err), 0);
  const char *comps[2] = {completion, completion};
  preft_rl_prompt ps[2] = {P2[0], P2[1]};
  double r[2];
  assert_int_equal(preft_rl_rewarder_score(rw, ps, comps, n, r, &err), -1);
  if (!strstr(err.msg, n1) || (n2 && !strstr(err.msg, n2)))
    fail_msg("error '%s' lacks '%s' / '%s'", err.msg, n1, n2 ? n2 : "");
  /* unusable afterwards, and says so */
  assert_int_equal(preft_rl_rewarder_score(rw, ps, comps, 1, r, &err), -1);
  assert_non_null(strstr(err.msg, "earlier error"));
  preft_rl_rewarder_free(rw);
  assert_no_children();
}

static void reward_command_failures_name_the_line(void **state) {
  double scale = test_time_scale();
  /* crash on the second line */
  expect_score_fails("read a; echo 1; read b; exit 3", 10 * scale, 2, "x", "line 2", "exited with status 3");
  /* garbage */
  expect_score_fails("while read a; do echo hello; done", 10 * scale, 2, "x", "line 1", "printed 'hello'");
  expect_score_fails("read a; echo 1; read b; echo inf", 10 * scale, 2, "x", "line 2", "'inf'");
  expect_score_fails("read a; printf '1 2\\n'", 10 * scale, 1, "x", "line 1", "not one finite number");
  /* a command that does not exist */
  expect_score_fails("/nonexistent/reward-program", 10 * scale, 1, "x", "line 1", "status 127");
  /* hangs past the timeout: killed, with its own children (process group) */
  double t0 = now_s();
  expect_score_fails("sleep 30 & sleep 30", 0.3, 1, "x", "line 1", "no answer within 0.3s");
  assert_true(now_s() - t0 < 5 * scale);
  /* exits without reading a long completion: EPIPE, not SIGPIPE */
  size_t big = 1 << 20;
  char *long_completion = malloc(big + 1);
  memset(long_completion, 'z', big);
  long_completion[big] = 0;
  expect_score_fails("exit 0", 10 * scale, 1, long_completion, "line 1", "stopped before answering");
  /* never reads its input and never exits: the write times out */
  expect_score_fails("sleep 30", 0.3, 1, long_completion, "line 1", "did not read its input");
  free(long_completion);
  /* an empty command */
  preft_rl_rewarder *rw;
  preft_error err;
  assert_int_equal(preft_rl_rewarder_open("", 1.0, &rw, &err), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(draws_are_deterministic_by_seed_and_index),
      cmocka_unit_test(answers_are_right),
      cmocka_unit_test(training_and_heldout_seeds_share_no_problem),
      cmocka_unit_test(task_names_and_levels),
      cmocka_unit_test(verifiers),
      cmocka_unit_test(task_files),
      cmocka_unit_test(reward_from_verifier_and_from_command),
      cmocka_unit_test(reward_command_failures_name_the_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
