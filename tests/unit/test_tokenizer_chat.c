/* test_tokenizer_chat.c - chat templates (the Jinja subset) against
 * @huggingface/jinja renderings of the real Llama 3.1, Qwen3 and Gemma 3
 * templates and a SmolLM-style one (tests/data/tokenizer/chat/, written by
 * tools/tokenizer_reference/make_golden.mjs), plus Jinja semantics and the
 * errors for unsupported constructs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "text/jinja.h"
#include "text/tokenizer.h"

static char *read_text(const char *rel) {
  char *path = test_data_path(rel);
  size_t n;
  char *d = test_read_all(path, &n);
  if (!d) fail_msg("missing %s", path);
  char *s = malloc(n + 1);
  memcpy(s, d, n);
  s[n] = 0;
  free(d);
  free(path);
  return s;
}

static void chat_templates_match_reference_renderings(void **state) {
  char *convs_text = read_text("tokenizer/chat/conversations.json");
  char *golden = read_text("tokenizer/chat/golden.jsonl");
  char *smollm = read_text("tokenizer/chat/smollm_template.jinja");
  cJSON *convs = cJSON_Parse(convs_text);
  assert_non_null(convs);
  const char *names[] = {"llama3_1", "qwen3", "gemma3"};
  preft_tokenizer *toks[3];
  for (int i = 0; i < 3; i++) {
    char rel[64];
    snprintf(rel, sizeof rel, ".cache/%s", names[i]);
    char *dir = test_data_path(rel);
    preft_error err;
    if (preft_tokenizer_load(&toks[i], dir, &err)) fail_msg("%s (run scripts/fetch-test-data.sh)", err.msg);
    free(dir);
  }
  int bad = 0, checked = 0;
  for (char *line = strtok(golden, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *row = cJSON_Parse(line);
    const char *tname = cJSON_GetObjectItem(row, "template")->valuestring;
    const char *cname = cJSON_GetObjectItem(row, "conversation")->valuestring;
    bool agp = cJSON_IsTrue(cJSON_GetObjectItem(row, "add_generation_prompt"));
    const cJSON *want = cJSON_GetObjectItem(row, "rendered");
    char *msgs = cJSON_PrintUnformatted(cJSON_GetObjectItem(convs, cname));
    char *out = NULL;
    preft_error err;
    int rc;
    if (!strcmp(tname, "smollm")) {
      cJSON *ctx = cJSON_CreateObject();
      cJSON_AddItemToObject(ctx, "messages", cJSON_Parse(msgs));
      cJSON_AddBoolToObject(ctx, "add_generation_prompt", agp);
      cJSON_AddStringToObject(ctx, "bos_token", "<|im_start|>");
      cJSON_AddStringToObject(ctx, "eos_token", "<|im_end|>");
      rc = preft_jinja_render(smollm, NULL, ctx, &out, &err);
      cJSON_Delete(ctx);
    } else {
      int k = !strcmp(tname, "llama3_1") ? 0 : !strcmp(tname, "qwen3") ? 1 : 2;
      rc = preft_chat_template_render(toks[k], msgs, agp, &out, &err);
    }
    if (cJSON_IsNull(want)) {
      if (rc == 0) fprintf(stderr, "%s/%s: reference raised, preft rendered\n", tname, cname), bad++;
    } else if (rc) {
      fprintf(stderr, "%s/%s agp=%d: %s\n", tname, cname, agp, err.msg);
      bad++;
    } else if (strcmp(out, want->valuestring)) {
      fprintf(stderr, "%s/%s agp=%d:\n--- want\n%s\n--- got\n%s\n", tname, cname, agp, want->valuestring,
              out);
      bad++;
    }
    checked++;
    free(out);
    free(msgs);
    cJSON_Delete(row);
  }
  for (int i = 0; i < 3; i++) preft_tokenizer_free(toks[i]);
  cJSON_Delete(convs);
  free(convs_text);
  free(golden);
  free(smollm);
  assert_true(checked >= 32);
  assert_int_equal(bad, 0);
}

static void render_ok(const char *tmpl, const char *ctx_json, const char *want) {
  test_render_ok(tmpl, ctx_json, want);
}

static void render_fails(const char *tmpl, const char *needle) {
  test_render_fails(tmpl, NULL, needle, NULL);
}

static void jinja_subset_follows_jinja2_semantics(void **state) {
  render_ok("{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
            "{\"xs\":[\"a\",\"b\"]}", "1a,2b");
  render_ok("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}",
            "{\"xs\":[1,2,3]}", "2232");
  render_ok("{% for x in [] %}a{% else %}empty{% endfor %}", NULL, "empty");
  render_ok(
      "{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
      NULL, "6");
  render_ok("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", NULL, "1");
  render_ok("{{ 'abc'[::-1] }}|{{ [1,2,3][1:] }}|{{ 'héllo'[1] }}|{{ 'héllo'|length }}", NULL,
            "cba|[2, 3]|é|5");
  render_ok("{{ '  x  '|trim }}|{{ 'a,b'.split(',') }}|{{ 'Hi'.upper() }}|{{ 'x'.startswith(('y','x')) }}",
            NULL, "x|['a', 'b']|HI|True");
  render_ok("{{ {'a': 1, 'b': [true, none]}|tojson }}|{{ 'é\"'|tojson }}", NULL,
            "{\"a\": 1, \"b\": [true, null]}|\"é\\\"\"");
  render_ok("{{ x is defined }}{{ y is not defined }}{{ none is none }}{{ 's' is string }}", "{\"x\":1}",
            "TrueTrueTrueTrue");
  render_ok("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 1 / 2 }} {{ 2 ** 3 }} {{ 'a' ~ 1 }}", NULL,
            "3 -4 1 0.5 8 a1");
  render_ok("{{ 'yes' if 1 in [1,2] else 'no' }}{{ 'b' not in 'abc' }}", NULL, "yesFalse");
  render_ok("  {%- if true -%}  x  {%- endif -%}  ", NULL, "x");
  render_ok("{% if a %}A{% elif b %}B{% else %}C{% endif %}", "{\"b\":1}", "B");
  render_ok("line\n    {% if true %}\nkept\n{% endif %}\n", NULL, "line\nkept\n");
  render_ok(
      "{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}{{ greet('Bo') }}/{{ greet('Al', "
      "p='Yo') }}",
      NULL, "Hi Bo/Yo Al");
  render_ok("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", "{\"d\":{\"a\":1,\"b\":2}}",
            "a=1;b=2;");
  render_ok("{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(' ') }}",
            "{\"msgs\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"bot\",\"content\":\"b\"},{\"role\":"
            "\"user\",\"content\":\"c\"}]}",
            "a c");
  render_ok(
      "{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif "
      "%}{{ i }}{% endfor %}",
      NULL, "02");
  render_ok("{{ missing }}|{{ missing|default('d') }}|{{ none }}|{{ 1.0 }}|{{ [1, 'a'] }}", NULL,
            "|d|None|1.0|[1, 'a']");
  render_ok("{# comment #}{{ \"a\\nb\" }}", NULL, "a\nb");
}

/* Every filter, and the statements, against Jinja2 3.1's renderings of the
 * same templates (the values the filters are given: FILTER_CTX). */
#define FILTER_CTX                                                                                           \
  "{\"xs\":[3,1,2,3],\"s\":\"  Hello World  "                                                                \
  "\",\"d\":{\"b\":2,\"a\":1,\"c\":3},\"ms\":[{\"role\":\"user\",\"content\":\"a\",\"n\":2},{\"role\":"      \
  "\"bot\",\"content\":\"b\",\"n\":1},{\"role\":\"user\",\"content\":\"c\"}],\"f\":2.567,\"neg\":-4,\"nf\":" \
  "-2.5,\"html\":\"<a href=\\\"x\\\">'&'</a>\",\"lines\":\"a\\n\\nb\\nc\",\"e\":[],\"words\":\"one two  "    \
  "three\",\"mixed\":[1,2.5,3],\"strs\":[\"b\",\"A\",\"a\",\"c\"],\"none\":null,\"t\":true}"
static void jinja_filters_match_jinja2(void **state) {
  const char *ctx = FILTER_CTX;
  render_ok("{{ s|trim }}|{{ s|trim('  H') }}|{{ missing|trim }}", ctx, "Hello World|ello World|");
  render_ok(
      "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ ms|tojson(2) }}", ctx,
      "{\"b\": 2, \"a\": 1, \"c\": 3}|{\n  \"b\": 2,\n  \"a\": 1,\n  \"c\": 3\n}|[\n  {\n    \"role\": "
      "\"user\",\n    \"content\": \"a\",\n    \"n\": 2\n  },\n  {\n    \"role\": \"bot\",\n    \"content\": "
      "\"b\",\n    \"n\": 1\n  },\n  {\n    \"role\": \"user\",\n    \"content\": \"c\"\n  }\n]");
  render_ok("{{ xs|length }}{{ s|length }}{{ d|length }}{{ missing|length }}{{ xs|count }}", ctx, "415304");
  render_ok("{{ s|upper }}|{{ s|lower }}|{{ 'hello wORLD'|title }}|{{ 'hello wORLD'|capitalize }}", ctx,
            "  HELLO WORLD  |  hello world  |Hello World|Hello world");
  render_ok("{{ 12|string }}|{{ html|safe }}|{{ html|e }}|{{ html|escape }}", ctx,
            "12|<a href=\"x\">'&'</a>|&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;|&lt;a "
            "href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  render_ok("{{ xs|first }}{{ xs|last }}{{ 'abc'|first }}{{ 'abc'|last }}|{{ e|first }}|{{ e|last }}", ctx,
            "33ac||");
  render_ok(
      "{{ xs|join }}|{{ xs|join(', ') }}|{{ ms|join('-', attribute='role') }}|{{ ms|join(d='+', "
      "attribute='content') }}",
      ctx, "3123|3, 1, 2, 3|user-bot-user|a+b+c");
  render_ok(
      "{{ missing|default('x') }}|{{ ''|default('y') }}|{{ ''|default('y', true) }}|{{ 0|d('z', "
      "boolean=true) }}|{{ missing|d }}|",
      ctx, "x||y|z||");
  render_ok("{{ '12'|int }}{{ '1.7'|int }}{{ 'x'|int }}{{ 2.9|int }}{{ t|int }}{{ none|int }}", ctx,
            "1210210");
  render_ok("{{ '1.5'|float }}|{{ 3|float }}|{{ none|float }}", ctx, "1.5|3.0|0.0");
  render_ok("{{ neg|abs }}|{{ nf|abs }}", ctx, "4|2.5");
  render_ok("{{ 'ab'|list }}|{{ xs|list }}|{{ d|list }}", ctx, "['a', 'b']|[3, 1, 2, 3]|['b', 'a', 'c']");
  render_ok("{{ 'héllo'|reverse }}|{{ xs|reverse|list }}", ctx, "olléh|[3, 2, 1, 3]");
  render_ok(
      "{{ xs|sort }}|{{ xs|sort(reverse=true) }}|{{ "
      "ms|sort(attribute='content')|map(attribute='content')|join }}|{{ strs|sort }}",
      ctx, "[1, 2, 3, 3]|[3, 3, 2, 1]|abc|['A', 'a', 'b', 'c']");
  render_ok("{{ xs|unique|list }}", ctx, "[3, 1, 2]");
  render_ok("{{ s|replace('l', 'L') }}|{{ s|replace('l', 'L', 2) }}", ctx, "  HeLLo WorLd  |  HeLLo World  ");
  render_ok(
      "{{ lines|indent }}|{{ lines|indent(2, true) }}|{{ lines|indent(2, true, true) }}|{{ "
      "lines|indent('>>') }}",
      ctx, "a\n\n    b\n    c|  a\n\n  b\n  c|  a\n  \n  b\n  c|a\n\n>>b\n>>c");
  render_ok(
      "{{ xs|select('odd')|list }}|{{ xs|reject('odd')|list }}|{{ [0,1,'',none,'a']|select|list }}|{{ "
      "[0,1,'']|reject|list }}",
      ctx, "[3, 1, 3]|[2]|[1, 'a']|[0, '']");
  render_ok(
      "{{ ms|selectattr('role','equalto','user')|map(attribute='content')|join }}|{{ "
      "ms|rejectattr('role','equalto','user')|map(attribute='content')|join }}|{{ "
      "ms|selectattr('n')|map(attribute='content')|join }}",
      ctx, "ac|b|ab");
  render_ok(
      "{{ xs|map('string')|join('/') }}|{{ ms|map(attribute='n', default=9)|list }}|{{ [' a "
      "']|map('trim')|list }}",
      ctx, "3/1/2/3|[2, 1, 9]|['a']");
  render_ok(
      "{{ xs|sum }}|{{ mixed|sum }}|{{ xs|max }}|{{ xs|min }}|{{ strs|max }}|{{ strs|min }}|{{ e|max }}", ctx,
      "9|6.5|3|1|c|A|");
  render_ok("{{ words|wordcount }}", ctx, "3");
}

static void jinja_statements_match_jinja2(void **state) {
  const char *ctx = FILTER_CTX;
  render_ok("{% set a = 1 %}{% set b, c = [2, 3] %}{{ a }}{{ b }}{{ c }}", ctx, "123");
  render_ok("{% set x %}in{{ 1 }}{% endset %}[{{ x }}]", ctx, "[in1]");
  render_ok(
      "{% for k, v in d|dictsort %}{{ loop.index0 }}{{ k }}{{ v }}{{ loop.first }}{{ loop.revindex }}{% "
      "endfor %}",
      ctx, "0a1True31b2False22c3False1");
  render_ok("{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", ctx, "-1;3-2;1-3;2-;");
  render_ok("{% if none %}1{% elif 0 %}2{% elif t %}3{% endif %}", ctx, "3");
  render_ok("{%- for x in xs -%}\n  {{ x }}\n{%- endfor %}", ctx, "3123");
  render_ok("{% set ns = namespace(a=1) %}{% set ns.a = 5 %}{{ ns.a }}", ctx, "5");
}

static void jinja_rejects_unsupported_constructs_by_name(void **state) {
  render_fails("{% include 'x' %}", "include");
  render_fails("{{ x|frobnicate }}", "frobnicate");
  render_fails("{{ x is prime }}", "prime");
  render_fails("{% if x %}", "endif");
  render_fails("{{ 'a' + }}", "line 1");
  render_fails("{{ raise_exception('bad roles') }}", "bad roles");
  render_fails("{{ 'unterminated }}", "unterminated");
}

static void chat_template_rejects_bad_messages(void **state) {
  char *dir = test_data_path(".cache/qwen3");
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, dir, &err)) fail_msg("%s", err.msg);
  char *out = NULL;
  assert_int_equal(preft_chat_template_render(t, "[{\"role\": ", false, &out, &err), -1);
  assert_non_null(strstr(err.msg, "malformed JSON"));
  assert_int_equal(preft_chat_template_render(t, "{\"a\": 1}", false, &out, &err), -1);
  assert_int_equal(preft_chat_template_render(t, "[{\"content\": \"x\"}]", false, &out, &err), -1);
  assert_non_null(strstr(err.msg, "role"));
  preft_tokenizer_free(t);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(chat_templates_match_reference_renderings),
      cmocka_unit_test(jinja_subset_follows_jinja2_semantics),
      cmocka_unit_test(jinja_filters_match_jinja2),
      cmocka_unit_test(jinja_statements_match_jinja2),
      cmocka_unit_test(jinja_rejects_unsupported_constructs_by_name),
      cmocka_unit_test(chat_template_rejects_bad_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
