/* test_apt_sources.c - apt's source lists in both formats, the Debian
 * mirror picked from them for debootstrap, and malformed lists refused by
 * file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/file.h"
#include "tasks/apt_sources.h"
#include "tasks/fs_tree.h"
#include "testutil.h"

static void one_line_format(void **s) {
  const char *text =
      "# a comment\n"
      "deb http://deb.debian.org/debian bookworm main contrib # trailing\n"
      "deb-src http://deb.debian.org/debian bookworm main\n"
      "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://mirror.example/debian/ bookworm-updates "
      "main\n"
      "deb [ trusted=yes ] file:/srv/repo ./\n"
      "\n";
  preft_apt_sources a = {0};
  preft_error err;
  if (preft_apt_sources_parse_list(text, strlen(text), "sources.list", &a, &err) != 0)
    fail_msg("%s", err.msg);
  assert_int_equal(a.n, 4);
  assert_string_equal(a.v[0].uri, "http://deb.debian.org/debian");
  assert_string_equal(a.v[0].suite, "bookworm");
  assert_int_equal(a.v[0].n_components, 2);
  assert_string_equal(a.v[0].components[1], "contrib");
  assert_true(a.v[1].deb_src);
  assert_string_equal(a.v[2].uri, "https://mirror.example/debian/");
  assert_string_equal(a.v[2].suite, "bookworm-updates");
  assert_int_equal(a.v[2].line, 4);
  assert_string_equal(a.v[3].suite, "./");
  assert_int_equal(a.v[3].n_components, 0);
  preft_apt_sources_free(&a);
}

static void deb822_format(void **s) {
  const char *text =
      "Types: deb deb-src\n"
      "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
      "URIs: http://deb.debian.org/debian\n"
      "Suites: bookworm bookworm-updates\n"
      "Components: main\n"
      " non-free-firmware\n"
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
      "\n"
      "Types: deb\n"
      "URIs: http://deb.debian.org/debian-security\n"
      "Suites: bookworm-security\n"
      "Components: main\n"
      "\n"
      "Enabled: no\n"
      "Types: deb\n"
      "URIs: http://disabled.example/debian\n"
      "Suites: sid\n"
      "Components: main\n";
  preft_apt_sources a = {0};
  preft_error err;
  if (preft_apt_sources_parse_deb822(text, strlen(text), "debian.sources", &a, &err) != 0)
    fail_msg("%s", err.msg);
  assert_int_equal(a.n, 5); /* 2 types x 2 suites, then one */
  assert_false(a.v[0].deb_src);
  assert_string_equal(a.v[0].suite, "bookworm");
  assert_string_equal(a.v[1].suite, "bookworm-updates");
  assert_true(a.v[2].deb_src);
  assert_int_equal(a.v[0].n_components, 2);
  assert_string_equal(a.v[0].components[1], "non-free-firmware");
  assert_string_equal(a.v[4].uri, "http://deb.debian.org/debian-security");
  assert_int_equal(a.v[4].line, 9);
  char *uri, *suite;
  assert_int_equal(preft_apt_sources_debian_mirror(&a, &uri, &suite, &err), 0);
  assert_string_equal(uri, "http://deb.debian.org/debian");
  assert_string_equal(suite, "bookworm");
  free(uri);
  free(suite);
  preft_apt_sources_free(&a);
}

static void mirror_skips_updates_security_and_sources(void **s) {
  const char *text =
      "deb-src http://a.example/debian bookworm main\n"
      "deb http://b.example/debian bookworm-updates main\n"
      "deb http://c.example/debian-security bookworm-security main\n"
      "deb http://d.example/ubuntu noble main\n"
      "deb http://e.example/debian bookworm contrib\n"
      "deb http://f.example/debian/ trixie main\n";
  preft_apt_sources a = {0};
  preft_error err;
  assert_int_equal(preft_apt_sources_parse_list(text, strlen(text), "x.list", &a, &err), 0);
  char *uri, *suite;
  assert_int_equal(preft_apt_sources_debian_mirror(&a, &uri, &suite, &err), 0);
  assert_string_equal(uri, "http://f.example/debian");
  assert_string_equal(suite, "trixie");
  free(uri);
  free(suite);
  preft_apt_sources_free(&a);
  preft_apt_sources empty = {0};
  assert_int_equal(preft_apt_sources_debian_mirror(&empty, &uri, &suite, &err), -1);
  assert_non_null(strstr(err.msg, "no Debian release source"));
}

static void load_reads_list_and_sources_files(void **s) {
  char *root = test_tmpdir();
  char *d = preft_path_join(root, "etc/apt/sources.list.d");
  preft_error err;
  assert_int_equal(preft_mkdir_p(d, &err), 0);
  char *f1 = preft_path_join(root, "etc/apt/sources.list");
  char *f2 = preft_path_join(d, "debian.sources");
  char *f3 = preft_path_join(d, "old.list.disabled-by-someone");
  const char *t1 = "deb http://one.example/debian bookworm main\n";
  const char *t2 = "Types: deb\nURIs: http://two.example/debian\nSuites: bookworm\nComponents: main\n";
  assert_int_equal(preft_write_atomic(f1, t1, strlen(t1), &err), 0);
  assert_int_equal(preft_write_atomic(f2, t2, strlen(t2), &err), 0);
  assert_int_equal(preft_write_atomic(f3, "garbage\n", 8, &err), 0);
  preft_apt_sources a;
  if (preft_apt_sources_load(root, &a, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(a.n, 2);
  assert_string_equal(a.v[1].uri, "http://two.example/debian");
  assert_non_null(strstr(a.v[1].file, "debian.sources"));
  preft_apt_sources_free(&a);
  /* a broken file is an error naming it and its line */
  assert_int_equal(preft_write_atomic(f1, "deb\n", 4, &err), 0);
  assert_int_equal(preft_apt_sources_load(root, &a, &err), -1);
  assert_non_null(strstr(err.msg, "sources.list:1: expected URI and suite"));
  preft_fs_remove(root, &err);
  free(f1);
  free(f2);
  free(f3);
  free(d);
  free(root);
}

static void malformed_lists_name_the_line(void **s) {
  struct {
    const char *text;
    bool deb822;
    const char *want;
  } cases[] = {
      {"deb http://x/debian\n", false, "f:1: expected URI and suite"},
      {"\nrpm http://x/debian bookworm main\n", false, "f:2: expected deb or deb-src"},
      {"deb [arch=amd64 http://x/debian bookworm main\n", false, "f:1: unclosed [ options"},
      {"deb not-a-uri bookworm main\n", false, "f:1: 'not-a-uri' is not a URI"},
      {"deb http://x/debian bookworm\n", false, "f:1: suite bookworm needs a component"},
      {"Types: deb\nURIs: http://x/debian\n", true, "f:1: a source needs Types, URIs and Suites"},
      {"Types: rpm\nURIs: http://x/debian\nSuites: a\nComponents: main\n", true, "f:1: Types: expected deb"},
      {" leading continuation\n", true, "f:1: a continuation line outside a field"},
      {"Types deb\n", true, "f:1: expected 'Field: value'"},
      {"Types: deb\nURIs: http://x/\nSuites: ./\nComponents: main\n", true, "f:1: suite ./ is an exact path"},
  };
  /* a continuation of the short Enabled field past its size (found by fuzzing) */
  char long_enabled[300];
  snprintf(long_enabled, sizeof long_enabled, "Enabled: no\n %0200d\n", 0);
  preft_apt_sources a0 = {0};
  preft_error err0;
  assert_int_equal(preft_apt_sources_parse_deb822(long_enabled, strlen(long_enabled), "f", &a0, &err0), -1);
  assert_non_null(strstr(err0.msg, "f:2: field too long"));
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    preft_apt_sources a = {0};
    preft_error err;
    size_t n = strlen(cases[i].text);
    int rc = cases[i].deb822 ? preft_apt_sources_parse_deb822(cases[i].text, n, "f", &a, &err)
                             : preft_apt_sources_parse_list(cases[i].text, n, "f", &a, &err);
    if (rc == 0) fail_msg("accepted: %s", cases[i].text);
    if (!strstr(err.msg, cases[i].want)) fail_msg("error \"%s\" lacks \"%s\"", err.msg, cases[i].want);
    preft_apt_sources_free(&a);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_line_format),
      cmocka_unit_test(deb822_format),
      cmocka_unit_test(mirror_skips_updates_security_and_sources),
      cmocka_unit_test(load_reads_list_and_sources_files),
      cmocka_unit_test(malformed_lists_name_the_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
