/* testutil.h - helpers shared by the unit tests: locating golden data,
 * comparing float arrays, running the CLI. Include after cmocka.h. */
#ifndef PREFT_TESTUTIL_H
#define PREFT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/dtype.h"

/* $PREFT_TEST_DATA/<rel> as a heap string (the tests/data folder). */
char *test_data_path(const char *rel);
/* A fresh empty temporary directory (heap string). */
char *test_tmpdir(void);
/* NAME inside a fresh temporary directory (heap string); the file is not
 * created. test_remove_tmp_file removes the file and that directory and
 * frees the string. */
char *test_tmp_file(const char *name);
void test_remove_tmp_file(char *path);
/* Relative L2 error ||a-b|| / ||b||. */
double test_rel_l2(const float *a, const double *b, size_t n);
/* "1,2,3" (up to 1024 integers) as a heap array; *n receives the count. */
int *test_parse_ints(const char *s, int *n);
/* Reads a whole binary file; returns NULL when missing. */
void *test_read_all(const char *path, size_t *size);
/* DIR/golden.json parsed (caller frees with cJSON_Delete); fails the test
 * naming the file and the tool that writes it when missing or unparsable. */
struct cJSON *test_load_golden(const char *dir, const char *tool);
/* Runs `$PREFT_BIN args` with the shell; returns the exit status and captures
 * stderr+stdout into *output (heap, may be NULL). */
int test_run_preft(const char *args, char **output);

/* Lines of a JSONL file, each parsed (the test fails on a missing file or a
 * line that is not JSON). */
typedef struct {
  struct cJSON **v;
  int n;
} test_jsonl;
test_jsonl test_read_jsonl(const char *rel); /* rel: under $PREFT_TEST_DATA */
void test_jsonl_free(test_jsonl *j);

/* How much slower than a Release build this one runs ($PREFT_TEST_TIME_SCALE
 * from CTest: 1, more under a sanitizer); deadlines in tests are multiplied
 * by it. */
double test_time_scale(void);

/* Uniform in [-1, 1): a xorshift64 stream shared by the test program
 * (deterministic for a given order of calls). */
float test_frand(void);
/* count values test_frand() rounded to dt, as stored (heap). */
void *test_random_weights(preft_dtype dt, size_t count);

/* Renders the Jinja template tmpl with the context ctx_json (NULL: {});
 * fails the test unless it renders exactly want. */
void test_render_ok(const char *tmpl, const char *ctx_json, const char *want);
/* Renders tmpl (as from source, NULL: none) with an empty context; fails the
 * test unless rendering fails with an error containing needle1 and, when
 * not NULL, needle2. */
void test_render_fails(const char *tmpl, const char *source, const char *needle1, const char *needle2);

#endif
