/* front_end.c - accepts connections, checks each request head before
 * libmicrohttpd sees it, hands good connections over (see front_end.h). */
#include "server/front_end.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timer.h"
#include "server/request_head.h"
#include "server/server_int.h"

/* Enough to hold the largest head request_head.c accepts: past this much a
 * head is refused (414 / 431) before it ends. */
#define FRONT_PEEK (SRV_MAX_URL + SRV_MAX_HEAD + 1024)
#define FRONT_LINGER_S 2.0 /* a refused client's time to read its answer */
#define FRONT_TICK_MS 100  /* how often deadlines are checked */

typedef struct front_conn {
  int fd;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  double since, deadline;
  bool eof;    /* the client has half-closed */
  bool linger; /* answered: waiting for the client to read and close */
  struct front_conn *prev, *next;
} front_conn;

struct srv_front {
  preft_server *server;
  int listen_fd, wake_fd, ep, port;
  int max_pending, n_pending, n_linger;
  double header_s, paused_until;
  front_conn *head, *tail; /* oldest first */
  pthread_t thread;
  atomic_bool stop, quiesce;
  char peek[FRONT_PEEK];
};

static void unlink_conn(srv_front *f, front_conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    f->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    f->tail = c->prev;
  if (c->linger)
    f->n_linger--;
  else
    f->n_pending--;
}

static void close_conn(srv_front *f, front_conn *c) {
  unlink_conn(f, c);
  close(c->fd); /* also removes it from the epoll set */
  free(c);
}

/* Reads and drops what the client sends after its answer; closes at its end. */
static void drain(srv_front *f, front_conn *c) {
  char sink[4096];
  for (;;) {
    ssize_t n = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_conn(f, c);
    return;
  }
}

/* Answers c with e and closes it once the client has read the answer:
 * `consumed` bytes (the head peeked at) are read first, so that the close
 * does not reset the connection under unread data. */
static void refuse(srv_front *f, front_conn *c, const srv_api_error *e, size_t consumed) {
  while (consumed) {
    ssize_t n = recv(c->fd, f->peek, consumed < sizeof f->peek ? consumed : sizeof f->peek, MSG_DONTWAIT);
    if (n <= 0) break;
    consumed -= (size_t)n;
  }
  srv_buf out = {0};
  preft_srv_error_response(e, &out);
  ssize_t w = send(c->fd, out.p, out.len, MSG_DONTWAIT | MSG_NOSIGNAL); /* fits an empty send buffer */
  (void)w;
  preft_srv_buf_free(&out);
  shutdown(c->fd, SHUT_WR);
  preft_srv_count_status(f->server, e->status);
  PREFT_DEBUG("server: refused a connection: %d %s", e->status, e->message);
  unlink_conn(f, c);
  c->linger = true;
  c->deadline = preft_now() + FRONT_LINGER_S;
  f->n_linger++;
  /* at the tail: lingering connections are closed oldest first */
  c->next = NULL;
  c->prev = f->tail;
  if (f->tail)
    f->tail->next = c;
  else
    f->head = c;
  f->tail = c;
  drain(f, c);
}

static void expire(srv_front *f, front_conn *c, const char *why) {
  srv_api_error e;
  preft_srv_fail(&e, 408, "invalid_request_error", "request_timeout", NULL, "%s", why);
  refuse(f, c, &e, 0);
}

/* A pending connection has new bytes (or ended its side): check its head. */
static void on_readable(srv_front *f, front_conn *c, uint32_t events) {
  if (c->linger) return drain(f, c);
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->eof = true;
  ssize_t n = recv(c->fd, f->peek, sizeof f->peek, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) return close_conn(f, c); /* gone before sending a request: nothing to answer */
  srv_api_error e;
  switch (preft_srv_check_head(f->peek, (size_t)n, c->eof, f->server->max_body, &e)) {
    case SRV_HEAD_MORE:
      return;
    case SRV_HEAD_BAD:
      return refuse(f, c, &e, (size_t)n);
    case SRV_HEAD_OK:
      break;
  }
  unlink_conn(f, c);
  epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
  /* libmicrohttpd owns the socket from here, and closes it if it fails */
  if (MHD_add_connection(f->server->daemon, c->fd, (const struct sockaddr *)&c->addr, c->addr_len) != MHD_YES)
    PREFT_WARN("server: libmicrohttpd did not take a connection: %s", strerror(errno));
  free(c);
}

static void accept_all(srv_front *f) {
  for (;;) {
    front_conn *c = preft_xcalloc(1, sizeof *c);
    c->addr_len = sizeof c->addr;
    c->fd = accept4(f->listen_fd, (struct sockaddr *)&c->addr, &c->addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c->fd < 0) {
      int err = errno;
      free(c);
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* out of descriptors: stop accepting for a tick (the backlog waits) */
        PREFT_WARN("server: cannot accept a connection: %s", strerror(err));
        struct epoll_event ev = {.events = 0, .data.ptr = &f->listen_fd};
        epoll_ctl(f->ep, EPOLL_CTL_MOD, f->listen_fd, &ev);
        f->paused_until = preft_now() + FRONT_TICK_MS / 1000.0;
      }
      return;
    }
    c->since = preft_now();
    c->deadline = c->since + f->header_s;
    if (f->n_pending >= f->max_pending) { /* the one waiting longest makes room */
      front_conn *old = f->head;
      while (old && old->linger) old = old->next;
      if (old) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "the server needed this connection for another client: %d connections were waiting for "
                 "their request's head (its --max-connections) and this one had waited longest",
                 f->max_pending);
        expire(f, old, msg);
      }
    }
    while (f->n_linger > f->max_pending && f->head) { /* bound the descriptors lingering */
      front_conn *old = f->head;
      while (old && !old->linger) old = old->next;
      if (!old) break;
      close_conn(f, old);
    }
    c->prev = f->tail;
    if (f->tail)
      f->tail->next = c;
    else
      f->head = c;
    f->tail = c;
    f->n_pending++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) close_conn(f, c);
  }
}

static void check_deadlines(srv_front *f, double now) {
  for (front_conn *c = f->head, *next; c; c = next) {
    next = c->next;
    if (now < c->deadline) continue;
    if (c->linger) {
      close_conn(f, c);
    } else {
      char msg[160];
      snprintf(msg, sizeof msg,
               "the request headers did not arrive within %.0f s (the server's --header-timeout)",
               f->header_s);
      expire(f, c, msg);
    }
  }
  if (f->paused_until > 0 && now >= f->paused_until && f->listen_fd >= 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &f->listen_fd};
    epoll_ctl(f->ep, EPOLL_CTL_MOD, f->listen_fd, &ev);
    f->paused_until = 0;
  }
}

static void *front_loop(void *arg) {
  srv_front *f = arg;
  struct epoll_event evs[64];
  double last = preft_now();
  while (!atomic_load(&f->stop)) {
    int n = epoll_wait(f->ep, evs, 64, FRONT_TICK_MS);
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &f->wake_fd) {
        uint64_t v;
        ssize_t r = read(f->wake_fd, &v, sizeof v);
        (void)r;
        if (atomic_load(&f->quiesce) && f->listen_fd >= 0) {
          close(f->listen_fd);
          f->listen_fd = -1;
        }
      } else if (p == &f->listen_fd) {
        if (f->listen_fd >= 0) accept_all(f);
      } else {
        on_readable(f, p, evs[i].events);
      }
    }
    double now = preft_now();
    if (now - last >= FRONT_TICK_MS / 1000.0) {
      check_deadlines(f, now);
      last = now;
    }
  }
  return NULL;
}

static void wake(srv_front *f) {
  uint64_t one = 1;
  ssize_t w = write(f->wake_fd, &one, sizeof one);
  (void)w;
}

int preft_srv_front_start(srv_front **out, preft_server *s, const struct addrinfo *ai, int max_pending,
                          double header_s, preft_error *err) {
  srv_front *f = preft_xcalloc(1, sizeof *f);
  f->server = s;
  f->max_pending = max_pending;
  f->header_s = header_s;
  f->wake_fd = -1;
  f->ep = -1;
  f->listen_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1, rcvbuf = 256 << 10;
  if (f->listen_fd >= 0) {
    setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* inherited by accepted sockets: room to peek at a whole head */
    setsockopt(f->listen_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  if (f->listen_fd < 0 || bind(f->listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
      listen(f->listen_fd, SOMAXCONN) != 0) {
    preft_fail(err, "%s", strerror(errno));
    if (f->listen_fd >= 0) close(f->listen_fd);
    free(f);
    return -1;
  }
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  getsockname(f->listen_fd, (struct sockaddr *)&addr, &len);
  f->port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                             : ((struct sockaddr_in *)&addr)->sin_port);
  f->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  f->ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &f->listen_fd};
  struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &f->wake_fd};
  if (f->wake_fd < 0 || f->ep < 0 || epoll_ctl(f->ep, EPOLL_CTL_ADD, f->listen_fd, &lev) != 0 ||
      epoll_ctl(f->ep, EPOLL_CTL_ADD, f->wake_fd, &wev) != 0 ||
      pthread_create(&f->thread, NULL, front_loop, f) != 0) {
    preft_fail(err, "cannot start the server's accept thread: %s", strerror(errno));
    close(f->listen_fd);
    if (f->wake_fd >= 0) close(f->wake_fd);
    if (f->ep >= 0) close(f->ep);
    free(f);
    return -1;
  }
  *out = f;
  return 0;
}

int preft_srv_front_port(const srv_front *f) { return f->port; }

void preft_srv_front_quiesce(srv_front *f) {
  if (!f) return;
  atomic_store(&f->quiesce, true);
  wake(f);
}

void preft_srv_front_stop(srv_front *f) {
  if (!f) return;
  atomic_store(&f->stop, true);
  wake(f);
  pthread_join(f->thread, NULL);
  while (f->head) close_conn(f, f->head);
  if (f->listen_fd >= 0) close(f->listen_fd);
  close(f->wake_fd);
  close(f->ep);
  free(f);
}
