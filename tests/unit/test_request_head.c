/* test_request_head.c - the server front end's request-head check
 * (src/server/request_head.c): good heads pass, and no prefix of a good
 * head is refused (the front end checks whatever part it has peeked at);
 * each malformed head gets its status and error code, the ones
 * libmicrohttpd answered with HTML or by closing the connection among
 * them; a head cut off by a half-close is a 400; the error response is a
 * whole HTTP response with a JSON body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/request_head.h"

#define MAX_BODY 1000

static void accepted(const char *head) {
  srv_api_error e;
  size_t n = strlen(head);
  bool complete = false; /* once the head has ended, what follows does not matter */
  for (size_t i = 0; i <= n; i++) {
    srv_head_result r = preft_srv_check_head(head, i, false, MAX_BODY, &e);
    if (r == SRV_HEAD_OK) complete = true;
    if (r != (complete ? SRV_HEAD_OK : SRV_HEAD_MORE))
      fail_msg("the first %zu bytes of an acceptable head: %d (%s)", i, r,
               r == SRV_HEAD_BAD ? e.message : "");
  }
  assert_true(complete);
}

static void refused(const char *head, int status, const char *code) {
  srv_api_error e;
  if (preft_srv_check_head(head, strlen(head), false, MAX_BODY, &e) != SRV_HEAD_BAD)
    fail_msg("not refused: %s", head);
  assert_int_equal(e.status, status);
  assert_string_equal(e.code, code);
  assert_true(strlen(e.message) > 10);
}

static void good_heads_pass_and_their_prefixes_wait(void **state) {
  (void)state;
  accepted("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  accepted(
      "POST /v1/completions HTTP/1.1\r\nHost: a:1\r\nContent-Type: application/json\r\n"
      "Content-Length: 1000\r\nAuthorization: Bearer k\r\nX-Empty:\r\n\r\n");
  accepted("\r\n\r\nGET /v1/models?limit=2 HTTP/1.0\n\n"); /* empty lines first, LF endings, no Host */
  accepted("OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n");
  accepted("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\nX-Text: caf\xc3\xa9\tok \r\n\r\n");
  /* the body after the head is not looked at */
  accepted("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GARBAGE");
}

static void malformed_heads_get_their_status(void **state) {
  (void)state;
  refused("GARBAGE\r\n\r\n", 400, "invalid_request_line");
  refused("GET /health\r\nHost: x\r\n\r\n", 400, "invalid_request_line");
  refused("GET  /health HTTP/1.1\r\n", 400, "invalid_request_line");
  refused("GET /health HTTP/1.1 \r\n", 400, "invalid_request_line");
  refused("\x16\x03\x01", 400, "invalid_request_line"); /* TLS: refused at the first byte */
  refused("GET /health FTP/1.1\r\n", 400, "invalid_request_line");
  refused("GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported");
  refused("GET /health HTTP/1.2\r\n", 505, "http_version_not_supported");
  refused("GET /health HTTP/0.9\r\n", 505, "http_version_not_supported");
  refused("GET /health HTTP/1.1\r\n\r\n", 400, "missing_host");
  refused("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "missing_host");
  refused("GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400, "invalid_header");
  refused("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "invalid_header");
  refused("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "invalid_header");
  refused("GET / HTTP/1.1\r\nHost: x\x01\r\n\r\n", 400, "invalid_header");
  refused("GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", 400, "invalid_header");
  refused("GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "invalid_header");
  refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n", 400, "invalid_content_length");
  refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n", 400, "invalid_content_length");
  refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n", 400, "invalid_content_length");
  refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n", 400, "invalid_content_length");
  refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n", 400,
          "invalid_content_length");
  refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413, "request_too_large");
  refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999999999999\r\n\r\n", 413,
          "request_too_large");
  refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "length_required");
}

static void oversized_heads_are_refused_before_they_end(void **state) {
  (void)state;
  size_t n = SRV_MAX_URL + 100;
  char *line = malloc(n + 1);
  memcpy(line, "GET /", 5);
  memset(line + 5, 'a', n - 5);
  line[n] = 0;
  refused(line, 414, "uri_too_long");
  free(line);
  n = SRV_MAX_HEAD + 200;
  char *head = malloc(n + 1);
  int off = snprintf(head, n + 1, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (size_t i = (size_t)off; i < n; i += 20) snprintf(head + i, n + 1 - i, "X-Pad: 0123456789ab\r\n");
  head[n] = 0;
  refused(head, 431, "headers_too_large");
  free(head);
  char blank[2 * SRV_MAX_LEADING + 10];
  memset(blank, '\n', sizeof blank - 1);
  blank[sizeof blank - 1] = 0;
  refused(blank, 400, "invalid_request_line");
}

static void a_half_closed_head_is_a_400(void **state) {
  (void)state;
  srv_api_error e;
  const char *cut[] = {
      "", "G", "GET /he", "GET /health HTT", "GET /health HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHo"};
  for (size_t i = 0; i < sizeof cut / sizeof *cut; i++) {
    assert_int_equal(preft_srv_check_head(cut[i], strlen(cut[i]), true, MAX_BODY, &e), SRV_HEAD_BAD);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "incomplete_request");
  }
}

static void the_error_response_is_whole_http_with_json(void **state) {
  (void)state;
  srv_api_error e;
  assert_int_equal(preft_srv_check_head("GET / HTTP/3.0\r\n", 16, false, MAX_BODY, &e), SRV_HEAD_BAD);
  srv_buf out = {0};
  preft_srv_error_response(&e, &out);
  const char *want_head =
      "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: ";
  assert_memory_equal(out.p, want_head, strlen(want_head));
  const char *body = strstr(out.p, "\r\n\r\n") + 4;
  assert_int_equal(strtol(out.p + strlen(want_head), NULL, 10), (long)(out.len - (size_t)(body - out.p)));
  assert_non_null(strstr(body, "\"code\":\"http_version_not_supported\""));
  assert_non_null(strstr(body, "\"type\":\"invalid_request_error\""));
  preft_srv_buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(good_heads_pass_and_their_prefixes_wait),
      cmocka_unit_test(malformed_heads_get_their_status),
      cmocka_unit_test(oversized_heads_are_refused_before_they_end),
      cmocka_unit_test(a_half_closed_head_is_a_400),
      cmocka_unit_test(the_error_response_is_whole_http_with_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
