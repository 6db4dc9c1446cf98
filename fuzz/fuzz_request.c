/* fuzz_request.c - libFuzzer target: an OpenAI request body through the
 * server's request parser (preft_srv_parse_gen_request), as
 * /v1/completions when the first byte is even and /v1/chat/completions
 * when it is odd; the rest of the input is the body (not NUL-terminated). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/request_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  srv_kind kind = (data[0] & 1) ? SRV_CHAT : SRV_COMPLETION;
  /* a copy of exactly size - 1 bytes, so ASan sees any read past the body */
  char *body = malloc(size - 1 ? size - 1 : 1);
  memcpy(body, data + 1, size - 1);
  srv_gen_request r;
  srv_api_error e;
  if (preft_srv_parse_gen_request(body, size - 1, kind, &r, &e) == 0) preft_srv_gen_request_free(&r);
  free(body);
  return 0;
}
