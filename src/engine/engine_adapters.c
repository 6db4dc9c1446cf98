/* engine_adapters.c - the serving engine's adapters: the registry's API
 * (adapters by name, from files, directories and a registry file, loaded,
 * listed, checked, removed), the loader thread, and the one memory budget
 * that adapters share with the KV cache (see engine.h for the contract,
 * engine_internal.h for the state and its lock). */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "base/timer.h"
#include "engine/adapter_store.h"
#include "engine/engine_internal.h"

/* ---- one memory budget for the KV cache and adapters ------------------------------------
 * Adapters' weights are accounted in KV blocks: the loaded adapters and the
 * loads under way are lent ceil(bytes / block bytes) blocks, which leave the
 * free list (their pages go back to the system, kv_cache.h), so keys,
 * values and adapters together stay within --kv-cache-mb. Adapters may take
 * only blocks no sequence uses (room_bytes), and a sequence that needs a
 * block evicts idle adapters before anyone is preempted. */

/* Sets the registry's room: the KV blocks no sequence references. */
void measure_adapter_room(preft_engine *e) {
  e->reg.room_bytes = (size_t)(e->kv.n_blocks - e->kv.n_used) * e->kv_block_bytes;
}

/* Lends (or takes back) KV blocks to match the adapters' bytes. */
void lend_adapter_blocks(preft_engine *e) {
  size_t bytes = e->reg.loaded_bytes + e->reg.reserved_bytes;
  int want = (int)((bytes + e->kv_block_bytes - 1) / e->kv_block_bytes);
  if (want < e->kv.n_pinned) preft_kv_unpin(&e->kv, e->kv.n_pinned - want);
  /* the room measured before makes this fit; one at a time if not (an adapter bigger than its bound) */
  if (want > e->kv.n_pinned && preft_kv_pin(&e->kv, want - e->kv.n_pinned) != 0)
    while (e->kv.n_pinned < want && preft_kv_pin(&e->kv, 1) == 0) {
    }
}

/* Evicts the least recently used idle adapter (other than keep) to give a
 * sequence its KV blocks; false when there is none. */
bool evict_adapter_for_kv(preft_engine *e, const preft_registered_adapter *keep) {
  if (e->kv.n_pinned == 0 || !preft_registry_evict_idle(&e->reg, keep)) return false;
  lend_adapter_blocks(e);
  return true;
}

void install_adapter(preft_engine *e, preft_registered_adapter *a, preft_adapter *loaded) {
  measure_adapter_room(e);
  preft_registry_install(&e->reg, a, loaded);
  lend_adapter_blocks(e);
}

/* Reserves room for loading a's files, by the bound of their memory (for a
 * prefetch, evicting nothing a request wants); one that could never fit is
 * marked failed (unavailable) with why. */
preft_reserve_result reserve_for_load(preft_engine *e, preft_registered_adapter *a, bool prefetch) {
  /* the files' sizes are read once per load, not at every step a request
   * waits for room */
  if (!a->bound) a->bound = preft_adapter_memory_bound(a->path);
  size_t bound = a->bound;
  measure_adapter_room(e);
  preft_reserve_result rr =
      prefetch ? preft_registry_reserve_spare(&e->reg, a, bound) : preft_registry_reserve(&e->reg, a, bound);
  lend_adapter_blocks(e);
  if (rr == PREFT_RESERVE_TOO_BIG) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "adapter %s may take up to %.1f MiB (twice its files), more than the adapter cache holds (%.1f "
             "MiB: --adapter-cache-mb, at most the KV cache less one full context)",
             a->name, (double)bound / (1 << 20), (double)e->reg.max_bytes / (1 << 20));
    preft_registry_load_failed(&e->reg, a, msg, preft_now());
    PREFT_WARN("%s", msg);
  }
  return rr;
}

/* Hands a reserved adapter to the loader thread. */
void queue_load(preft_engine *e, preft_registered_adapter *a) {
  if (e->n_load_queue == e->cap_load_queue) {
    e->cap_load_queue = e->cap_load_queue ? e->cap_load_queue * 2 : 16;
    e->load_queue = preft_xrealloc(e->load_queue, sizeof *e->load_queue * (size_t)e->cap_load_queue);
  }
  e->load_queue[e->n_load_queue++] = a;
  pthread_cond_signal(&e->loader_wake);
}

void *loader_main(void *arg) {
  preft_engine *e = arg;
  pthread_mutex_lock(&e->mu);
  for (;;) {
    while (!e->stop && e->n_load_queue == 0) pthread_cond_wait(&e->loader_wake, &e->mu);
    if (e->stop) break;
    preft_registered_adapter *a = e->load_queue[0];
    memmove(e->load_queue, e->load_queue + 1, sizeof *e->load_queue * (size_t)--e->n_load_queue);
    char *path = preft_xstrdup(a->path), *name = preft_xstrdup(a->name);
    preft_adapter *loaded = NULL;
    preft_error err;
    int rc = timed_load(e, &loaded, path, name, &err);
    if (rc == 0) {
      install_adapter(e, a, loaded);
      PREFT_INFO("adapter %s loaded from %s", name, path);
    } else {
      preft_registry_load_failed(&e->reg, a, err.msg, preft_now());
      PREFT_WARN("%s (unavailable until a load succeeds)", err.msg);
    }
    preft_registry_load_done(&e->reg, a);
    free(path);
    free(name);
    pthread_cond_signal(&e->wake);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

/* ---- the registry's API ------------------------------------------------------------ */

/* Rewrites the registry file with the adapters to keep (when there is one);
 * a failure is logged and returned. Called with no lock held. */
static int save_store(preft_engine *e, preft_error *err) {
  pthread_mutex_lock(&e->store_mu);
  pthread_mutex_lock(&e->mu);
  char *path = e->store_path ? preft_xstrdup(e->store_path) : NULL;
  preft_store_entry *list = NULL;
  int n = 0;
  for (int i = 0; path && i < e->reg.n; i++) {
    const preft_registered_adapter *a = e->reg.items[i];
    if (a->removed || !a->persist) continue;
    list = preft_xrealloc(list, sizeof *list * (size_t)(n + 1));
    list[n++] = (preft_store_entry){.name = preft_xstrdup(a->name), .path = preft_xstrdup(a->path)};
  }
  pthread_mutex_unlock(&e->mu);
  int rc = path ? preft_store_write(path, list, n, err) : 0;
  if (rc != 0) PREFT_WARN("adapter registry file: %s", err->msg);
  preft_store_free(list, n);
  free(path);
  pthread_mutex_unlock(&e->store_mu);
  return rc;
}

int preft_engine_set_adapter_dir(preft_engine *e, const char *dir, preft_error *err) {
  char real[PATH_MAX];
  if (!realpath(dir, real)) return preft_fail(err, "%s: cannot resolve the adapters directory", dir);
  pthread_mutex_lock(&e->mu);
  free(e->resolve_dir);
  e->resolve_dir = preft_xstrdup(real);
  pthread_mutex_unlock(&e->mu);
  return 0;
}

bool preft_engine_resolve_adapter(preft_engine *e, const char *name) {
  pthread_mutex_lock(&e->mu);
  bool found = preft_registry_find(&e->reg, name) != NULL;
  char *dir = !found && e->resolve_dir ? preft_xstrdup(e->resolve_dir) : NULL;
  pthread_mutex_unlock(&e->mu);
  if (found || !dir) return found;
  char *path = preft_store_resolve(dir, name); /* the file system, with no lock held */
  free(dir);
  if (!path) return false;
  pthread_mutex_lock(&e->mu);
  preft_error err;
  found = preft_registry_find(&e->reg, name) || preft_registry_add(&e->reg, name, path, NULL, &err) == 0;
  pthread_mutex_unlock(&e->mu);
  if (found) PREFT_INFO("adapter %s found in the adapters directory: %s", name, path);
  free(path);
  return found;
}

int preft_engine_use_registry_file(preft_engine *e, const char *path, preft_error *err) {
  preft_store_entry *list;
  int n;
  if (preft_store_read(path, &list, &n, err) != 0) return -1;
  int added = 0;
  pthread_mutex_lock(&e->mu);
  free(e->store_path);
  e->store_path = preft_xstrdup(path);
  for (int i = 0; i < n; i++) {
    preft_registered_adapter *a;
    preft_error why;
    if (preft_registry_add(&e->reg, list[i].name, list[i].path, &a, &why) != 0) {
      PREFT_WARN("%s: adapter '%s' is dropped: %s", path, list[i].name, why.msg);
      continue;
    }
    a->persist = true;
    added++;
  }
  pthread_mutex_unlock(&e->mu);
  preft_store_free(list, n);
  /* writes what was kept, and finds out now whether the file can be written */
  return save_store(e, err) == 0 ? added : -1;
}

int preft_engine_add_adapter(preft_engine *e, const char *name, const char *path, preft_error *err) {
  pthread_mutex_lock(&e->mu);
  int rc = preft_registry_add(&e->reg, name, path, NULL, err);
  pthread_mutex_unlock(&e->mu);
  return rc;
}

int preft_engine_add_adapter_dir(preft_engine *e, const char *dir, preft_error *err) {
  char **names;
  int n = preft_list_subdirs(dir, &names, err);
  if (n < 0) return -1;
  int added = 0, rc = 0;
  for (int i = 0; i < n; i++) {
    char *path = preft_path_join(dir, names[i]);
    char *lora = preft_path_join(path, "adapter_config.json"),
         *reft = preft_path_join(path, "reft_config.json");
    if ((preft_file_exists(lora) || preft_file_exists(reft)) && rc == 0) {
      if (preft_engine_add_adapter(e, names[i], path, err) == 0)
        added++;
      else
        rc = -1;
    }
    free(lora);
    free(reft);
    free(path);
    free(names[i]);
  }
  free(names);
  return rc == 0 ? added : -1;
}

int preft_engine_load_adapter(preft_engine *e, const char *name, const char *path, preft_error *err) {
  pthread_mutex_lock(&e->mu);
  preft_registered_adapter *a;
  if (preft_registry_add(&e->reg, name, path, &a, err) != 0) {
    pthread_mutex_unlock(&e->mu);
    return -1;
  }
  /* marks it loading either way (keeps the loader thread and eviction
   * away); without room under the cap the files are still read, to check
   * them, but not kept */
  preft_reserve_result rr = reserve_for_load(e, a, false);
  if (rr == PREFT_RESERVE_TOO_BIG) {
    preft_fail(err, "%s", a->error);
    preft_registry_remove_entry(&e->reg, a);
    pthread_mutex_unlock(&e->mu);
    return -1;
  }
  bool room = rr == PREFT_RESERVE_OK;
  a->loading = true;
  preft_adapter *loaded = NULL;
  int rc = timed_load(e, &loaded, path, name, err);
  if (rc == 0) a->persist = true; /* kept across restarts when there is a registry file */
  if (rc != 0)
    preft_registry_remove_entry(&e->reg, a); /* the registration fails with its load (freed by load_done) */
  else if (room)
    install_adapter(e, a, loaded);
  else
    preft_adapter_free(loaded); /* loaded on first use, when there is room */
  preft_registry_load_done(&e->reg, a);
  pthread_cond_signal(&e->wake);
  pthread_mutex_unlock(&e->mu);
  preft_error store_err;
  if (rc == 0) save_store(e, &store_err); /* logged: the adapter is loaded either way */
  return rc;
}

int preft_engine_add_loaded_adapter(preft_engine *e, const char *name, preft_adapter *a, preft_error *err) {
  if (a->n_layers != e->model->cfg.n_layers || a->dim != e->model->cfg.dim) {
    preft_adapter_free(a);
    return preft_fail(err, "adapter %s was made for a different base model", name);
  }
  preft_engine_convert_adapter(e, a);
  pthread_mutex_lock(&e->mu);
  preft_registered_adapter *ra;
  int rc = preft_registry_add_memory(&e->reg, name, &ra, err);
  if (rc == 0) measure_adapter_room(e);
  if (rc == 0 && preft_registry_reserve(&e->reg, ra, a->bytes) != PREFT_RESERVE_OK) {
    rc = preft_fail(
        err, "adapter %s (%.1f MiB) does not fit: the loaded adapters in use fill the caps (%d, %.1f MiB)",
        name, (double)a->bytes / (1 << 20), e->reg.max_loaded, (double)e->reg.max_bytes / (1 << 20));
    preft_registry_remove_entry(&e->reg, ra); /* no request holds it yet: freed now */
  } else if (rc == 0) {
    install_adapter(e, ra, a);
    preft_registry_load_done(&e->reg, ra);
    a = NULL;
  }
  preft_adapter_free(a);
  pthread_mutex_unlock(&e->mu);
  return rc;
}

int preft_engine_remove_adapter(preft_engine *e, const char *name, preft_error *err) {
  pthread_mutex_lock(&e->mu);
  preft_registered_adapter *a = preft_registry_find(&e->reg, name);
  bool persisted = a && a->persist;
  int rc = preft_registry_remove(&e->reg, name, err);
  pthread_mutex_unlock(&e->mu);
  preft_error store_err;
  if (rc == 0 && persisted) save_store(e, &store_err);
  return rc;
}

static preft_adapter_info adapter_info(const preft_registered_adapter *a) {
  return (preft_adapter_info){.name = a->name,
                              .path = a->path,
                              .loaded = a->loaded != NULL,
                              .loading = a->loading,
                              .error = a->loaded ? NULL : a->error,
                              .bytes = a->loaded ? a->bytes : 0,
                              .checksum = a->checksum};
}

int preft_engine_list_adapters(preft_engine *e, const char *after, int limit,
                               void (*fn)(void *ctx, const preft_adapter_info *a), void *ctx, bool *more) {
  pthread_mutex_lock(&e->mu);
  int i = preft_registry_after(&e->reg, after), n = 0;
  if (more) *more = false;
  for (; i >= 0 && i < e->reg.n; i++) {
    preft_registered_adapter *a = e->reg.items[i];
    if (a->removed) continue;
    if (limit > 0 && n == limit) {
      if (more) *more = true;
      break;
    }
    preft_adapter_info info = adapter_info(a);
    fn(ctx, &info);
    n++;
  }
  pthread_mutex_unlock(&e->mu);
  return i < 0 ? -1 : n;
}

void preft_engine_each_adapter(preft_engine *e, void (*fn)(void *ctx, const preft_adapter_info *a),
                               void *ctx) {
  preft_engine_list_adapters(e, NULL, 0, fn, ctx, NULL);
}

bool preft_engine_adapter_info(preft_engine *e, const char *name,
                               void (*fn)(void *ctx, const preft_adapter_info *a), void *ctx) {
  pthread_mutex_lock(&e->mu);
  preft_registered_adapter *a = preft_registry_find(&e->reg, name);
  if (a) {
    preft_adapter_info info = adapter_info(a);
    fn(ctx, &info);
  }
  pthread_mutex_unlock(&e->mu);
  return a != NULL;
}

int preft_engine_check_adapters(preft_engine *e) {
  pthread_mutex_lock(&e->mu);
  int n = 0;
  preft_registered_adapter **todo = preft_xmalloc(sizeof *todo * (size_t)(e->reg.n + 1));
  for (int i = 0; i < e->reg.n; i++) {
    preft_registered_adapter *a = e->reg.items[i];
    if (a->removed || a->in_memory || a->loaded || a->loading) continue;
    a->loading = true; /* keeps it alive and away from the loader thread until checked */
    todo[n++] = a;
  }
  int n_bad = 0;
  for (int i = 0; i < n; i++) {
    preft_registered_adapter *a = todo[i];
    char *path = preft_xstrdup(a->path), *name = preft_xstrdup(a->name);
    if (!a->bound) a->bound = preft_adapter_memory_bound(path);
    size_t bound = a->bound;
    const preft_registry *r = &e->reg;
    bool fits = r->n_loaded + r->n_loading < r->max_loaded &&
                (!r->max_bytes || r->loaded_bytes + r->reserved_bytes + bound <= r->max_bytes);
    bool too_big = r->max_bytes && bound > r->max_bytes;
    a->loading = false;
    /* loaded while there is free room (nothing is evicted), else checked
     * without reading the weights; one that can never fit is marked so */
    preft_reserve_result rr = fits || too_big ? reserve_for_load(e, a, false) : PREFT_RESERVE_NO_ROOM;
    a->loading = true;
    preft_adapter *loaded = NULL;
    preft_error err;
    int rc = 0;
    if (rr == PREFT_RESERVE_OK) {
      rc = timed_load(e, &loaded, path, name, &err);
    } else if (rr == PREFT_RESERVE_NO_ROOM) {
      pthread_mutex_unlock(&e->mu);
      rc = preft_adapter_check(path, name, &e->model->cfg, &err);
      pthread_mutex_lock(&e->mu);
    }
    if (rr == PREFT_RESERVE_TOO_BIG) {
      n_bad++;
    } else if (rc != 0) {
      preft_registry_load_failed(&e->reg, a, err.msg, preft_now());
      PREFT_INFO("%s", err.msg);
      n_bad++;
    } else if (loaded) {
      install_adapter(e, a, loaded);
    }
    preft_registry_load_done(&e->reg, a);
    free(path);
    free(name);
  }
  free(todo);
  pthread_cond_signal(&e->wake);
  pthread_mutex_unlock(&e->mu);
  return n_bad;
}

bool preft_engine_has_adapter(preft_engine *e, const char *name) {
  pthread_mutex_lock(&e->mu);
  bool yes = preft_registry_find(&e->reg, name) != NULL;
  pthread_mutex_unlock(&e->mu);
  return yes;
}
