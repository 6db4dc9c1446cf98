/* test_tasks_toml.c - the task-file readers (src/tasks/toml.c, yaml.c)
 * against independent references: every TOML file in tests/data/toml/ and
 * every YAML file in tests/data/yaml/ must give the tree that Python's tomllib and
 * PyYAML give (the golden NAME.json files of tools/tasks_parser_golden.py,
 * compared value by value and type by type); every file under bad/ must
 * fail with "FILE:LINE: ..." at the line and with the words that
 * bad/expect.txt lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tasks/toml.h"
#include "tasks/yaml.h"
#include "testutil.h"

typedef int (*parse_fn)(const char *, size_t, const char *, preft_tv **, preft_error *);

static int parse_file(parse_fn parse, const char *path, preft_tv **out, preft_error *err) {
  size_t n;
  char *text = test_read_all(path, &n);
  assert_non_null(text);
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  int r = parse(text, n, name, out, err);
  free(text);
  return r;
}

/* Every NAME.ext in dir (not bad/) against NAME.json; returns how many. */
static int check_goldens(const char *rel_dir, const char *ext, parse_fn parse) {
  char *dir = test_data_path(rel_dir);
  DIR *d = opendir(dir);
  assert_non_null(d);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name), en = strlen(ext);
    if (n <= en || strcmp(e->d_name + n - en, ext)) continue;
    char path[1024], golden[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    snprintf(golden, sizeof golden, "%s/%.*s.json", dir, (int)(n - en), e->d_name);
    preft_tv *root;
    preft_error err;
    if (parse_file(parse, path, &root, &err) != 0) fail_msg("%s: %s", path, err.msg);
    cJSON *got = preft_tv_to_json(root, true);
    char *want_text = test_read_all(golden, NULL);
    assert_non_null(want_text);
    cJSON *want = cJSON_Parse(want_text);
    assert_non_null(want);
    if (!cJSON_Compare(got, want, true)) {
      char *g = cJSON_Print(got);
      fail_msg("%s differs from %s:\n%s", path, golden, g);
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    free(want_text);
    preft_tv_free(root);
    count++;
  }
  closedir(d);
  free(dir);
  return count;
}

/* Every line "FILE LINE WORDS" of rel_dir/expect.txt: FILE fails with "FILE:LINE: ...WORDS...". */
static int check_bad(const char *rel_dir, parse_fn parse) {
  char *dir = test_data_path(rel_dir);
  char path[1024];
  snprintf(path, sizeof path, "%s/expect.txt", dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[512];
  int count = 0;
  while (fgets(line, sizeof line, f)) {
    char name[128], words[256];
    int at;
    if (sscanf(line, "%127s %d %255[^\n]", name, &at, words) != 3) continue;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    preft_tv *root = NULL;
    preft_error err;
    if (parse_file(parse, path, &root, &err) == 0) fail_msg("%s: parsed, but it is malformed", path);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d: ", name, at);
    if (strncmp(err.msg, prefix, strlen(prefix)) || !strstr(err.msg, words))
      fail_msg("%s: error '%s', expected '%s...%s'", path, err.msg, prefix, words);
    count++;
  }
  fclose(f);
  free(dir);
  return count;
}

static void toml_matches_tomllib(void **s) {
  (void)s;
  assert_int_equal(check_goldens("toml", ".toml", preft_toml_parse), 4);
}

static void toml_malformed_files_fail_at_their_line(void **s) {
  (void)s;
  assert_true(check_bad("toml/bad", preft_toml_parse) >= 30);
}

static void yaml_matches_pyyaml(void **s) {
  (void)s;
  assert_int_equal(check_goldens("yaml", ".yaml", preft_yaml_parse), 2);
}

static void yaml_malformed_files_fail_at_their_line(void **s) {
  (void)s;
  assert_true(check_bad("yaml/bad", preft_yaml_parse) >= 13);
}

static void lookups_and_lines(void **s) {
  (void)s;
  const char *text = "a = 1\n\n[t]\nname = \"x\" # c\nf = 2.5\n";
  preft_tv *root;
  preft_error err;
  assert_int_equal(preft_toml_parse(text, strlen(text), "t.toml", &root, &err), 0);
  const preft_tv *t = preft_tv_get(root, "t");
  assert_non_null(t);
  assert_int_equal(t->line, 3);
  assert_string_equal(preft_tv_get(t, "name")->str, "x");
  assert_int_equal(preft_tv_get(t, "name")->line, 4);
  double f;
  assert_true(preft_tv_number(preft_tv_get(t, "f"), &f));
  assert_true(f == 2.5);
  assert_true(preft_tv_number(preft_tv_get(root, "a"), &f));
  assert_true(f == 1.0);
  assert_false(preft_tv_number(preft_tv_get(t, "name"), &f));
  assert_null(preft_tv_get(t, "missing"));
  assert_null(preft_tv_get(preft_tv_get(root, "a"), "x")); /* not a table */
  assert_null(preft_tv_get(NULL, "x"));
  preft_tv_free(root);
  /* an empty document is an empty table; the error of text cut short names the last line */
  assert_int_equal(preft_toml_parse("", 0, "e.toml", &root, &err), 0);
  assert_int_equal(root->kind, PREFT_TV_TABLE);
  assert_int_equal(root->n, 0);
  preft_tv_free(root);
  assert_int_equal(preft_toml_parse("a = [1,\n2,\n", 11, "cut.toml", &root, &err), -1);
  assert_non_null(strstr(err.msg, "cut.toml:3: "));
  /* a NUL byte is a control character, not the end of the text */
  assert_int_equal(preft_toml_parse("a = 1\0b = 2", 11, "nul.toml", &root, &err), -1);
  assert_non_null(strstr(err.msg, "nul.toml:1: control character 0x00"));
  assert_int_equal(preft_yaml_parse("a: 1\0", 5, "nul.yaml", &root, &err), -1);
  assert_non_null(strstr(err.msg, "nul.yaml:1: control character"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(toml_matches_tomllib), cmocka_unit_test(toml_malformed_files_fail_at_their_line),
      cmocka_unit_test(yaml_matches_pyyaml),  cmocka_unit_test(yaml_malformed_files_fail_at_their_line),
      cmocka_unit_test(lookups_and_lines),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
