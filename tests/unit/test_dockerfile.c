/* test_dockerfile.c - the Dockerfile subset: instructions and their
 * arguments as Docker reads them (both ENV forms, exec and shell RUN,
 * continuations, comments, heredocs), variables expanded as Docker expands
 * them, and every error naming Dockerfile:LINE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/dockerfile.h"

static void parse_ok(const char *text, preft_dockerfile *df) {
  preft_error err;
  if (preft_dockerfile_parse(text, strlen(text), "Dockerfile", df, &err) != 0) fail_msg("%s", err.msg);
}

static void parse_fails_n(const char *text, size_t len, const char *want) {
  preft_dockerfile df;
  preft_error err;
  if (preft_dockerfile_parse(text, len, "Dockerfile", &df, &err) == 0) fail_msg("parsed: %s", text);
  if (!strstr(err.msg, want)) fail_msg("error \"%s\" lacks \"%s\"", err.msg, want);
}

static void parse_fails(const char *text, const char *want) { parse_fails_n(text, strlen(text), want); }

static void instructions_and_arguments(void **s) {
  const char *text =
      "# syntax=docker/dockerfile:1\n"
      "ARG BASE=ubuntu:24.04\n"
      "FROM ${BASE} AS build\n"
      "\n"
      "WORKDIR /app\n"
      "ENV A=1 B=\"two words\" C='$A'\n"
      "ENV LEGACY some value here\n"
      "COPY --chown=1000:1000 src/ ./src/\n"
      "add [\"a b.txt\", \"/opt/\"]\n"
      "RUN apt-get update && \\\n"
      "    # a comment inside a continuation\n"
      "    apt-get install -y \\\n"
      "      gcc   \n"
      "RUN [\"/bin/echo\", \"exec form\"]\n"
      "CMD [\"bash\"]\n"
      "RUN <<EOF\n"
      "echo one\n"
      "echo two\n"
      "EOF\n"
      "RUN cat <<'END' > /x\n"
      "$literal\n"
      "END\n"
      "USER root\n";
  preft_dockerfile df;
  parse_ok(text, &df);
  assert_int_equal(df.n, 13);
  assert_int_equal(df.v[0].kind, PREFT_DF_ARG);
  assert_string_equal(df.v[0].args[0], "BASE");
  assert_string_equal(df.v[0].args[1], "ubuntu:24.04");
  assert_int_equal(df.v[1].kind, PREFT_DF_FROM);
  assert_int_equal(df.v[1].line, 3);
  assert_string_equal(df.v[1].args[0], "${BASE}");
  assert_int_equal(df.v[2].kind, PREFT_DF_WORKDIR);
  assert_int_equal(df.v[3].kind, PREFT_DF_ENV);
  assert_int_equal(df.v[3].n_args, 6);
  assert_string_equal(df.v[3].args[2], "B");
  assert_string_equal(df.v[3].args[3], "\"two words\"");
  assert_string_equal(df.v[4].args[0], "LEGACY");
  assert_string_equal(df.v[4].args[1], "some value here");
  assert_int_equal(df.v[5].kind, PREFT_DF_COPY);
  assert_non_null(strstr(df.v[5].note, "--chown ignored"));
  assert_string_equal(df.v[5].args[0], "src/");
  assert_string_equal(df.v[5].args[1], "./src/");
  assert_string_equal(df.v[6].keyword, "ADD");
  assert_string_equal(df.v[6].args[0], "a b.txt");
  assert_int_equal(df.v[7].kind, PREFT_DF_RUN);
  assert_int_equal(df.v[7].line, 10);
  assert_string_equal(df.v[7].args[0], "/bin/sh");
  assert_string_equal(df.v[7].args[1], "-c");
  assert_string_equal(df.v[7].args[2], "apt-get update &&     apt-get install -y       gcc");
  assert_int_equal(df.v[8].n_args, 2);
  assert_string_equal(df.v[8].args[1], "exec form");
  assert_int_equal(df.v[9].kind, PREFT_DF_IGNORED);
  assert_int_equal(df.v[9].line, 15);
  assert_string_equal(df.v[10].args[2], "echo one\necho two\n");
  assert_string_equal(df.v[11].args[2], "cat <<'END' > /x\n$literal\nEND");
  assert_int_equal(df.v[12].line, 23);
  preft_dockerfile_free(&df);
}

static void variables_expand_as_docker_does(void **s) {
  preft_df_vars v = {0};
  preft_df_vars_set(&v, "A", "1");
  preft_df_vars_set(&v, "EMPTY", "");
  preft_error err;
  const char *cases[][2] = {
      {"$A", "1"},
      {"${A}x", "1x"},
      {"${MISSING:-dflt}", "dflt"},
      {"${EMPTY:-dflt}", "dflt"},
      {"${A:-dflt}", "1"},
      {"${A:+set}", "set"},
      {"${MISSING:+set}", ""},
      {"'$A'", "$A"},
      {"\"$A b\"", "1 b"},
      {"\\$A", "$A"},
      {"a\\ b", "a b"},
      {"\"x\\\"y\"", "x\"y"},
      {"$", "$"},
      {"${MISSING:-${A}}", "1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *r = preft_df_expand(cases[i][0], &v, &err);
    if (!r) fail_msg("%s: %s", cases[i][0], err.msg);
    if (strcmp(r, cases[i][1]) != 0) fail_msg("%s -> \"%s\", want \"%s\"", cases[i][0], r, cases[i][1]);
    free(r);
  }
  assert_null(preft_df_expand("${A", &v, &err));
  assert_null(preft_df_expand("\"open", &v, &err));
  assert_null(preft_df_expand("${A/x/y}", &v, &err));
  preft_df_vars_free(&v);
}

static void errors_name_the_line(void **s) {
  parse_fails("FROM x\nRUN true\nFROBNICATE now\n", "Dockerfile:3: unknown instruction FROBNICATE");
  parse_fails("FROM x\n\n# c\nADD https://example.org/f /f\n", "Dockerfile:4: ADD of a URL");
  parse_fails("FROM x\nCOPY --from=build /a /b\n", "Dockerfile:2: COPY --from");
  parse_fails("FROM x\nFROM y\n", "Dockerfile:2: a second FROM");
  parse_fails("RUN true\nFROM x\n", "Dockerfile:1: RUN before FROM");
  parse_fails("FROM x\nENV A=\"open\n", "Dockerfile:2: ENV: unterminated quote");
  parse_fails("FROM x\nUSER nobody\n", "Dockerfile:2: USER nobody");
  parse_fails("FROM x\nRUN <<EOF\necho\n", "Dockerfile:2: heredoc <<EOF is not closed");
  parse_fails("# just a comment\n", "no FROM");
  parse_fails("FROM x\nCOPY onlyone\n", "Dockerfile:2: COPY needs at least a source and a destination");
  parse_fails("FROM x\nRUN --mount=type=cache,target=/x true\n",
              "Dockerfile:2: RUN: unsupported flag --mount");
  parse_fails("FROM x\nADD data.tar.gz /d\n", "Dockerfile:2: ADD of an archive");
  parse_fails("FROM x\nENV 1BAD=x\n", "Dockerfile:2: ENV: bad variable name");
  parse_fails("FROM x\nRUN echo \\\n  a \\\n  b\nWHAT\n", "Dockerfile:5: unknown instruction WHAT");
  parse_fails_n("FROM x\nRUN a\0b\n", 14, "Dockerfile:2: NUL byte");
}

static void escape_directive_and_crlf(void **s) {
  preft_dockerfile df;
  parse_ok("# escape=`\r\nFROM x\r\nRUN echo a `\r\n  b\r\n", &df);
  assert_int_equal(df.n, 2);
  assert_string_equal(df.v[1].args[2], "echo a   b");
  preft_dockerfile_free(&df);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(instructions_and_arguments),
      cmocka_unit_test(variables_expand_as_docker_does),
      cmocka_unit_test(errors_name_the_line),
      cmocka_unit_test(escape_directive_and_crlf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
