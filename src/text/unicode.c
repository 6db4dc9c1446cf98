/* unicode.c - UTF-8 coding, the byte-level alphabet and Unicode classes
 * (see unicode.h). */
#include "text/unicode.h"

#include <pthread.h>
#include <string.h>
#include <utf8proc.h>

#include "base/error.h"

void preft_buf_reserve(preft_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t nc = b->cap ? b->cap : 64;
  while (nc < b->len + extra + 1) nc *= 2;
  b->data = preft_xrealloc(b->data, nc);
  b->cap = nc;
  b->data[b->len] = 0; /* always NUL-terminated */
}

void preft_buf_append(preft_buf *b, const void *p, size_t n) {
  preft_buf_reserve(b, n);
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
}

void preft_buf_putc(preft_buf *b, char c) {
  preft_buf_reserve(b, 1);
  b->data[b->len++] = c;
  b->data[b->len] = 0;
}

void preft_buf_puts(preft_buf *b, const char *s) { preft_buf_append(b, s, strlen(s)); }

void preft_buf_free(preft_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

char *preft_buf_take(preft_buf *b, size_t *len) {
  preft_buf_reserve(b, 0);
  char *d = b->data;
  if (len) *len = b->len;
  memset(b, 0, sizeof *b);
  return d;
}

int preft_utf8_decode(const uint8_t *s, size_t n, int32_t *cp) {
  if (n == 0) return 0;
  uint8_t c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c < 0xC2) return 0;
  if (c < 0xE0) {
    if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
    *cp = ((c & 0x1F) << 6) | (s[1] & 0x3F);
    return 2;
  }
  if (c < 0xF0) {
    if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
    *cp = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return 3;
  }
  if (c < 0xF5) {
    if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* > U+10FFFF */
    *cp = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
  }
  return 0;
}

int preft_utf8_encode(int32_t cp, char *out) {
  uint8_t *o = (uint8_t *)out;
  if (cp < 0x80) {
    o[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (uint8_t)(0xC0 | (cp >> 6));
    o[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (uint8_t)(0xE0 | (cp >> 12));
    o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (uint8_t)(0xF0 | (cp >> 18));
  o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

size_t preft_utf8_validate(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    int32_t cp;
    int k = preft_utf8_decode(s + i, n - i, &cp);
    if (!k) return i;
    i += (size_t)k;
  }
  return n;
}

size_t preft_utf8_invalid_run(const uint8_t *s, size_t n) {
  size_t i = 0;
  int32_t cp;
  while (i < n && !preft_utf8_decode(s + i, n - i, &cp)) i++;
  return i;
}

/* Length of the maximal subpart of an ill-formed sequence starting at s
 * (at least 1): the longest prefix that could start a valid sequence. */
static size_t maximal_subpart(const uint8_t *s, size_t n) {
  uint8_t c = s[0];
  int need = preft_utf8_seqlen(c);
  if (need == 1) return 1;
  size_t k = 1;
  while ((int)k < need && k < n) {
    uint8_t lo = 0x80, hi = 0xBF;
    if (k == 1) {
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    if (s[k] < lo || s[k] > hi) break;
    k++;
  }
  return k;
}

void preft_utf8_append_lossy(preft_buf *out, const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t valid = preft_utf8_validate(s + i, n - i);
    preft_buf_append(out, s + i, valid);
    i += valid;
    if (i < n) {
      preft_buf_append(out, "\xEF\xBF\xBD", 3);
      i += maximal_subpart(s + i, n - i);
    }
  }
}

static int32_t bl_char[256];
static int16_t bl_byte[324]; /* code points < 324 cover the whole alphabet */
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

static void bytelevel_init(void) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    bl_char[b] = direct ? b : 256 + n++;
  }
  for (int i = 0; i < 324; i++) bl_byte[i] = -1;
  for (int b = 0; b < 256; b++) bl_byte[bl_char[b]] = (int16_t)b;
}

static inline void bl_ensure(void) { pthread_once(&bl_once, bytelevel_init); }

int32_t preft_bytelevel_char(uint8_t byte) {
  bl_ensure();
  return bl_char[byte];
}

int preft_bytelevel_byte(int32_t cp) {
  bl_ensure();
  return cp >= 0 && cp < 324 ? bl_byte[cp] : -1;
}

bool preft_bytelevel_to_bytes(const char *s, size_t n, preft_buf *out) {
  const uint8_t *u = (const uint8_t *)s;
  size_t i = 0;
  preft_buf_reserve(out, n);
  while (i < n) {
    int b = preft_bytelevel_byte(preft_utf8_next(u, n, &i)); /* -1 for an invalid byte too */
    if (b < 0) return false;
    preft_buf_putc(out, (char)b);
  }
  return true;
}

void preft_bytelevel_from_bytes(const uint8_t *s, size_t n, preft_buf *out) {
  char tmp[4];
  for (size_t i = 0; i < n; i++)
    preft_buf_append(out, tmp, (size_t)preft_utf8_encode(preft_bytelevel_char(s[i]), tmp));
}

bool preft_uni_is_whitespace(int32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool preft_uni_is_punct(int32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_PC || c == UTF8PROC_CATEGORY_PD || c == UTF8PROC_CATEGORY_PS ||
         c == UTF8PROC_CATEGORY_PE || c == UTF8PROC_CATEGORY_PI || c == UTF8PROC_CATEGORY_PF ||
         c == UTF8PROC_CATEGORY_PO;
}

bool preft_uni_is_control(int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  utf8proc_category_t c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO ||
         c == UTF8PROC_CATEGORY_CS;
}

bool preft_uni_is_cjk(int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool preft_uni_is_mark_nonspacing(int32_t cp) { return utf8proc_category(cp) == UTF8PROC_CATEGORY_MN; }
