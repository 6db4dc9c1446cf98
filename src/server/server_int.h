/* server_int.h - the server's internals shared by http_server.c (the
 * libmicrohttpd glue), openai_routes.c (the endpoints) and metrics.c.
 * Routes never see libmicrohttpd: they get a srv_conn and fill a srv_reply,
 * either a whole body or a srv_gen that http_server.c streams as SSE. */
#ifndef PREFT_SERVER_SERVER_INT_H
#define PREFT_SERVER_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "server/conn_guard.h"
#include "server/http_server.h"
#include "server/request_parse.h"
#include "server/sse.h"

/* HTTP statuses counted separately in /metrics; everything else is "other". */
#define SRV_N_STATUS 14
extern const int preft_srv_status_codes[SRV_N_STATUS]; /* last entry 0 = other */

typedef struct srv_gen srv_gen;

struct preft_server {
  struct MHD_Daemon *daemon;
  struct srv_front *front;          /* accepts connections, checks heads (front_end.h) */
  preft_engine *engine;             /* NULL when an encoder is served */
  const struct preft_bert *encoder; /* BERT served for embeddings only; NULL: a decoder */
  const preft_tokenizer *tok;
  char *model_name, *api_key;
  size_t max_body;
  size_t max_prompt_bytes; /* a text prompt longer than this cannot fit the context; 0: no bound */
  char *adapter_root;      /* realpath of the runtime adapter root; NULL: runtime adapters off */
  int max_context, vocab, port;
  int eos_ids[3 * PREFT_MAX_EOS];
  int n_eos;
  preft_sampling defaults;
  char **cors; /* --cors-origin values ("*": any) */
  int n_cors;
  long created;    /* unix time the server started (the models' "created") */
  srv_guard guard; /* header/body deadlines and the connection budget */
  atomic_bool draining;
  atomic_ulong next_id;
  /* requests in flight (connections with a request) and generations alive */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n_conns, n_gens;
  srv_gen *gens; /* list of live generations, for cancellation on drain */
  /* the vocabulary's byte trie for constrained decoding, built on first use (trie_mu) */
  pthread_mutex_t trie_mu;
  struct preft_token_trie *trie;
  /* grammar automata by grammar text and stop ids, shared by every request
   * that constrains with the same grammar (constrain.c; trie_mu) */
  struct srv_grammar_entry *grammars;
  int n_grammars;
  unsigned long grammar_clock;
  /* counters for /metrics */
  _Atomic long status_count[SRV_N_STATUS];
  _Atomic long cb_nanos;       /* engine-thread time in preft_srv_job_engine_cb */
  _Atomic long http_cpu_nanos; /* connection-thread CPU time of finished requests */
  _Atomic long http_requests;
};

/* One HTTP request being served (libmicrohttpd's per-request pointer). */
typedef struct srv_conn {
  srv_buf body;
  bool too_big;
  int fd;      /* the client's socket, watched for hang-ups while waiting */
  bool http11; /* the request is HTTP/1.1 (may be sent a 1xx interim response) */
  double cpu0;
  int status;     /* of the reply, for the metrics */
  bool preflight; /* an OPTIONS request (CORS preflight) */
} srv_conn;

typedef struct srv_reply {
  int status;
  const char *content_type; /* NULL: application/json */
  srv_buf body;
  srv_gen *stream; /* non-NULL: stream this generation as server-sent events */
} srv_reply;

/* Counts a response's status for /metrics. */
void preft_srv_count_status(preft_server *s, int status);

/* Fills the reply with an OpenAI error body. */
void preft_srv_reply_error(srv_reply *r, const srv_api_error *e);
/* r becomes a text/plain reply of TEXT with STATUS. */
void preft_srv_reply_text(srv_reply *r, int status, const char *text);

/* Routes (openai_routes.c). body is NUL-terminated. */
void preft_srv_route_generate(preft_server *s, srv_conn *c, srv_kind kind, srv_reply *r);
/* one: NULL = the list, from after the model named `after` (NULL: from the
 * start), at most `limit` (NULL: all) */
void preft_srv_route_models(preft_server *s, const char *one, const char *after, const char *limit,
                            srv_reply *r);
void preft_srv_route_load_adapter(preft_server *s, srv_conn *c, srv_reply *r);
void preft_srv_route_unload_adapter(preft_server *s, srv_conn *c, srv_reply *r);
/* Runtime adapters (adapter_paths.c): a 404 unless they are allowed; the
 * realpath of a lora_path inside the adapter root (heap), else a 400 naming
 * only what the client sent; a load failure as a 400 whose message has the
 * root's own path cut out (the full detail goes to the log). */
int preft_srv_runtime_adapters_allowed(const preft_server *s, srv_api_error *e);
int preft_srv_adapter_path(const preft_server *s, const char *lora_path, char **out, srv_api_error *e);
int preft_srv_adapter_load_error(const preft_server *s, const char *lora_path, const char *detail,
                                 srv_api_error *e);
/* constrain.c: builds the tool grammar of tool_choice "required" / named
 * and the vocabulary trie when q has a grammar (400 / 500 in e); then one
 * matcher per choice (NULL when q has no grammar). */
int preft_srv_prepare_constraint(preft_server *s, srv_gen_request *q, srv_api_error *e);
struct preft_gmatch *preft_srv_constraint_new(preft_server *s, const srv_gen_request *q, const int *stop_ids,
                                              int n_stop);
/* Drops the server's grammar automata (matchers still running keep theirs). */
void preft_srv_grammar_cache_free(preft_server *s);
/* metrics.c */
void preft_srv_route_metrics(preft_server *s, srv_reply *r);
/* tokenize_routes.c: vLLM's /tokenize, /detokenize; /version */
void preft_srv_route_tokenize(preft_server *s, srv_conn *c, srv_reply *r);
void preft_srv_route_detokenize(preft_server *s, srv_conn *c, srv_reply *r);
void preft_srv_route_version(preft_server *s, srv_reply *r);
/* embeddings.c: /v1/embeddings */
void preft_srv_route_embeddings(preft_server *s, srv_conn *c, srv_reply *r);
/* prompt_scoring.c: the log-probabilities of a prompt's own tokens (echo,
 * prompt_logprobs). Position t >= 1: lp[t] = log p(ids[t] | ids[<t]), its
 * 1-based rank, and the k best alternatives (n_top[t] of them) in
 * top_ids / top_lp [n][k]; position 0 has none. */
typedef struct srv_prompt_lp {
  int n, k;
  float *lp;
  int *rank, *n_top;
  int *top_ids;
  float *top_lp;
} srv_prompt_lp;
int preft_srv_prompt_logprobs(preft_server *s, const char *adapter, int adapter_mode, const int *ids, int n,
                              int k, srv_prompt_lp *out, srv_api_error *e);
void preft_srv_prompt_lp_free(srv_prompt_lp *p);
/* chat_page.c: GET / (the chat page embedded in the binary) */
void preft_srv_route_page(preft_server *s, srv_reply *r);
/* cors.c: the CORS headers of a response to an allowed Origin; OPTIONS */
struct MHD_Connection;
struct MHD_Response;
void preft_srv_cors_headers(const preft_server *s, struct MHD_Connection *conn, const srv_conn *c,
                            struct MHD_Response *resp);
void preft_srv_route_preflight(preft_server *s, struct MHD_Connection *conn, srv_conn *c, srv_reply *r);

/* Streaming: copies up to max bytes of the next SSE data into buf, blocking
 * until there is some. Returns the byte count, 0 at the end of the stream,
 * or -1 when the client went away (the generation is then cancelled). */
ssize_t preft_srv_gen_read(srv_gen *g, char *buf, size_t max);
/* Cancels what is unfinished, waits for the engine to let go, frees. */
void preft_srv_gen_free(srv_gen *g);
/* Cancels the engine requests of every live generation (drain timeout);
 * returns how many generations there were. */
int preft_srv_cancel_all(preft_server *s);

#endif
