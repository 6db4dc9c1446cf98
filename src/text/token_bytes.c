/* token_bytes.c - the bytes one token stands for inside a text (tokenizer.h). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "text/tokenizer_int.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool preft_tokenizer_token_bytes(const preft_tokenizer *t, int32_t id, char **bytes, size_t *len) {
  *bytes = NULL;
  *len = 0;
  if (id < 0 || id >= t->vocab_size || !t->id_to_token[id]) return false;
  if (t->is_special && t->is_special[id]) return false;
  const char *tok = t->id_to_token[id];
  size_t n = strlen(tok);
  preft_buf out = {0};
  if (t->is_added && t->is_added[id]) {
    preft_buf_append(&out, tok, n);
  } else if (t->model_type == MODEL_WORDPIECE) {
    if (n >= 2 && tok[0] == '#' && tok[1] == '#')
      preft_buf_append(&out, tok + 2, n - 2);
    else
      preft_buf_append(&out, tok, n);
  } else if (t->byte_level) {
    if (!preft_bytelevel_to_bytes(tok, n, &out)) {
      out.len = 0;
      preft_buf_append(&out, tok, n);
    }
  } else if (t->bpe.byte_fallback && n == 6 && !strncmp(tok, "<0x", 3) && tok[5] == '>' &&
             hexval(tok[3]) >= 0 && hexval(tok[4]) >= 0) {
    preft_buf_putc(&out, (char)(hexval(tok[3]) * 16 + hexval(tok[4])));
  } else {
    static const char meta[] = "\xe2\x96\x81"; /* U+2581 */
    for (size_t i = 0; i < n;) {
      if (i + 3 <= n && !memcmp(tok + i, meta, 3)) {
        preft_buf_putc(&out, ' ');
        i += 3;
      } else {
        preft_buf_putc(&out, tok[i++]);
      }
    }
  }
  if (out.len == 0) {
    free(out.data);
    return false;
  }
  *bytes = out.data;
  *len = out.len;
  return true;
}
