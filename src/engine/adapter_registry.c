/* adapter_registry.c - named adapters with LRU loading under a hard cap
 * (see adapter_registry.h). */
#include "engine/adapter_registry.h"

#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"

void preft_registry_init(preft_registry *r, int max_loaded) {
  memset(r, 0, sizeof *r);
  r->max_loaded = max_loaded > 0 ? max_loaded : 1;
  r->next_generation = 1;
}

static void free_entry(preft_registered_adapter *a) {
  preft_adapter_free(a->loaded);
  free(a->name);
  free(a->path);
  free(a->error);
  free(a);
}

void preft_registry_free(preft_registry *r) {
  for (int i = 0; i < r->n; i++) free_entry(r->items[i]);
  free(r->items);
  memset(r, 0, sizeof *r);
}

preft_registered_adapter *preft_registry_find(preft_registry *r, const char *name) {
  for (int i = 0; i < r->n; i++)
    if (!r->items[i]->removed && !strcmp(r->items[i]->name, name)) return r->items[i];
  return NULL;
}

static preft_registered_adapter *append(preft_registry *r, const char *name, const char *path) {
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->items = preft_xrealloc(r->items, sizeof *r->items * (size_t)r->cap);
  }
  preft_registered_adapter *a = preft_xcalloc(1, sizeof *a);
  a->name = preft_xstrdup(name);
  a->path = preft_xstrdup(path);
  a->generation = r->next_generation++;
  r->items[r->n++] = a;
  return a;
}

int preft_registry_add(preft_registry *r, const char *name, const char *path, preft_registered_adapter **out,
                       preft_error *err) {
  if (!*name) return preft_fail(err, "adapter name is empty");
  if (preft_registry_find(r, name))
    return preft_fail(err, "an adapter named '%s' is already registered", name);
  char *lora = preft_path_join(path, "adapter_config.json"),
       *reft = preft_path_join(path, "reft_config.json");
  bool ok = preft_file_exists(lora) || preft_file_exists(reft);
  free(lora);
  free(reft);
  if (!ok) return preft_fail(err, "%s: no adapter_config.json (LoRA) or reft_config.json (ReFT)", path);
  preft_registered_adapter *a = append(r, name, path);
  if (out) *out = a;
  return 0;
}

int preft_registry_add_memory(preft_registry *r, const char *name, preft_registered_adapter **out,
                              preft_error *err) {
  if (!*name) return preft_fail(err, "adapter name is empty");
  if (preft_registry_find(r, name))
    return preft_fail(err, "an adapter named '%s' is already registered", name);
  preft_registered_adapter *a = append(r, name, "(memory)");
  a->in_memory = true;
  *out = a;
  return 0;
}

static void unload(preft_registry *r, preft_registered_adapter *a) {
  preft_adapter_free(a->loaded);
  a->loaded = NULL;
  r->n_loaded--;
}

static void drop(preft_registry *r, preft_registered_adapter *a) {
  for (int i = 0; i < r->n; i++) {
    if (r->items[i] != a) continue;
    if (a->loaded) r->n_loaded--;
    r->items[i] = r->items[--r->n];
    free_entry(a);
    return;
  }
}

int preft_registry_remove(preft_registry *r, const char *name, preft_error *err) {
  preft_registered_adapter *a = preft_registry_find(r, name);
  if (!a) return preft_fail(err, "no adapter named '%s' is registered", name);
  a->removed = true;
  if (a->refs == 0 && !a->loading) drop(r, a);
  return 0;
}

void preft_registry_unref(preft_registry *r, preft_registered_adapter *a) {
  PREFT_ASSERT(a->refs > 0);
  a->refs--;
  if (a->removed && a->refs == 0 && !a->loading) drop(r, a);
}

static void touch(preft_registry *r, preft_registered_adapter *a) { a->last_used = ++r->clock; }

/* The least recently used loaded adapter no running request uses (and no
 * loader holds), or NULL. */
static preft_registered_adapter *idle_victim(preft_registry *r) {
  preft_registered_adapter *victim = NULL;
  for (int i = 0; i < r->n; i++) {
    preft_registered_adapter *c = r->items[i];
    if (c->loaded && c->active == 0 && !c->loading && (!victim || c->last_used < victim->last_used))
      victim = c;
  }
  return victim;
}

bool preft_registry_reserve(preft_registry *r, preft_registered_adapter *a) {
  if (a->loaded || a->loading) return false;
  int busy = 0; /* places that cannot be freed: active or loading adapters, reservations */
  for (int i = 0; i < r->n; i++) {
    const preft_registered_adapter *c = r->items[i];
    busy += c->loaded && (c->active > 0 || (c->loading && !c->reserved));
  }
  if (busy + r->n_loading >= r->max_loaded) return false;
  while (r->n_loaded + r->n_loading >= r->max_loaded) {
    preft_registered_adapter *victim = idle_victim(r);
    PREFT_ASSERT(victim); /* guaranteed by the count above */
    PREFT_INFO("adapter %s unloaded (least recently used, %d loaded at most)", victim->name, r->max_loaded);
    if (victim->in_memory && !victim->error) victim->error = preft_xstrdup("in-memory adapter was evicted");
    unload(r, victim);
    r->evictions++;
  }
  a->loading = a->reserved = true;
  r->n_loading++;
  return true;
}

void preft_registry_install(preft_registry *r, preft_registered_adapter *a, preft_adapter *loaded) {
  PREFT_ASSERT(a->loading && !a->loaded);
  a->loaded = loaded;
  if (a->checksum && loaded->checksum != a->checksum) {
    PREFT_WARN("adapter %s: its files changed since it was last loaded; serving the new ones", a->name);
    a->generation = r->next_generation++;
  }
  a->checksum = loaded->checksum;
  r->n_loaded++;
  r->loads++;
  free(a->error);
  a->error = NULL;
  a->failures = 0;
  touch(r, a);
}

void preft_registry_load_failed(preft_registry *r, preft_registered_adapter *a, const char *error,
                                double now) {
  free(a->error);
  a->error = preft_xstrdup(error);
  a->failures++;
  double backoff = 1.0;
  for (int i = 1; i < a->failures && backoff < PREFT_REGISTRY_RETRY_MAX_S; i++) backoff *= 2;
  a->retry_at = now + (backoff < PREFT_REGISTRY_RETRY_MAX_S ? backoff : PREFT_REGISTRY_RETRY_MAX_S);
  r->load_failures++;
}

void preft_registry_load_done(preft_registry *r, preft_registered_adapter *a) {
  if (a->reserved) r->n_loading--;
  a->loading = a->reserved = false;
  if (a->removed && a->refs == 0) drop(r, a);
}

bool preft_registry_unavailable(const preft_registered_adapter *a, double now) {
  if (a->loaded || a->loading || !a->error) return false;
  return a->in_memory || now < a->retry_at;
}

void preft_registry_activate(preft_registry *r, preft_registered_adapter *a) {
  PREFT_ASSERT(a->loaded);
  a->active++;
  touch(r, a);
}

void preft_registry_deactivate(preft_registry *r, preft_registered_adapter *a) {
  PREFT_ASSERT(a->active > 0);
  a->active--;
  touch(r, a);
}
