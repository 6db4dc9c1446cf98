/* terminus_pane.c - pane text as the model reads it: trimmed, long output cut
 * to its head and tail, and only what is new since the last look. */
#include <string.h>

#include "server/sse.h" /* srv_buf */
#include "tasks/terminus_int.h"

void preft_term_pane_trim(char *text) {
  char *w = text;
  char *line_end_keep = text; /* end of the last line with content */
  for (const char *r = text; *r;) {
    const char *nl = strchr(r, '\n');
    size_t n = nl ? (size_t)(nl - r) : strlen(r);
    while (n && (r[n - 1] == ' ' || r[n - 1] == '\r' || r[n - 1] == '\t')) n--;
    memmove(w, r, n);
    w += n;
    if (n) line_end_keep = w;
    if (!nl) break;
    *w++ = '\n';
    r = nl + 1;
  }
  *line_end_keep = 0;
}

/* Moves p back to the start of the UTF-8 sequence it points into. */
static size_t utf8_floor(const char *s, size_t p) {
  while (p > 0 && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
  return p;
}

char *preft_term_truncate(const char *text, size_t limit) {
  size_t n = strlen(text);
  if (n <= limit) return preft_xstrdup(text);
  size_t head = utf8_floor(text, limit / 2);
  size_t tail = utf8_floor(text, n - limit / 2);
  srv_buf b = {0};
  preft_srv_buf_put(&b, text, head);
  preft_srv_buf_printf(&b, "\n[... output limited to %zu bytes; %zu bytes in the middle left out ...]\n",
                       limit, tail - head);
  preft_srv_buf_puts(&b, text + tail);
  return b.p;
}

/* Length of the line starting at s (without its '\n'). */
static size_t line_len(const char *s) {
  const char *nl = strchr(s, '\n');
  return nl ? (size_t)(nl - s) : strlen(s);
}

char *preft_term_pane_new(const char *before, const char *now) {
  const char *b = before, *n = now;
  /* every full line of `before` but the last must match */
  for (;;) {
    size_t lb = line_len(b);
    if (!b[lb]) break; /* b is the last line of before */
    size_t ln = line_len(n);
    if (ln != lb || memcmp(b, n, lb) || !n[ln]) return NULL;
    b += lb + 1;
    n += ln + 1;
  }
  /* the last line of before may have grown (the prompt, then the command) */
  size_t lb = strlen(b);
  if (strncmp(b, n, lb)) return NULL;
  return preft_xstrdup(n);
}

char *preft_term_last_lines(const char *text, int rows) {
  size_t n = strlen(text);
  size_t p = n;
  int seen = 0;
  while (p > 0) {
    if (text[p - 1] == '\n' && p != n && ++seen == rows) break;
    p--;
  }
  return preft_xstrdup(text + p);
}
