/* request_head.c - the request-head check of the server's front end (see
 * request_head.h). Pure: bytes in, a verdict out. */
#include "server/request_head.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SRV_MAX_METHOD 32

static srv_head_result bad(srv_api_error *e, int status, const char *code, const char *msg) {
  preft_srv_fail(e, status, "invalid_request_error", code, NULL, "%s", msg);
  return SRV_HEAD_BAD;
}

/* RFC 9110 token characters */
static bool tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool digit(char c) { return c >= '0' && c <= '9'; }

/* The head is cut short: more may come, or the client ended its side. */
static srv_head_result more(bool eof, srv_api_error *e) {
  return eof ? bad(e, 400, "incomplete_request",
                   "the connection was half-closed before the request's head ended")
             : SRV_HEAD_MORE;
}

/* The request line line[0..len) (no LF seen when !complete). Sets *http11. */
static srv_head_result request_line(const char *line, size_t len, bool complete, bool eof, bool *http11,
                                    srv_api_error *e) {
  static const char *const not_line = "the request line is not 'METHOD TARGET HTTP/1.1'";
  size_t j = 0;
  while (j < len && tchar((unsigned char)line[j])) j++;
  if (j > SRV_MAX_METHOD) return bad(e, 400, "invalid_request_line", "the request's method is too long");
  if (j == len && !complete) return more(eof, e);
  if (j == 0 || j == len || line[j] != ' ') return bad(e, 400, "invalid_request_line", not_line);
  size_t k = j + 1;
  while (k < len && (unsigned char)line[k] > 0x20 && line[k] != 0x7f) k++;
  if (k - (j + 1) > SRV_MAX_URL) {
    char msg[96];
    snprintf(msg, sizeof msg, "the request's URL is longer than %d bytes", SRV_MAX_URL);
    return bad(e, 414, "uri_too_long", msg);
  }
  if (k == len && !complete) return more(eof, e);
  if (k == j + 1 || k == len || line[k] != ' ') return bad(e, 400, "invalid_request_line", not_line);
  const char *v = line + k + 1, *pattern = "HTTP/0.0";
  size_t vn = len - (k + 1);
  if (vn && v[vn - 1] == '\r' && complete) vn--;
  for (size_t i = 0; i < vn && i < 8; i++)
    if (pattern[i] == '0' ? !digit(v[i]) : v[i] != pattern[i])
      return bad(e, 400, "invalid_request_line", not_line);
  if (!complete) return vn <= 9 ? more(eof, e) : bad(e, 400, "invalid_request_line", not_line);
  if (vn != 8) return bad(e, 400, "invalid_request_line", not_line);
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
    return bad(e, 505, "http_version_not_supported", "the server speaks HTTP/1.0 and HTTP/1.1 only");
  *http11 = v[7] == '1';
  return SRV_HEAD_OK;
}

typedef struct {
  int hosts;
  bool has_length, transfer_encoding;
  uint64_t length; /* UINT64_MAX: past 2^64 - 1 */
} head_facts;

/* One header line (no CR/LF), recorded in f. */
static srv_head_result header_line(const char *s, size_t len, head_facts *f, srv_api_error *e) {
  if (s[0] == ' ' || s[0] == '\t')
    return bad(e, 400, "invalid_header",
               "a header line starts with white space (line folding is not accepted)");
  size_t j = 0;
  while (j < len && tchar((unsigned char)s[j])) j++;
  if (j < len && (s[j] == ' ' || s[j] == '\t'))
    return bad(e, 400, "invalid_header", "a header has white space between its name and the colon");
  if (j == 0 || j == len || s[j] != ':')
    return bad(e, 400, "invalid_header", "a header line is not 'Name: value'");
  for (size_t i = j + 1; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return bad(e, 400, "invalid_header", "a header's value holds a control character");
  }
  const char *v = s + j + 1, *end = s + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  if (j == 4 && !strncasecmp(s, "host", 4)) f->hosts++;
  if (j == 17 && !strncasecmp(s, "transfer-encoding", 17)) f->transfer_encoding = true;
  if (j == 14 && !strncasecmp(s, "content-length", 14)) {
    if (v == end) return bad(e, 400, "invalid_content_length", "Content-Length is empty");
    uint64_t n = 0;
    for (const char *p = v; p < end; p++) {
      if (!digit(*p))
        return bad(e, 400, "invalid_content_length", "Content-Length is not a decimal number of bytes");
      unsigned d = (unsigned)(*p - '0');
      n = n > (UINT64_MAX - 1 - d) / 10 ? UINT64_MAX : n * 10 + d;
    }
    if (f->has_length && f->length != n)
      return bad(e, 400, "invalid_content_length", "the request has two different Content-Length headers");
    f->has_length = true;
    f->length = n;
  }
  return SRV_HEAD_OK;
}

srv_head_result preft_srv_check_head(const char *buf, size_t n, bool eof, size_t max_body, srv_api_error *e) {
  size_t i = 0;
  int blank = 0;
  while (i < n && (buf[i] == '\r' || buf[i] == '\n'))
    if (buf[i++] == '\n' && ++blank > SRV_MAX_LEADING)
      return bad(e, 400, "invalid_request_line", "too many empty lines before the request line");
  if (i == n) return more(eof, e);
  const char *line = buf + i;
  const char *lf = memchr(line, '\n', n - i);
  bool http11 = false;
  srv_head_result r = request_line(line, lf ? (size_t)(lf - line) : n - i, lf != NULL, eof, &http11, e);
  if (r != SRV_HEAD_OK) return r;
  const char *head = lf + 1, *end = buf + n;
  head_facts f = {0};
  char msg[128];
  snprintf(msg, sizeof msg, "the request's headers are larger than %d bytes", SRV_MAX_HEAD);
  for (const char *p = head;;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if ((size_t)((nl ? nl : end) - head) > SRV_MAX_HEAD) return bad(e, 431, "headers_too_large", msg);
    if (!nl) return more(eof, e);
    size_t len = (size_t)(nl - p);
    if (len && p[len - 1] == '\r') len--;
    if (memchr(p, '\r', len))
      return bad(e, 400, "invalid_header", "a header line holds a bare carriage return");
    if (len == 0) break; /* the empty line ending the head */
    if ((r = header_line(p, len, &f, e)) != SRV_HEAD_OK) return r;
    p = nl + 1;
  }
  if (http11 && f.hosts != 1)
    return bad(e, 400, "missing_host", "an HTTP/1.1 request needs exactly one Host header");
  if (f.transfer_encoding)
    return bad(e, 411, "length_required",
               "Transfer-Encoding is not accepted: send the request body with a Content-Length");
  if (f.has_length && f.length > max_body) {
    snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes", max_body);
    return bad(e, 413, "request_too_large", msg);
  }
  return SRV_HEAD_OK;
}

static const char *reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

void preft_srv_error_response(const srv_api_error *e, srv_buf *out) {
  srv_buf body = {0};
  preft_srv_error_json(e, &body);
  preft_srv_buf_printf(out,
                       "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                       "Content-Length: %zu\r\n\r\n",
                       e->status, reason(e->status), body.len);
  preft_srv_buf_put(out, body.p, body.len);
  preft_srv_buf_free(&body);
}
