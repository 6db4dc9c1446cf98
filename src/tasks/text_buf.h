/* text_buf.h - a growable NUL-terminated byte string for the task readers. */
#ifndef PREFT_TASKS_TEXT_BUF_H
#define PREFT_TASKS_TEXT_BUF_H

#include <stdint.h>
#include <string.h>

#include "base/error.h"

typedef struct text_buf {
  char *s;
  size_t n, cap;
} text_buf;

static inline void text_buf_put(text_buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 32;
    while (cap < b->n + n + 1) cap *= 2;
    b->s = preft_xrealloc(b->s, cap);
    b->cap = cap;
  }
  if (n) memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}
static inline void text_buf_putc(text_buf *b, char c) { text_buf_put(b, &c, 1); }
static inline void text_buf_puts(text_buf *b, const char *s) { text_buf_put(b, s, strlen(s)); }
/* Appends code point cp (a Unicode scalar value) as UTF-8. */
static inline void text_buf_utf8(text_buf *b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | cp >> 12);
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | cp >> 18);
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  text_buf_put(b, u, n);
}
/* The string (never NULL: "" when empty); the buffer is reset. */
static inline char *text_buf_take(text_buf *b) {
  char *s = b->s ? b->s : preft_xstrdup("");
  b->s = NULL;
  b->n = b->cap = 0;
  return s;
}
static inline void text_buf_free(text_buf *b) {
  free(b->s);
  b->s = NULL;
  b->n = b->cap = 0;
}

#endif
