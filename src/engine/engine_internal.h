/* engine_internal.h - the serving engine's state, shared by its two parts:
 * engine.c (the engine thread, the request lifecycle and the step loop) and
 * engine_adapters.c (the adapter registry's API, the loader thread and the
 * one memory budget of the KV cache and adapters). Nothing outside
 * src/engine/engine*.c includes it.
 *
 * Locking: one mutex (mu) guards every field below except the forward
 * pass's inputs, which the engine thread builds under the lock and then
 * uses with the lock released (adapters in the batch cannot be evicted
 * meanwhile: running requests hold references), and the sampling that
 * follows: still unlocked, every logits row is sampled over the thread pool
 * with its own sequence's sampler (only the engine thread's steps use a
 * sampler), and the lock is taken again to publish the tokens. Callbacks
 * are called with the lock released, from the engine thread only. */
#ifndef PREFT_ENGINE_ENGINE_INTERNAL_H
#define PREFT_ENGINE_ENGINE_INTERNAL_H

#include <pthread.h>

#include "base/threadpool.h"
#include "engine/adapter_registry.h"
#include "engine/engine.h"
#include "engine/prefix_cache.h"
#include "model/batch.h"

typedef struct seq_t seq_t; /* a request (engine.c) */

typedef struct pending_event {
  seq_t *s;
  preft_token_event ev;
  bool final; /* the request ends with this event */
} pending_event;

struct preft_engine {
  preft_model *model;
  preft_engine_config cfg;
  preft_speculation spec; /* with defaults; spec_k 0 when off */
  int spec_k;
  int lora_store;                /* the type LoRA weights are held as (cfg.lora_dtype), or -1: as stored */
  struct preft_drafter *drafter; /* NULL when off (speculative.h) */
  struct preft_draft_req *dreqs; /* [max_running]: this step's drafting */
  struct seq_t **dseqs;          /* [max_running]: their sequences */
  preft_pool *pool;
  preft_kv_cache kv;
  preft_prefix_cache prefix;
  preft_registry reg;
  size_t kv_block_bytes;    /* adapters' memory is lent KV blocks of this size (one budget) */
  char *resolve_dir;        /* realpath of the directory unknown adapter names are looked up in; NULL: none */
  char *store_path;         /* the registry file of adapters loaded at run time; NULL: none */
  pthread_mutex_t store_mu; /* orders the file's rewrites (taken before mu) */
  pthread_mutex_t mu;
  pthread_cond_t wake, loader_wake, idle;
  pthread_t thread, loader;
  bool stop, draining, have_threads;
  int delivering; /* callbacks being called with the lock released */
  seq_t *wait_head, *wait_tail;
  int n_waiting;
  seq_t **running; /* admission order */
  int n_running;
  int *free_slots, n_free_slots;
  uint64_t next_id;
  preft_registered_adapter **load_queue;
  int n_load_queue, cap_load_queue;
  preft_workspace ws;
  /* step buffers */
  preft_batch_buf batch;
  int cap_rows;
  seq_t **b_logit_seq; /* the sequences with logits rows this step */
  float *logits;
  int cap_logit_rows;
  preft_token_event *sampled;    /* [cap_logit_rows]: per logits row, filled by sample_row */
  preft_sample_scratch *scratch; /* [pool size]: sample_row's working memory */
  pending_event *events;
  int n_events, cap_events;
  preft_engine_stats stats;
};

/* ---- engine_adapters.c: the one memory budget, the loader thread ---------------- */

/* Sets the registry's room: the KV blocks no sequence references. */
void measure_adapter_room(preft_engine *e);
/* Lends (or takes back) KV blocks to match the adapters' bytes. */
void lend_adapter_blocks(preft_engine *e);
/* Evicts the least recently used idle adapter (other than keep) to give a
 * sequence its KV blocks; false when there is none. */
bool evict_adapter_for_kv(preft_engine *e, const preft_registered_adapter *keep);
/* Installs a loaded adapter and lends it its KV blocks. */
void install_adapter(preft_engine *e, preft_registered_adapter *a, preft_adapter *loaded);
/* Reserves room for loading a's files, by the bound of their memory (for a
 * prefetch, evicting nothing a request wants); one that could never fit is
 * marked failed (unavailable) with why. */
preft_reserve_result reserve_for_load(preft_engine *e, preft_registered_adapter *a, bool prefetch);
/* Hands a reserved adapter to the loader thread. */
void queue_load(preft_engine *e, preft_registered_adapter *a);
/* The loader thread: loads queued adapters with the lock released. */
void *loader_main(void *arg);

/* ---- engine.c -------------------------------------------------------------------- */

/* Loads an adapter's files (the engine's lock released) and counts the
 * load's time and outcome in the statistics (lock held again on return). */
int timed_load(preft_engine *e, preft_adapter **out, const char *path, const char *name, preft_error *err);

#endif
