/* test_tokenizer_train.c - the BPE trainer is deterministic and writes a
 * tokenizer.json that the Hugging Face reference encodes exactly as preft
 * does: tests/data/tokenizer/trained/tokenizer.json was written by
 * `preft tokenizer train` (tools/tokenizer_reference/make_golden.mjs) and
 * trained.golden.jsonl holds the JavaScript reference's ids for the corpus
 * with that file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "testutil.h"
#include "text/bpe_trainer.h"
#include "text/tokenizer.h"

static void trainer_reproduces_the_committed_tokenizer_json(void **state) {
  char *text_path = test_data_path("tokenizer/train_text.txt");
  size_t n;
  char *text = test_read_all(text_path, &n);
  assert_non_null(text);
  preft_bpe_trainer *tr = preft_bpe_trainer_new();
  preft_error err;
  assert_int_equal(preft_bpe_trainer_feed(tr, text, n, &err), 0);
  const char *specials[] = {"<|endoftext|>", "<|pad|>"};
  assert_int_equal(preft_bpe_trainer_train(tr, 1000, specials, 2, NULL, NULL, &err), 0);
  assert_int_equal(preft_bpe_trainer_n_merges(tr), 1000 - 2 - 256);
  char *dir = test_tmpdir();
  char *out = preft_path_join(dir, "tokenizer.json");
  assert_int_equal(preft_bpe_trainer_write(tr, out, &err), 0);
  preft_bpe_trainer_free(tr);
  size_t a_n, b_n;
  char *a = test_read_all(out, &a_n);
  char *want_path = test_data_path("tokenizer/trained/tokenizer.json");
  char *b = test_read_all(want_path, &b_n);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(a_n, b_n);
  assert_memory_equal(a, b, a_n);
  free(a);
  free(b);
  unlink(out);
  free(out);
  free(dir);
  free(want_path);
  free(text);
  free(text_path);
}

static void trained_tokenizer_encodes_like_the_reference(void **state) {
  char *path = test_data_path("tokenizer/trained/tokenizer.json");
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  char *corpus_path = test_data_path("tokenizer/corpus.jsonl"),
       *gold_path = test_data_path("tokenizer/trained.golden.jsonl");
  size_t cn, gn;
  char *corpus = test_read_all(corpus_path, &cn), *gold = test_read_all(gold_path, &gn);
  assert_non_null(corpus);
  assert_non_null(gold);
  corpus = realloc(corpus, cn + 1);
  corpus[cn] = 0;
  gold = realloc(gold, gn + 1);
  gold[gn] = 0;
  char *cs, *gs;
  char *cl = strtok_r(corpus, "\n", &cs), *gl = strtok_r(gold, "\n", &gs);
  int line = 0, bad = 0;
  for (; cl && gl; cl = strtok_r(NULL, "\n", &cs), gl = strtok_r(NULL, "\n", &gs)) {
    line++;
    cJSON *c = cJSON_Parse(cl), *g = cJSON_Parse(gl);
    const char *s = c->valuestring;
    int32_t *ids;
    size_t n;
    assert_int_equal(preft_tokenizer_encode(t, s, strlen(s), true, &ids, &n, &err), 0);
    const cJSON *want = cJSON_GetObjectItem(g, "ids"), *e;
    size_t k = 0;
    bool same = (size_t)cJSON_GetArraySize(want) == n;
    cJSON_ArrayForEach(e, want) if (same && e->valueint != ids[k++]) same = false;
    if (!same) fprintf(stderr, "trained line %d differs: %s\n", line, s), bad++;
    char *back;
    size_t bl;
    assert_int_equal(preft_tokenizer_decode(t, ids, n, PREFT_DECODE_NO_CLEANUP, &back, &bl, &err), 0);
    if (strcmp(back, s)) fprintf(stderr, "trained line %d: decode(encode(x)) != x\n", line), bad++;
    free(back);
    free(ids);
    cJSON_Delete(c);
    cJSON_Delete(g);
  }
  assert_true(line > 50);
  assert_int_equal(bad, 0);
  free(corpus);
  free(gold);
  free(corpus_path);
  free(gold_path);
  free(path);
  preft_tokenizer_free(t);
}

static void trainer_rejects_a_vocabulary_smaller_than_the_bytes(void **state) {
  preft_bpe_trainer *tr = preft_bpe_trainer_new();
  preft_error err;
  assert_int_equal(preft_bpe_trainer_feed(tr, "abc abc", 7, &err), 0);
  const char *sp[] = {"<s>"};
  assert_int_equal(preft_bpe_trainer_train(tr, 200, sp, 1, NULL, NULL, &err), -1);
  assert_non_null(strstr(err.msg, "200"));
  preft_bpe_trainer_free(tr);
  /* a tiny text runs out of pairs before the target: stops cleanly */
  tr = preft_bpe_trainer_new();
  assert_int_equal(preft_bpe_trainer_feed(tr, "ab ab\xff", 6, &err), 0);
  assert_int_equal(preft_bpe_trainer_train(tr, 5000, NULL, 0, NULL, NULL, &err), 0);
  assert_true(preft_bpe_trainer_n_merges(tr) < 5);
  preft_bpe_trainer_free(tr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(trainer_reproduces_the_committed_tokenizer_json),
      cmocka_unit_test(trained_tokenizer_encodes_like_the_reference),
      cmocka_unit_test(trainer_rejects_a_vocabulary_smaller_than_the_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
