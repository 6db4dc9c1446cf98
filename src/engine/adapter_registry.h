/* adapter_registry.h - the engine's named adapters: registered by name
 * (thousands), loaded on demand, at most `max_loaded` in memory, the least
 * recently used unreferenced one evicted first.
 *
 * Not thread-safe by itself: the engine calls it under its lock. A load
 * marks the entry loading, reads the files with no lock held (the slow
 * part), then calls preft_registry_install on success and
 * preft_registry_load_done either way.
 */
#ifndef PREFT_ENGINE_ADAPTER_REGISTRY_H
#define PREFT_ENGINE_ADAPTER_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "model/adapter.h"

typedef struct preft_registered_adapter {
  char *name, *path;
  uint64_t generation; /* unique per registration: part of prefix-cache keys */
  preft_adapter *loaded;
  int refs;           /* requests holding it (waiting or running) */
  uint64_t last_used; /* LRU stamp */
  bool loading;       /* queued for or in the loader */
  bool removed;       /* unregistered; freed when refs drops to 0 */
  bool in_memory;     /* no files: cannot be reloaded once evicted */
  char *error;        /* last load error, NULL if none */
} preft_registered_adapter;

typedef struct preft_registry {
  preft_registered_adapter **items;
  int n, cap;
  int max_loaded, n_loaded;
  uint64_t clock, next_generation;
} preft_registry;

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
/* Installs a loaded adapter, evicting unreferenced LRU ones beyond max. */
void preft_registry_install(preft_registry *r, preft_registered_adapter *a, preft_adapter *loaded);
void preft_registry_touch(preft_registry *r, preft_registered_adapter *a);
/* The loader is done with a (loaded or failed): clears a->loading and frees
 * a when it was removed meanwhile and no request holds it. a may be gone
 * after the call. */
void preft_registry_load_done(preft_registry *r, preft_registered_adapter *a);

#endif
