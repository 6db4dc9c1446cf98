/* adapter_registry.c - named adapters with LRU loading under hard caps on
 * their count and bytes (see adapter_registry.h). */
#include "engine/adapter_registry.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"

void preft_registry_init(preft_registry *r, int max_loaded, size_t max_bytes) {
  memset(r, 0, sizeof *r);
  r->max_loaded = max_loaded > 0 ? max_loaded : 1;
  r->max_bytes = max_bytes;
  r->room_bytes = SIZE_MAX;
  r->next_generation = 1;
  r->next_seq = 1;
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
  free(r->table);
  memset(r, 0, sizeof *r);
}

/* ---- the name table: linear probing, backward-shift deletion ------------------------- */

static uint64_t name_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h ^ (h >> 31);
}

/* The slot holding name, or the empty slot where it would go. */
static int table_slot(const preft_registry *r, const char *name) {
  int mask = r->table_cap - 1, i = (int)(name_hash(name) & (uint64_t)mask);
  while (r->table[i] && strcmp(r->table[i]->name, name) != 0) i = (i + 1) & mask;
  return i;
}

static void table_put(preft_registry *r, preft_registered_adapter *a) {
  if (2 * (r->n_live + 1) > r->table_cap) {
    preft_registered_adapter **old = r->table;
    int old_cap = r->table_cap;
    r->table_cap = old_cap ? old_cap * 2 : 64;
    r->table = preft_xcalloc((size_t)r->table_cap, sizeof *r->table);
    for (int i = 0; i < old_cap; i++)
      if (old[i]) r->table[table_slot(r, old[i]->name)] = old[i];
    free(old);
  }
  r->table[table_slot(r, a->name)] = a;
  r->n_live++;
}

static void table_del(preft_registry *r, const preft_registered_adapter *a) {
  int mask = r->table_cap - 1, i = table_slot(r, a->name);
  PREFT_ASSERT(r->table[i] == a);
  r->table[i] = NULL;
  r->n_live--;
  /* shift back every later entry of the run whose home slot is not in (i, j] */
  for (int j = (i + 1) & mask; r->table[j]; j = (j + 1) & mask) {
    int k = (int)(name_hash(r->table[j]->name) & (uint64_t)mask);
    bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    r->table[i] = r->table[j];
    r->table[j] = NULL;
    i = j;
  }
}

preft_registered_adapter *preft_registry_find(preft_registry *r, const char *name) {
  if (!r->table_cap) return NULL;
  return r->table[table_slot(r, name)]; /* removed entries are not in the table */
}

/* ---- registration order ---------------------------------------------------------------- */

/* The index of the entry with this seq in r->items (sorted by seq), or -1. */
static int index_of_seq(const preft_registry *r, uint64_t seq) {
  int lo = 0, hi = r->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    if (r->items[mid]->seq == seq) return mid;
    if (r->items[mid]->seq < seq)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

int preft_registry_after(preft_registry *r, const char *after) {
  if (!after) return 0;
  preft_registered_adapter *a = preft_registry_find(r, after);
  return a ? index_of_seq(r, a->seq) + 1 : -1;
}

static preft_registered_adapter *append(preft_registry *r, const char *name, const char *path) {
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->items = preft_xrealloc(r->items, sizeof *r->items * (size_t)r->cap);
  }
  preft_registered_adapter *a = preft_xcalloc(1, sizeof *a);
  a->name = preft_xstrdup(name);
  a->path = preft_xstrdup(path);
  a->seq = r->next_seq++;
  a->generation = r->next_generation++;
  r->items[r->n++] = a;
  table_put(r, a);
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

/* ---- the loaded list ------------------------------------------------------------------------ */

static void lru_unlink(preft_registry *r, preft_registered_adapter *a) {
  if (a->lru_prev)
    a->lru_prev->lru_next = a->lru_next;
  else
    r->lru_head = a->lru_next;
  if (a->lru_next)
    a->lru_next->lru_prev = a->lru_prev;
  else
    r->lru_tail = a->lru_prev;
  a->lru_prev = a->lru_next = NULL;
}

static void lru_push(preft_registry *r, preft_registered_adapter *a) {
  a->lru_prev = r->lru_tail;
  a->lru_next = NULL;
  if (r->lru_tail)
    r->lru_tail->lru_next = a;
  else
    r->lru_head = a;
  r->lru_tail = a;
}

static void touch(preft_registry *r, preft_registered_adapter *a) {
  a->last_used = ++r->clock;
  if (a->loaded) {
    lru_unlink(r, a);
    lru_push(r, a);
  }
}

static void unload(preft_registry *r, preft_registered_adapter *a) {
  lru_unlink(r, a);
  preft_adapter_free(a->loaded);
  a->loaded = NULL;
  r->n_loaded--;
  r->loaded_bytes -= a->bytes;
  a->bytes = 0;
}

static bool idle(const preft_registered_adapter *a) { return a->active == 0 && !a->loading; }

static void evict(preft_registry *r, preft_registered_adapter *a) {
  PREFT_INFO("adapter %s unloaded (least recently used idle adapter)", a->name);
  if (a->in_memory && !a->error) a->error = preft_xstrdup("in-memory adapter was evicted");
  unload(r, a);
  r->evictions++;
}

/* ---- removal ------------------------------------------------------------------------------ */

static void drop(preft_registry *r, preft_registered_adapter *a) {
  int i = index_of_seq(r, a->seq);
  PREFT_ASSERT(i >= 0 && r->items[i] == a);
  if (a->loaded) unload(r, a);
  if (!a->removed) table_del(r, a);
  memmove(r->items + i, r->items + i + 1, sizeof *r->items * (size_t)(r->n - i - 1));
  r->n--;
  free_entry(a);
}

void preft_registry_remove_entry(preft_registry *r, preft_registered_adapter *a) {
  if (!a->removed) table_del(r, a);
  a->removed = true;
  if (a->refs == 0 && !a->loading) drop(r, a);
}

int preft_registry_remove(preft_registry *r, const char *name, preft_error *err) {
  preft_registered_adapter *a = preft_registry_find(r, name);
  if (!a) return preft_fail(err, "no adapter named '%s' is registered", name);
  preft_registry_remove_entry(r, a);
  return 0;
}

void preft_registry_unref(preft_registry *r, preft_registered_adapter *a) {
  PREFT_ASSERT(a->refs > 0);
  a->refs--;
  if (a->removed && a->refs == 0 && !a->loading) drop(r, a);
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Evictable for a reservation: idle and, when spare_held, wanted by no
 * request at all (not even a waiting one). */
static bool evictable(const preft_registered_adapter *a, bool spare_held) {
  return idle(a) && !(spare_held && a->refs > 0);
}

/* The bytes adapters may hold now: under both the cap and the room. */
static size_t byte_limit(const preft_registry *r) {
  size_t cap = r->max_bytes ? r->max_bytes : SIZE_MAX;
  return cap < r->room_bytes ? cap : r->room_bytes;
}

static preft_reserve_result reserve(preft_registry *r, preft_registered_adapter *a, size_t bytes,
                                    bool spare_held) {
  if (a->loaded || a->loading) return PREFT_RESERVE_NO_ROOM;
  if (r->max_bytes && bytes > r->max_bytes) return PREFT_RESERVE_TOO_BIG;
  int need_n = r->n_loaded + r->n_loading + 1 - r->max_loaded;
  size_t used = r->loaded_bytes + r->reserved_bytes + bytes, limit = byte_limit(r);
  size_t need_b = used > limit ? used - limit : 0;
  /* would evicting idle adapters, least recently used first, be enough? */
  int can_n = 0;
  size_t can_b = 0;
  for (const preft_registered_adapter *c = r->lru_head; c && (can_n < need_n || can_b < need_b);
       c = c->lru_next)
    if (evictable(c, spare_held)) {
      can_n++;
      can_b += c->bytes;
    }
  if (can_n < need_n || can_b < need_b) return PREFT_RESERVE_NO_ROOM;
  for (preft_registered_adapter *c = r->lru_head, *next; c && (need_n > 0 || need_b > 0); c = next) {
    next = c->lru_next;
    if (!evictable(c, spare_held)) continue;
    need_n--;
    need_b = need_b > c->bytes ? need_b - c->bytes : 0;
    evict(r, c);
  }
  a->loading = a->reserved = true;
  a->bytes = bytes;
  r->n_loading++;
  r->reserved_bytes += bytes;
  return PREFT_RESERVE_OK;
}

preft_reserve_result preft_registry_reserve(preft_registry *r, preft_registered_adapter *a, size_t bytes) {
  return reserve(r, a, bytes, false);
}

preft_reserve_result preft_registry_reserve_spare(preft_registry *r, preft_registered_adapter *a,
                                                  size_t bytes) {
  return reserve(r, a, bytes, true);
}

static void release_reservation(preft_registry *r, preft_registered_adapter *a) {
  if (!a->reserved) return;
  a->reserved = false;
  r->n_loading--;
  r->reserved_bytes -= a->bytes;
  a->bytes = 0;
}

void preft_registry_install(preft_registry *r, preft_registered_adapter *a, preft_adapter *loaded) {
  PREFT_ASSERT(a->loading && !a->loaded);
  release_reservation(r, a);
  a->loaded = loaded;
  a->bytes = loaded->bytes;
  a->bound = 0; /* the files may differ at the next load */
  if (a->checksum && loaded->checksum != a->checksum) {
    PREFT_WARN("adapter %s: its files changed since it was last loaded; serving the new ones", a->name);
    a->generation = r->next_generation++;
  }
  a->checksum = loaded->checksum;
  r->n_loaded++;
  r->loaded_bytes += a->bytes;
  r->loads++;
  free(a->error);
  a->error = NULL;
  a->failures = 0;
  lru_push(r, a);
  touch(r, a);
  /* the real size over the bound reserved (not expected): back under the caps */
  for (preft_registered_adapter *c = r->lru_head, *next;
       c && (r->n_loaded > r->max_loaded || r->loaded_bytes + r->reserved_bytes > byte_limit(r)); c = next) {
    next = c->lru_next;
    if (c != a && idle(c)) evict(r, c);
  }
}

void preft_registry_load_failed(preft_registry *r, preft_registered_adapter *a, const char *error,
                                double now) {
  free(a->error);
  a->error = preft_xstrdup(error);
  a->bound = 0;
  a->failures++;
  double backoff = 1.0;
  for (int i = 1; i < a->failures && backoff < PREFT_REGISTRY_RETRY_MAX_S; i++) backoff *= 2;
  a->retry_at = now + (backoff < PREFT_REGISTRY_RETRY_MAX_S ? backoff : PREFT_REGISTRY_RETRY_MAX_S);
  r->load_failures++;
}

void preft_registry_load_done(preft_registry *r, preft_registered_adapter *a) {
  release_reservation(r, a);
  a->loading = false;
  if (a->removed && a->refs == 0) drop(r, a);
}

bool preft_registry_unavailable(const preft_registered_adapter *a, double now) {
  if (a->loaded || a->loading || !a->error) return false;
  return a->in_memory || now < a->retry_at;
}

bool preft_registry_evict_idle(preft_registry *r, const preft_registered_adapter *keep) {
  for (preft_registered_adapter *c = r->lru_head; c; c = c->lru_next)
    if (c != keep && idle(c)) {
      evict(r, c);
      return true;
    }
  return false;
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
