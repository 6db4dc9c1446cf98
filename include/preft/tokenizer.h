/* preft/tokenizer.h - Hugging Face compatible tokenizers: load a model directory,
 * tokenizer.json or vocab.txt; encode text to ids and decode ids to text
 * exactly as the transformers / tokenizers stack does; render chat templates.
 *
 * Usage:
 *   preft_tokenizer *tok;
 *   preft_error err;
 *   if (preft_tokenizer_load(&tok, "models/llama", &err)) { puts(err.msg); ... }
 *   int32_t *ids; size_t n;
 *   preft_tokenizer_encode(tok, text, strlen(text), true, &ids, &n, &err);
 *   char *s; size_t len;
 *   preft_tokenizer_decode(tok, ids, n, PREFT_DECODE_SKIP_SPECIAL, &s, &len, &err);
 *   free(ids); free(s); preft_tokenizer_free(tok);
 *
 * Supported: BPE (byte-level as GPT-2 / Llama 3 / Qwen, and SentencePiece
 * style with byte_fallback as Llama 2 / Mistral / Gemma) and WordPiece (BERT)
 * models, with the normalizers, pre-tokenizers, post-processors and decoders
 * listed in docs/TOKENIZER.md. An unsupported component fails the load with
 * an error naming it.
 *
 * Thread safety: a loaded tokenizer may be used by many threads at once
 * (encode shares a try-locked cache; everything else is read-only); a
 * preft_decode_stream belongs to one thread.
 *
 * Ownership: ids, text and rendered templates returned through
 * out-parameters are heap memory the caller frees with free(); token strings
 * returned by value (id_to_token, bos_token, ...) belong to the tokenizer.
 */
#ifndef PREFT_PUBLIC_TOKENIZER_H
#define PREFT_PUBLIC_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "preft/base.h"

typedef struct preft_tokenizer preft_tokenizer;

/* path: a model directory (tokenizer.json or vocab.txt, plus the optional
 * tokenizer_config.json and generation_config.json beside it), a
 * tokenizer.json, a vocab.txt, a JSON array of WordPiece tokens, or a GGUF
 * file (its tokenizer.ggml.* metadata, as llama.cpp reads it). */
PREFT_API int preft_tokenizer_load(preft_tokenizer **out, const char *path, preft_error *err);
PREFT_API void preft_tokenizer_free(preft_tokenizer *t);

/* Encodes text[0..len) into a heap array *ids (caller frees) of *n ids.
 * add_special: add the post-processor's special tokens (e.g. BOS), the
 * Hugging Face add_special_tokens=True. Special tokens written in the text
 * are always recognised. Byte-level tokenizers encode invalid UTF-8 as its
 * raw bytes; the others fail naming the byte offset. */
PREFT_API int preft_tokenizer_encode(const preft_tokenizer *t, const char *text, size_t len, bool add_special,
                                     int32_t **ids, size_t *n, preft_error *err);
/* The same, but stops once max_ids ids are out (0: no limit): the text then
 * has at least *n >= max_ids tokens, and only the first ones are given (each
 * piece's ids only ever add to the count, so "at least" is exact). For
 * refusing a prompt longer than a context without encoding all of it. */
PREFT_API int preft_tokenizer_encode_max(const preft_tokenizer *t, const char *text, size_t len,
                                         bool add_special, size_t max_ids, int32_t **ids, size_t *n,
                                         preft_error *err);

/* Encodes a text or a pair of texts as a model input with token types, as
 * transformers' tokenizer(a, b) does: with add_special, the post-processor's
 * pair template (BERT: [CLS] a [SEP] b [SEP], b's part and its [SEP] type 1)
 * or, for b NULL, its single template; without, a's ids (type 0) then b's
 * (type 1). *ids and *type_ids (type_ids may be NULL) are heap arrays of *n
 * entries the caller frees. Fails when add_special is set, b is given and the
 * tokenizer has a single template but no pair template. */
PREFT_API int preft_tokenizer_encode_pair(const preft_tokenizer *t, const char *a, size_t a_len,
                                          const char *b, size_t b_len, bool add_special, int32_t **ids,
                                          int32_t **type_ids, size_t *n, preft_error *err);

enum {
  PREFT_DECODE_SKIP_SPECIAL = 1, /* drop special added tokens (skip_special_tokens=True) */
  PREFT_DECODE_NO_CLEANUP = 2,   /* never apply clean_up_tokenization_spaces */
};
/* Decodes ids into a heap NUL-terminated UTF-8 string (caller frees); fails
 * naming the position of an id outside the vocabulary. Invalid UTF-8 from
 * byte tokens becomes U+FFFD. clean_up_tokenization_spaces applies as
 * tokenizer_config.json says unless PREFT_DECODE_NO_CLEANUP. */
PREFT_API int preft_tokenizer_decode(const preft_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                                     char **text, size_t *len, preft_error *err);

/* Streaming decode for generation: feed ids one at a time, get back the new
 * complete text (NULL when nothing can be shown yet, e.g. half a UTF-8
 * character). Same algorithm as tokenizers' DecodeStream; no cleanup. */
typedef struct preft_decode_stream preft_decode_stream;
PREFT_API preft_decode_stream *preft_decode_stream_new(const preft_tokenizer *t, bool skip_special);
/* *text is a heap string (caller frees) or NULL. */
PREFT_API int preft_decode_stream_step(preft_decode_stream *s, int32_t id, char **text, preft_error *err);
/* Whatever is still held back (lossy), or NULL. */
PREFT_API char *preft_decode_stream_flush(preft_decode_stream *s);
PREFT_API void preft_decode_stream_free(preft_decode_stream *s);

/* Vocabulary: ids are in [0, vocab_size); some ids may be holes. */
PREFT_API int32_t preft_tokenizer_vocab_size(const preft_tokenizer *t);
/* The token as written in tokenizer.json ("Ġhello"), or NULL. */
PREFT_API const char *preft_tokenizer_id_to_token(const preft_tokenizer *t, int32_t id);
/* An upper bound on the input bytes one token can stand for, so that a text
 * of B bytes encodes to at least B / bound tokens; 0 when the tokenizer
 * gives no such bound (normalizers or pre-tokenizers that drop text, models
 * other than byte-level BPE). Scans the vocabulary: call it once. */
PREFT_API size_t preft_tokenizer_max_bytes_per_token(const preft_tokenizer *t);
/* Looks up added tokens first, then the model vocabulary; -1 if absent. */
PREFT_API int32_t preft_tokenizer_token_to_id(const preft_tokenizer *t, const char *token);

/* Special ids from tokenizer_config.json (and generation_config.json for
 * eos); -1 / 0 when unset. */
PREFT_API int32_t preft_tokenizer_bos_id(const preft_tokenizer *t);
PREFT_API int32_t preft_tokenizer_pad_id(const preft_tokenizer *t);
/* Returns the number of end-of-sequence ids and points *ids at them. */
PREFT_API int preft_tokenizer_eos_ids(const preft_tokenizer *t, const int32_t **ids);
PREFT_API const char *preft_tokenizer_bos_token(const preft_tokenizer *t); /* NULL when unset */
PREFT_API const char *preft_tokenizer_eos_token(const preft_tokenizer *t);
PREFT_API const char *preft_tokenizer_chat_template(const preft_tokenizer *t); /* NULL when none */

/* Renders the tokenizer's chat template. messages_json: a JSON array of
 * {"role", "content", ...} objects, or an object {"messages": [...], ...}
 * whose other keys (tools, enable_thinking, ...) become template variables.
 * bos_token / eos_token come from the tokenizer. *out is a heap string. */
PREFT_API int preft_chat_template_render(const preft_tokenizer *t, const char *messages_json,
                                         bool add_generation_prompt, char **out, preft_error *err);

#endif
