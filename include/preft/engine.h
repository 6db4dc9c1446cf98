/* preft/engine.h - the serving engine: continuous batching of many requests, each
 * with its own adapter and mode, over one base model and a paged KV cache.
 *
 * One engine thread runs steps. Each step the scheduler admits waiting
 * requests while KV blocks and the step's token budget allow, takes a chunk
 * of each unfinished prompt (chunked prefill) and one decode row of every
 * running sequence, runs them as one preft_batch (rows carry their adapter
 * and adapt flag; LoRA rows are grouped per adapter inside the forward),
 * samples, and reports tokens through each request's callback. When blocks
 * run out, the most recently admitted sequence is preempted: its blocks are
 * freed and it is recomputed later from its prompt plus the tokens it had
 * produced (nothing already reported is reported again).
 *
 * Prefix caching: full KV blocks of a prompt are kept after a request ends
 * and reused by a later request whose tokens before and in the block are the
 * same AND whose adapter and mode are the same (an adapter changes the
 * prompt's keys and values); every base-model request shares the base
 * entries. Cached blocks are evicted least recently used when memory is
 * needed.
 *
 * Adapters are registered by name (thousands are fine) and loaded on first
 * use, off the step loop, by a loader thread. At most max_loaded_adapters
 * are loaded or being loaded (a hard cap): to load one, the least recently
 * used adapter no running request uses is evicted. When every loaded
 * adapter is in use, a request for another one waits in the queue until one
 * is idle, and later requests with an adapter wait behind it (base-model
 * requests do not). An adapter whose files fail to load is unavailable:
 * requests for it fail at once with its error (PREFT_SUBMIT_ADAPTER_UNAVAILABLE,
 * or a final event with adapter_unavailable set) until a load succeeds; a
 * load is tried again on a request after a backoff (1 s, doubling to 60 s).
 *
 * Usage:
 *   static bool on_event(void *user, const preft_token_event *ev) {
 *     if (ev->token >= 0) ...;            // a new token of request ev->request
 *     if (ev->finish != PREFT_FINISH_NONE) ...;  // the last event of the request
 *     return true;                        // false: finish the request now
 *   }
 *   preft_engine *e;
 *   preft_engine_config c = {0};          // zeros: the defaults below
 *   if (preft_engine_create(&e, model, &c, &err)) ...   // takes the model
 *   preft_engine_add_adapter_dir(e, "adapters/", &err); // one adapter per subdirectory
 *   preft_request_params p = {.prompt = ids, .n_prompt = n, .adapter = "alice",
 *                             .adapter_mode = -1, .max_tokens = 64};
 *   uint64_t id;
 *   if (preft_engine_submit(e, &p, on_event, ctx, &id, &err) != PREFT_SUBMIT_OK) ...
 *   ...
 *   preft_engine_drain(e);   // wait for everything in flight
 *   preft_engine_free(e);    // also frees the model
 *
 * Thread safety: every preft_engine_* function may be called from any thread.
 * Callbacks run on the engine thread and must return quickly.
 *
 * Ownership: the engine owns the model (unless borrow_model), the adapters
 * it loads and those given to preft_engine_add_loaded_adapter; prompts, stop
 * ids and names are copied at submit / registration.
 */
#ifndef PREFT_PUBLIC_ENGINE_H
#define PREFT_PUBLIC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "preft/adapter.h"
#include "preft/base.h"
#include "preft/generate.h" /* preft_sampling */
#include "preft/model.h"

typedef struct preft_engine preft_engine;

typedef struct preft_engine_config {
  int threads;              /* compute threads; <= 0: all cores */
  size_t kv_cache_mb;       /* KV cache budget, loaded adapters included; 0: 1024 */
  int kv_blocks;            /* > 0: exactly this many blocks instead (tests) */
  int block_size;           /* positions per KV block; 0: 16 */
  int max_running;          /* sequences decoding at once; 0: 256 */
  int max_step_tokens;      /* token rows per step (prefill chunks + decode); 0: 512 */
  int max_queue;            /* waiting requests before submit fails with BUSY; 0: 1024 */
  int max_loaded_adapters;  /* 0: 64 */
  size_t adapter_cache_mb;  /* hard cap on the memory of loaded adapters (MiB), taken from the KV cache;
                             * 0: at most the KV cache less one full context */
  int max_context;          /* per sequence; 0: the model's max_position_embeddings */
  bool no_adapter_prefetch; /* load adapters only when their request is admitted, not ahead of it
                             * for queued requests (for measuring what loading ahead gains) */
  bool borrow_model;        /* the caller keeps ownership of the model */
  /* The prefix cache's disk tier (engine/prefix_disk.h): blocks evicted
   * from memory (and those cached at shutdown) are written to this
   * directory and restored from it; NULL: memory only. Bounded by
   * prefix_cache_disk_bytes (0: 10 GiB). */
  const char *prefix_cache_dir;
  uint64_t prefix_cache_disk_bytes;
  /* Speculative decoding of every unconstrained request (preft/generate.h);
   * zeros: off. Drafts take rows of the step's token budget. */
  preft_speculation speculation;
  /* LoRA weights held in memory as: NULL or "auto", as the files store them;
   * "float16" or "bfloat16" (also "f16", "bf16"): every LoRA's A and B
   * rounded to that type at load (vLLM's --lora-dtype), which halves the
   * bytes an FP32 adapter takes and that decode reads per step for it, and
   * gives the outputs of the adapter saved in that type. ReFT weights are
   * FP32 whatever this says. */
  const char *lora_dtype;
} preft_engine_config;

/* The engine takes ownership of the model (freed by preft_engine_free)
 * unless cfg->borrow_model. */
PREFT_API int preft_engine_create(preft_engine **out, preft_model *model, const preft_engine_config *cfg,
                                  preft_error *err);
/* Cancels everything in flight (callbacks get FINISH_CANCELLED), stops the
 * threads, frees all. */
PREFT_API void preft_engine_free(preft_engine *e);
/* Bounds what preft_engine_free does after the requests end: writing the
 * prefix cache's blocks to its disk tier (prefix_cache_dir) stops `seconds`
 * from now, and what is not written by then is dropped (counted in
 * prefix_disk_dropped). Without it, preft_engine_free writes them all. */
PREFT_API void preft_engine_set_shutdown_timeout(preft_engine *e, double seconds);
PREFT_API const preft_model *preft_engine_model(const preft_engine *e);

/* ---- adapters -------------------------------------------------------------- */

/* Registers an adapter directory under a name (not loaded yet; its config
 * file is checked to exist). Fails if the name is taken. */
PREFT_API int preft_engine_add_adapter(preft_engine *e, const char *name, const char *path, preft_error *err);
/* Registers every subdirectory of dir holding adapter_config.json or
 * reft_config.json, named by the subdirectory. Returns the count or -1. */
PREFT_API int preft_engine_add_adapter_dir(preft_engine *e, const char *dir, preft_error *err);
/* Unknown adapter names are then looked up as subdirectories of dir (the
 * `--adapters` directory) when first used, and registered when one holds
 * an adapter config: a name must be one plain path component whose real
 * path stays inside dir. */
PREFT_API int preft_engine_set_adapter_dir(preft_engine *e, const char *dir, preft_error *err);
/* True when name is registered, or was just found in the adapter dir and
 * registered (preft_engine_submit does the same). */
PREFT_API bool preft_engine_resolve_adapter(preft_engine *e, const char *name);
/* Registers the adapters listed in the registry file at path (a missing
 * file is an empty list; entries whose directory is gone are dropped with a
 * warning) and keeps the file up to date from now on: every adapter loaded
 * with preft_engine_load_adapter is added, every one of those removed is
 * taken out. Returns how many were registered, or -1 (a malformed file, or
 * one that cannot be written). */
PREFT_API int preft_engine_use_registry_file(preft_engine *e, const char *path, preft_error *err);
/* Loads an adapter now (the vLLM load_lora_adapter endpoint): registers
 * and loads it synchronously, so errors in the files are reported here. */
PREFT_API int preft_engine_load_adapter(preft_engine *e, const char *name, const char *path,
                                        preft_error *err);
/* Registers an adapter already in memory (benchmarks, embedding callers);
 * the engine takes ownership. It counts as loaded and may be evicted like
 * any other, after which requests for it fail (it has no files to reload). */
PREFT_API int preft_engine_add_loaded_adapter(preft_engine *e, const char *name, preft_adapter *a,
                                              preft_error *err);
/* Holds an adapter loaded outside the engine as the engine holds its own
 * (lora_dtype), so that it computes what the engine's copy computes. */
PREFT_API void preft_engine_convert_adapter(preft_engine *e, preft_adapter *a);
/* Unregisters; requests already accepted for it still run. */
PREFT_API int preft_engine_remove_adapter(preft_engine *e, const char *name, preft_error *err);
/* Calls fn for every registered adapter (under the engine lock: fn must not
 * call back into the engine). */
typedef struct preft_adapter_info {
  const char *name, *path;
  bool loaded;       /* its weights are in memory now */
  bool loading;      /* a load is queued or under way */
  const char *error; /* non-NULL: unavailable, its last load failed with this error */
  size_t bytes;      /* memory of the loaded weights; 0 when not loaded */
  uint64_t checksum; /* of the weight files as last loaded (0: never loaded from files) */
} preft_adapter_info;
PREFT_API void preft_engine_each_adapter(preft_engine *e, void (*fn)(void *ctx, const preft_adapter_info *a),
                                         void *ctx);
/* Calls fn for at most limit (<= 0: all) registered adapters, in
 * registration order, starting after the one named `after` (NULL: from the
 * first); *more (may be NULL) says whether more follow. Returns how many
 * were listed, or -1 when `after` is not registered. Under the engine
 * lock, like preft_engine_each_adapter. */
PREFT_API int preft_engine_list_adapters(preft_engine *e, const char *after, int limit,
                                         void (*fn)(void *ctx, const preft_adapter_info *a), void *ctx,
                                         bool *more);
/* Calls fn for the adapter named name (under the engine lock); false when
 * there is none. */
PREFT_API bool preft_engine_adapter_info(preft_engine *e, const char *name,
                                         void (*fn)(void *ctx, const preft_adapter_info *a), void *ctx);
/* Checks every registered adapter that is not loaded yet, on the calling
 * thread (a server calls it before it starts listening): loads them while
 * there is free room under the caps, and checks the rest without reading
 * their weights (configs, safetensors headers, shapes). An adapter whose files fail to load
 * is marked unavailable with its error (preft_engine_each_adapter shows it);
 * returns how many are. */
PREFT_API int preft_engine_check_adapters(preft_engine *e);
PREFT_API bool preft_engine_has_adapter(preft_engine *e, const char *name);

/* ---- requests -------------------------------------------------------------- */

typedef enum {
  PREFT_FINISH_NONE = 0, /* more tokens follow */
  PREFT_FINISH_STOP,     /* EOS / stop id, or the callback asked to stop */
  PREFT_FINISH_LENGTH,   /* max_tokens or the context limit */
  PREFT_FINISH_CANCELLED,
  PREFT_FINISH_ERROR, /* event.error says why (e.g. the adapter failed to load) */
} preft_finish_reason;

#define PREFT_MAX_TOP_LOGPROBS 20

typedef struct preft_token_event {
  uint64_t request;
  int token;     /* -1 on an event without a token (errors, cancellation) */
  float logprob; /* of the chosen token under the unmodified distribution */
  int n_top;     /* top alternatives, when asked for */
  int top_ids[PREFT_MAX_TOP_LOGPROBS];
  float top_logprobs[PREFT_MAX_TOP_LOGPROBS];
  preft_finish_reason finish;
  int prompt_tokens, completion_tokens;
  double queue_s, ttft_s;   /* time waiting, time to first token */
  const char *error;        /* for PREFT_FINISH_ERROR */
  bool adapter_unavailable; /* PREFT_FINISH_ERROR because the adapter's files failed to load */
} preft_token_event;

/* Return false to finish the request now (used for stop strings, which the
 * caller matches on decoded text): no further token is produced, and one
 * more, final event follows with finish reason STOP and token -1. */
typedef bool (*preft_request_cb)(void *user, const preft_token_event *ev);

/* Logits processors a request may add to the sampler (engine/penalties.h
 * has the formulas, vLLM's); all zeros: none. */
typedef struct preft_penalty_params {
  float presence, frequency; /* OpenAI's presence / frequency penalties over generated tokens; 0: off */
  float repetition;          /* Hugging Face's, over prompt and generated tokens; 0 or 1: off */
  const int *bias_ids;       /* logit_bias: added to these ids' logits (copied at submit) */
  const float *bias;
  int n_bias;
  int min_tokens; /* the stop ids (EOS included) are masked until this many tokens are generated */
} preft_penalty_params;

typedef struct preft_request_params {
  const int *prompt; /* copied */
  int n_prompt;
  const char *adapter; /* registered name, NULL for the base model */
  int adapter_mode;    /* -1: the adapter's default; else preft_adapter_mode */
  int max_tokens;
  preft_sampling sampling;
  const int *stop_ids; /* copied; generation ends after emitting one */
  int n_stop_ids;
  int logprobs;                   /* 0: none; else report this many top alternatives (<= 20) */
  preft_penalty_params penalties; /* logprobs stay those of the unpenalised logits */
  /* Constrained decoding (structured output, tool calls): a grammar matcher
   * made by the server (src/engine/grammar.h, internal for now), built with
   * the same stop ids; NULL: unconstrained. On PREFT_SUBMIT_OK the engine
   * owns it; on failure the caller still does. */
  struct preft_gmatch *constraint;
} preft_request_params;

enum {
  PREFT_SUBMIT_OK = 0,
  PREFT_SUBMIT_INVALID = -1,
  PREFT_SUBMIT_BUSY = -2,
  PREFT_SUBMIT_NO_ADAPTER = -3,
  PREFT_SUBMIT_ADAPTER_UNAVAILABLE = -4, /* its last load failed (err: why) and is not retried yet */
};

/* Queues a request; cb is called for every token and exactly once with a
 * finish reason other than NONE, after which the engine never calls it for
 * this request again. Returns PREFT_SUBMIT_OK and the request id, or a
 * negative PREFT_SUBMIT_* with err filled (prompt too long for the context,
 * unknown or unavailable adapter, full queue). */
PREFT_API int preft_engine_submit(preft_engine *e, const preft_request_params *p, preft_request_cb cb,
                                  void *user, uint64_t *id, preft_error *err);
/* Cancels a request (client went away); its final callback reports
 * PREFT_FINISH_CANCELLED unless it had already finished. Safe to call for a
 * finished or unknown id. */
PREFT_API void preft_engine_cancel(preft_engine *e, uint64_t id);

/* Stops accepting new requests (submit returns BUSY) and returns when
 * everything in flight has finished and every callback has returned. */
PREFT_API void preft_engine_drain(preft_engine *e);

/* ---- observability ----------------------------------------------------------- */

#define PREFT_HIST_BUCKETS 12
typedef struct preft_engine_stats {
  long requests_ok, requests_error, requests_cancelled;
  long prompt_tokens[2], generated_tokens[2]; /* [mode]: all-token, prefill-only (base counts as all) */
  int waiting, running, kv_blocks_used, kv_blocks_free, kv_blocks_cached, kv_blocks_adapters, adapters_loaded,
      adapters_registered;
  long steps, preemptions, prefix_hit_tokens;
  /* the prefix cache's disk tier (all 0 when off): prompt tokens restored
   * from disk (counted in prefix_hit_tokens too); block restores that hit,
   * lookups that missed (bad files included), bad files removed; entries
   * written, writes that failed (entry dropped), spills dropped with the
   * write queue full, files evicted for the bound; the files now */
  bool prefix_disk_enabled;
  long prefix_disk_hit_tokens, prefix_disk_hits, prefix_disk_misses, prefix_disk_corrupt;
  long prefix_disk_writes, prefix_disk_write_failures, prefix_disk_dropped, prefix_disk_evictions;
  int prefix_disk_entries;
  uint64_t prefix_disk_bytes, prefix_disk_bytes_limit, prefix_disk_bytes_read, prefix_disk_bytes_written;
  double prefix_disk_restore_seconds; /* spent restoring blocks (reads and checksums, on the engine thread) */
  double step_seconds_sum;
  /* histogram upper bounds (s): 0.001 .. 10. Counts are per bucket (not
   * cumulative): hist[i] counts values in (bound[i-1], bound[i]], the last
   * entry those above bound[PREFT_HIST_BUCKETS-1]. */
  double hist_bounds[PREFT_HIST_BUCKETS];
  long step_hist[PREFT_HIST_BUCKETS + 1], ttft_hist[PREFT_HIST_BUCKETS + 1];
  double ttft_seconds_sum;
  long ttft_count;
  /* adapters: loads (successful), failed loads, evictions since start; the
   * memory of loaded adapters, of loads under way (reserved, an upper
   * bound) and the cap (0: none); the time of each load attempt */
  long adapter_loads, adapter_load_failures, adapter_evictions;
  long adapter_prefetches; /* loads started for requests further back in the queue */
  size_t adapter_bytes, adapter_bytes_reserved, adapter_bytes_limit;
  long adapter_load_hist[PREFT_HIST_BUCKETS + 1];
  double adapter_load_seconds_sum;
  double adapter_load_cpu_seconds_sum; /* CPU time of the loading thread in those loads */
  long adapter_load_count;
  preft_spec_stats spec; /* speculative decoding (all 0 when off) */
} preft_engine_stats;

PREFT_API void preft_engine_get_stats(preft_engine *e, preft_engine_stats *out);

#endif
