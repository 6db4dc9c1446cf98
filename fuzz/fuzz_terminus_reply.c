/* fuzz_terminus_reply.c - libFuzzer target: what the terminus agent reads
 * from outside: a model's reply (preft_term_reply_parse: fences, prose,
 * every field), a chat completion body (preft_term_chat_parse), and pane
 * text (trim, head+tail cut, what is new since an earlier capture). The
 * input up to its first NUL is the reply / body / pane; what follows is
 * the earlier capture. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tasks/terminus_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size);
  size_t n = strlen(text);
  const char *before = n < size ? text + n + 1 : "";
  preft_term_reply r;
  preft_error err;
  if (preft_term_reply_parse(text, &r, &err) == 0) preft_term_reply_free(&r);
  preft_term_chat_result c;
  if (preft_term_chat_parse(text, &c, &err) == 0) preft_term_chat_result_free(&c);
  char *pane = strdup(text);
  preft_term_pane_trim(pane);
  free(preft_term_truncate(pane, 64));
  free(preft_term_pane_new(before, pane));
  free(preft_term_last_lines(pane, 3));
  free(pane);
  free(text);
  return 0;
}
