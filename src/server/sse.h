/* sse.h - what one generation request shares between the engine thread and
 * the HTTP connection thread that serves it, and the text builders that turn
 * its events into JSON and server-sent events.
 *
 * A srv_job holds the choices of one HTTP request (n x prompts engine
 * requests). The engine calls preft_srv_job_engine_cb on its own thread for every
 * token; the callback decodes the token into text (a preft_decode_stream per
 * choice), runs the stop-string matcher (returning false when a stop string
 * matched, which finishes the engine request), and appends one srv_event to
 * the job's queue under the job's mutex. It never blocks on the HTTP side.
 * The connection thread takes events in batches with preft_srv_job_take: it sleeps
 * in poll() on the job's eventfd (written by the callback when the
 * connection thread is waiting) and on the client's socket, so a client that
 * went away is noticed at once even while nothing is being written, and no
 * thread wakes up without a reason.
 *
 * Lifetime: the engine calls each choice's callback exactly once with a
 * finish reason; a job may only be freed after every submitted choice got
 * that final call (preft_srv_job_cancel_and_wait), so the engine never calls into
 * freed memory.
 */
#ifndef PREFT_SERVER_SSE_H
#define PREFT_SERVER_SSE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/stop.h"
#include "text/tokenizer.h"

/* ---- growable text buffer with JSON escaping ------------------------------- */

typedef struct srv_buf {
  char *p; /* NUL-terminated when non-NULL */
  size_t len, cap;
} srv_buf;

void preft_srv_buf_put(srv_buf *b, const char *s, size_t n);
void preft_srv_buf_puts(srv_buf *b, const char *s);
void preft_srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string; control characters are escaped and
 * invalid UTF-8 becomes U+FFFD, so the output is always valid JSON. */
void preft_srv_buf_json_str(srv_buf *b, const char *s, size_t n);
/* A JSON number for a float; non-finite values become -9999.0 (as vLLM
 * reports impossible log-probabilities). */
void preft_srv_buf_json_num(srv_buf *b, double v);
void preft_srv_buf_reset(srv_buf *b);
void preft_srv_buf_free(srv_buf *b);

/* Number of code points in UTF-8 text (invalid bytes count one each). */
size_t preft_srv_utf8_chars(const char *s, size_t n);

/* ---- events and jobs ------------------------------------------------------------ */

typedef struct srv_event {
  int choice;
  int token; /* -1: no token (final event of a cancelled or failed request) */
  float logprob;
  int n_top;
  int top_ids[PREFT_MAX_TOP_LOGPROBS];
  float top_logprobs[PREFT_MAX_TOP_LOGPROBS];
  char *text; /* heap: text released by this event (may be NULL) */
  size_t text_len;
  size_t text_offset; /* code points of the choice's text released before this event */
  bool after_stop;    /* a token produced after the stop string matched (not shown) */
  preft_finish_reason finish;
  bool stop_string; /* finish STOP because a stop string matched */
  int prompt_tokens, completion_tokens;
  char *error;              /* heap copy of the engine's message for PREFT_FINISH_ERROR */
  bool adapter_unavailable; /* the error is the adapter's failed load */
} srv_event;

typedef struct srv_job srv_job;

typedef struct srv_choice {
  srv_job *job;
  int index;
  uint64_t id;
  bool submitted, done; /* guarded by the job's mutex */
  /* engine thread only: */
  preft_decode_stream *ds;
  preft_stop_matcher stop;
  bool stopped;
  size_t chars_out;
} srv_choice;

struct srv_job {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  srv_event *q; /* queued events, oldest first */
  size_t q_len, q_cap;
  int n_choices, n_open; /* n_open: submitted and not yet finished */
  srv_choice *choices;
  const preft_tokenizer *tok; /* NULL: no text, only token ids */
  char **stops;               /* owned */
  int n_stops;
  _Atomic long *cb_nanos; /* where to add the time spent in the callback (may be NULL) */
  int min_tokens;         /* stop strings are looked for from this many completion tokens on */
  preft_engine *engine;
  int efd;      /* eventfd: the callback signals a waiting connection thread */
  bool waiting; /* the connection thread sleeps in poll (guarded by mu) */
  /* connection thread only: */
  bool may_probe;   /* nothing of the response is written yet and the client speaks HTTP/1.1 */
  bool half_closed; /* the client ended its sending side (FIN): watch only for a reset */
};

/* A job of n choices; stops are copied. tok may be NULL. */
srv_job *preft_srv_job_new(preft_engine *e, const preft_tokenizer *tok, int n_choices, char *const *stops,
                           int n_stops, bool skip_special, _Atomic long *cb_nanos);
/* Submits choice i; on failure returns the PREFT_SUBMIT_* code with err filled. */
int preft_srv_job_submit(srv_job *j, int i, const preft_request_params *p, preft_error *err);
/* The engine callback (user = a srv_choice). */
bool preft_srv_job_engine_cb(void *user, const preft_token_event *ev);

enum { SRV_TAKE_EVENTS = 0, SRV_TAKE_HUNG_UP = 1, SRV_TAKE_ALL_DONE = 2 };
/* Waits until at least one event is queued (or every choice is done, or the
 * peer of fd hung up; fd < 0: not watched), then moves all queued events to
 * *out (caller frees them with preft_srv_events_free).
 *
 * A client that ends its sending side may still be reading (a half-close,
 * shutdown(SHUT_WR)) or may have closed its socket; the two look the same
 * until something is sent. So on the client's FIN, when j->may_probe, an
 * interim "102 Processing" response is sent (HTTP/1.1 clients skip 1xx
 * responses): a closed socket answers it with a reset, which is the hang-up;
 * a half-closed client is still answered. Without may_probe (the response
 * has started, or HTTP/1.0) a closed client is noticed when a write fails. */
int preft_srv_job_take(srv_job *j, int fd, srv_event **out, size_t *n);
void preft_srv_events_free(srv_event *ev, size_t n);
/* Asks the engine to cancel every choice that has not finished (returns at
 * once; the final callbacks follow). */
void preft_srv_job_cancel(srv_job *j);
/* Cancels every choice that has not finished and waits for their final
 * callbacks. Idempotent. */
void preft_srv_job_cancel_and_wait(srv_job *j);
/* Cancels (if needed), waits, frees. */
void preft_srv_job_free(srv_job *j);

#endif
