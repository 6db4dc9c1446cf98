/* sse.c - per-request event queues filled by the engine thread, and the
 * text/JSON buffer the HTTP side formats responses with (see sse.h). */
#include "server/sse.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/timer.h"

/* ---- buffer ---------------------------------------------------------------------- */

static void buf_reserve(srv_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  b->p = preft_xrealloc(b->p, cap);
  b->cap = cap;
}

void preft_srv_buf_put(srv_buf *b, const char *s, size_t n) {
  buf_reserve(b, n);
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void preft_srv_buf_puts(srv_buf *b, const char *s) { preft_srv_buf_put(b, s, strlen(s)); }

void preft_srv_buf_printf(srv_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[256];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    preft_srv_buf_put(b, tmp, (size_t)n);
    return;
  }
  buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

size_t preft_srv_utf8_chars(const char *s, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_seq_len((const unsigned char *)s + i, n - i);
    i += l ? l : 1;
    count++;
  }
  return count;
}

void preft_srv_buf_json_str(srv_buf *b, const char *s, size_t n) {
  buf_reserve(b, n + 2);
  b->p[b->len++] = '"';
  size_t run = 0; /* start of the pending run of bytes copied verbatim */
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    const char *esc = NULL;
    char tmp[8];
    size_t adv = 1;
    if (c == '"')
      esc = "\\\"";
    else if (c == '\\')
      esc = "\\\\";
    else if (c == '\n')
      esc = "\\n";
    else if (c == '\r')
      esc = "\\r";
    else if (c == '\t')
      esc = "\\t";
    else if (c < 0x20 || c == 0x7F) {
      snprintf(tmp, sizeof tmp, "\\u%04x", c);
      esc = tmp;
    } else if (c >= 0x80) {
      adv = utf8_seq_len(u + i, n - i);
      if (!adv) {
        esc = "\xEF\xBF\xBD"; /* U+FFFD */
        adv = 1;
      }
    }
    if (esc) {
      preft_srv_buf_put(b, s + run, i - run);
      preft_srv_buf_puts(b, esc);
      run = i + adv;
    }
    i += adv;
  }
  preft_srv_buf_put(b, s + run, n - run);
  preft_srv_buf_put(b, "\"", 1);
}

void preft_srv_buf_json_num(srv_buf *b, double v) {
  if (!isfinite(v)) v = -9999.0;
  char tmp[40];
  int n = snprintf(tmp, sizeof tmp, "%.9g", v);
  /* keep it a JSON number that reads back as a float ("1" is fine too) */
  preft_srv_buf_put(b, tmp, (size_t)n);
}

void preft_srv_buf_reset(srv_buf *b) {
  b->len = 0;
  if (b->p) b->p[0] = 0;
}

void preft_srv_buf_free(srv_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- jobs -------------------------------------------------------------------------- */

srv_job *preft_srv_job_new(preft_engine *e, const preft_tokenizer *tok, int n_choices, char *const *stops,
                           int n_stops, bool skip_special, _Atomic long *cb_nanos) {
  srv_job *j = preft_xcalloc(1, sizeof *j);
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  j->engine = e;
  j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  PREFT_ASSERT(j->efd >= 0);
  j->tok = tok;
  j->cb_nanos = cb_nanos;
  j->n_choices = n_choices;
  j->n_stops = n_stops;
  if (n_stops) {
    j->stops = preft_xcalloc((size_t)n_stops, sizeof *j->stops);
    for (int i = 0; i < n_stops; i++) j->stops[i] = preft_xstrdup(stops[i]);
  }
  j->choices = preft_xcalloc((size_t)n_choices, sizeof *j->choices);
  for (int i = 0; i < n_choices; i++) {
    srv_choice *c = &j->choices[i];
    c->job = j;
    c->index = i;
    if (tok) c->ds = preft_decode_stream_new(tok, skip_special);
    preft_stop_init(&c->stop, (const char *const *)j->stops, n_stops);
  }
  return j;
}

int preft_srv_job_submit(srv_job *j, int i, const preft_request_params *p, preft_error *err) {
  srv_choice *c = &j->choices[i];
  PREFT_ASSERT(!c->submitted);
  /* Count the choice as open before submitting: its callbacks may run on
   * the engine thread before preft_engine_submit returns. */
  pthread_mutex_lock(&j->mu);
  j->n_open++;
  c->submitted = true;
  pthread_mutex_unlock(&j->mu);
  uint64_t id = 0;
  int rc = preft_engine_submit(j->engine, p, preft_srv_job_engine_cb, c, &id, err);
  pthread_mutex_lock(&j->mu);
  if (rc != PREFT_SUBMIT_OK) {
    j->n_open--;
    c->submitted = false;
  } else {
    c->id = id;
  }
  pthread_mutex_unlock(&j->mu);
  return rc;
}

/* Appends text released by the stop matcher to the event's text. */
static void event_add_text(srv_event *ev, const char *s, size_t n) {
  if (!n) return;
  ev->text = preft_xrealloc(ev->text, ev->text_len + n + 1);
  memcpy(ev->text + ev->text_len, s, n);
  ev->text_len += n;
  ev->text[ev->text_len] = 0;
}

/* Decodes the token, feeds the stop matcher; returns true when a stop
 * string matched. Runs on the engine thread. */
static bool choice_text(srv_choice *c, const preft_token_event *ev, srv_event *out) {
  if (!c->ds || c->stopped) return false;
  const char *rel;
  size_t rel_len;
  bool matched = false;
  if (ev->token >= 0) {
    char *piece = NULL;
    preft_error err;
    /* A token outside the tokenizer's vocabulary (a model whose vocabulary
     * is larger) decodes to nothing. */
    if (preft_decode_stream_step(c->ds, ev->token, &piece, &err) == 0 && piece) {
      if (ev->completion_tokens < c->job->min_tokens) { /* before min_tokens no stop string ends it (vLLM) */
        event_add_text(out, piece, strlen(piece));
      } else {
        matched = preft_stop_feed(&c->stop, piece, strlen(piece), &rel, &rel_len);
        event_add_text(out, rel, rel_len);
      }
    }
    free(piece);
  }
  if (!matched && ev->finish != PREFT_FINISH_NONE) {
    char *rest = preft_decode_stream_flush(c->ds);
    if (rest) {
      matched = preft_stop_feed(&c->stop, rest, strlen(rest), &rel, &rel_len);
      event_add_text(out, rel, rel_len);
      free(rest);
    }
    if (!matched) {
      preft_stop_finish(&c->stop, &rel, &rel_len);
      event_add_text(out, rel, rel_len);
    }
  }
  return matched;
}

bool preft_srv_job_engine_cb(void *user, const preft_token_event *ev) {
  double t0 = preft_now();
  srv_choice *c = user;
  srv_job *j = c->job;
  srv_event e = {.choice = c->index,
                 .token = ev->token,
                 .logprob = ev->logprob,
                 .finish = ev->finish,
                 .prompt_tokens = ev->prompt_tokens,
                 .completion_tokens = ev->completion_tokens};
  e.after_stop = c->stopped && ev->token >= 0;
  e.n_top = ev->n_top < 0 ? 0 : ev->n_top > PREFT_MAX_TOP_LOGPROBS ? PREFT_MAX_TOP_LOGPROBS : ev->n_top;
  memcpy(e.top_ids, ev->top_ids, sizeof(int) * (size_t)e.n_top);
  memcpy(e.top_logprobs, ev->top_logprobs, sizeof(float) * (size_t)e.n_top);
  e.text_offset = c->chars_out;
  bool matched = choice_text(c, ev, &e);
  if (e.text_len) c->chars_out += preft_srv_utf8_chars(e.text, e.text_len);
  if (matched) c->stopped = true;
  if (ev->finish == PREFT_FINISH_STOP && c->stopped) e.stop_string = true;
  if (ev->finish == PREFT_FINISH_ERROR) e.error = preft_xstrdup(ev->error ? ev->error : "generation failed");
  e.adapter_unavailable = ev->adapter_unavailable;
  /* Once the final event is queued the connection thread may free the job
   * at any moment: nothing of j or c is touched after the unlock. */
  bool go_on = !c->stopped;
  _Atomic long *cb_nanos = j->cb_nanos;
  pthread_mutex_lock(&j->mu);
  if (j->q_len == j->q_cap) {
    j->q_cap = j->q_cap ? 2 * j->q_cap : 16;
    j->q = preft_xrealloc(j->q, sizeof *j->q * j->q_cap);
  }
  j->q[j->q_len++] = e;
  if (ev->finish != PREFT_FINISH_NONE) {
    c->done = true;
    j->n_open--;
  }
  /* (counted before the unlock: the server that owns cb_nanos may be freed
   * as soon as the last final event is seen) */
  if (j->waiting) {
    uint64_t one = 1;
    ssize_t w = write(j->efd, &one, sizeof one); /* never blocks: the counter cannot overflow here */
    (void)w;
  }
  if (cb_nanos) atomic_fetch_add(cb_nanos, (long)((preft_now() - t0) * 1e9));
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return go_on;
}

int preft_srv_job_take(srv_job *j, int fd, srv_event **out, size_t *n) {
  *out = NULL;
  *n = 0;
  bool watch = fd >= 0;
  for (;;) {
    pthread_mutex_lock(&j->mu);
    if (j->q_len) {
      *out = j->q;
      *n = j->q_len;
      j->q = NULL;
      j->q_len = j->q_cap = 0;
      pthread_mutex_unlock(&j->mu);
      return SRV_TAKE_EVENTS;
    }
    if (j->n_open == 0) {
      pthread_mutex_unlock(&j->mu);
      return SRV_TAKE_ALL_DONE;
    }
    j->waiting = true; /* from here on the callback writes the eventfd */
    pthread_mutex_unlock(&j->mu);
    /* POLLRDHUP only (not POLLIN): a pipelined next request does not wake
     * us; the peer's FIN or RST does (after a FIN only a reset: POLLHUP and
     * POLLERR are always reported). The 1 s timeout is a safety net. */
    struct pollfd p[2] = {{.fd = j->efd, .events = POLLIN},
                          {.fd = fd, .events = j->half_closed ? 0 : POLLRDHUP}};
    int rc = poll(p, watch ? 2 : 1, 1000);
    bool hung = rc > 0 && watch && (p[1].revents & (POLLHUP | POLLERR | POLLNVAL));
    if (!hung && rc > 0 && watch && (p[1].revents & POLLRDHUP)) {
      j->half_closed = true;
      static const char probe[] = "HTTP/1.1 102 Processing\r\n\r\n";
      if (j->may_probe && send(fd, probe, sizeof probe - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
          errno != EAGAIN && errno != EWOULDBLOCK)
        hung = true;
      j->may_probe = false; /* one probe: a closed socket resets at once */
    }
    uint64_t count;
    if (rc > 0 && (p[0].revents & POLLIN)) {
      ssize_t r = read(j->efd, &count, sizeof count);
      (void)r;
    }
    pthread_mutex_lock(&j->mu);
    j->waiting = false;
    pthread_mutex_unlock(&j->mu);
    if (hung) return SRV_TAKE_HUNG_UP;
  }
}

void preft_srv_events_free(srv_event *ev, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(ev[i].text);
    free(ev[i].error);
  }
  free(ev);
}

void preft_srv_job_cancel(srv_job *j) {
  uint64_t *ids = preft_xmalloc(sizeof(uint64_t) * (size_t)(j->n_choices + 1));
  int k = 0;
  pthread_mutex_lock(&j->mu);
  for (int i = 0; i < j->n_choices; i++)
    if (j->choices[i].submitted && !j->choices[i].done) ids[k++] = j->choices[i].id;
  pthread_mutex_unlock(&j->mu);
  for (int i = 0; i < k; i++) preft_engine_cancel(j->engine, ids[i]);
  free(ids);
}

void preft_srv_job_cancel_and_wait(srv_job *j) {
  preft_srv_job_cancel(j);
  pthread_mutex_lock(&j->mu);
  while (j->n_open > 0) pthread_cond_wait(&j->cv, &j->mu);
  pthread_mutex_unlock(&j->mu);
}

void preft_srv_job_free(srv_job *j) {
  if (!j) return;
  preft_srv_job_cancel_and_wait(j);
  preft_srv_events_free(j->q, j->q_len);
  for (int i = 0; i < j->n_choices; i++) {
    if (j->choices[i].ds) preft_decode_stream_free(j->choices[i].ds);
    preft_stop_free(&j->choices[i].stop);
  }
  for (int i = 0; i < j->n_stops; i++) free(j->stops[i]);
  free(j->stops);
  free(j->choices);
  close(j->efd);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  free(j);
}
