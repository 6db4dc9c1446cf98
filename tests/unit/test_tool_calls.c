/* test_tool_calls.c - tool calls parsed out of replies per template family
 * (hermes, llama3, mistral): the same calls and content whether the reply
 * arrives whole or a byte at a time; text that only looks like a call stays
 * content; the forced-call grammar of each family accepts the family's own
 * format and its output parses back to the same call; arguments followed
 * live come in several pieces that assemble (as a client does) to the
 * call's arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"
#include "server/tool_calls.h"

typedef struct {
  srv_tool_family fam;
  const char *reply;
  const char *content; /* expected content */
  int n_calls;
  const char *names[3], *args[3];
} tcase;

static const tcase cases[] = {
    {SRV_TOOL_HERMES,
     "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": "
     "\"c\"}}\n"
     "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"CET\"}}\n</tool_call>",
     "Let me check.\n",
     2,
     {"get_weather", "get_time"},
     {"{\"city\":\"Paris\",\"unit\":\"c\"}", "{\"zone\":\"CET\"}"}},
    {SRV_TOOL_HERMES, "no calls here, only < and <tool", "no calls here, only < and <tool", 0, {0}, {0}},
    {SRV_TOOL_HERMES,
     "<tool_call>\nnot json\n</tool_call> after",
     "<tool_call>\nnot json\n</tool_call> after",
     0,
     {0},
     {0}},
    {SRV_TOOL_HERMES,
     "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}",
     "",
     1,
     {"f"},
     {"{\"a\": 1}"}},
    {SRV_TOOL_LLAMA3,
     "{\"name\": \"get_time\", \"parameters\": {\"zone\": \"UTC\"}}",
     "",
     1,
     {"get_time"},
     {"{\"zone\":\"UTC\"}"}},
    {SRV_TOOL_LLAMA3,
     "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"arguments\": {\"x\": [1]}}",
     "",
     2,
     {"a", "b"},
     {"{}", "{\"x\":[1]}"}},
    {SRV_TOOL_LLAMA3, "  The answer is {not a call}", "  The answer is {not a call}", 0, {0}, {0}},
    {SRV_TOOL_LLAMA3, "{\"name\": 5}", "{\"name\": 5}", 0, {0}, {0}},
    {SRV_TOOL_MISTRAL,
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\", \"unit\": \"f\"}}]",
     "",
     1,
     {"get_weather"},
     {"{\"city\":\"Rome\",\"unit\":\"f\"}"}},
    {SRV_TOOL_MISTRAL,
     "[ {\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": {}}]",
     "",
     2,
     {"a", "b"},
     {"{}", "{}"}},
    {SRV_TOOL_MISTRAL, "[1, 2] is a list", "[1, 2] is a list", 0, {0}, {0}},
    {SRV_TOOL_MISTRAL,
     "Sure. [TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}]",
     "Sure. ",
     1,
     {"a"},
     {"{}"}},
};

/* Feeds the reply in pieces of `step` bytes (0: whole). */
static void run_case(const tcase *c, size_t step) {
  srv_tool_stream t;
  preft_srv_tool_stream_init(&t, c->fam);
  srv_buf content = {0};
  size_t n = strlen(c->reply);
  if (step == 0) step = n ? n : 1;
  for (size_t i = 0; i < n; i += step)
    preft_srv_tool_stream_feed(&t, c->reply + i, n - i < step ? n - i : step, &content);
  preft_srv_tool_stream_finish(&t, &content);
  const char *got = content.p ? content.p : "";
  if (strcmp(got, c->content) != 0 || t.n_calls != c->n_calls)
    fail_msg("%s reply '%s' (pieces of %zu): content '%s' (want '%s'), %d calls (want %d)",
             preft_srv_tool_family_name(c->fam), c->reply, step, got, c->content, t.n_calls, c->n_calls);
  for (int k = 0; k < t.n_calls; k++) {
    assert_string_equal(t.calls[k].name, c->names[k]);
    assert_string_equal(t.calls[k].arguments, c->args[k]);
  }
  preft_srv_buf_free(&content);
  preft_srv_tool_stream_free(&t);
}

static void replies_parse_the_same_whole_or_in_pieces(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (size_t step = 0; step <= 7; step++) run_case(&cases[i], step);
}

static char *compact_json(const char *text) {
  cJSON *j = cJSON_Parse(text);
  char *out = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  return out;
}

/* What a streaming client assembles, fed `step` bytes at a time: per call
 * index the name first, then the argument pieces (the server's rule in
 * openai_routes.c: live pieces while the call is written, the rest, or the
 * whole, once it is complete). Checks that every call's pieces assemble to
 * its arguments (the same JSON) and that the name was known before the
 * arguments were complete; the pieces per call go to pieces[]. */
static void assemble_case(const tcase *c, size_t step, int *pieces) {
  srv_tool_stream t;
  preft_srv_tool_stream_init(&t, c->fam);
  srv_buf content = {0}, got[3] = {{0}};
  int sent = 0;
  bool early_name[3] = {0};
  size_t args_sent = 0, n = strlen(c->reply);
  for (size_t i = 0;; i += step) {
    if (i < n)
      preft_srv_tool_stream_feed(&t, c->reply + i, n - i < step ? n - i : step, &content);
    else
      preft_srv_tool_stream_finish(&t, &content);
    for (;;) {
      if (sent < t.n_calls) {
        const char *full = t.calls[sent].streamed ? t.calls[sent].streamed : t.calls[sent].arguments;
        if (t.calls[sent].streamed || args_sent == 0) {
          assert_true(args_sent <= strlen(full));
          if (strlen(full) > args_sent) pieces[sent]++;
          preft_srv_buf_puts(&got[sent], full + args_sent);
        }
      } else {
        const char *args;
        size_t len;
        bool done;
        const char *name = preft_srv_tool_stream_live(&t, sent, &args, &len, &done);
        if (!name || !name[0]) break;
        early_name[sent] = true;
        if (len > args_sent) {
          preft_srv_buf_put(&got[sent], args + args_sent, len - args_sent);
          pieces[sent]++;
          args_sent = len;
        }
        if (!done) break;
      }
      sent++;
      args_sent = 0;
    }
    if (i >= n) break;
  }
  assert_int_equal(t.n_calls, c->n_calls);
  for (int k = 0; k < t.n_calls; k++) {
    char *want = compact_json(t.calls[k].arguments), *have = compact_json(got[k].p ? got[k].p : "");
    if (!have || strcmp(have, want) != 0)
      fail_msg("%s reply '%s' (pieces of %zu): call %d assembled '%s', want %s",
               preft_srv_tool_family_name(c->fam), c->reply, step, k, got[k].p ? got[k].p : "", want);
    if (step == 1 && !early_name[k] && t.calls[k].streamed)
      fail_msg("%s reply '%s': call %d's name came only with the call complete",
               preft_srv_tool_family_name(c->fam), c->reply, k);
    free(want);
    free(have);
    preft_srv_buf_free(&got[k]);
  }
  preft_srv_buf_free(&content);
  preft_srv_tool_stream_free(&t);
}

/* Every call's arguments assemble to its arguments; an object's come in as
 * many pieces as the reply arrives in (a byte at a time: about one a byte);
 * arguments given as a JSON string come whole. */
static void arguments_stream_in_pieces(void **st) {
  (void)st;
  int live_calls = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (!cases[i].n_calls) continue;
    for (size_t step = 1; step <= 7; step++) {
      int pieces[3] = {0};
      assemble_case(&cases[i], step, pieces);
      bool string_args = strstr(cases[i].reply, "\"arguments\": \"") != NULL;
      for (int k = 0; k < cases[i].n_calls && step == 1; k++) {
        int want = string_args ? 1 : (int)strlen(cases[i].args[k]);
        if (string_args ? pieces[k] != 1 : pieces[k] < want)
          fail_msg("%s reply '%s': call %d's arguments came in %d pieces (want %s%d)",
                   preft_srv_tool_family_name(cases[i].fam), cases[i].reply, k, pieces[k],
                   string_args ? "" : "at least ", want);
        live_calls += !string_args;
      }
    }
  }
  assert_true(live_calls >= 8);
}

/* A tag whose call is followed live but does not parse in the end: its
 * text is content, the stream counts it abandoned, and the next tag's call
 * is followed live at the next calls[] index. */
static void a_call_that_fails_after_streaming_is_abandoned(void **st) {
  (void)st;
  const char *r =
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1}} junk</tool_call>"
      "<tool_call>{\"name\": \"g\", \"arguments\": {\"b\": 2}}</tool_call>";
  srv_tool_stream t;
  preft_srv_tool_stream_init(&t, SRV_TOOL_HERMES);
  srv_buf content = {0};
  bool saw_f = false, saw_g = false;
  for (size_t i = 0; r[i]; i++) {
    preft_srv_tool_stream_feed(&t, r + i, 1, &content);
    const char *args;
    size_t len;
    bool done;
    const char *name = preft_srv_tool_stream_live(&t, t.n_calls, &args, &len, &done);
    if (name && !strcmp(name, "f")) saw_f = true, assert_int_equal(t.abandoned, 0);
    if (name && !strcmp(name, "g")) saw_g = true, assert_int_equal(t.abandoned, 1);
  }
  preft_srv_tool_stream_finish(&t, &content);
  assert_true(saw_f && saw_g);
  assert_int_equal(t.abandoned, 1);
  assert_int_equal(t.n_calls, 1);
  assert_string_equal(t.calls[0].name, "g");
  assert_string_equal(t.calls[0].streamed, "{\"b\":2}");
  assert_non_null(strstr(content.p, "junk"));
  preft_srv_buf_free(&content);
  preft_srv_tool_stream_free(&t);
}

static void content_streams_before_the_end(void **st) {
  (void)st;
  srv_tool_stream t;
  preft_srv_tool_stream_init(&t, SRV_TOOL_HERMES);
  srv_buf content = {0};
  preft_srv_tool_stream_feed(&t, "Hello there <tool", 17, &content);
  assert_int_equal(content.len, 12); /* "Hello there " out, "<tool" held */
  preft_srv_tool_stream_feed(&t, "kit> ok", 7, &content);
  assert_string_equal(content.p, "Hello there <toolkit> ok");
  preft_srv_buf_free(&content);
  preft_srv_tool_stream_free(&t);
  /* llama3: a reply that does not start with '{' streams at once */
  preft_srv_tool_stream_init(&t, SRV_TOOL_LLAMA3);
  srv_buf c2 = {0};
  preft_srv_tool_stream_feed(&t, "Hi {", 4, &c2);
  assert_string_equal(c2.p, "Hi {");
  preft_srv_buf_free(&c2);
  preft_srv_tool_stream_free(&t);
}

static void families_come_from_the_template(void **st) {
  (void)st;
  assert_int_equal(preft_srv_tool_family_of_template("{% for t in tools %}<tool_call>{% endfor %}"),
                   SRV_TOOL_HERMES);
  assert_int_equal(preft_srv_tool_family_of_template("<|start_header_id|>ipython<|end_header_id|>"),
                   SRV_TOOL_LLAMA3);
  assert_int_equal(preft_srv_tool_family_of_template("[AVAILABLE_TOOLS] ... [TOOL_CALLS]"), SRV_TOOL_MISTRAL);
  assert_int_equal(preft_srv_tool_family_of_template(NULL), SRV_TOOL_HERMES);
}

static bool grammar_accepts(const char *gbnf, const char *text) {
  preft_grammar *g;
  preft_error err;
  if (preft_grammar_parse(gbnf, &g, &err) != 0) fail_msg("tool grammar: %s\n%s", err.msg, gbnf);
  preft_gmatch *m = preft_gmatch_new(g, NULL, NULL, 0);
  bool ok = preft_gmatch_accept_bytes(m, text, strlen(text)) && preft_gmatch_can_end(m);
  preft_gmatch_free(m);
  preft_grammar_unref(g);
  return ok;
}

static void forced_call_grammars_match_their_parsers(void **st) {
  (void)st;
  cJSON *tools = cJSON_Parse(
      "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
      "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
      "{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}]");
  struct {
    srv_tool_family fam;
    const char *only, *text;
    bool ok;
  } g[] = {
      {SRV_TOOL_HERMES, NULL,
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>", true},
      {SRV_TOOL_HERMES, NULL,
       "<tool_call>\n{\"name\":\"noop\",\"arguments\":{\"z\":1}}\n</"
       "tool_call>\n<tool_call>\n{\"name\":\"noop\","
       "\"arguments\":{}}\n</tool_call>",
       true},
      {SRV_TOOL_HERMES, "noop",
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"O\"}}\n</tool_call>", false},
      {SRV_TOOL_HERMES, NULL, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>",
       false},
      {SRV_TOOL_HERMES, NULL, "Sure! <tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n</tool_call>",
       false},
      {SRV_TOOL_LLAMA3, NULL, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", true},
      {SRV_TOOL_LLAMA3, NULL, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}", false},
      {SRV_TOOL_MISTRAL, NULL,
       "[{\"name\": \"noop\", \"arguments\": {}}, {\"name\": \"noop\", \"arguments\": {}}]", true},
      {SRV_TOOL_MISTRAL, "get_weather", "[{\"name\": \"noop\", \"arguments\": {}}]", false},
  };
  for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
    char *gbnf;
    preft_error err;
    assert_int_equal(preft_srv_tool_grammar(g[i].fam, tools, g[i].only, &gbnf, &err), 0);
    if (grammar_accepts(gbnf, g[i].text) != g[i].ok)
      fail_msg("case %zu (%s): the grammar %s '%s'", i, preft_srv_tool_family_name(g[i].fam),
               g[i].ok ? "refuses" : "accepts", g[i].text);
    if (g[i].ok) { /* what the grammar allows, the parser reads as calls only */
      srv_tool_stream t;
      preft_srv_tool_stream_init(&t, g[i].fam);
      srv_buf content = {0};
      preft_srv_tool_stream_feed(&t, g[i].text, strlen(g[i].text), &content);
      preft_srv_tool_stream_finish(&t, &content);
      assert_true(t.n_calls >= 1);
      assert_int_equal(content.len, 0);
      preft_srv_buf_free(&content);
      preft_srv_tool_stream_free(&t);
    }
    free(gbnf);
  }
  cJSON_Delete(tools);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replies_parse_the_same_whole_or_in_pieces),
      cmocka_unit_test(arguments_stream_in_pieces),
      cmocka_unit_test(a_call_that_fails_after_streaming_is_abandoned),
      cmocka_unit_test(content_streams_before_the_end),
      cmocka_unit_test(families_come_from_the_template),
      cmocka_unit_test(forced_call_grammars_match_their_parsers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
