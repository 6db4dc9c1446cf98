/* test_tokenizer_gguf.c - tokenizers read from GGUF metadata.
 *
 * Byte-level BPE: the Llama 3.1 and Qwen3 tokenizer.json files (fetched by
 * scripts/fetch-test-data.sh) are exported to GGUF by `preft convert`'s
 * exporter and read back; the GGUF tokenizer must give the Hugging Face
 * golden ids (tools/tokenizer_reference/make_golden.mjs) of the whole corpus,
 * with and without special tokens, and the same decodings, chat template and
 * special ids.
 * WordPiece: bert-base-uncased's vocabulary written as llama.cpp's converter
 * writes BERT (word starts with U+2581, continuations bare) must give the
 * BERT golden ids.
 * SentencePiece with scores: a hand-made vocabulary whose expected ids are
 * worked out by hand below with llama.cpp's SPM rule (highest-scoring
 * adjacent pair first, leftmost on ties, byte fallback).
 * deepseek-llm's pre-tokenizer: a byte-level vocabulary whose merges only
 * the pre-tokenizer's pieces keep apart, ids worked out by hand with
 * llama.cpp's regexes.
 * Malformed metadata fails naming the key. */
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
#include "io/gguf.h"
#include "model/gguf_export.h"
#include "model/llama.h"
#include "testutil.h"
#include "text/tokenizer.h"

static bool ids_equal(const cJSON *want, const int32_t *ids, size_t n) {
  size_t k = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, want) {
    if (k >= n || e->valueint != ids[k]) return false;
    k++;
  }
  return k == n;
}

/* Encodes every corpus line with and without specials and decodes; counts
 * the lines that differ from the golden file. */
static int golden_mismatches(const preft_tokenizer *t, const char *golden, bool with_plain,
                             unsigned decode_flags) {
  test_jsonl corpus = test_read_jsonl("tokenizer/corpus.jsonl");
  test_jsonl gold = test_read_jsonl(golden);
  assert_int_equal(corpus.n, gold.n);
  int bad = 0;
  for (int i = 0; i < corpus.n; i++) {
    const char *text = corpus.v[i]->valuestring;
    preft_error err;
    for (int f = 0; f < (with_plain ? 2 : 1); f++) {
      int32_t *ids;
      size_t n;
      assert_int_equal(preft_tokenizer_encode(t, text, strlen(text), f == 0, &ids, &n, &err), 0);
      const char *field = f == 0 ? "ids" : "plain";
      if (!ids_equal(cJSON_GetObjectItem(gold.v[i], field), ids, n)) {
        fprintf(stderr, "%s line %d (%s) differs: %s\n", golden, i + 1, field, text);
        bad++;
      }
      const cJSON *want = cJSON_GetObjectItem(gold.v[i], "decode");
      if (f == 0 && cJSON_IsString(want)) {
        char *s;
        size_t sl;
        assert_int_equal(preft_tokenizer_decode(t, ids, n, decode_flags, &s, &sl, &err), 0);
        if (strcmp(s, want->valuestring)) {
          fprintf(stderr, "%s line %d decode: want '%s' got '%s'\n", golden, i + 1, want->valuestring, s);
          bad++;
        }
        free(s);
      }
      free(ids);
    }
  }
  test_jsonl_free(&corpus);
  test_jsonl_free(&gold);
  return bad;
}

/* The tokenizer of tests/data/.cache/NAME exported to GGUF with a tiny
 * random model and read back; it must match the golden ids and the
 * tokenizer.json's own special ids and chat template. */
static void check_bpe_round_trip(const char *name) {
  char rel[64];
  snprintf(rel, sizeof rel, ".cache/%s", name);
  char *dir = test_data_path(rel);
  preft_tokenizer *ref, *t;
  preft_error err;
  if (preft_tokenizer_load(&ref, dir, &err)) fail_msg("%s (run scripts/fetch-test-data.sh)", err.msg);
  preft_model_config cfg = {.arch = PREFT_ARCH_LLAMA,
                            .vocab = preft_tokenizer_vocab_size(ref),
                            .dim = 8,
                            .ffn = 8,
                            .n_layers = 1,
                            .n_heads = 1,
                            .n_kv_heads = 1,
                            .head_dim = 8,
                            .max_pos = 64,
                            .norm_eps = 1e-5f,
                            .rope_theta = 10000,
                            .bos_id = -1};
  preft_model *m;
  assert_int_equal(preft_model_init_random(&m, &cfg, PREFT_F32, 1, &err), 0);
  char *path = test_tmp_file("tok.gguf");
  if (preft_gguf_export_model(m, ref, NULL, path, &err)) fail_msg("%s", err.msg);
  preft_model_free(m);
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);

  snprintf(rel, sizeof rel, "tokenizer/%s.golden.jsonl", name);
  assert_int_equal(golden_mismatches(t, rel, true, 0), 0);
  assert_int_equal(preft_tokenizer_bos_id(t), preft_tokenizer_bos_id(ref));
  assert_int_equal(preft_tokenizer_vocab_size(t), preft_tokenizer_vocab_size(ref));
  const int32_t *e1, *e2;
  int n1 = preft_tokenizer_eos_ids(t, &e1), n2 = preft_tokenizer_eos_ids(ref, &e2);
  assert_true(n1 >= 1 && n2 >= 1);
  assert_int_equal(e1[0], e2[0]);
  assert_string_equal(preft_tokenizer_chat_template(t), preft_tokenizer_chat_template(ref));
  assert_string_equal(preft_tokenizer_eos_token(t), preft_tokenizer_eos_token(ref));
  for (int32_t id = 0; id < preft_tokenizer_vocab_size(ref); id += 997)
    assert_string_equal(preft_tokenizer_id_to_token(t, id), preft_tokenizer_id_to_token(ref, id));
  preft_tokenizer_free(t);
  preft_tokenizer_free(ref);
  test_remove_tmp_file(path);
  free(dir);
}

static void llama3_1_from_gguf_matches_reference(void **state) { check_bpe_round_trip("llama3_1"); }
static void qwen3_from_gguf_matches_reference(void **state) { check_bpe_round_trip("qwen3"); }

/* ---- WordPiece ---------------------------------------------------------------- */

static void bert_from_gguf_matches_reference(void **state) {
  char *src = test_data_path(".cache/bert/vocab.json");
  size_t size;
  char *data = test_read_all(src, &size);
  if (!data) fail_msg("missing %s (run scripts/fetch-test-data.sh)", src);
  cJSON *arr = cJSON_ParseWithLength(data, size);
  assert_true(cJSON_IsArray(arr));
  int n = cJSON_GetArraySize(arr);
  const char **toks = malloc(sizeof(char *) * (size_t)n);
  int32_t *types = malloc(sizeof(int32_t) * (size_t)n);
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    const char *s = e->valuestring;
    size_t len = strlen(s);
    toks[i] = s;
    types[i] = len >= 2 && s[0] == '[' && s[len - 1] == ']' && strncmp(s, "[unused", 7) ? 3 : 1;
    i++;
  }
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  preft_gguf_set_str(&w, "general.architecture", "bert");
  preft_gguf_set_str(&w, "tokenizer.ggml.model", "bert");
  preft_gguf_set_arr_str(&w, "tokenizer.ggml.tokens", toks, (size_t)n);
  preft_gguf_set_arr_i32(&w, "tokenizer.ggml.token_type", types, (size_t)n);
  preft_gguf_set_u32(&w, "tokenizer.ggml.unknown_token_id", 100);
  preft_gguf_set_u32(&w, "tokenizer.ggml.cls_token_id", 101);
  preft_gguf_set_u32(&w, "tokenizer.ggml.seperator_token_id", 102);
  preft_gguf_set_u32(&w, "tokenizer.ggml.padding_token_id", 0);
  char *path = test_tmp_file("bert.gguf");
  preft_error err;
  assert_int_equal(preft_gguf_write(&w, path, &err), 0);
  preft_gguf_writer_free(&w);
  preft_tokenizer *t;
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  assert_int_equal(golden_mismatches(t, "tokenizer/bert.golden.jsonl", false, PREFT_DECODE_SKIP_SPECIAL), 0);
  preft_tokenizer_free(t);
  test_remove_tmp_file(path);
  free(toks);
  free(types);
  cJSON_Delete(arr);
  free(data);
  free(src);
}

/* ---- SentencePiece with scores ------------------------------------------------- */

#define SP "\xe2\x96\x81"

/* ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then NORMAL tokens. */
static const struct {
  const char *text;
  float score;
} SPM_TOKENS[] = {
    {SP, -1.0f},        /* 259 */
    {"h", -2.0f},       /* 260 */
    {"e", -2.0f},       /* 261 */
    {"l", -2.0f},       /* 262 */
    {"o", -2.0f},       /* 263 */
    {"a", -2.0f},       /* 264 */
    {"b", -2.0f},       /* 265 */
    {"c", -2.0f},       /* 266 */
    {"ll", -1.0f},      /* 267 */
    {"llo", -0.5f},     /* 268 */
    {"he", -1.5f},      /* 269 */
    {"hello", -0.2f},   /* 270 */
    {SP "hello", 0.0f}, /* 271 */
    {"el", -1.2f},      /* 272 */
    {"ab", -0.7f},      /* 273 */
    {"bc", -0.7f},      /* 274 */
    {SP "a", -0.9f},    /* 275 */
    {"abc", -3.0f},     /* 276 */
    {"<tool>", 0.0f},   /* 277: USER_DEFINED */
};

static char *write_spm(bool add_space_prefix) {
  enum { N_FIXED = 259, N = N_FIXED + sizeof SPM_TOKENS / sizeof SPM_TOKENS[0] };
  const char *toks[N];
  char bytes[256][8];
  float scores[N];
  int32_t types[N];
  toks[0] = "<unk>", types[0] = 2, scores[0] = 0;
  toks[1] = "<s>", types[1] = 3, scores[1] = 0;
  toks[2] = "</s>", types[2] = 3, scores[2] = 0;
  for (int b = 0; b < 256; b++) {
    snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
    toks[3 + b] = bytes[b], types[3 + b] = 6, scores[3 + b] = 0;
  }
  for (int i = N_FIXED; i < N; i++) {
    toks[i] = SPM_TOKENS[i - N_FIXED].text;
    scores[i] = SPM_TOKENS[i - N_FIXED].score;
    types[i] = i == 277 ? 4 : 1;
  }
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  preft_gguf_set_str(&w, "general.architecture", "llama");
  preft_gguf_set_str(&w, "tokenizer.ggml.model", "llama");
  preft_gguf_set_arr_str(&w, "tokenizer.ggml.tokens", toks, N);
  preft_gguf_set_arr_f32(&w, "tokenizer.ggml.scores", scores, N);
  preft_gguf_set_arr_i32(&w, "tokenizer.ggml.token_type", types, N);
  preft_gguf_set_u32(&w, "tokenizer.ggml.bos_token_id", 1);
  preft_gguf_set_u32(&w, "tokenizer.ggml.eos_token_id", 2);
  preft_gguf_set_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
  preft_gguf_set_bool(&w, "tokenizer.ggml.add_space_prefix", add_space_prefix);
  preft_gguf_set_str(&w, "tokenizer.chat_template", "{{ messages[0]['content'] }}");
  char *path = test_tmp_file("spm.gguf");
  preft_error err;
  assert_int_equal(preft_gguf_write(&w, path, &err), 0);
  preft_gguf_writer_free(&w);
  return path;
}

/* Encodes text and expects want; decoding (specials skipped) must give
 * text back, or want_decode when given. */
static void expect_ids(const preft_tokenizer *t, const char *text, bool special, const int32_t *want,
                       size_t n_want, const char *want_decode) {
  int32_t *ids;
  size_t n;
  preft_error err;
  assert_int_equal(preft_tokenizer_encode(t, text, strlen(text), special, &ids, &n, &err), 0);
  bool same = n == n_want && !memcmp(ids, want, n * sizeof *ids);
  if (!same) {
    fprintf(stderr, "'%s': got", text);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
  }
  assert_true(same);
  char *s;
  size_t sl;
  assert_int_equal(preft_tokenizer_decode(t, ids, n, PREFT_DECODE_SKIP_SPECIAL, &s, &sl, &err), 0);
  assert_string_equal(s, want_decode ? want_decode : text);
  free(s);
  free(ids);
}

static void sentencepiece_scores_follow_llama_cpp(void **state) {
  char *path = write_spm(true);
  preft_tokenizer *t;
  preft_error err;
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  /* "hello" -> "▁hello" = ▁ h e l l o. Pairs: ▁h (none), he -1.5, el -1.2,
   * ll -1.0, lo (none). ll first; then llo -0.5 (ell: none); then he -1.5
   * (▁he: none); he+llo = hello -0.2; ▁+hello = ▁hello 0.0. BOS added. */
  expect_ids(t, "hello", true, (const int32_t[]){1, 271}, 2, NULL);
  /* "abc" -> ▁ a b c: ▁a -0.9, ab -0.7, bc -0.7: ab and bc tie, leftmost
   * wins: ▁ [ab] c; then ▁+ab (none), ab+c = abc -3.0, ▁a gone: ▁ [abc]. */
  expect_ids(t, "abc", false, (const int32_t[]){259, 276}, 2, NULL);
  /* "cab" -> ▁ c a b: ab -0.7 first (▁c, ca: none): ▁ c [ab]; c+ab (none). */
  expect_ids(t, "cab", false, (const int32_t[]){259, 266, 273}, 3, NULL);
  /* Unknown characters fall back to their UTF-8 bytes: "Zé" -> ▁ Z é:
   * ▁ (259), Z = <0x5A> (3 + 0x5A), é = <0xC3> <0xA9>. */
  expect_ids(t, "Z\xc3\xa9", false, (const int32_t[]){259, 3 + 0x5A, 3 + 0xC3, 3 + 0xA9}, 4, NULL);
  /* A user-defined token is matched before the model; each text section
   * gets its own leading ▁ (the first after a matched token too), which
   * decodes as a space, as with Hugging Face's Llama 2 tokenizer. */
  expect_ids(t, "a<tool>a", false, (const int32_t[]){275, 277, 275}, 3, "a<tool> a");
  assert_int_equal(preft_tokenizer_bos_id(t), 1);
  const int32_t *eos;
  assert_int_equal(preft_tokenizer_eos_ids(t, &eos), 1);
  assert_int_equal(eos[0], 2);
  assert_string_equal(preft_tokenizer_chat_template(t), "{{ messages[0]['content'] }}");
  preft_tokenizer_free(t);
  test_remove_tmp_file(path);

  /* Without add_space_prefix "hello" stays h e l l o -> [hello]. */
  path = write_spm(false);
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  expect_ids(t, "hello", false, (const int32_t[]){270}, 1, NULL);
  preft_tokenizer_free(t);
  test_remove_tmp_file(path);
}

/* ---- deepseek-llm's pre-tokenizer ---------------------------------------------------- */

/* GPT-2's byte-to-character map: byte b as the UTF-8 of its character. */
static void byte_char(int b, char out[4]) {
  int cp = b, n = 0;
  if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
    for (int c = 0; c < b; c++)
      if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    cp = 256 + n;
  }
  if (cp < 0x80) {
    out[0] = (char)cp, out[1] = 0;
  } else {
    out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
  }
}

/* A byte-level BPE vocabulary (ids 0-255: the bytes) with five merges that
 * only pre-tokenization can keep apart, under tokenizer.ggml.pre
 * "deepseek-llm". */
static void deepseek_llm_splits_as_llama_cpp(void **state) {
  (void)state;
  char bytes[256][4], m[5][16];
  const char *toks[261];
  int32_t types[261];
  for (int b = 0; b < 256; b++) byte_char(b, bytes[b]), toks[b] = bytes[b], types[b] = 1;
  /* 256 "  ", 257 "12", 258 "\n\n", 259 " " + 1st byte of U+4E16, 260 "he" */
  const int pairs[5][2] = {{' ', ' '}, {'1', '2'}, {'\n', '\n'}, {' ', 0xE4}, {'h', 'e'}};
  char merged[5][16];
  const char *merges[5];
  for (int i = 0; i < 5; i++) {
    snprintf(merged[i], sizeof merged[i], "%s%s", bytes[pairs[i][0]], bytes[pairs[i][1]]);
    snprintf(m[i], sizeof m[i], "%s %s", bytes[pairs[i][0]], bytes[pairs[i][1]]);
    toks[256 + i] = merged[i], types[256 + i] = 1, merges[i] = m[i];
  }
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  preft_gguf_set_str(&w, "general.architecture", "llama");
  preft_gguf_set_str(&w, "tokenizer.ggml.model", "gpt2");
  preft_gguf_set_str(&w, "tokenizer.ggml.pre", "deepseek-llm");
  preft_gguf_set_arr_str(&w, "tokenizer.ggml.tokens", toks, 261);
  preft_gguf_set_arr_i32(&w, "tokenizer.ggml.token_type", types, 261);
  preft_gguf_set_arr_str(&w, "tokenizer.ggml.merges", merges, 5);
  preft_gguf_set_bool(&w, "tokenizer.ggml.add_bos_token", false);
  char *path = test_tmp_file("deepseek-llm.gguf");
  preft_error err;
  assert_int_equal(preft_gguf_write(&w, path, &err), 0);
  preft_gguf_writer_free(&w);
  preft_tokenizer *t;
  if (preft_tokenizer_load(&t, path, &err)) fail_msg("%s", err.msg);
  /* llama.cpp's rule by hand: [\r\n] alone; \s?letters; CJK without the
   * space before it; digits together. Pieces: "he" " " " x" "\n" "\n" "12"
   * " " U+4E16: "he" and "12" merge, "  " (not one piece), "\n\n" and
   * " " + U+4E16 do not. */
  expect_ids(t, "he  x\n\n12 \xe4\xb8\x96", false,
             (const int32_t[]){260, ' ', ' ', 'x', '\n', '\n', 257, ' ', 0xE4, 0xB8, 0x96}, 11, NULL);
  /* trailing spaces are one piece (\s+$): "  " merges */
  expect_ids(t, "ab   ", false, (const int32_t[]){'a', 'b', 256, ' '}, 4, NULL);
  preft_tokenizer_free(t);
  test_remove_tmp_file(path);
}

/* ---- malformed metadata ---------------------------------------------------------- */

static void expect_load_error(void (*edit)(preft_gguf_writer *), const char *needle) {
  preft_gguf_writer w;
  preft_gguf_writer_init(&w);
  edit(&w);
  char *path = test_tmp_file("bad.gguf");
  preft_error err;
  assert_int_equal(preft_gguf_write(&w, path, &err), 0);
  preft_gguf_writer_free(&w);
  preft_tokenizer *t = NULL;
  assert_int_not_equal(preft_tokenizer_load(&t, path, &err), 0);
  assert_null(t);
  if (!strstr(err.msg, needle)) fail_msg("error '%s' does not name '%s'", err.msg, needle);
  test_remove_tmp_file(path);
}

static const char *const TWO[] = {"a", "b"};

static void no_tokenizer(preft_gguf_writer *w) { preft_gguf_set_str(w, "general.architecture", "llama"); }
static void unknown_model(preft_gguf_writer *w) {
  preft_gguf_set_str(w, "tokenizer.ggml.model", "rwkv");
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TWO, 2);
}
static void unknown_pre(preft_gguf_writer *w) {
  preft_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
  preft_gguf_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TWO, 2);
  preft_gguf_set_arr_str(w, "tokenizer.ggml.merges", TWO, 0);
}
static void short_types(preft_gguf_writer *w) {
  preft_gguf_set_str(w, "tokenizer.ggml.model", "llama");
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TWO, 2);
  preft_gguf_set_arr_f32(w, "tokenizer.ggml.scores", (const float[]){0, 0}, 2);
  preft_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", (const int32_t[]){1}, 1);
}
static void bad_type(preft_gguf_writer *w) {
  preft_gguf_set_str(w, "tokenizer.ggml.model", "llama");
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TWO, 2);
  preft_gguf_set_arr_f32(w, "tokenizer.ggml.scores", (const float[]){0, 0}, 2);
  preft_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", (const int32_t[]){1, 9}, 2);
}
static void bos_outside(preft_gguf_writer *w) {
  preft_gguf_set_str(w, "tokenizer.ggml.model", "llama");
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TWO, 2);
  preft_gguf_set_arr_f32(w, "tokenizer.ggml.scores", (const float[]){0, 0}, 2);
  preft_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 7);
}
static void no_scores(preft_gguf_writer *w) {
  preft_gguf_set_str(w, "tokenizer.ggml.model", "llama");
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TWO, 2);
}
static void bad_merge(preft_gguf_writer *w) {
  preft_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
  preft_gguf_set_str(w, "tokenizer.ggml.pre", "qwen2");
  preft_gguf_set_arr_str(w, "tokenizer.ggml.tokens", TWO, 2);
  const char *m[] = {"a c"};
  preft_gguf_set_arr_str(w, "tokenizer.ggml.merges", m, 1);
}

static void malformed_metadata_is_named(void **state) {
  expect_load_error(no_tokenizer, "tokenizer.ggml.model");
  expect_load_error(unknown_model, "'rwkv'");
  expect_load_error(unknown_pre, "no-such-pre");
  expect_load_error(short_types, "tokenizer.ggml.token_type");
  expect_load_error(bad_type, "tokenizer.ggml.token_type[1]");
  expect_load_error(bos_outside, "tokenizer.ggml.bos_token_id");
  expect_load_error(no_scores, "tokenizer.ggml.scores");
  expect_load_error(bad_merge, "merges[0]");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sentencepiece_scores_follow_llama_cpp),
      cmocka_unit_test(malformed_metadata_is_named),
      cmocka_unit_test(deepseek_llm_splits_as_llama_cpp),
      cmocka_unit_test(bert_from_gguf_matches_reference),
      cmocka_unit_test(llama3_1_from_gguf_matches_reference),
      cmocka_unit_test(qwen3_from_gguf_matches_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
