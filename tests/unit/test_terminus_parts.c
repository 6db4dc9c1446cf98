/* test_terminus_parts.c - the terminus agent's parts that need no sandbox:
 * the reply parser (bare JSON, fences, prose around it, every malformed
 * field named), the prompts, pane text (trim, head+tail truncation, what is
 * new), the conversation kept under its budget, the chat response parser
 * and the asciicast writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/terminus_int.h"
#include "testutil.h"

/* ---- reply ---------------------------------------------------------------------- */

static void parse_ok(const char *text, preft_term_reply *r) {
  preft_error err = {{0}};
  int rc = preft_term_reply_parse(text, r, &err);
  if (rc != 0) fail_msg("parse failed: %s\ntext: %s", err.msg, text);
}

/* Fails unless parsing fails with a message containing needle. */
static void parse_fails(const char *text, const char *needle) {
  preft_term_reply r;
  preft_error err = {{0}};
  assert_int_equal(preft_term_reply_parse(text, &r, &err), -1);
  if (!strstr(err.msg, needle)) fail_msg("error \"%s\" lacks \"%s\"", err.msg, needle);
  assert_null(r.commands);
  assert_null(r.analysis);
}

static void bare_reply_gives_every_field(void **s) {
  preft_term_reply r;
  parse_ok(
      "{\"analysis\": \"empty dir\", \"plan\": \"make a file\", \"commands\": ["
      "{\"keystrokes\": \"touch a\\n\", \"duration\": 0.5}, {\"keystrokes\": \"C-c\"}],"
      " \"task_complete\": false}",
      &r);
  assert_string_equal(r.analysis, "empty dir");
  assert_string_equal(r.plan, "make a file");
  assert_int_equal(r.n_commands, 2);
  assert_string_equal(r.commands[0].keystrokes, "touch a\n");
  assert_true(r.commands[0].duration == 0.5);
  assert_string_equal(r.commands[1].keystrokes, "C-c");
  assert_true(r.commands[1].duration == PREFT_TERM_DEFAULT_DURATION);
  assert_false(r.task_complete);
  assert_string_equal(r.warnings, "");
  preft_term_reply_free(&r);
}

static void fenced_and_prose_replies_are_found(void **s) {
  preft_term_reply r;
  parse_ok(
      "Here is my answer:\n```json\n{\"analysis\": \"a\", \"plan\": \"p\", \"commands\": [],"
      " \"task_complete\": true}\n```\nThanks.",
      &r);
  assert_true(r.task_complete);
  assert_int_equal(r.n_commands, 0);
  assert_string_equal(r.warnings, ""); /* a fence is the asked-for shape, not a warning */
  preft_term_reply_free(&r);

  /* prose with braces before the object: the object with the reply's fields wins */
  parse_ok(
      "I think {this} matters. {\"analysis\": \"x\", \"plan\": \"y\", \"commands\": "
      "[{\"keystrokes\": \"echo '{}'\\n\", \"duration\": 0}]} done",
      &r);
  assert_int_equal(r.n_commands, 1);
  assert_string_equal(r.commands[0].keystrokes, "echo '{}'\n");
  assert_true(r.commands[0].duration == 0);
  assert_non_null(strstr(r.warnings, "before the JSON object"));
  assert_non_null(strstr(r.warnings, "after the JSON object"));
  preft_term_reply_free(&r);
}

static void lenient_fields_give_warnings(void **s) {
  preft_term_reply r;
  /* missing analysis/plan, string boolean, an over-long wait */
  parse_ok("{\"commands\": [{\"keystrokes\": \"make\\n\", \"duration\": 600}], \"task_complete\": \"false\"}",
           &r);
  assert_string_equal(r.analysis, "");
  assert_true(r.commands[0].duration == PREFT_TERM_MAX_DURATION);
  assert_non_null(strstr(r.warnings, "\"analysis\" is missing"));
  assert_non_null(strstr(r.warnings, "\"plan\" is missing"));
  assert_non_null(strstr(r.warnings, "should be a boolean"));
  assert_non_null(strstr(r.warnings, "capped at 60 s"));
  preft_term_reply_free(&r);
  /* task_complete alone may omit commands */
  parse_ok("{\"analysis\": \"\", \"plan\": \"\", \"task_complete\": true}", &r);
  assert_true(r.task_complete);
  assert_int_equal(r.n_commands, 0);
  preft_term_reply_free(&r);
}

static void malformed_replies_name_what_is_wrong(void **s) {
  parse_fails("", "no JSON object");
  parse_fails("I will now list the files.", "no JSON object");
  parse_fails("{\"analysis\": \"a\",\n \"plan\": \"b\" \"commands\": []}",
              "invalid JSON at line 2, column 14");
  parse_fails("{\"foo\": 1}", "none of the fields");
  parse_fails("{\"analysis\": \"a\", \"plan\": \"b\"}", "\"commands\" is missing");
  parse_fails("{\"analysis\": \"a\", \"plan\": \"b\", \"commands\": \"ls\"}",
              "\"commands\" must be an array");
  parse_fails("{\"analysis\": 3, \"plan\": \"b\", \"commands\": []}", "\"analysis\" must be a string");
  parse_fails("{\"commands\": [\"ls\"]}", "commands[0] must be an object");
  parse_fails("{\"commands\": [{\"duration\": 1}]}", "commands[0].keystrokes is missing");
  parse_fails("{\"commands\": [{\"keystrokes\": 5}]}", "commands[0].keystrokes must be a string");
  parse_fails("{\"commands\": [{\"keystrokes\": \"ls\\n\"}, {\"keystrokes\": \"x\", \"duration\": -1}]}",
              "commands[1].duration must be");
  parse_fails("{\"commands\": [], \"task_complete\": 1}", "\"task_complete\" must be true or false");
  /* several problems are all listed */
  parse_fails("{\"plan\": 1, \"commands\": [{\"keystrokes\": 2}]}", "\"plan\" must be a string; commands[0]");
}

/* ---- prompts --------------------------------------------------------------------- */

static void prompts_carry_task_screen_and_errors(void **s) {
  for (int brief = 0; brief < 2; brief++) {
    char *sys = preft_term_system_prompt(brief);
    for (const char *w = "analysis\0plan\0commands\0keystrokes\0duration\0task_complete\0C-c\0"; *w;
         w += strlen(w) + 1)
      if (!strstr(sys, w)) fail_msg("%s system prompt lacks %s", brief ? "brief" : "full", w);
    /* the brief prompt fits a small context: under 200 estimated tokens */
    if (brief) assert_true(strlen(sys) < 800);
    free(sys);
  }
  char *first = preft_term_first_message("Create /app/out.txt", "root@box:/app# ");
  assert_non_null(strstr(first, "Create /app/out.txt"));
  assert_non_null(strstr(first, "root@box:/app# "));
  assert_true(strstr(first, "Create") < strstr(first, "root@box"));
  free(first);
  char *obs = preft_term_observation("extra text after the JSON object was ignored", "hello\n$ ");
  assert_non_null(strstr(obs, "warnings"));
  assert_non_null(strstr(obs, "extra text after"));
  assert_non_null(strstr(obs, "hello\n$ "));
  free(obs);
  obs = preft_term_observation("", "out");
  assert_null(strstr(obs, "warnings"));
  free(obs);
  char *pe = preft_term_parse_error_message("invalid JSON at line 1, column 3");
  assert_non_null(strstr(pe, "invalid JSON at line 1, column 3"));
  free(pe);
  char *cf = preft_term_confirm_message("$ ls\nout.txt\n$");
  assert_non_null(strstr(cf, "out.txt"));
  assert_non_null(strstr(cf, "\"task_complete\": true"));
  free(cf);
}

/* ---- pane text -------------------------------------------------------------------- */

static void pane_text_is_trimmed_cut_and_diffed(void **s) {
  char t[] = "a  \nb\t\n\n c \n   \n\n";
  preft_term_pane_trim(t);
  assert_string_equal(t, "a\nb\n\n c");
  char blank[] = "  \n\n";
  preft_term_pane_trim(blank);
  assert_string_equal(blank, "");

  /* 30000 bytes: the first and last 5000 kept, the count of what was left out said */
  size_t n = 30000;
  char *big = malloc(n + 1);
  for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
  big[n] = 0;
  char *cut = preft_term_truncate(big, 10000);
  assert_memory_equal(cut, big, 5000);
  assert_string_equal(cut + strlen(cut) - 5000, big + n - 5000);
  assert_non_null(strstr(cut, "20000 bytes in the middle left out"));
  free(cut);
  free(big);
  char *same = preft_term_truncate("short", 10);
  assert_string_equal(same, "short");
  free(same);
  /* cuts fall on UTF-8 boundaries: no half of "é" survives */
  char *u = preft_term_truncate("ééééééééééééééééééé", 9); /* 38 bytes */
  assert_memory_equal(u, "éé", 4);
  assert_string_equal(u + strlen(u) - 4, "éé");
  free(u);

  char *d = preft_term_pane_new("$ ls\nfile\n$", "$ ls\nfile\n$ cat file\nhello\n$");
  assert_string_equal(d, "$ cat file\nhello\n$");
  free(d);
  d = preft_term_pane_new("", "$ x");
  assert_string_equal(d, "$ x");
  free(d);
  assert_null(preft_term_pane_new("$ ls\nfile\n$", "$ clear\n$")); /* history changed: no diff */
  assert_null(preft_term_pane_new("$ ls\nfile", "$ ls\nfi"));

  char *last = preft_term_last_lines("1\n2\n3\n4", 2);
  assert_string_equal(last, "3\n4");
  free(last);
  last = preft_term_last_lines("1\n2", 5);
  assert_string_equal(last, "1\n2");
  free(last);
}

/* ---- conversation ------------------------------------------------------------------ */

static char *repeat(char c, size_t n) {
  char *p = malloc(n + 1);
  memset(p, c, n);
  p[n] = 0;
  return p;
}

static void conversation_is_trimmed_to_budget_keeping_task_and_order(void **s) {
  preft_term_conv c;
  preft_term_conv_init(&c);
  char *k400 = repeat('x', 400); /* 4 + 100 tokens per message */
  preft_term_conv_add(&c, "system", k400);
  preft_term_conv_add(&c, "user", "TASK");
  char name[32];
  for (int i = 1; i <= 5; i++) {
    snprintf(name, sizeof name, "A%d", i);
    preft_term_conv_add(&c, "assistant", name);
    char *u = repeat('u', 400);
    u[0] = 'U';
    memcpy(u + 1, name, strlen(name));
    preft_term_conv_add(&c, "user", u);
    free(u);
  }
  /* system 104 + TASK 5 + 5 x (A 5 + U 104) = 654 */
  assert_int_equal(preft_term_conv_tokens(&c), 654);
  assert_int_equal(preft_term_conv_trim(&c, 1000), 0);
  /* 654 - 2 pairs (218) = 436 <= 450: the two oldest pairs go */
  assert_int_equal(preft_term_conv_trim(&c, 450), 4);
  assert_int_equal(c.n, 8);
  assert_string_equal(c.m[1].content, "TASK");
  assert_string_equal(c.m[2].role, "assistant");
  assert_string_equal(c.m[2].content, "A3");
  assert_string_equal(c.m[c.n - 1].role, "user");
  assert_true(preft_term_conv_tokens(&c) <= 450);
  for (int i = 2; i < c.n; i++) assert_string_equal(c.m[i].role, i % 2 ? "user" : "assistant");

  /* calibrated: the endpoint counted 2 tokens per estimated one */
  preft_term_conv_calibrate(&c, 2 * preft_term_conv_raw(&c), preft_term_conv_raw(&c));
  assert_int_equal(preft_term_conv_tokens(&c), 2 * preft_term_conv_raw(&c));
  /* only the newest pair can stay; its user message is shortened to fit */
  preft_term_conv_trim(&c, 300);
  assert_int_equal(c.n, 4);
  assert_string_equal(c.m[2].content, "A5");
  assert_true(preft_term_conv_tokens(&c) <= 300);
  assert_non_null(strstr(c.m[3].content, "left out"));
  assert_int_equal(strncmp(c.m[3].content, "UA5", 3), 0); /* the head is kept */
  assert_int_equal(c.n_dropped, 8);

  char *body = preft_term_conv_request(&c, "m1", 0.7, 256);
  cJSON *j = cJSON_Parse(body);
  assert_non_null(j);
  assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "m1");
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages")), 4);
  assert_int_equal(cJSON_GetObjectItem(j, "max_tokens")->valueint, 256);
  const cJSON *m1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 1);
  assert_string_equal(cJSON_GetObjectItem(m1, "content")->valuestring, "TASK");
  cJSON_Delete(j);
  free(body);
  preft_term_conv_free(&c);

  /* a long reply in the newest pair is shortened before the output is */
  preft_term_conv_init(&c);
  preft_term_conv_add(&c, "system", k400);
  preft_term_conv_add(&c, "user", "TASK");
  char *a4000 = repeat('a', 4000);
  preft_term_conv_add(&c, "assistant", a4000);
  preft_term_conv_add(&c, "user", k400);
  assert_int_equal(preft_term_conv_tokens(&c), 104 + 5 + 1004 + 104);
  assert_int_equal(preft_term_conv_trim(&c, 500), 0);
  assert_true(preft_term_conv_tokens(&c) <= 500);
  assert_true(strlen(c.m[2].content) < 2000);
  assert_string_equal(c.m[3].content, k400);
  free(a4000);
  free(k400);
  preft_term_conv_free(&c);
}

/* ---- chat response ----------------------------------------------------------------- */

static void chat_response_gives_content_and_usage(void **s) {
  preft_term_chat_result r;
  preft_error err = {{0}};
  assert_int_equal(preft_term_chat_parse("{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                                         "\"content\":\"{}\"},\"finish_reason\":\"length\"}],"
                                         "\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":7}}",
                                         &r, &err),
                   0);
  assert_string_equal(r.content, "{}");
  assert_int_equal(r.prompt_tokens, 120);
  assert_int_equal(r.completion_tokens, 7);
  assert_string_equal(r.finish_reason, "length");
  preft_term_chat_result_free(&r);
  assert_int_equal(preft_term_chat_parse("{\"choices\":[{\"message\":{\"content\":null}}]}", &r, &err), 0);
  assert_string_equal(r.content, "");
  assert_int_equal(r.prompt_tokens, -1);
  preft_term_chat_result_free(&r);
  assert_int_equal(preft_term_chat_parse("<html>", &r, &err), -1);
  assert_non_null(strstr(err.msg, "not JSON"));
  assert_int_equal(preft_term_chat_parse("{\"choices\":[]}", &r, &err), -1);
  assert_non_null(strstr(err.msg, "choices[0].message"));
}

/* ---- recording ------------------------------------------------------------------- */

static void recording_is_asciicast_v2_with_whole_utf8(void **s) {
  char *dir = test_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/rec.cast", dir);
  preft_term_cast c;
  preft_error err = {{0}};
  assert_int_equal(preft_term_cast_open(&c, path, 160, 40, &err), 0);
  preft_term_cast_event(&c, 'i', "ls\n", 3);
  preft_term_cast_event(&c, 'o', "caf\xc3", 4); /* "é" cut in two */
  preft_term_cast_event(&c, 'o', "\xa9\r\n", 3);
  preft_term_cast_close(&c);
  size_t size;
  char *text = test_read_all(path, &size);
  assert_non_null(text);
  text = realloc(text, size + 1);
  text[size] = 0;
  char *line = strtok(text, "\n");
  cJSON *h = cJSON_Parse(line);
  assert_int_equal(cJSON_GetObjectItem(h, "version")->valueint, 2);
  assert_int_equal(cJSON_GetObjectItem(h, "width")->valueint, 160);
  assert_int_equal(cJSON_GetObjectItem(h, "height")->valueint, 40);
  cJSON_Delete(h);
  const char *want[][2] = {{"i", "ls\n"}, {"o", "caf"}, {"o", "\xc3\xa9\r\n"}};
  double t_prev = 0;
  for (int i = 0; i < 3; i++) {
    line = strtok(NULL, "\n");
    assert_non_null(line);
    cJSON *e = cJSON_Parse(line);
    assert_non_null(e);
    assert_int_equal(cJSON_GetArraySize(e), 3);
    double t = cJSON_GetArrayItem(e, 0)->valuedouble;
    assert_true(t >= t_prev);
    t_prev = t;
    assert_string_equal(cJSON_GetArrayItem(e, 1)->valuestring, want[i][0]);
    assert_string_equal(cJSON_GetArrayItem(e, 2)->valuestring, want[i][1]);
    cJSON_Delete(e);
  }
  assert_null(strtok(NULL, "\n"));
  free(text);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bare_reply_gives_every_field),
      cmocka_unit_test(fenced_and_prose_replies_are_found),
      cmocka_unit_test(lenient_fields_give_warnings),
      cmocka_unit_test(malformed_replies_name_what_is_wrong),
      cmocka_unit_test(prompts_carry_task_screen_and_errors),
      cmocka_unit_test(pane_text_is_trimmed_cut_and_diffed),
      cmocka_unit_test(conversation_is_trimmed_to_budget_keeping_task_and_order),
      cmocka_unit_test(chat_response_gives_content_and_usage),
      cmocka_unit_test(recording_is_asciicast_v2_with_whole_utf8),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
