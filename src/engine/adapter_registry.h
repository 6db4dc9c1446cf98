/* adapter_registry.h - the engine's named adapters: registered by name
 * (thousands), loaded on demand, at most `max_loaded` in memory (a hard
 * cap: adapters being loaded count), the least recently used idle one
 * evicted to make room.
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
 * (they load it again when their turn comes). When every loaded adapter is
 * active, nothing more is loaded until one becomes idle.
 *
 * A failed load marks the adapter unavailable with its error; it is tried
 * again on a request after a backoff (1 s after the first failure, doubling
 * up to 60 s), so fixing the files is enough to bring it back.
 */
#ifndef PREFT_ENGINE_ADAPTER_REGISTRY_H
#define PREFT_ENGINE_ADAPTER_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "model/adapter.h"

typedef struct preft_registered_adapter {
  char *name, *path;
  uint64_t generation; /* unique per registration and per content: part of prefix-cache keys */
  uint64_t checksum;   /* of the files at the last successful load; 0: never loaded */
  preft_adapter *loaded;
  int refs;           /* requests holding the entry (waiting or running) */
  int active;         /* running requests: their steps read the weights */
  uint64_t last_used; /* LRU stamp */
  bool loading;       /* a load is reserved, queued or under way */
  bool reserved;      /* the load holds one of the max_loaded places */
  bool removed;       /* unregistered; freed when refs drops to 0 */
  bool in_memory;     /* no files: cannot be reloaded once evicted */
  char *error;        /* last load error, NULL if none (or the last load succeeded) */
  int failures;       /* loads failed in a row */
  double retry_at;    /* preft_now() before which a failed adapter is not loaded again */
} preft_registered_adapter;

typedef struct preft_registry {
  preft_registered_adapter **items;
  int n, cap;
  int max_loaded, n_loaded, n_loading; /* n_loading: reserved loads */
  uint64_t clock, next_generation;
  long loads, load_failures, evictions; /* since start, for /metrics */
} preft_registry;

#define PREFT_REGISTRY_RETRY_MAX_S 60.0

void preft_registry_init(preft_registry *r, int max_loaded);
void preft_registry_free(preft_registry *r);

/* NULL when absent or removed. */
preft_registered_adapter *preft_registry_find(preft_registry *r, const char *name);
/* Fails if the name is taken or the directory holds no adapter config. */
int preft_registry_add(preft_registry *r, const char *name, const char *path, preft_registered_adapter **out,
                       preft_error *err);
/* Registers a name for an adapter that exists only in memory (no path). */
int preft_registry_add_memory(preft_registry *r, const char *name, preft_registered_adapter **out,
                              preft_error *err);
/* Marks removed; frees now if unreferenced. Fails if unknown. */
int preft_registry_remove(preft_registry *r, const char *name, preft_error *err);
/* Drops a request's reference (frees a removed entry at zero). */
void preft_registry_unref(preft_registry *r, preft_registered_adapter *a);

/* Makes room for a's load and marks a loading: evicts idle loaded adapters,
 * least recently used first, until the loaded and reserved ones are fewer
 * than max_loaded. Returns false, changing nothing, when that is not
 * possible (every loaded adapter is active, or a is already loaded or
 * loading). */
bool preft_registry_reserve(preft_registry *r, preft_registered_adapter *a);
/* Installs a's weights (a reserved or loading). When the files' checksum
 * differs from the previous load's (they were replaced while the adapter
 * was evicted), a gets a new generation, so no prefix-cache block computed
 * with the old weights is reused. */
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

/* A request starts or stops running with a's weights. */
void preft_registry_activate(preft_registry *r, preft_registered_adapter *a);
void preft_registry_deactivate(preft_registry *r, preft_registered_adapter *a);

#endif
