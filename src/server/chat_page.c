/* chat_page.c - GET /: the chat page (src/server/chat_page.html, compiled
 * into the binary by cmake/embed_file.cmake). One self-contained HTML file
 * with its script inline and no external assets: it lists the models and
 * adapters (/v1/models), streams replies from /v1/chat/completions (or
 * /v1/completions in completion mode) and shows tokens per second. */
#include <string.h>

#include "server/server_int.h"

extern const unsigned char preft_chat_page_html[];
extern const unsigned long preft_chat_page_html_len;

void preft_srv_route_page(preft_server *s, srv_reply *r) {
  (void)s;
  r->status = 200;
  r->content_type = "text/html; charset=utf-8";
  preft_srv_buf_put(&r->body, (const char *)preft_chat_page_html, (size_t)preft_chat_page_html_len);
}
