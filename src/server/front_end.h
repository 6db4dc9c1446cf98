/* front_end.h - the server's own accept loop in front of libmicrohttpd.
 *
 * libmicrohttpd answers malformed request lines, bad Content-Length headers,
 * unknown HTTP versions and heads larger than its memory with its own HTML
 * pages (or closes the connection without an answer), and has no hook to
 * change that. So preft accepts connections itself: one thread watches every
 * new connection with epoll and peeks (MSG_PEEK: nothing is consumed) at
 * what it has sent until the request head is complete, checks the head
 * (request_head.h), and hands a good connection to libmicrohttpd
 * (MHD_add_connection), which then reads the same bytes. A bad head gets an
 * OpenAI error (JSON, the right status) and the connection is closed after
 * the client has read it (a lingering close, at most 2 s).
 *
 * A connection waiting for its head holds no thread, only a socket: its head
 * is due within the header timeout (else a JSON 408), and when more than
 * max_pending connections are waiting, the one waiting longest is answered
 * with a JSON 408 and closed, so slow clients cannot keep a prompt one out.
 *
 * Every response closes its connection (http_server.c sends
 * "Connection: close"), so each request arrives on a new connection and
 * passes through this check: libmicrohttpd never parses a head that was not
 * checked. */
#ifndef PREFT_SERVER_FRONT_END_H
#define PREFT_SERVER_FRONT_END_H

#include <netdb.h>

#include "base/error.h"

typedef struct srv_front srv_front;
typedef struct preft_server preft_server;

/* Listens on ai and starts the thread; connections go to s->daemon. */
int preft_srv_front_start(srv_front **out, preft_server *s, const struct addrinfo *ai, int max_pending,
                          double header_s, preft_error *err);
/* The port listened on. */
int preft_srv_front_port(const srv_front *f);
/* Stops accepting (the listening socket is closed); connections already
 * accepted are still checked and handed over. */
void preft_srv_front_quiesce(srv_front *f);
/* Stops the thread, closes every connection not handed over, frees f. */
void preft_srv_front_stop(srv_front *f);

#endif
