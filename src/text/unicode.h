/* unicode.h - UTF-8 helpers, the GPT-2 byte-level alphabet and a growable
 * byte buffer, shared by the tokenizer files.
 *
 * The byte-level alphabet maps each byte 0..255 to one code point so that any
 * byte string becomes printable text (e.g. space 0x20 -> U+0120 'Ġ'); preft
 * stores byte-level vocabularies as raw bytes and uses the alphabet only at
 * the edges (loading tokenizer.json, writing it, id->token).
 */
#ifndef PREFT_TEXT_UNICODE_H
#define PREFT_TEXT_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct preft_buf {
  char *data;
  size_t len, cap;
} preft_buf;

void preft_buf_reserve(preft_buf *b, size_t extra);
void preft_buf_append(preft_buf *b, const void *p, size_t n);
void preft_buf_putc(preft_buf *b, char c);
void preft_buf_puts(preft_buf *b, const char *s);
void preft_buf_free(preft_buf *b);
/* NUL-terminates and hands the data to the caller (buffer becomes empty). */
char *preft_buf_take(preft_buf *b, size_t *len);

/* Decodes one code point at s[0..n). Returns its length (1..4) and sets *cp,
 * or returns 0 for an invalid or truncated sequence (overlongs, surrogates
 * and values above U+10FFFF are invalid). */
int preft_utf8_decode(const uint8_t *s, size_t n, int32_t *cp);
/* The code point starting at s[*i] (of s[0:n]); advances *i past it. An
 * invalid byte is taken alone and gives -1. */
static inline int32_t preft_utf8_next(const uint8_t *s, size_t n, size_t *i) {
  int32_t cp;
  int k = preft_utf8_decode(s + *i, n - *i, &cp);
  *i += k ? (size_t)k : 1;
  return k ? cp : -1;
}
/* Writes cp as UTF-8 into out (4 bytes room); returns the length. */
int preft_utf8_encode(int32_t cp, char *out);
/* Returns the offset of the first invalid byte, or n when s is valid UTF-8. */
size_t preft_utf8_validate(const uint8_t *s, size_t n);
/* Length of the run of bytes at the start of s where no valid sequence
 * starts (0 when one starts at s). */
size_t preft_utf8_invalid_run(const uint8_t *s, size_t n);
/* Length of the UTF-8 sequence a lead byte announces (1 for invalid leads). */
static inline int preft_utf8_seqlen(uint8_t c) {
  return c < 0x80 ? 1 : c < 0xC2 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 1;
}
/* Appends s with invalid sequences replaced by U+FFFD, one per maximal
 * subpart (the WHATWG / Python errors="replace" rule). */
void preft_utf8_append_lossy(preft_buf *out, const uint8_t *s, size_t n);

/* Byte-level alphabet. */
int32_t preft_bytelevel_char(uint8_t byte);
/* Returns the byte for a code point of the alphabet, or -1. */
int preft_bytelevel_byte(int32_t cp);
/* Converts byte-level text (e.g. "Ġhello") to raw bytes; false if a code
 * point is outside the alphabet. */
bool preft_bytelevel_to_bytes(const char *s, size_t n, preft_buf *out);
void preft_bytelevel_from_bytes(const uint8_t *s, size_t n, preft_buf *out);

/* Unicode classes (code point level, via utf8proc). */
bool preft_uni_is_whitespace(int32_t cp); /* Unicode White_Space */
bool preft_uni_is_punct(int32_t cp);      /* BERT: P* or ASCII punctuation/symbols */
bool preft_uni_is_control(int32_t cp);    /* BERT: Cc/Cf/Co/Cs except \t \n \r */
bool preft_uni_is_cjk(int32_t cp);        /* BERT's CJK ideograph ranges */
bool preft_uni_is_mark_nonspacing(int32_t cp);

#endif
