/* tokenizer_int.h - internals of the tokenizer shared by its files
 * (tokenizer.c loads and dispatches; normalizer.c, pretokenizer.c, bpe.c,
 * wordpiece.c, added_tokens.c, decoder.c implement one stage each).
 *
 * Pipeline of encode (the Hugging Face order):
 *   text --added tokens (unnormalized)--> sections
 *        --normalizer--> --added tokens (normalized)--> --pre-tokenizer--> pieces
 *        --model (BPE | WordPiece)--> ids --post-processor--> ids
 *
 * Byte-level tokenizers (a ByteLevel pre-tokenizer anywhere) keep their model
 * vocabulary as raw bytes: the "Ġhello" of tokenizer.json is stored as
 * " hello", so pieces of input text are looked up without re-encoding.
 */
#ifndef PREFT_TEXT_TOKENIZER_INT_H
#define PREFT_TEXT_TOKENIZER_INT_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/error.h"
#include "base/log.h"
#include "text/strmap.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

/* ---- regex / literal patterns (regex.c) ---- */
typedef struct preft_pattern {
  pcre2_code *re; /* NULL for a literal */
  char *literal;
  size_t literal_len;
} preft_pattern;

/* Compiles {"Regex": "..."} or {"String": "..."}; `what` names the field. */
int preft_pattern_from_json(preft_pattern *p, const cJSON *j, const char *what, preft_error *err);
int preft_pattern_compile_regex(preft_pattern *p, const char *regex, preft_error *err);
void preft_pattern_free(preft_pattern *p);
/* Finds the first match at or after `start` in s[0..n) (valid UTF-8).
 * Returns false when there is none; an empty regex match is reported too. */
bool preft_pattern_find(const preft_pattern *p, pcre2_match_data *md, const char *s, size_t n, size_t start,
                        size_t *mstart, size_t *mend);
pcre2_match_data *preft_pattern_match_data(const preft_pattern *p);

/* ---- a list of spans into one growing buffer ---- */
typedef struct preft_span {
  size_t off, len;
} preft_span;

typedef struct preft_spans {
  preft_span *v;
  size_t n, cap;
} preft_spans;

void preft_spans_push(preft_spans *s, size_t off, size_t len);
void preft_spans_free(preft_spans *s);

/* ---- normalizers (normalizer.c) ---- */
typedef enum {
  NORM_NFC,
  NORM_NFD,
  NORM_NFKC,
  NORM_NFKD,
  NORM_LOWERCASE,
  NORM_REPLACE,
  NORM_SEQUENCE,
  NORM_BERT,
  NORM_STRIP,
  NORM_STRIP_ACCENTS,
  NORM_PREPEND,
} preft_norm_type;

typedef struct preft_normalizer {
  preft_norm_type type;
  struct preft_normalizer **children; /* Sequence */
  int n_children;
  preft_pattern pattern;                                     /* Replace */
  char *content;                                             /* Replace content / Prepend text */
  bool clean_text, handle_chinese, lowercase, strip_accents; /* BertNormalizer */
  bool strip_left, strip_right;                              /* Strip */
} preft_normalizer;

int preft_normalizer_from_json(preft_normalizer **out, const cJSON *j, preft_error *err);
void preft_normalizer_free(preft_normalizer *n);
/* Normalizes s[0..n) (valid UTF-8) into out (cleared first). */
void preft_normalize(const preft_normalizer *nz, const char *s, size_t n, preft_buf *out);

/* ---- pre-tokenizers (pretokenizer.c) ---- */
typedef enum {
  PRE_SPLIT,
  PRE_BYTELEVEL,
  PRE_SEQUENCE,
  PRE_DIGITS,
  PRE_METASPACE,
  PRE_WHITESPACE,
  PRE_WHITESPACE_SPLIT,
  PRE_BERT,
  PRE_PUNCTUATION,
} preft_pre_type;

typedef enum {
  SPLIT_REMOVED,
  SPLIT_ISOLATED,
  SPLIT_MERGED_PREV,
  SPLIT_MERGED_NEXT,
  SPLIT_CONTIGUOUS
} preft_split_behavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } preft_prepend_scheme;

typedef struct preft_pretokenizer {
  preft_pre_type type;
  struct preft_pretokenizer **children;
  int n_children;
  preft_pattern pattern;
  preft_split_behavior behavior;
  bool invert;
  bool add_prefix_space, use_regex; /* ByteLevel */
  bool individual_digits;           /* Digits */
  char replacement[8];              /* Metaspace (UTF-8) */
  preft_prepend_scheme prepend_scheme;
  bool split; /* Metaspace */
} preft_pretokenizer;

int preft_pretokenizer_from_json(preft_pretokenizer **out, const cJSON *j, preft_error *err);
void preft_pretokenizer_free(preft_pretokenizer *p);
bool preft_pretokenizer_is_bytelevel(const preft_pretokenizer *p);
/* Splits buf->data[span] into pieces (spans into buf, which may grow when a
 * pre-tokenizer rewrites text). first_section: this span begins the input
 * (Metaspace prepend_scheme "first"). */
void preft_pretokenize(const preft_pretokenizer *p, preft_buf *buf, preft_span span, bool first_section,
                       preft_spans *out);

/* ---- models ---- */
typedef enum { MODEL_BPE, MODEL_WORDPIECE } preft_model_type;

typedef struct preft_bpe {
  preft_strmap vocab;  /* key: raw bytes (byte-level) or UTF-8 token */
  preft_u64map merges; /* (left id << 32 | right id) -> (rank << 32 | merged id) */
  int32_t unk_id;      /* -1 when none */
  bool byte_fallback, fuse_unk, ignore_merges;
  char *cont_prefix, *eow_suffix; /* NULL when absent or empty */
  int32_t byte_ids[256];          /* byte-level: single-byte tokens; byte_fallback: <0xXX>; -1 = missing */
  /* cache of piece -> ids; guarded by cache_lock (skipped when contended) */
  pthread_mutex_t cache_lock;
  preft_strmap cache; /* value: index into cache_entries */
  int32_t *cache_ids;
  size_t cache_ids_len, cache_ids_cap;
  uint64_t *cache_entries; /* off << 16 | count */
  size_t cache_n, cache_cap;
} preft_bpe;

typedef struct preft_wordpiece {
  preft_strmap vocab;
  int32_t unk_id;
  char *prefix; /* "##" */
  int max_chars;
} preft_wordpiece;

/* ---- added tokens (added_tokens.c) ---- */
typedef struct preft_added_token {
  char *content;
  size_t len;
  int32_t id;
  bool special, lstrip, rstrip, single_word, normalized;
} preft_added_token;

/* A byte trie over added-token contents: root[b] is the node for first byte
 * b; nodes hold (byte, first child, next sibling, token index or -1). */
typedef struct preft_trie_node {
  int32_t child, sibling, tok;
  uint8_t byte;
} preft_trie_node;

typedef struct preft_added_matcher {
  int32_t root[256];
  preft_trie_node *nodes;
  int n_nodes, cap_nodes;
  int n_tokens;
} preft_added_matcher;

/* ---- post-processor ---- */
typedef struct preft_template_item {
  int sequence;    /* -1: the special tokens ids[n_ids]; 0: the input sequence A; 1: sequence B */
  int32_t type_id; /* token type of every id the item gives */
  int32_t *ids;
  int n_ids;
} preft_template_item;

/* A post-processor template: single (A) or pair (A and B). */
typedef struct preft_template {
  bool present;
  preft_template_item *items;
  int n;
} preft_template;

/* ---- decoders (decoder.c) ---- */
typedef enum {
  DEC_BYTELEVEL,
  DEC_METASPACE,
  DEC_BYTEFALLBACK,
  DEC_FUSE,
  DEC_STRIP,
  DEC_REPLACE,
  DEC_SEQUENCE,
  DEC_WORDPIECE,
  DEC_BPE,
} preft_dec_type;

typedef struct preft_decoder {
  preft_dec_type type;
  struct preft_decoder **children;
  int n_children;
  preft_pattern pattern;
  char *content; /* Replace content; Strip content; BPE suffix; WordPiece prefix */
  int start, stop;
  bool cleanup;
  char replacement[8];
  preft_prepend_scheme prepend_scheme;
} preft_decoder;

int preft_decoder_from_json(preft_decoder **out, const cJSON *j, preft_error *err);
void preft_decoder_free(preft_decoder *d);
/* Hugging Face's clean_up_tokenization: " ." -> "." and friends, in place. */
void preft_cleanup_spaces(preft_buf *b);
/* Runs the chain over tokens (each a heap preft_buf) and appends the joined
 * text to out. Tokens are consumed (freed). */
void preft_decode_chain(const preft_decoder *d, preft_buf *tokens, size_t n, preft_buf *out);

struct preft_tokenizer {
  char *path;
  bool byte_level;
  preft_model_type model_type;
  preft_bpe bpe;
  preft_wordpiece wp;
  preft_normalizer *normalizer;
  preft_pretokenizer *pretok;
  preft_decoder *decoder;
  /* id -> token as written in tokenizer.json (UTF-8); NULL for holes */
  char **id_to_token;
  int32_t vocab_size;
  uint8_t *is_special; /* per id: special added token */
  uint8_t *is_added;   /* per id: added token (decoded verbatim) */
  preft_added_token *added;
  int n_added;
  preft_strmap added_by_content;
  preft_added_matcher match_raw, match_norm;
  preft_template tmpl_single, tmpl_pair;
  bool clean_up_spaces;
  int32_t bos_id, pad_id, unk_tok_id;
  int32_t *eos_ids;
  int n_eos;
  char *bos_token, *eos_token;
  char *chat_template;
  char *chat_template_source; /* "DIR/tokenizer_config.json: chat_template" or the .jinja path */
  char *gguf_pre;             /* tokenizer.ggml.pre of a tokenizer read from a GGUF file; else NULL */
};

/* bpe.c */
int preft_bpe_from_json(preft_tokenizer *t, const cJSON *model, preft_error *err);
void preft_bpe_free(preft_bpe *b);
/* Appends the ids of one piece. */
void preft_bpe_encode(preft_bpe *b, bool byte_level, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                      size_t *cap);

/* wordpiece.c */
int preft_wordpiece_from_json(preft_tokenizer *t, const cJSON *model, preft_error *err);
int preft_wordpiece_load_vocab(preft_tokenizer *t, const char *path, preft_error *err);
void preft_wordpiece_free(preft_wordpiece *w);
void preft_wordpiece_encode(const preft_wordpiece *w, const char *s, size_t n, int32_t **ids, size_t *n_ids,
                            size_t *cap);

/* added_tokens.c */
void preft_added_build(preft_tokenizer *t);
void preft_added_free(preft_added_matcher *m);
/* Finds the leftmost-longest added token in s[from..n) using matcher m.
 * Returns its index into t->added (and sets *mstart and *mend, with lstrip/rstrip
 * whitespace included), or -1. */
int preft_added_find(const preft_tokenizer *t, const preft_added_matcher *m, const char *s, size_t n,
                     size_t from, size_t *mstart, size_t *mend);

/* tokenizer.c: the tokenizer described by a parsed tokenizer.json (path
 * names it in messages); the caller then builds the added-token matchers. */
int preft_tokenizer_from_json(preft_tokenizer *t, const cJSON *root, const char *path, preft_error *err);

/* tokenizer_gguf.c: the whole tokenizer (vocabulary, merges or scores,
 * pre-tokenizer, special ids, chat template) from a GGUF file's
 * tokenizer.ggml.* metadata. */
int preft_tokenizer_load_gguf(preft_tokenizer *t, const char *path, preft_error *err);

/* tokenizer.c helpers */
void preft_ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id);
void preft_tokenizer_set_token(preft_tokenizer *t, int32_t id, const char *s, size_t len);

#endif
