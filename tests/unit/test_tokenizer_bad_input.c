/* test_tokenizer_bad_input.c - tokenizer files and inputs that are wrong get
 * clear errors (naming file, field, offset or id) and never a crash; byte-
 * level tokenizers take any bytes; streaming decode holds back partial UTF-8. */
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
#include "text/tokenizer.h"
#include "text/unicode.h"

/* A tiny byte-level BPE: the 256 byte symbols, merges "h e" -> "he" and
 * "he l" -> "hel", and one special token. */
static char *tiny_bytelevel_json(void) {
  cJSON *root = cJSON_CreateObject();
  cJSON *model = cJSON_AddObjectToObject(root, "model");
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  for (int b = 0; b < 256; b++) {
    preft_buf s = {0};
    uint8_t byte = (uint8_t)b;
    preft_bytelevel_from_bytes(&byte, 1, &s);
    cJSON_AddNumberToObject(vocab, s.data, b);
    preft_buf_free(&s);
  }
  cJSON_AddNumberToObject(vocab, "he", 256);
  cJSON_AddNumberToObject(vocab, "hel", 257);
  cJSON *merges = cJSON_AddArrayToObject(model, "merges");
  cJSON_AddItemToArray(merges, cJSON_CreateString("h e"));
  cJSON_AddItemToArray(merges, cJSON_CreateString("he l"));
  cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
  cJSON_AddStringToObject(pre, "type", "ByteLevel");
  cJSON_AddBoolToObject(pre, "add_prefix_space", false);
  cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
  cJSON_AddStringToObject(dec, "type", "ByteLevel");
  cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
  cJSON *a = cJSON_CreateObject();
  cJSON_AddNumberToObject(a, "id", 258);
  cJSON_AddStringToObject(a, "content", "<|end|>");
  cJSON_AddBoolToObject(a, "special", true);
  cJSON_AddItemToArray(added, a);
  char *s = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return s;
}

static char *write_tmp(const char *name, const char *content) {
  char *dir = test_tmpdir();
  char *path = preft_path_join(dir, name);
  preft_error err;
  assert_int_equal(preft_write_atomic(path, content, strlen(content), &err), 0);
  free(dir);
  return path;
}

static void load_fails(const char *json, const char *needle) {
  char *path = write_tmp("tokenizer.json", json);
  preft_tokenizer *t = (preft_tokenizer *)1;
  preft_error err;
  assert_int_equal(preft_tokenizer_load(&t, path, &err), -1);
  assert_null(t);
  if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
  unlink(path);
  free(path);
}

static void malformed_tokenizer_files_are_rejected_with_the_reason(void **state) {
  load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []",
             "malformed JSON near byte offset");
  load_fails("[1, 2", "malformed JSON");
  load_fails("{\"version\": \"1.0\"}", "no 'model' object");
  load_fails("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "unsupported model type 'Unigram'");
  load_fails(
      "{\"normalizer\": {\"type\": \"Precompiled\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, "
      "\"merges\": []}}",
      "unsupported type 'Precompiled'");
  load_fails(
      "{\"pre_tokenizer\": {\"type\": \"Frobnicate\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, "
      "\"merges\": []}}",
      "pre_tokenizer: unsupported type 'Frobnicate'");
  load_fails(
      "{\"decoder\": {\"type\": \"CTC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
      "decoder: unsupported type 'CTC'");
  load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
             "model.merges[0]");
  load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "model.vocab");
  load_fails("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}", "model.merges[0]");
  load_fails(
      "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": "
      "\"Isolated\"}, "
      "\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
      "does not compile");
  load_fails(
      "{\"added_tokens\": [{\"content\": \"x\"}], \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": "
      "[]}}",
      "added_tokens[0]");
  preft_tokenizer *t;
  preft_error err;
  assert_int_equal(preft_tokenizer_load(&t, "/nonexistent/tokenizer.json", &err), -1);
  assert_non_null(strstr(err.msg, "/nonexistent"));
}

static void byte_level_encodes_invalid_utf8_as_raw_bytes(void **state) {
  char *json = tiny_bytelevel_json();
  char *path = write_tmp("tokenizer.json", json);
  free(json);
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  const char text[] = "hel\xff\xfe<|end|>he\xc3";
  int32_t *ids;
  size_t n;
  assert_int_equal(preft_tokenizer_encode(t, text, sizeof text - 1, true, &ids, &n, &err), 0);
  const int32_t want[] = {257, 0xff, 0xfe, 258, 256, 0xc3};
  assert_int_equal(n, 6);
  assert_memory_equal(ids, want, sizeof want);
  char *s;
  size_t len;
  assert_int_equal(preft_tokenizer_decode(t, ids, n, 0, &s, &len, &err), 0);
  assert_string_equal(s, "hel\xEF\xBF\xBD\xEF\xBF\xBD<|end|>he\xEF\xBF\xBD"); /* U+FFFD per bad byte */
  free(s);
  assert_int_equal(preft_tokenizer_decode(t, ids, n, PREFT_DECODE_SKIP_SPECIAL, &s, &len, &err), 0);
  assert_int_equal(len, strlen("hel\xEF\xBF\xBD\xEF\xBF\xBDhe\xEF\xBF\xBD"));
  free(s);
  free(ids);
  /* ids outside the vocabulary */
  const int32_t bad[] = {1, 2, 259};
  assert_int_equal(preft_tokenizer_decode(t, bad, 3, 0, &s, &len, &err), -1);
  assert_non_null(strstr(err.msg, "259"));
  assert_non_null(strstr(err.msg, "position 2"));
  const int32_t neg[] = {-1};
  assert_int_equal(preft_tokenizer_decode(t, neg, 1, 0, &s, &len, &err), -1);
  /* empty text */
  assert_int_equal(preft_tokenizer_encode(t, "", 0, true, &ids, &n, &err), 0);
  assert_int_equal(n, 0);
  free(ids);
  assert_int_equal(preft_tokenizer_token_to_id(t, "he"), 256);
  assert_int_equal(preft_tokenizer_token_to_id(t, "<|end|>"), 258);
  assert_int_equal(preft_tokenizer_token_to_id(t, "zzz"), -1);
  assert_string_equal(preft_tokenizer_id_to_token(t, 32), "\xC4\xA0"); /* 'Ġ' */
  assert_null(preft_tokenizer_id_to_token(t, 5000));
  preft_tokenizer_free(t);
  unlink(path);
  free(path);
}

/* Invalid UTF-8 becomes U+FFFD, one per maximal subpart: Python's
 * bytes.decode("utf-8", "replace") gives the expected strings. */
static void lossy_utf8_replaces_like_python(void **state) {
  static const struct {
    const char *in, *want;
  } cases[] = {
      {"ok", "ok"},
      {"\xe2\x82 x", "\xef\xbf\xbd x"},
      {"\xf0\x9f\x98", "\xef\xbf\xbd"},
      {"a\xff"
       "b",
       "a\xef\xbf\xbd"
       "b"},
      {"\xed\xa0\x80z", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz"},
      {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
      {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xf0\x9f\x98\x80\x80", "\xf0\x9f\x98\x80\xef\xbf\xbd"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    preft_buf out = {0};
    preft_utf8_append_lossy(&out, (const uint8_t *)cases[i].in, strlen(cases[i].in));
    assert_int_equal(out.len, strlen(cases[i].want));
    assert_memory_equal(out.data, cases[i].want, out.len);
    preft_buf_free(&out);
  }
}

static void streaming_decode_holds_back_partial_utf8(void **state) {
  char *json = tiny_bytelevel_json();
  char *path = write_tmp("tokenizer.json", json);
  free(json);
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  /* "hé😀" as single bytes: h, e, C3 A9, F0 9F 98 80 */
  const int32_t ids[] = {'h', 'e', 0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, 258};
  const char *want[] = {"h", "e", NULL, "\xC3\xA9", NULL, NULL, NULL, "\xF0\x9F\x98\x80", NULL};
  preft_decode_stream *s = preft_decode_stream_new(t, true);
  for (int i = 0; i < 9; i++) {
    char *piece;
    assert_int_equal(preft_decode_stream_step(s, ids[i], &piece, &err), 0);
    if (want[i]) {
      assert_non_null(piece);
      assert_string_equal(piece, want[i]);
    } else {
      assert_null(piece);
    }
    free(piece);
  }
  char *piece;
  assert_int_equal(preft_decode_stream_step(s, 0xF0, &piece, &err), 0);
  assert_null(piece);
  piece = preft_decode_stream_flush(s);
  assert_string_equal(piece, "\xEF\xBF\xBD");
  free(piece);
  assert_int_equal(preft_decode_stream_step(s, 99999, &piece, &err), -1);
  preft_decode_stream_free(s);
  preft_tokenizer_free(t);
  unlink(path);
  free(path);
}

static void wordpiece_reports_invalid_utf8_offset(void **state) {
  char *path = write_tmp("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##s\n");
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  int32_t *ids;
  size_t n;
  assert_int_equal(preft_tokenizer_encode(t, "hellos \xC3(", 9, true, &ids, &n, &err), -1);
  assert_non_null(strstr(err.msg, "byte offset 7"));
  assert_int_equal(preft_tokenizer_encode(t, "Hellos unknownword", 18, true, &ids, &n, &err), 0);
  const int32_t want[] = {2, 4, 5, 1, 3};
  assert_int_equal(n, 5);
  assert_memory_equal(ids, want, sizeof want);
  free(ids);
  char long_word[300];
  memset(long_word, 'a', sizeof long_word - 1);
  long_word[sizeof long_word - 1] = 0;
  assert_int_equal(preft_tokenizer_encode(t, long_word, strlen(long_word), false, &ids, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ids[0], 1); /* [UNK]: over 100 characters */
  free(ids);
  preft_tokenizer_free(t);
  unlink(path);
  free(path);
}

static void cli_reports_errors_with_exit_codes(void **state) {
  char *out = NULL;
  assert_int_equal(test_run_preft("tokenize --tokenizer /nonexistent --text hi", &out), 1);
  assert_non_null(strstr(out, "/nonexistent"));
  free(out);
  assert_int_equal(test_run_preft("tokenize --text hi", &out), 2);
  free(out);
  assert_int_equal(test_run_preft("detokenize --tokenizer x --ids 1,a", &out), 2);
  free(out);
  assert_int_equal(test_run_preft("tokenize --help", &out), 0);
  free(out);
  char *dir = test_data_path(".cache/llama3_1");
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "detokenize --tokenizer %s --ids 9906,999999", dir);
  assert_int_equal(test_run_preft(cmd, &out), 1);
  assert_non_null(strstr(out, "999999"));
  free(out);
  snprintf(cmd, sizeof cmd, "tokenize --tokenizer %s --text 'Hello world'", dir);
  assert_int_equal(test_run_preft(cmd, &out), 0);
  assert_non_null(strstr(out, "[128000,9906,1917]"));
  free(out);
  snprintf(cmd, sizeof cmd, "detokenize --tokenizer %s --ids 128000,9906,1917 --skip-special", dir);
  assert_int_equal(test_run_preft(cmd, &out), 0);
  assert_string_equal(out, "Hello world\n");
  free(out);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(malformed_tokenizer_files_are_rejected_with_the_reason),
      cmocka_unit_test(byte_level_encodes_invalid_utf8_as_raw_bytes),
      cmocka_unit_test(streaming_decode_holds_back_partial_utf8),
      cmocka_unit_test(lossy_utf8_replaces_like_python),
      cmocka_unit_test(wordpiece_reports_invalid_utf8_offset),
      cmocka_unit_test(cli_reports_errors_with_exit_codes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
