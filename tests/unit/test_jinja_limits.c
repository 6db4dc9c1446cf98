/* test_jinja_limits.c - hostile chat templates: integer arithmetic at the
 * edges of int64 (every expected value is Python 3's, whose integers are
 * unbounded, where the result fits in int64, and a template error naming
 * the line where it does not; no signal, no silent wrap), values that
 * contain themselves, range() at the int64 bounds, and where template
 * errors point. A hostile template in a model's tokenizer_config.json makes
 * `preft chat-template` exit 1 with an error naming that file. The inputs
 * the fuzzer found are also kept in fuzz/regressions/jinja/. */
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

static void render_ok(const char *tmpl, const char *want) { test_render_ok(tmpl, NULL, want); }

static void render_fails(const char *tmpl, const char *source, const char *needle1, const char *needle2) {
  test_render_fails(tmpl, source, needle1, needle2);
}

static void int_arithmetic_is_exact_within_int64(void **state) {
  (void)state;
  /* python3 -c 'print(9007199254740993 + 0)' and friends */
  render_ok("{{ 9007199254740993 + 0 }}", "9007199254740993");
  render_ok("{{ 9007199254740993 * 1 }}", "9007199254740993");
  render_ok("{{ 9223372036854775806 + 1 }}", "9223372036854775807");
  render_ok("{{ 0 - 9223372036854775807 - 1 }}", "-9223372036854775808");
  render_ok("{{ -9223372036854775807 }}", "-9223372036854775807");
  render_ok("{{ 2 ** 62 }}", "4611686018427387904");
  render_ok("{{ (-2) ** 63 }}", "-9223372036854775808");
  render_ok("{{ 3 ** 0 }}{{ 0 ** 0 }}", "11");
  render_ok("{{ 2 ** -1 }}", "0.5");
  render_ok("{{ -7 // 2 }} {{ -7 % 2 }} {{ 7 // -2 }} {{ 7 % -2 }}", "-4 1 -4 -1");
  render_ok("{{ (0 - 9223372036854775807 - 1) % (0 - 1) }}", "0");
  render_ok("{{ 9223372036854775807 // (0 - 1) }}", "-9223372036854775807");
  render_ok("{{ 9007199254740993 == 9007199254740992 }}", "False");
  render_ok("{{ 9007199254740993 > 9007199254740992 }}", "True");
  render_ok("{{ [9007199254740993, 1]|sum }}", "9007199254740994");
  render_ok("{{ 7 / 2 }} {{ True + 1 }}", "3.5 2");
}

static void int_overflow_is_a_template_error_naming_the_line(void **state) {
  (void)state;
  /* INT64_MIN // -1 traps (SIGFPE) on x86 when computed in C */
  render_fails("{{ (0 - 4611686018427387904 - 4611686018427387904) // (0 - 1) }}", NULL,
               "chat template line 1", "overflow");
  render_fails("a\n\n{{ (0 - 4611686018427387904 - 4611686018427387904) // (0 - 1) }}", NULL, "line 3",
               "overflow");
  render_fails("{{ 9223372036854775807 + 1 }}", NULL, "line 1", "overflow");
  render_fails("{{ 0 - 9223372036854775807 - 2 }}", NULL, "line 1", "overflow");
  render_fails("{{ 4294967296 * 4294967296 }}", NULL, "line 1", "overflow");
  render_fails("{{ 2 ** 100 }}", NULL, "line 1", "overflow");
  render_fails("{{ 2 ** 63 }}", NULL, "line 1", "overflow");
  render_fails("{{ -(0 - 9223372036854775807 - 1) }}", NULL, "line 1", "overflow");
  render_fails("{{ [9223372036854775807, 1]|sum }}", NULL, "line 1", "overflow");
  render_fails("{{ 1 // 0 }}", NULL, "line 1", "by zero");
  render_fails("{{ 1 % 0 }}", NULL, "line 1", "by zero");
  render_fails("{{ 0 ** -1 }}", NULL, "line 1", "negative power");
  render_fails("{{ (1e300 * 1e300) | int }}", NULL, "line 1", "inf");
  render_fails("{{ 1e19 | int }}", NULL, "line 1", "overflow");
}

static void int_literals_outside_int64_are_errors(void **state) {
  (void)state;
  render_fails("{{ 9223372036854775808 }}", NULL, "line 1", "9223372036854775808");
  render_fails("x\n{{ -9223372036854775808 }}", NULL, "line 2", "does not fit");
  render_fails("{{ 1000000000000000000000000000000000000000000000000000000000000000000000 }}", NULL, "line 1",
               "does not fit");
}

static void self_containing_and_odd_values_fail_or_print_without_recursing(void **state) {
  (void)state;
  /* found by fuzz_jinja: printing a method recursed between str() and repr() */
  render_ok("{{ {'k': 1}.items }}", "<built-in method items>");
  render_ok("{{ [{'k': 1}.items] }}", "[<built-in method items>]");
  render_fails("{% set ns = namespace(a=1) %}{% set ns.a = ns %}\n{{ ns }}", NULL, "chat template",
               "nested more than");
  render_fails("{% set ns = namespace(a=1) %}{% set ns.a = ns %}\n{{ ns|tojson }}", NULL, "line 2",
               "nested more than");
  render_ok("{% set ns = namespace(a=1) %}{% set ns.a = ns %}{{ ns == ns }}", "False");
}

static void renders_are_bounded_in_memory_and_steps(void **state) {
  (void)state;
  /* found by fuzz_jinja: a non-string separator was read as a string */
  render_fails("{{ 'a,b'.split('x'.split) }}", NULL, "line 1", "split expects a string");
  render_ok("{{ 'a b'.split(none) }}{{ 'a,b'.split(sep=',') }}", "['a', 'b']['a', 'b']");
  render_fails(
      "{% set ns = namespace(s='x') %}\n{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
      "{{ ns.s|length }}",
      NULL, "chat template", "MiB of memory");
  render_fails("{{ ('a' * 100000) * 100000 }}", NULL, "chat template", "MiB of memory");
  /* time is bounded through memory: each iteration and call allocates */
  render_fails("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", NULL,
               "chat template", "MiB of memory");
  render_fails(
      "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}", NULL,
      "chat template", "MiB of memory");
  render_fails("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, "line 1", "recursion");
}

static void range_at_the_int64_bounds(void **state) {
  (void)state;
  /* python3 -c 'print(list(range(9223372036854775800, 9223372036854775807, 5)))' */
  render_ok("{{ range(9223372036854775800, 9223372036854775807, 5)|list }}",
            "[9223372036854775800, 9223372036854775805]");
  render_ok("{{ range(0 - 9223372036854775807 - 1, 0 - 9223372036854775807 + 2, 2)|list }}",
            "[-9223372036854775808, -9223372036854775806]");
  render_ok("{{ range(5, 0, -2)|list }}{{ range(3, 3)|list }}{{ range(0, 3, -1)|list }}", "[5, 3, 1][][]");
  render_fails("{{ range(0 - 9223372036854775807, 9223372036854775807)|length }}", NULL, "line 1",
               "too long");
}

static void template_errors_name_their_source(void **state) {
  (void)state;
  render_fails("\n\n{{ 1 // 0 }}", "models/x/tokenizer_config.json: chat_template",
               "models/x/tokenizer_config.json: chat_template line 3: ", "by zero");
  render_fails("{% if %}", "t.jinja", "t.jinja line 1: ", NULL);
  /* the newlines trim_blocks drops after %} still count */
  render_fails("{% if true %}\n  {% if true %}\n{# c #}\n{{ 1 // 0 }}{% endif %}{% endif %}", NULL, "line 4",
               "by zero");
  render_fails("{%- if true -%}\n\n{% generation %}\n{{ 'a' }}{% endgeneration %}\n{{ x.y.z }}{% endif %}",
               NULL, "line 5", "undefined");
}

/* Writes text to dir/name. */
static void write_file(const char *dir, const char *name, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void hostile_template_in_a_model_dir_fails_with_exit_1(void **state) {
  (void)state;
  char *dir = test_tmpdir();
  char *src = test_data_path("tokenizer/trained/tokenizer.json");
  size_t n;
  char *tok = test_read_all(src, &n);
  assert_non_null(tok);
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(tok, 1, n, f), n);
  fclose(f);
  write_file(dir, "tokenizer_config.json",
             "{\"chat_template\": \"{% for m in messages %}{{ m.content }}\\n{% endfor %}\\n\\n"
             "{{ (0 - 4611686018427387904 - 4611686018427387904) // (0 - 1) }}\"}");
  write_file(dir, "messages.json", "[{\"role\": \"user\", \"content\": \"hi\"}]");
  char args[8192], *out = NULL;
  snprintf(args, sizeof args, "chat-template --tokenizer %s --messages %s/messages.json", dir, dir);
  int rc = test_run_preft(args, &out);
  if (rc != 1) fail_msg("exit %d (want 1): %s", rc, out);
  char want[4200];
  snprintf(want, sizeof want, "%s/tokenizer_config.json: chat_template line 4: integer overflow", dir);
  if (!strstr(out, want)) fail_msg("output '%s' does not contain '%s'", out, want);
  free(out);
  free(tok);
  free(src);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(int_arithmetic_is_exact_within_int64),
      cmocka_unit_test(int_overflow_is_a_template_error_naming_the_line),
      cmocka_unit_test(int_literals_outside_int64_are_errors),
      cmocka_unit_test(self_containing_and_odd_values_fail_or_print_without_recursing),
      cmocka_unit_test(renders_are_bounded_in_memory_and_steps),
      cmocka_unit_test(range_at_the_int64_bounds),
      cmocka_unit_test(template_errors_name_their_source),
      cmocka_unit_test(hostile_template_in_a_model_dir_fails_with_exit_1),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
