/* test_grammar.c - GBNF compilation, byte-level matching, token masks and
 * constrained sampling on small vocabularies. Masks are checked against a
 * brute force that feeds every token's bytes to a fresh matcher. */
#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"
#include "engine/grammar_front.h"
#include "engine/sampler.h"

static preft_grammar *compile(const char *text) {
  preft_grammar *g;
  preft_error err;
  if (preft_grammar_parse(text, &g, &err) != 0) fail_msg("grammar failed: %s\n%s", err.msg, text);
  return g;
}

/* Whether the grammar accepts s whole (may end after it). */
static bool matches(preft_grammar *g, const char *s) {
  preft_gmatch *m = preft_gmatch_new(g, NULL, NULL, 0);
  bool ok = preft_gmatch_accept_bytes(m, s, strlen(s)) && preft_gmatch_can_end(m);
  preft_gmatch_free(m);
  return ok;
}

static bool prefix_ok(preft_grammar *g, const char *s) {
  preft_gmatch *m = preft_gmatch_new(g, NULL, NULL, 0);
  bool ok = preft_gmatch_accept_bytes(m, s, strlen(s));
  preft_gmatch_free(m);
  return ok;
}

static void literals_classes_and_repetition(void **st) {
  (void)st;
  preft_grammar *g = compile("root ::= \"a\" [0-9]+ (\"x\" | \"yz\")? # comment\n");
  assert_true(matches(g, "a1"));
  assert_true(matches(g, "a123x"));
  assert_true(matches(g, "a9yz"));
  assert_false(matches(g, "a"));
  assert_false(matches(g, "ax"));
  assert_false(matches(g, "a1y"));
  assert_true(prefix_ok(g, "a1y"));
  assert_false(prefix_ok(g, "b"));
  preft_grammar_unref(g);

  g = compile("root ::= item{2,3} \"!\"\nitem ::= [ab]\n");
  assert_true(matches(g, "ab!"));
  assert_true(matches(g, "aba!"));
  assert_false(matches(g, "a!"));
  assert_false(matches(g, "abab!"));
  preft_grammar_unref(g);

  g = compile("root ::= \"x\"{3} | \"y\"{2,}\n");
  assert_true(matches(g, "xxx"));
  assert_false(matches(g, "xx"));
  assert_true(matches(g, "yyyyy"));
  assert_false(matches(g, "y"));
  preft_grammar_unref(g);
}

static void unicode_classes_are_utf8(void **st) {
  (void)st;
  preft_grammar *g = compile("root ::= [^a\"]+\n");
  assert_true(matches(g, "b\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")); /* b é € 😀 */
  assert_false(matches(g, "ba"));
  assert_false(matches(g, "\xc3"));         /* half a character cannot end */
  assert_false(matches(g, "\xed\xa0\x80")); /* a surrogate is not UTF-8 */
  assert_false(prefix_ok(g, "\xc0\x80"));   /* an overlong form neither */
  preft_grammar_unref(g);
  g = compile("root ::= [α-ω] \"\\u00e9\" . \"\\x41\"\n");
  assert_true(matches(g, "\xce\xb2\xc3\xa9zA"));
  assert_false(matches(g, "\xce\x91\xc3\xa9zA")); /* Α is outside α-ω */
  preft_grammar_unref(g);
}

static void json_like_recursion(void **st) {
  (void)st;
  preft_grammar *g = compile(
      "root   ::= value\n"
      "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
      "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
      "array  ::= \"[\" ws ( value ws (\",\" ws value ws)* )? \"]\"\n"
      "string ::= \"\\\"\" ( [^\"\\\\] | \"\\\\\" [\"\\\\/bfnrt] )* \"\\\"\"\n"
      "number ::= \"-\"? [0-9]+ (\".\" [0-9]+)?\n"
      "ws ::= [ \\t\\n]*\n");
  assert_true(matches(g, "{\"a\": [1, 2.5, {\"b\": null}], \"c\\\"\": \"x\"}"));
  assert_true(matches(g, "[[[[[]]]]]"));
  assert_false(matches(g, "{\"a\" 1}"));
  assert_false(matches(g, "[1,]"));
  assert_false(matches(g, "[[]"));
  preft_grammar_unref(g);
}

static void bad_grammars_are_refused_with_a_reason(void **st) {
  (void)st;
  struct {
    const char *text, *want;
  } cases[] = {
      {"root ::= foo\n", "'foo' is used but never defined"},
      {"start ::= \"a\"\n", "no 'root' rule"},
      {"root ::= root \"a\" | \"b\"\n", "left-recursive"},
      {"root ::= (\"\")*\nx ::= \"a\"\n", "left-recursive"},
      {"root ::= x*\nx ::= \"a\"?\n", "left-recursive"},
      {"root ::= \"abc\n", "line 1"},
      {"root ::= [b-a]\n", "reversed"},
      {"root ::= \"a\"\nroot ::= \"b\"\n", "defined twice"},
      {"root ::= \"\\q\"\n", "unknown escape"},
      {"root ::= \"a\"{5,2}\n", "below the minimum"},
      {"root ::= (\"a\"\n", "expected ')'"},
      {"root \"a\"\n", "expected '::='"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    preft_grammar *g = NULL;
    preft_error err = {0};
    int rc = preft_grammar_parse(cases[i].text, &g, &err);
    if (rc == 0 || !strstr(err.msg, cases[i].want))
      fail_msg("case %zu (%s): rc %d, error '%s', wanted '%s'", i, cases[i].text, rc, err.msg, cases[i].want);
    assert_null(g);
  }
}

/* ---- masks ---------------------------------------------------------------------------------------- */

/* A small vocabulary: single characters, pairs, JSON-ish pieces, and
 * tokens that straddle boundaries. Token 0 is EOS (not in the trie). */
static const char *vocab_strs[] = {NULL, "{",     "}",   "\"",  ":",   ",",  " ",    "a",    "b",        "1",
                                   "2",  "{\"",   "\":", "\",", "\"}", "ab", "12",   ", \"", "true",     "tr",
                                   "ue", "null",  "[",   "]",   "[1",  "1,", "\xc3", "\xa9", "\xc3\xa9", "\n",
                                   "x",  "\"a\"", "}}",  "  ",  "-",   "0",  ".5"};
#define NV ((int)(sizeof vocab_strs / sizeof vocab_strs[0]))

static void build_trie(preft_token_trie *t) {
  size_t lens[NV];
  for (int i = 0; i < NV; i++) lens[i] = vocab_strs[i] ? strlen(vocab_strs[i]) : 0;
  preft_error err;
  assert_int_equal(preft_token_trie_build(t, NV, vocab_strs, lens, &err), 0);
}

static const char *json_gbnf =
    "root   ::= object\n"
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array  ::= \"[\" ws ( value ws (\",\" ws value ws)* )? \"]\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\] | \"\\\\\" [\"\\\\/bfnrt] )* \"\\\"\"\n"
    "number ::= \"-\"? [0-9]+ (\".\" [0-9]+)?\n"
    "ws ::= [ \\t\\n]{0,2}\n";

/* The allowed set after prefix, by feeding every token to a fresh matcher. */
static void brute_mask(preft_grammar *g, const preft_token_trie *t, const char *prefix, int eos,
                       bool *allowed) {
  for (int v = 0; v < NV; v++) {
    preft_gmatch *m = preft_gmatch_new(g, t, &eos, 1);
    assert_true(preft_gmatch_accept_bytes(m, prefix, strlen(prefix)));
    if (v == eos)
      allowed[v] = preft_gmatch_can_end(m);
    else
      allowed[v] = preft_gmatch_accept_bytes(m, vocab_strs[v], strlen(vocab_strs[v]));
    preft_gmatch_free(m);
  }
}

static void masks_equal_brute_force(void **st) {
  (void)st;
  preft_token_trie t;
  build_trie(&t);
  preft_grammar *g = compile(json_gbnf);
  const char *prefixes[] = {"",           "{",          "{\"",       "{\"a",
                            "{\"a\"",     "{\"a\":",    "{\"a\": ",  "{\"a\": [",
                            "{\"a\": [1", "{\"a\": tr", "{\"a\":1}", "{\"\xc3",
                            "{\"a\": -",  "{\"a\": 1.", "{\"a\":{}", "{\"a\":{\"b\":[]}"};
  int eos = 0, n_checked = 0;
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
    bool want[NV];
    brute_mask(g, &t, prefixes[i], eos, want);
    preft_gmatch *m = preft_gmatch_new(g, &t, &eos, 1);
    assert_true(preft_gmatch_accept_bytes(m, prefixes[i], strlen(prefixes[i])));
    const uint32_t *mask = preft_gmatch_mask(m);
    for (int v = 0; v < NV; v++) {
      bool got = mask[v >> 5] >> (v & 31) & 1;
      if (got != want[v])
        fail_msg("after '%s', token %d ('%s'): mask %d, brute force %d", prefixes[i], v,
                 vocab_strs[v] ? vocab_strs[v] : "EOS", got, want[v]);
      n_checked += want[v];
    }
    preft_gmatch_free(m);
  }
  assert_true(n_checked > 40); /* the prefixes allow many tokens, not none */
  preft_grammar_unref(g);
  preft_token_trie_free(&t);
}

/* Random logits, sampled and greedy: every finished output is a JSON object
 * the grammar accepts whole, and ends with EOS only where it may. */
static void sampling_under_the_grammar_always_matches(void **st) {
  (void)st;
  preft_token_trie t;
  build_trie(&t);
  preft_grammar *g = compile(json_gbnf);
  int eos = 0, finished = 0;
  float logits[NV];
  for (int trial = 0; trial < 200; trial++) {
    preft_sampling sp = {.temperature = trial % 4 == 0 ? 0.0f : 1.0f, .top_p = 1.0f, .seed = (uint64_t)trial};
    preft_sampler s;
    preft_sampler_init(&s, &sp);
    preft_gmatch *m = preft_gmatch_new(g, &t, &eos, 1);
    char out[4096] = {0};
    size_t len = 0;
    for (int step = 0; step < 200; step++) {
      for (int v = 0; v < NV; v++) logits[v] = 4.0f * (preft_sampler_uniform(&s) - 0.5f);
      logits[eos] += step / 20.0f; /* make ending likelier with time */
      int tok = preft_gmatch_sample(m, &s, &s.scratch, logits, NV);
      assert_true(tok >= 0);
      assert_true(preft_gmatch_accept_token(m, tok));
      if (tok == eos) {
        finished++;
        break;
      }
      memcpy(out + len, vocab_strs[tok], strlen(vocab_strs[tok]));
      len += strlen(vocab_strs[tok]);
      assert_true(len < sizeof out - 16);
      if (preft_gmatch_must_end(m)) {
        finished++;
        break;
      }
    }
    if (preft_gmatch_can_end(m)) assert_true(matches(g, out));
    preft_gmatch_free(m);
    preft_sampler_free(&s);
  }
  assert_true(finished > 50);
  preft_grammar_unref(g);
  preft_token_trie_free(&t);
}

/* Greedy picks the best allowed token, not the best token. */
static void greedy_takes_the_best_allowed(void **st) {
  (void)st;
  preft_token_trie t;
  build_trie(&t);
  preft_grammar *g = compile("root ::= \"ab\" | \"1\"\n");
  int eos = 0;
  preft_gmatch *m = preft_gmatch_new(g, &t, &eos, 1);
  float logits[NV];
  for (int v = 0; v < NV; v++) logits[v] = (float)v; /* the highest ids win unconstrained */
  preft_sampling sp = {.temperature = 0};
  preft_sampler s;
  preft_sampler_init(&s, &sp);
  int tok = preft_gmatch_sample(m, &s, &s.scratch, logits, NV);
  assert_string_equal(vocab_strs[tok], "ab"); /* "ab" (15) beats "a" (7) and "1" (9) */
  assert_true(preft_gmatch_accept_token(m, tok));
  assert_true(preft_gmatch_must_end(m));
  tok = preft_gmatch_sample(m, &s, &s.scratch, logits, NV);
  assert_int_equal(tok, eos);
  preft_gmatch_free(m);
  /* without a stop id nothing is allowed once the grammar has ended */
  m = preft_gmatch_new(g, &t, NULL, 0);
  assert_true(preft_gmatch_accept_bytes(m, "1", 1));
  assert_int_equal(preft_gmatch_sample(m, &s, &s.scratch, logits, NV), -1);
  preft_gmatch_free(m);
  preft_sampler_free(&s);
  preft_grammar_unref(g);
  preft_token_trie_free(&t);
}

/* ---- front-ends ---------------------------------------------------------------------- */

static preft_grammar *from_schema(const char *schema_json) {
  cJSON *j = cJSON_Parse(schema_json);
  assert_non_null(j);
  char *text;
  preft_error err;
  if (preft_gbnf_from_json_schema(j, "schema", &text, &err) != 0) fail_msg("schema failed: %s", err.msg);
  cJSON_Delete(j);
  preft_grammar *g = compile(text);
  free(text);
  return g;
}

static void json_schema_objects_arrays_enums(void **st) {
  (void)st;
  preft_grammar *g = from_schema(
      "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":5},"
      "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",1]},"
      "\"minItems\":1,\"maxItems\":2},\"ok\":{\"type\":[\"boolean\",\"null\"]}},"
      "\"required\":[\"name\",\"tags\"],\"additionalProperties\":false}");
  assert_true(matches(g, "{\"name\": \"bob\", \"tags\": [\"a\"]}"));
  assert_true(matches(g, "{\"name\":\"bob\",\"age\":-12,\"tags\":[\"a\", 1],\"ok\":null}"));
  assert_true(matches(g, "{\"name\":\"\",\"tags\":[1],\"ok\":true}"));
  assert_false(matches(g, "{\"tags\":[\"a\"]}"));                        /* name is required */
  assert_false(matches(g, "{\"name\":\"toolong\",\"tags\":[\"a\"]}"));   /* maxLength */
  assert_false(matches(g, "{\"name\":\"x\",\"tags\":[]}"));              /* minItems */
  assert_false(matches(g, "{\"name\":\"x\",\"tags\":[1,1,1]}"));         /* maxItems */
  assert_false(matches(g, "{\"name\":\"x\",\"tags\":[\"c\"]}"));         /* enum */
  assert_false(matches(g, "{\"name\":\"x\",\"tags\":[1],\"zz\":1}"));    /* closed */
  assert_false(matches(g, "{\"name\":\"x\",\"age\":1.5,\"tags\":[1]}")); /* integer */
  preft_grammar_unref(g);
  /* $defs and recursion; anyOf; const */
  g = from_schema(
      "{\"$ref\":\"#/$defs/node\",\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{"
      "\"v\":{\"anyOf\":[{\"type\":\"number\"},{\"const\":\"x\"}]},"
      "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}}}");
  assert_true(matches(g, "{\"v\": 1.5e3, \"kids\": [{\"v\": \"x\"}, {\"v\": -0, \"kids\": []}]}"));
  assert_false(matches(g, "{\"v\": \"y\"}"));
  preft_grammar_unref(g);
  /* any object */
  char *text = preft_gbnf_json_object();
  g = compile(text);
  free(text);
  assert_true(matches(g, "{\"a\": [1, {\"b\": \"\\u00e9\"}], \"c\": false}"));
  assert_false(matches(g, "[1]"));
  preft_grammar_unref(g);
}

static void json_schema_errors_name_the_path(void **st) {
  (void)st;
  struct {
    const char *schema, *want;
  } cases[] = {
      {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"x\"}}}",
       "schema.properties.a: 'pattern' is not supported"},
      {"{\"type\":\"strung\"}", "schema: unknown type 'strung'"},
      {"{\"type\":\"object\",\"properties\":{},\"required\":[\"x\"]}", "required property 'x'"},
      {"{\"$ref\":\"#/$defs/none\"}", "names no schema"},
      {"{\"type\":\"array\",\"items\":false}", "schema.items: the schema false"},
      {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "maxItems is below minItems"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cJSON *j = cJSON_Parse(cases[i].schema);
    char *text = NULL;
    preft_error err = {0};
    int rc = preft_gbnf_from_json_schema(j, "schema", &text, &err);
    if (rc == 0 || !strstr(err.msg, cases[i].want))
      fail_msg("case %zu: rc %d, error '%s', wanted '%s'", i, rc, err.msg, cases[i].want);
    cJSON_Delete(j);
  }
}

static preft_grammar *from_regex(const char *re) {
  char *text;
  preft_error err;
  if (preft_gbnf_from_regex(re, &text, &err) != 0) fail_msg("regex failed: %s", err.msg);
  preft_grammar *g = compile(text);
  free(text);
  return g;
}

static void regex_and_choices(void **st) {
  (void)st;
  preft_grammar *g = from_regex("^[a-z]+@(?:\\w+\\.)+com$");
  assert_true(matches(g, "bob@mail.example.com"));
  assert_false(matches(g, "Bob@mail.com"));
  assert_false(matches(g, "bob@com"));
  preft_grammar_unref(g);
  g = from_regex("\\d{3}-\\d{2,}|x?y*\\.\"[^\\d\"]\"");
  assert_true(matches(g, "123-45"));
  assert_true(matches(g, "123-4567"));
  assert_false(matches(g, "12-45"));
  assert_true(matches(g, ".\"a\""));
  assert_true(matches(g, "xyy.\"b\""));
  assert_false(matches(g, "x.\"1\""));
  preft_grammar_unref(g);
  const char *bad[] = {"(a", "a)", "\\1", "(?=a)", "a**", "*a", "a^b"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *text = NULL;
    preft_error err;
    if (preft_gbnf_from_regex(bad[i], &text, &err) == 0)
      fail_msg("regex '%s' was accepted: %s", bad[i], text);
    assert_non_null(strstr(err.msg, "regex at offset"));
  }
  const char *choices[] = {"yes", "no", "maybe \"so\""};
  char *text = preft_gbnf_from_choices(choices, 3);
  g = compile(text);
  free(text);
  assert_true(matches(g, "no"));
  assert_true(matches(g, "maybe \"so\""));
  assert_false(matches(g, "ye"));
  preft_grammar_unref(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(literals_classes_and_repetition),
      cmocka_unit_test(unicode_classes_are_utf8),
      cmocka_unit_test(json_like_recursion),
      cmocka_unit_test(bad_grammars_are_refused_with_a_reason),
      cmocka_unit_test(masks_equal_brute_force),
      cmocka_unit_test(sampling_under_the_grammar_always_matches),
      cmocka_unit_test(greedy_takes_the_best_allowed),
      cmocka_unit_test(json_schema_objects_arrays_enums),
      cmocka_unit_test(json_schema_errors_name_the_path),
      cmocka_unit_test(regex_and_choices),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
