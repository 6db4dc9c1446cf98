/* fuzz_http_head.c - libFuzzer target: the bytes a client sends first,
 * through the server front end's request-head check
 * (preft_srv_check_head), as every prefix the front end could peek at
 * (the whole input, and cut after every line) with and without the client
 * having half-closed, then the error response built from a refusal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/request_head.h"

static void check(const char *buf, size_t n, bool eof) {
  srv_api_error e;
  srv_head_result r = preft_srv_check_head(buf, n, eof, 1u << 20, &e);
  if (r == SRV_HEAD_BAD) {
    srv_buf out = {0};
    preft_srv_error_response(&e, &out);
    if (e.status < 400 || e.status > 599 || !out.len) abort();
    preft_srv_buf_free(&out);
  } else if (r == SRV_HEAD_MORE && eof) {
    abort(); /* a half-closed client is answered */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a copy of exactly size bytes, so ASan sees any read past them */
  char *buf = malloc(size ? size : 1);
  memcpy(buf, data, size);
  check(buf, size, false);
  check(buf, size, true);
  for (size_t i = 0; i < size; i++)
    if (buf[i] == '\n') check(buf, i + 1, false);
  free(buf);
  return 0;
}
