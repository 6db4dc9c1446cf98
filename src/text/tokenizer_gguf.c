/* tokenizer_gguf.c - a tokenizer from a GGUF file's metadata, as llama.cpp
 * reads it (tokenizer.ggml.*, tokenizer.chat_template).
 *
 * The metadata is turned into the tokenizer.json description that Hugging
 * Face would give the same tokenizer, and loaded by the same code as a
 * tokenizer.json (preft_tokenizer_from_json), so every stage (added tokens,
 * pre-tokenizer, BPE, decoders, post-processor) is the one already tested
 * against Hugging Face:
 *
 *   model "gpt2"  byte-level BPE: tokens as in tokenizer.json, merges in
 *                 rank order; the pre-tokenizer from tokenizer.ggml.pre
 *                 (llama.cpp's name for its split regexes, table below) as
 *                 Split(Isolated) steps followed by ByteLevel without regex.
 *                 Qwen2's tokenizer.json normalizes to NFC first; llama.cpp
 *                 does not, this does (so text encodes as the model saw it
 *                 in training).
 *   model "llama" SentencePiece with scores: spaces become U+2581 (with a
 *                 leading one per section when add_space_prefix), symbols
 *                 are characters, byte fallback to <0xXX>, and the merge
 *                 loop of llama.cpp's SPM tokenizer: repeatedly join the
 *                 adjacent pair whose joined text is the token of highest
 *                 score, leftmost on ties. That is BPE with one merge for
 *                 every split of every token into two tokens, ranked by the
 *                 token's score (equal scores share a rank; the BPE loop takes
 *                 the leftmost of equal ranks), built here after loading.
 *   model "bert"  WordPiece: llama.cpp's converter writes word-initial pieces
 *                 with a leading U+2581 and continuations without "##"; this
 *                 is undone. BERT normalizer (lower-cased unless the
 *                 vocabulary has capitalised words, as for a bare vocab.txt),
 *                 BERT pre-tokenizer, [CLS] A [SEP].
 *
 * Token types (tokenizer.ggml.token_type): CONTROL and UNKNOWN tokens become
 * special added tokens, USER_DEFINED ones non-special added tokens (both
 * matched before the model, as Hugging Face and llama.cpp do), UNUSED ones
 * (padding up to the model's vocabulary) are left out, BYTE tokens stay in
 * the model vocabulary for byte fallback. BOS / EOS are added per
 * add_bos_token / add_eos_token (llama.cpp's defaults when absent); EOS ids
 * for stopping are eos, eot and eom.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "text/tokenizer_int.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* ---- pre-tokenizers by llama.cpp name ---------------------------------------- */

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define LLAMA3_RE                                                                                          \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                                                      \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define TEKKEN_RE                                                                                      \
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"         \
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| " \
  "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* deepseek-llm's letter, punctuation and CJK classes (its tokenizer.json's
 * Split regexes, as llama.cpp spells them; UTF-8 in octal escapes) */
#define DEEPSEEK_LLM_LETTERS                                                                         \
  "\\s?[A-Za-z\302\265\303\200-\303\226\303\230-\303\266\303\270-\306\272\306\274-\306\277\307\204-" \
  "\312\223\312\225-\312\257\315\260-\315\263\315\266\315\267\315\273-\315\275\315\277\316\206\316"  \
  "\210-\316\212\316\214\316\216-\316\241\316\243-\317\265\317\267-\322\201\322\212-\324\257\324"    \
  "\261-\325\226\341\202\240-\341\203\205\341\216\240-\341\217\265\341\217\270-\341\217\275\341\262" \
  "\220-\341\262\272\341\262\275-\341\262\277\341\264\200-\341\264\253\341\265\253-\341\265\267\341" \
  "\265\271-\341\266\232\341\270\200-\341\274\225\341\274\230-\341\274\235\341\274\240-\341\275\205" \
  "\341\275\210-\341\275\215\341\275\220-\341\275\227\341\275\231\341\275\233\341\275\235\341\275"   \
  "\237-\341\275\275\341\276\200-\341\276\264\341\276\266-\341\276\274\341\276\276\341\277\202-\341" \
  "\277\204\341\277\206-\341\277\214\341\277\220-\341\277\223\341\277\226-\341\277\233\341\277\240-" \
  "\341\277\254\341\277\262-\341\277\264\341\277\266-\341\277\274\342\204\202\342\204\207\342\204"   \
  "\212-\342\204\223\342\204\225\342\204\231-\342\204\235\342\204\244\342\204\246\342\204\250\342"   \
  "\204\252-\342\204\255\342\204\257-\342\204\264\342\204\271\342\204\274-\342\204\277\342\205\205-" \
  "\342\205\211\342\205\216\342\206\203\342\206\204\342\260\200-\342\261\273\342\261\276-\342\263"   \
  "\244\342\263\253-\342\263\256\342\263\262\342\263\263\352\231\200-\352\231\255\352\232\200-\352"  \
  "\232\233\352\234\242-\352\235\257\352\235\261-\352\236\207\352\236\213-\352\236\216\352\255\260-" \
  "\352\256\277\357\254\200-\357\254\206\357\254\223-\357\254\227\357\274\241-\357\274\272\357\275"  \
  "\201-\357\275\232\360\220\220\200-\360\220\221\217\360\220\222\260-\360\220\223\223\360\220\223"  \
  "\230-\360\220\223\273\360\220\262\200-\360\220\262\262\360\220\263\200-\360\220\263\262\360\221"  \
  "\242\240-\360\221\243\237\360\236\244\200-\360\236\245\203]+"
#define DEEPSEEK_LLM_PUNCT                                                                                   \
  "\\s?[!-/"                                                                                                 \
  ":-~\357\274\201-\357\274\217\357\274\232-\357\275\236\342\200\230-\342\200\237\343\200\200-\343\200\202]" \
  "+"
#define DEEPSEEK_LLM_CJK "[\344\270\200-\351\276\245\340\240\200-\344\270\200\352\260\200-\355\237\277]+"
#define PORO_RE " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+"

typedef struct pre_kind {
  const char *names; /* '|'-separated llama.cpp names */
  const char *re[7]; /* split regexes applied in turn; NULL-terminated */
  bool ignore_merges, add_bos, clean_spaces;
  bool nfc; /* the Hugging Face tokenizer normalizes to NFC first (Qwen2) */
} pre_kind;

static const pre_kind PRE_KINDS[] = {
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", {LLAMA3_RE}, true, true, true},
    {"dbrx|smaug-bpe|chatglm-bpe|glm4", {LLAMA3_RE}, false, false, true},
    {"qwen2|deepseek-r1-qwen|megrez|kormo", {QWEN2_RE}, false, false, false, true},
    {"stablelm2", {QWEN2_RE}, false, false, true},
    {"gpt-2|phi-2|mpt|olmo|jais|jina-es|jina-de|jina-v2-es|jina-v2-de|roberta-bpe|jina-v1-en|jina-v2-code|"
     "gigachat|exaone4|mellum",
     {GPT2_RE},
     false,
     false,
     true},
    {"smollm|command-r", {"\\p{N}", GPT2_RE}, false, false, false},
    {"starcoder|refact|codeshell|exaone|minerva-7b", {"\\p{N}", GPT2_RE}, false, false, true},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]"}, false, false, true},
    {"deepseek-coder",
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
      "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"},
     false,
     false,
     false},
    {"deepseek-llm",
     {"[\\r\\n]", DEEPSEEK_LLM_LETTERS, DEEPSEEK_LLM_PUNCT, "\\s+$", DEEPSEEK_LLM_CJK, "\\p{N}+"},
     false,
     false,
     false},
    {"tekken", {TEKKEN_RE}, true, true, false},
    {"poro-chat|bloom|gpt3-finnish", {PORO_RE}, false, false, true},
    {"viking", {PORO_RE, "\\p{N}"}, false, false, false},
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false, true},
};

static bool name_in(const char *names, const char *name) {
  size_t n = strlen(name);
  for (const char *p = names; *p;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == n && !memcmp(p, name, n)) return true;
    if (!bar) break;
    p = bar + 1;
  }
  return false;
}

static const pre_kind *find_pre(const char *name) {
  for (size_t i = 0; i < sizeof PRE_KINDS / sizeof PRE_KINDS[0]; i++)
    if (name_in(PRE_KINDS[i].names, name)) return &PRE_KINDS[i];
  return NULL;
}

/* ---- metadata access ---------------------------------------------------------- */

typedef struct gguf_vocab {
  const char *path;
  int64_t n;
  char **tokens;      /* [n] */
  const void *scores; /* [n] f32 or NULL */
  const void *types;  /* [n] i32 or NULL */
  char **merges;      /* [n_merges] or NULL */
  uint64_t n_merges;
} gguf_vocab;

static float score_of(const gguf_vocab *v, int64_t i) {
  float s = 0;
  if (v->scores) memcpy(&s, (const uint8_t *)v->scores + 4 * i, 4);
  return s;
}

static int32_t type_of(const gguf_vocab *v, int64_t i) {
  int32_t t = TT_NORMAL;
  if (v->types) memcpy(&t, (const uint8_t *)v->types + 4 * i, 4);
  return t;
}

/* An integer id key: -1 when absent; fails when present but not an
 * integer or outside the vocabulary. */
static int get_id(const preft_gguf_file *f, const char *key, int64_t n, int32_t *out, preft_error *err) {
  *out = -1;
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, key);
  if (!kv) return 0;
  int64_t v;
  if (!preft_gguf_kv_integer(kv, &v))
    return preft_fail(err, "%s: key '%s' must be an integer token id", f->map.path, key);
  if (v == -1) return 0; /* some writers mark "none" with -1 */
  if (v < 0 || v >= n)
    return preft_fail(err, "%s: key '%s' is token id %lld, outside the vocabulary of %lld tokens",
                      f->map.path, key, (long long)v, (long long)n);
  *out = (int32_t)v;
  return 0;
}

static int get_flag(const preft_gguf_file *f, const char *key, bool dflt, bool *out, preft_error *err) {
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, key);
  *out = dflt;
  if (!kv) return 0;
  if (kv->type != PREFT_GGUF_BOOL) return preft_fail(err, "%s: key '%s' must be a bool", f->map.path, key);
  *out = kv->v.b;
  return 0;
}

/* A numeric array of n 4-byte elements of type `type`, or NULL when absent. */
static int get_arr4(const preft_gguf_file *f, const char *key, uint32_t type, int64_t n, const void **out,
                    preft_error *err) {
  *out = NULL;
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, key);
  if (!kv) return 0;
  if (kv->type != PREFT_GGUF_ARRAY || kv->arr_type != type)
    return preft_fail(err, "%s: key '%s' must be an array of %s", f->map.path, key,
                      type == PREFT_GGUF_F32 ? "f32" : "i32");
  if (kv->n != (uint64_t)n)
    return preft_fail(err, "%s: key '%s' has %llu elements for %lld tokens", f->map.path, key,
                      (unsigned long long)kv->n, (long long)n);
  *out = kv->arr;
  return 0;
}

static int read_vocab(const preft_gguf_file *f, gguf_vocab *v, preft_error *err) {
  memset(v, 0, sizeof *v);
  v->path = f->map.path;
  const preft_gguf_kv *kv = preft_gguf_find_kv(f, "tokenizer.ggml.tokens");
  if (!kv || kv->type != PREFT_GGUF_ARRAY || kv->arr_type != PREFT_GGUF_STRING || kv->n == 0)
    return preft_fail(err, "%s: key 'tokenizer.ggml.tokens' %s", v->path,
                      kv ? "must be a non-empty array of strings" : "is missing");
  if (kv->n >= (1u << 30))
    return preft_fail(err, "%s: %llu tokens is implausible", v->path, (unsigned long long)kv->n);
  v->n = (int64_t)kv->n;
  v->tokens = kv->strs;
  for (int64_t i = 0; i < v->n; i++)
    if (strlen(v->tokens[i]) == 0 && type_of(v, i) != TT_UNUSED)
      return preft_fail(err, "%s: tokenizer.ggml.tokens[%lld] is empty", v->path, (long long)i);
  if (get_arr4(f, "tokenizer.ggml.scores", PREFT_GGUF_F32, v->n, &v->scores, err) ||
      get_arr4(f, "tokenizer.ggml.token_type", PREFT_GGUF_I32, v->n, &v->types, err))
    return -1;
  for (int64_t i = 0; i < v->n; i++) {
    int32_t t = type_of(v, i);
    if (t < TT_NORMAL || t > TT_BYTE)
      return preft_fail(err, "%s: tokenizer.ggml.token_type[%lld] is %d (1 to 6 are defined)", v->path,
                        (long long)i, t);
    if (v->scores && !isfinite(score_of(v, i)) && t != TT_UNUSED)
      return preft_fail(err, "%s: tokenizer.ggml.scores[%lld] is not finite", v->path, (long long)i);
  }
  const preft_gguf_kv *mk = preft_gguf_find_kv(f, "tokenizer.ggml.merges");
  if (mk) {
    if (mk->type != PREFT_GGUF_ARRAY || mk->arr_type != PREFT_GGUF_STRING)
      return preft_fail(err, "%s: key 'tokenizer.ggml.merges' must be an array of strings", v->path);
    v->merges = mk->strs;
    v->n_merges = mk->n;
  }
  return 0;
}

/* ---- the tokenizer.json equivalent --------------------------------------------- */

static cJSON *obj_type(const char *type) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", type);
  return o;
}

static cJSON *split_regex(const char *re) {
  cJSON *s = obj_type("Split");
  cJSON *pat = cJSON_AddObjectToObject(s, "pattern");
  cJSON_AddStringToObject(pat, "Regex", re);
  cJSON_AddStringToObject(s, "behavior", "Isolated");
  cJSON_AddBoolToObject(s, "invert", false);
  return s;
}

/* Added tokens: CONTROL / UNKNOWN (special) and USER_DEFINED (not). */
static void add_added_tokens(cJSON *root, const gguf_vocab *v) {
  cJSON *arr = cJSON_AddArrayToObject(root, "added_tokens");
  for (int64_t i = 0; i < v->n; i++) {
    int32_t t = type_of(v, i);
    if (t != TT_CONTROL && t != TT_UNKNOWN && t != TT_USER_DEFINED) continue;
    if (!v->tokens[i][0]) continue;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", (double)i);
    cJSON_AddStringToObject(a, "content", v->tokens[i]);
    cJSON_AddBoolToObject(a, "special", t != TT_USER_DEFINED);
    cJSON_AddBoolToObject(a, "normalized", false);
    cJSON_AddItemToArray(arr, a);
  }
}

/* TemplateProcessing: bos? A eos? (the pair: bos? A eos? bos? B eos?). */
static void add_post(cJSON *root, const gguf_vocab *v, int32_t bos, int32_t eos) {
  if (bos < 0 && eos < 0) return;
  cJSON *p = obj_type("TemplateProcessing");
  cJSON *specials = cJSON_CreateObject();
  for (int seq = 0; seq < 2; seq++) {
    cJSON *arr = cJSON_AddArrayToObject(p, seq ? "pair" : "single");
    for (int part = 0; part <= seq; part++) {
      int32_t ids[2] = {bos, eos};
      for (int k = 0; k < 3; k++) {
        cJSON *item = cJSON_CreateObject();
        if (k == 1) {
          cJSON *s = cJSON_AddObjectToObject(item, "Sequence");
          cJSON_AddStringToObject(s, "id", part ? "B" : "A");
          cJSON_AddNumberToObject(s, "type_id", part);
        } else {
          int32_t id = ids[k / 2];
          if (id < 0) {
            cJSON_Delete(item);
            continue;
          }
          cJSON *s = cJSON_AddObjectToObject(item, "SpecialToken");
          cJSON_AddStringToObject(s, "id", v->tokens[id]);
          cJSON_AddNumberToObject(s, "type_id", part);
        }
        cJSON_AddItemToArray(arr, item);
      }
    }
  }
  int32_t ids[2] = {bos, eos};
  for (int k = 0; k < 2; k++) {
    if (ids[k] < 0 || cJSON_GetObjectItemCaseSensitive(specials, v->tokens[ids[k]])) continue;
    cJSON *s = cJSON_AddObjectToObject(specials, v->tokens[ids[k]]);
    cJSON_AddStringToObject(s, "id", v->tokens[ids[k]]);
    cJSON *idl = cJSON_AddArrayToObject(s, "ids");
    cJSON_AddItemToArray(idl, cJSON_CreateNumber(ids[k]));
    cJSON *tl = cJSON_AddArrayToObject(s, "tokens");
    cJSON_AddItemToArray(tl, cJSON_CreateString(v->tokens[ids[k]]));
  }
  cJSON_AddItemToObject(p, "special_tokens", specials);
  cJSON_AddItemToObject(root, "post_processor", p);
}

static cJSON *bpe_json(const gguf_vocab *v, const pre_kind *pk, preft_error *err) {
  if (!v->merges)
    return preft_fail(err, "%s: tokenizer.ggml.model is gpt2 but 'tokenizer.ggml.merges' is missing",
                      v->path),
           NULL;
  cJSON *root = cJSON_CreateObject();
  if (pk->nfc) cJSON_AddItemToObject(root, "normalizer", obj_type("NFC"));
  cJSON *pre = obj_type("Sequence");
  cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
  for (int i = 0; i < 7 && pk->re[i]; i++) cJSON_AddItemToArray(list, split_regex(pk->re[i]));
  cJSON *bl = obj_type("ByteLevel");
  cJSON_AddBoolToObject(bl, "add_prefix_space", false);
  cJSON_AddBoolToObject(bl, "trim_offsets", true);
  cJSON_AddBoolToObject(bl, "use_regex", false);
  cJSON_AddItemToArray(list, bl);
  cJSON_AddItemToObject(root, "pre_tokenizer", pre);
  cJSON_AddItemToObject(root, "decoder", obj_type("ByteLevel"));
  cJSON *model = obj_type("BPE");
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  for (int64_t i = 0; i < v->n; i++) {
    int32_t t = type_of(v, i);
    if (t == TT_NORMAL || t == TT_BYTE) cJSON_AddNumberToObject(vocab, v->tokens[i], (double)i);
  }
  cJSON *merges = cJSON_AddArrayToObject(model, "merges");
  for (uint64_t i = 0; i < v->n_merges; i++) cJSON_AddItemToArray(merges, cJSON_CreateString(v->merges[i]));
  cJSON_AddBoolToObject(model, "ignore_merges", pk->ignore_merges);
  cJSON_AddItemToObject(root, "model", model);
  return root;
}

static cJSON *spm_json(const gguf_vocab *v, int32_t unk, bool space_prefix) {
  static const char SP[] = "\xe2\x96\x81"; /* U+2581 */
  cJSON *root = cJSON_CreateObject();
  cJSON *norm = obj_type("Sequence");
  cJSON *nl = cJSON_AddArrayToObject(norm, "normalizers");
  if (space_prefix) {
    cJSON *p = obj_type("Prepend");
    cJSON_AddStringToObject(p, "prepend", SP);
    cJSON_AddItemToArray(nl, p);
  }
  cJSON *r = obj_type("Replace");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "pattern"), "String", " ");
  cJSON_AddStringToObject(r, "content", SP);
  cJSON_AddItemToArray(nl, r);
  cJSON_AddItemToObject(root, "normalizer", norm);
  cJSON *dec = obj_type("Sequence");
  cJSON *dl = cJSON_AddArrayToObject(dec, "decoders");
  r = obj_type("Replace");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "pattern"), "String", SP);
  cJSON_AddStringToObject(r, "content", " ");
  cJSON_AddItemToArray(dl, r);
  cJSON_AddItemToArray(dl, obj_type("ByteFallback"));
  cJSON_AddItemToArray(dl, obj_type("Fuse"));
  if (space_prefix) {
    cJSON *s = obj_type("Strip");
    cJSON_AddStringToObject(s, "content", " ");
    cJSON_AddNumberToObject(s, "start", 1);
    cJSON_AddNumberToObject(s, "stop", 0);
    cJSON_AddItemToArray(dl, s);
  }
  cJSON_AddItemToObject(root, "decoder", dec);
  cJSON *model = obj_type("BPE");
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  for (int64_t i = 0; i < v->n; i++) {
    int32_t t = type_of(v, i);
    if (t == TT_NORMAL || t == TT_BYTE || t == TT_UNKNOWN || i == unk)
      cJSON_AddNumberToObject(vocab, v->tokens[i], (double)i);
  }
  cJSON_AddArrayToObject(model, "merges");
  cJSON_AddBoolToObject(model, "byte_fallback", true);
  cJSON_AddBoolToObject(model, "fuse_unk", true);
  if (unk >= 0) cJSON_AddStringToObject(model, "unk_token", v->tokens[unk]);
  cJSON_AddItemToObject(root, "model", model);
  return root;
}

/* llama.cpp's converter writes BERT vocabularies with "phantom spaces":
 * U+2581 before a word-initial piece, no "##" before a continuation; special
 * "[...]" tokens unchanged. Returns the vocab.txt spelling (heap). */
static char *unphantom(const char *tok) {
  size_t n = strlen(tok);
  if (n >= 3 && !memcmp(tok, "\xe2\x96\x81", 3)) return preft_xstrdup(tok + 3);
  if (n >= 2 && tok[0] == '[' && tok[n - 1] == ']') return preft_xstrdup(tok);
  char *s = preft_xmalloc(n + 3);
  memcpy(s, "##", 2);
  memcpy(s + 2, tok, n + 1);
  return s;
}

static cJSON *wpm_json(const gguf_vocab *v, int32_t unk, int32_t cls, int32_t sep) {
  cJSON *root = cJSON_CreateObject();
  bool cased = false;
  char **words = preft_xcalloc((size_t)v->n, sizeof(char *));
  for (int64_t i = 0; i < v->n; i++) {
    words[i] = unphantom(v->tokens[i]);
    const char *s = words[i];
    if (s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z') cased = true;
  }
  cJSON *norm = obj_type("BertNormalizer");
  cJSON_AddBoolToObject(norm, "clean_text", true);
  cJSON_AddBoolToObject(norm, "handle_chinese_chars", true);
  cJSON_AddItemToObject(norm, "strip_accents", cJSON_CreateNull());
  cJSON_AddBoolToObject(norm, "lowercase", !cased);
  cJSON_AddItemToObject(root, "normalizer", norm);
  cJSON_AddItemToObject(root, "pre_tokenizer", obj_type("BertPreTokenizer"));
  cJSON *dec = obj_type("WordPiece");
  cJSON_AddStringToObject(dec, "prefix", "##");
  cJSON_AddBoolToObject(dec, "cleanup", true);
  cJSON_AddItemToObject(root, "decoder", dec);
  cJSON *model = obj_type("WordPiece");
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  for (int64_t i = 0; i < v->n; i++)
    if (type_of(v, i) != TT_UNUSED) cJSON_AddNumberToObject(vocab, words[i], (double)i);
  if (unk >= 0) cJSON_AddStringToObject(model, "unk_token", words[unk]);
  cJSON_AddStringToObject(model, "continuing_subword_prefix", "##");
  cJSON_AddNumberToObject(model, "max_input_chars_per_word", 100);
  cJSON_AddItemToObject(root, "model", model);
  if (cls >= 0 && sep >= 0) {
    cJSON *p = obj_type("BertProcessing");
    cJSON *a = cJSON_AddArrayToObject(p, "sep");
    cJSON_AddItemToArray(a, cJSON_CreateString(words[sep]));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(sep));
    a = cJSON_AddArrayToObject(p, "cls");
    cJSON_AddItemToArray(a, cJSON_CreateString(words[cls]));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(cls));
    cJSON_AddItemToObject(root, "post_processor", p);
  }
  for (int64_t i = 0; i < v->n; i++) free(words[i]);
  free(words);
  return root;
}

/* ---- SentencePiece merges from scores ----------------------------------------- */

typedef struct scored {
  float score;
  int32_t id;
} scored;

static int cmp_score_desc(const void *a, const void *b) {
  float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
  return x > y ? -1 : x < y;
}

/* For every vocabulary token that splits (at a character boundary) into two
 * vocabulary tokens, a merge of the two with the rank of the token's score
 * (0 = highest; equal scores, equal ranks). */
static void spm_merges(preft_tokenizer *t, const gguf_vocab *v) {
  preft_bpe *b = &t->bpe;
  scored *sc = preft_xmalloc(sizeof *sc * (size_t)v->n);
  int64_t ns = 0;
  for (int64_t i = 0; i < v->n; i++) {
    int32_t ty = type_of(v, i);
    if (ty == TT_NORMAL || ty == TT_USER_DEFINED) sc[ns++] = (scored){score_of(v, i), (int32_t)i};
  }
  qsort(sc, (size_t)ns, sizeof *sc, cmp_score_desc);
  preft_u64map_free(&b->merges);
  preft_u64map_init(&b->merges, (size_t)ns * 2);
  uint32_t rank = 0;
  for (int64_t k = 0; k < ns; k++) {
    if (k > 0 && sc[k].score != sc[k - 1].score) rank++;
    const char *s = v->tokens[sc[k].id];
    size_t n = strlen(s);
    for (size_t cut = (size_t)preft_utf8_seqlen((uint8_t)s[0]); cut < n;
         cut += (size_t)preft_utf8_seqlen((uint8_t)s[cut])) {
      int32_t l, r;
      if (preft_strmap_get(&b->vocab, s, cut, &l) && preft_strmap_get(&b->vocab, s + cut, n - cut, &r))
        preft_u64map_put(&b->merges, (uint64_t)(uint32_t)l << 32 | (uint32_t)r,
                         (uint64_t)rank << 32 | (uint32_t)sc[k].id);
    }
  }
  free(sc);
}

/* ---- loading ---------------------------------------------------------------------- */

static void set_token_str(char **dst, const gguf_vocab *v, int32_t id) {
  free(*dst);
  *dst = id >= 0 ? preft_xstrdup(v->tokens[id]) : NULL;
}

static void push_eos(preft_tokenizer *t, int32_t id) {
  if (id < 0 || id >= t->vocab_size) return;
  for (int i = 0; i < t->n_eos; i++)
    if (t->eos_ids[i] == id) return;
  t->eos_ids = preft_xrealloc(t->eos_ids, (size_t)(t->n_eos + 1) * sizeof *t->eos_ids);
  t->eos_ids[t->n_eos++] = id;
}

static int from_gguf(preft_tokenizer *t, const preft_gguf_file *f, preft_error *err) {
  const char *path = f->map.path, *model;
  const preft_gguf_kv *mkv = preft_gguf_find_kv(f, "tokenizer.ggml.model");
  if (!mkv)
    return preft_fail(err, "%s: no tokenizer in this GGUF (key 'tokenizer.ggml.model' is missing)", path);
  if (preft_gguf_get_str(f, "tokenizer.ggml.model", &model, err)) return -1;
  if (!strcmp(model, "none") || !strcmp(model, "no_vocab"))
    return preft_fail(err, "%s: the GGUF has no vocabulary (tokenizer.ggml.model is '%s'); give --tokenizer",
                      path, model);
  bool bpe = !strcmp(model, "gpt2"), spm = !strcmp(model, "llama"), wpm = !strcmp(model, "bert");
  if (!bpe && !spm && !wpm)
    return preft_fail(err, "%s: tokenizer.ggml.model '%s' is not supported (gpt2, llama, bert)", path, model);
  gguf_vocab v;
  if (read_vocab(f, &v, err)) return -1;
  if (spm && !v.scores)
    return preft_fail(err, "%s: a SentencePiece ('llama') vocabulary needs 'tokenizer.ggml.scores'", path);
  int32_t bos, eos, unk, pad, sep, cls, eot, eom;
  if (get_id(f, "tokenizer.ggml.bos_token_id", v.n, &bos, err) ||
      get_id(f, "tokenizer.ggml.eos_token_id", v.n, &eos, err) ||
      get_id(f, "tokenizer.ggml.unknown_token_id", v.n, &unk, err) ||
      get_id(f, "tokenizer.ggml.padding_token_id", v.n, &pad, err) ||
      get_id(f, "tokenizer.ggml.seperator_token_id", v.n, &sep, err) ||
      get_id(f, "tokenizer.ggml.cls_token_id", v.n, &cls, err) ||
      get_id(f, "tokenizer.ggml.eot_token_id", v.n, &eot, err) ||
      get_id(f, "tokenizer.ggml.eom_token_id", v.n, &eom, err))
    return -1;
  const pre_kind *pk = NULL;
  if (bpe) {
    const char *pre = "default";
    const preft_gguf_kv *pkv = preft_gguf_find_kv(f, "tokenizer.ggml.pre");
    if (pkv && preft_gguf_get_str(f, "tokenizer.ggml.pre", &pre, err)) return -1;
    if (!pkv) PREFT_WARN("%s: no tokenizer.ggml.pre: using llama.cpp's 'default' pre-tokenizer", path);
    pk = find_pre(pre);
    t->gguf_pre = preft_xstrdup(pre);
    if (!pk)
      return preft_fail(err,
                        "%s: tokenizer.ggml.pre '%s' is not supported (llama3/llama-bpe, qwen2, smollm, "
                        "gpt-2, deepseek-llm, "
                        "tekken, default and their aliases)",
                        path, pre);
  }
  /* llama.cpp's defaults where the file says nothing */
  bool add_bos, add_eos, space_prefix;
  if (get_flag(f, "tokenizer.ggml.add_bos_token", spm || wpm || (pk && pk->add_bos), &add_bos, err) ||
      get_flag(f, "tokenizer.ggml.add_eos_token", false, &add_eos, err) ||
      get_flag(f, "tokenizer.ggml.add_space_prefix", spm, &space_prefix, err))
    return -1;
  if (wpm) {
    if (cls < 0) cls = bos;
    if (sep < 0) sep = eos;
  }
  if (spm && unk < 0)
    for (int64_t i = 0; i < v.n && unk < 0; i++)
      if (type_of(&v, i) == TT_UNKNOWN) unk = (int32_t)i;

  cJSON *root = bpe   ? bpe_json(&v, pk, err)
                : spm ? spm_json(&v, unk, space_prefix)
                      : wpm_json(&v, unk, cls, sep);
  if (!root) return -1;
  add_added_tokens(root, &v);
  if (!wpm) add_post(root, &v, add_bos ? bos : -1, add_eos ? eos : -1);
  int rc = preft_tokenizer_from_json(t, root, path, err);
  cJSON_Delete(root);
  if (rc) return -1;
  if (spm) spm_merges(t, &v);
  preft_added_build(t);

  t->bos_id = bos;
  t->pad_id = pad;
  if (unk >= 0) t->unk_tok_id = unk;
  set_token_str(&t->bos_token, &v, bos);
  set_token_str(&t->eos_token, &v, eos);
  push_eos(t, eos);
  push_eos(t, eot);
  push_eos(t, eom);
  t->clean_up_spaces = wpm || (pk && pk->clean_spaces);
  const preft_gguf_kv *ct = preft_gguf_find_kv(f, "tokenizer.chat_template");
  if (ct) {
    if (ct->type != PREFT_GGUF_STRING)
      return preft_fail(err, "%s: key 'tokenizer.chat_template' must be a string", path);
    t->chat_template = preft_xstrdup(ct->str);
    static const char what[] = ": tokenizer.chat_template";
    t->chat_template_source = preft_xmalloc(strlen(path) + sizeof what);
    memcpy(t->chat_template_source, path, strlen(path));
    memcpy(t->chat_template_source + strlen(path), what, sizeof what);
  }
  return 0;
}

int preft_tokenizer_load_gguf(preft_tokenizer *t, const char *path, preft_error *err) {
  preft_gguf_file f;
  if (preft_gguf_open(&f, path, err)) return -1;
  int rc = from_gguf(t, &f, err);
  preft_gguf_close(&f);
  return rc;
}
