/* adapter_registry.h - the engine's named adapters: registered by name
 * (100,000 are fine: a hash table finds a name and an LRU list of the
 * loaded ones finds what to evict, neither scans the registrations),
 * loaded on demand under two hard caps, `max_loaded` adapters and
 * `max_bytes` of weights; loads under way count, by an upper bound of
 * their size. The least recently used idle adapters are evicted to make
 * room. The engine also bounds the bytes by `room_bytes`, the part of its
 * KV cache that no sequence is using: adapters' memory comes out of the KV
 * cache's budget (engine_adapters.c lends them KV blocks).
 *
 * Not thread-safe by itself: the engine calls it under its lock. A load
 * first reserves room (preft_registry_reserve, which marks the entry
 * loading), reads the files with no lock held (the slow part), then calls
 * preft_registry_install on success or preft_registry_load_failed, and
 * preft_registry_load_done either way.
 *
 * An adapter is idle when no running request uses it (`active` == 0);
 * requests still waiting in the queue hold the entry (`refs`) but not its
 * weights, so an idle adapter is evicted even while requests for it wait
 * (they load it again when their turn comes). When evicting every idle
 * adapter would not make room, nothing more is loaded until some become
 * idle.
 *
 * A failed load marks the adapter unavailable with its error; it is tried
 * again on a request after a backoff (1 s after the first failure, doubling
 * up to 60 s), so fixing the files is enough to bring it back.
 */
#ifndef PREFT_ENGINE_ADAPTER_REGISTRY_H
#define PREFT_ENGINE_ADAPTER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/adapter.h"

typedef struct preft_registered_adapter {
  char *name, *path;
  uint64_t seq;        /* registration order (listing, pagination) */
  uint64_t generation; /* unique per registration and per content: part of prefix-cache keys */
  uint64_t checksum;   /* of the files at the last successful load; 0: never loaded */
  preft_adapter *loaded;
  int refs;           /* requests holding the entry (waiting or running) */
  int active;         /* running requests: their steps read the weights */
  uint64_t last_used; /* LRU stamp */
  bool loading;       /* a load is reserved, queued or under way */
  bool reserved;      /* the load holds room under the caps */
  bool removed;       /* unregistered; freed when refs drops to 0 */
  bool in_memory;     /* no files: cannot be reloaded once evicted */
  bool persist;       /* kept in the registry file (loaded at run time) */
  char *error;        /* last load error, NULL if none (or the last load succeeded) */
  int failures;       /* loads failed in a row */
  double retry_at;    /* preft_now() before which a failed adapter is not loaded again */
  size_t bytes;       /* loaded: its weights' memory; reserved: the reservation's bound */
  size_t bound;       /* the engine's cached bound of a load's memory (0: not known; reset by each load) */
  struct preft_registered_adapter *lru_prev, *lru_next; /* the loaded list, while loaded */
} preft_registered_adapter;

typedef struct preft_registry {
  preft_registered_adapter **items; /* registration order (seq ascending), removed ones included */
  int n, cap;
  preft_registered_adapter **table;              /* open addressing by name: entries not removed */
  int table_cap, n_live;                         /* table_cap: a power of two, at least twice n_live */
  preft_registered_adapter *lru_head, *lru_tail; /* loaded adapters, least recently used first */
  int max_loaded, n_loaded, n_loading;           /* n_loading: reserved loads */
  size_t max_bytes;                              /* 0: no byte cap */
  size_t room_bytes; /* the most adapters may hold right now (the engine's KV blocks no sequence uses,
                      * set before each reserve or install); SIZE_MAX: no such bound */
  size_t loaded_bytes, reserved_bytes;
  uint64_t clock, next_generation, next_seq;
  long loads, load_failures, evictions; /* since start, for /metrics */
} preft_registry;

#define PREFT_REGISTRY_RETRY_MAX_S 60.0

/* max_bytes 0: no byte cap. */
void preft_registry_init(preft_registry *r, int max_loaded, size_t max_bytes);
void preft_registry_free(preft_registry *r);

/* NULL when absent or removed. */
preft_registered_adapter *preft_registry_find(preft_registry *r, const char *name);
/* Fails if the name is taken or the directory holds no adapter config. */
int preft_registry_add(preft_registry *r, const char *name, const char *path, preft_registered_adapter **out,
                       preft_error *err);
/* Registers a name for an adapter that exists only in memory (no path). */
int preft_registry_add_memory(preft_registry *r, const char *name, preft_registered_adapter **out,
                              preft_error *err);
/* The index in r->items to list from: 0 when after is NULL, else the one
 * after the entry named `after`; -1 when `after` is not registered. */
int preft_registry_after(preft_registry *r, const char *after);
/* Marks removed; frees now if unreferenced. Fails if unknown. */
int preft_registry_remove(preft_registry *r, const char *name, preft_error *err);
/* The same for an entry (removed already: nothing more happens). a may be
 * gone after the call. */
void preft_registry_remove_entry(preft_registry *r, preft_registered_adapter *a);
/* Drops a request's reference (frees a removed entry at zero). */
void preft_registry_unref(preft_registry *r, preft_registered_adapter *a);

typedef enum { PREFT_RESERVE_OK, PREFT_RESERVE_NO_ROOM, PREFT_RESERVE_TOO_BIG } preft_reserve_result;
/* Makes room for a's load of at most `bytes` and marks a loading: evicts
 * idle adapters, least recently used first, until one more adapter and
 * `bytes` more fit under both caps. NO_ROOM, changing nothing, when
 * evicting every idle adapter would not be enough (or a is already loaded
 * or loading); TOO_BIG, changing nothing, when `bytes` alone is over
 * max_bytes. */
preft_reserve_result preft_registry_reserve(preft_registry *r, preft_registered_adapter *a, size_t bytes);
/* The same for a prefetch: evicts only adapters no request wants (neither
 * running nor waiting), so loading ahead never pushes out what a request
 * earlier in the queue needs. */
preft_reserve_result preft_registry_reserve_spare(preft_registry *r, preft_registered_adapter *a,
                                                  size_t bytes);
/* Installs a's weights (a reserved or loading); its reservation gives way
 * to the weights' real size (loaded->bytes), and should that be more than
 * was reserved, idle adapters are evicted to get back under the caps. When
 * the files' checksum differs from the previous load's (they were replaced
 * while the adapter was evicted), a gets a new generation, so no
 * prefix-cache block computed with the old weights is reused. */
void preft_registry_install(preft_registry *r, preft_registered_adapter *a, preft_adapter *loaded);
/* Records a failed load: a is unavailable with this error until a load
 * succeeds; the next try is allowed from now + the backoff. */
void preft_registry_load_failed(preft_registry *r, preft_registered_adapter *a, const char *error,
                                double now);
/* The loader is done with a (loaded or failed): clears a->loading, gives
 * back its reservation, and frees a when it was removed meanwhile and no
 * request holds it. a may be gone after the call. */
void preft_registry_load_done(preft_registry *r, preft_registered_adapter *a);
/* A failed adapter that must not be tried again yet (or cannot be: an
 * evicted in-memory adapter). */
bool preft_registry_unavailable(const preft_registered_adapter *a, double now);

/* Evicts the least recently used idle adapter other than keep (the
 * engine's KV cache needs its memory); false when there is none. */
bool preft_registry_evict_idle(preft_registry *r, const preft_registered_adapter *keep);

/* A request starts or stops running with a's weights. */
void preft_registry_activate(preft_registry *r, preft_registered_adapter *a);
void preft_registry_deactivate(preft_registry *r, preft_registered_adapter *a);

#endif
