/* test_tokenizer_threads.c - one tokenizer shared by concurrent encoders (what
 * the HTTP server's connection threads do): four threads encode the
 * tokenizer corpus at once, twice over, each from a different line, so that
 * they fill and read the BPE piece cache (bpe.c, try-locked) at the same
 * time; every encoding must equal the Hugging Face reference ids
 * (tests/data/tokenizer/qwen3.golden.jsonl, as in test_tokenizer.c). Run
 * under ThreadSanitizer by scripts/test.sh, which reports any unguarded
 * access to the cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "text/tokenizer.h"

enum { N_THREADS = 4, ROUNDS = 2 };

typedef struct {
  const preft_tokenizer *tok;
  const test_jsonl *corpus, *gold;
  pthread_barrier_t *start;
  int first_line;
  int mismatches; /* encodings that differ from the reference, or failed */
} encoder;

/* Whether ids[0..n) equals the JSON array of ids want. */
static bool same_ids(const cJSON *want, const int32_t *ids, size_t n) {
  if (!cJSON_IsArray(want) || (size_t)cJSON_GetArraySize(want) != n) return false;
  size_t k = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, want) if (e->valueint != ids[k++]) return false;
  return true;
}

static void *encode_corpus(void *arg) {
  encoder *w = arg;
  pthread_barrier_wait(w->start);
  int n = w->corpus->n;
  for (int round = 0; round < ROUNDS; round++)
    for (int j = 0; j < n; j++) {
      int line = (w->first_line + j) % n;
      const char *text = w->corpus->v[line]->valuestring;
      int32_t *ids = NULL;
      size_t n_ids = 0;
      preft_error err;
      if (preft_tokenizer_encode(w->tok, text, strlen(text), true, &ids, &n_ids, &err) != 0 ||
          !same_ids(cJSON_GetObjectItem(w->gold->v[line], "ids"), ids, n_ids)) {
        fprintf(stderr, "thread from line %d: line %d differs from the reference\n", w->first_line + 1,
                line + 1);
        w->mismatches++;
      }
      free(ids);
    }
  return NULL;
}

static void concurrent_encoders_all_match_the_reference(void **state) {
  char *dir = test_data_path(".cache/qwen3");
  preft_tokenizer *tok;
  preft_error err;
  if (preft_tokenizer_load(&tok, dir, &err))
    fail_msg("cannot load %s: %s (run scripts/fetch-test-data.sh)", dir, err.msg);
  free(dir);
  test_jsonl corpus = test_read_jsonl("tokenizer/corpus.jsonl");
  test_jsonl gold = test_read_jsonl("tokenizer/qwen3.golden.jsonl");
  assert_int_equal(corpus.n, gold.n);
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, N_THREADS);
  encoder w[N_THREADS];
  pthread_t th[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    w[i] = (encoder){tok, &corpus, &gold, &start, i * corpus.n / N_THREADS, 0};
    assert_int_equal(pthread_create(&th[i], NULL, encode_corpus, &w[i]), 0);
  }
  int mismatches = 0;
  for (int i = 0; i < N_THREADS; i++) {
    pthread_join(th[i], NULL);
    mismatches += w[i].mismatches;
  }
  pthread_barrier_destroy(&start);
  test_jsonl_free(&corpus);
  test_jsonl_free(&gold);
  preft_tokenizer_free(tok);
  assert_int_equal(mismatches, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(concurrent_encoders_all_match_the_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
