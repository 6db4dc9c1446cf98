/* request_head.h - checks an HTTP/1.x request head (request line and header
 * lines) before libmicrohttpd reads it, so that every malformed request is
 * answered with an OpenAI error body instead of libmicrohttpd's HTML pages
 * (which it sends, or closes the connection without an answer, with no hook
 * to replace them). front_end.c peeks at each connection's head and calls
 * this; only heads it accepts reach libmicrohttpd.
 *
 * What is refused (status, error code):
 *   400 invalid_request_line   not METHOD SP TARGET SP HTTP/D.D
 *   505 http_version_not_supported   HTTP/D.D other than 1.0 and 1.1
 *   414 uri_too_long           a target over SRV_MAX_URL bytes
 *   431 headers_too_large      header lines over SRV_MAX_HEAD bytes
 *   400 invalid_header         a line without "name:", a space before the
 *                              colon, a folded line, a control byte
 *   400 missing_host           HTTP/1.1 without exactly one Host
 *   400 invalid_content_length not decimal digits, or two different values
 *   413 request_too_large      Content-Length over the body limit
 *   411 length_required        Transfer-Encoding (bodies need a Content-Length)
 *   400 incomplete_request     the client ended its side mid-head
 * Lines may end in CRLF or LF; empty lines before the request line are
 * skipped (RFC 9112 section 2.2). */
#ifndef PREFT_SERVER_REQUEST_HEAD_H
#define PREFT_SERVER_REQUEST_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "server/request_parse.h"
#include "server/sse.h"

#define SRV_MAX_URL 8192   /* bytes of a request target */
#define SRV_MAX_HEAD 32768 /* bytes of header lines */
#define SRV_MAX_LEADING 64 /* empty lines before the request line */

typedef enum { SRV_HEAD_MORE = 0, SRV_HEAD_OK = 1, SRV_HEAD_BAD = -1 } srv_head_result;

/* Checks the bytes buf[0..n) a client has sent so far. SRV_HEAD_MORE: the
 * head is not complete and nothing is wrong yet (eof: the client will send
 * nothing more, which makes an incomplete head BAD); SRV_HEAD_OK: a complete
 * acceptable head; SRV_HEAD_BAD: e is filled with the answer. max_body: the
 * largest Content-Length accepted. */
srv_head_result preft_srv_check_head(const char *buf, size_t n, bool eof, size_t max_body, srv_api_error *e);

/* A whole HTTP/1.1 response carrying e as its JSON body, closing the
 * connection (status line, Content-Type, Connection: close, Content-Length). */
void preft_srv_error_response(const srv_api_error *e, srv_buf *out);

#endif
