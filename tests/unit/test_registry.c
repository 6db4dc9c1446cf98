/* test_registry.c - the adapter registry's lifetime rules: an entry removed
 * while its files load lives until the load is done, and then only while a
 * request holds it; a load that finishes on a live entry keeps it; the cap
 * on loaded adapters is hard (loads in flight count, the least recently
 * used idle adapter is evicted to make room, an adapter a running request
 * uses never is, and nothing loads while all are in use); a failed load
 * makes the adapter unavailable for a doubling backoff. Counted by the
 * registry's own entries (r.n), and run under ASan for the frees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/adapter_registry.h"
#include "engine/adapter_store.h"
#include "model/shapes.h"
#include "testutil.h"

static preft_registered_adapter *add(preft_registry *r, const char *name) {
  preft_registered_adapter *a = NULL;
  preft_error err;
  assert_int_equal(preft_registry_add_memory(r, name, &a, &err), 0);
  return a;
}

static preft_adapter *small_adapter(uint64_t seed) {
  preft_model_config cfg;
  preft_error err;
  assert_int_equal(preft_shape_config("tiny", &cfg, &err), 0);
  return preft_adapter_random(PREFT_ADAPTER_LORA, &cfg, 2, PREFT_MODE_ALL, PREFT_F32, seed);
}

/* reserve + install + load_done: what a successful load does */
static void load(preft_registry *r, preft_registered_adapter *a, uint64_t seed) {
  assert_int_equal(preft_registry_reserve(r, a, 1000), PREFT_RESERVE_OK);
  preft_registry_install(r, a, small_adapter(seed));
  preft_registry_load_done(r, a);
}

static void removed_while_loading_is_freed_when_the_load_is_done(void **s) {
  preft_registry r;
  preft_registry_init(&r, 4, 0);
  preft_registered_adapter *a = add(&r, "a");
  assert_int_equal(preft_registry_reserve(&r, a, 1000), PREFT_RESERVE_OK);
  preft_error err;
  assert_int_equal(preft_registry_remove(&r, "a", &err), 0);
  assert_null(preft_registry_find(&r, "a"));
  assert_int_equal(r.n, 1); /* the loader still uses it */
  preft_registry_install(&r, a, small_adapter(1));
  preft_registry_load_done(&r, a);
  assert_int_equal(r.n, 0);
  assert_int_equal(r.n_loaded, 0);
  preft_registry_free(&r);
}

static void removed_while_loading_and_held_lives_until_unref(void **s) {
  preft_registry r;
  preft_registry_init(&r, 4, 0);
  preft_registered_adapter *a = add(&r, "a");
  assert_int_equal(preft_registry_reserve(&r, a, 1000), PREFT_RESERVE_OK);
  a->refs = 1; /* a request waits for it */
  preft_error err;
  assert_int_equal(preft_registry_remove(&r, "a", &err), 0);
  preft_registry_load_done(&r, a);
  assert_int_equal(r.n, 1);
  assert_false(a->loading);
  preft_registry_unref(&r, a);
  assert_int_equal(r.n, 0);
  preft_registry_free(&r);
}

static void load_done_keeps_a_live_entry(void **s) {
  preft_registry r;
  preft_registry_init(&r, 4, 0);
  preft_registered_adapter *a = add(&r, "a");
  assert_int_equal(preft_registry_reserve(&r, a, 1000), PREFT_RESERVE_OK);
  preft_registry_install(&r, a, small_adapter(2));
  preft_registry_load_done(&r, a);
  assert_ptr_equal(preft_registry_find(&r, "a"), a);
  assert_false(a->loading);
  assert_non_null(a->loaded);
  preft_registry_free(&r);
}

static void reserve_evicts_the_least_recently_used_idle_adapter(void **s) {
  preft_registry r;
  preft_registry_init(&r, 2, 0);
  preft_registered_adapter *a = add(&r, "a"), *b = add(&r, "b"), *c = add(&r, "c");
  load(&r, a, 3);
  load(&r, b, 4);
  preft_registry_activate(&r, a); /* a used last: b is the least recently used */
  preft_registry_deactivate(&r, a);
  assert_int_equal(preft_registry_reserve(&r, c, 1000), PREFT_RESERVE_OK); /* room is made before the load */
  assert_int_equal(r.n_loaded + r.n_loading, 2);
  assert_null(b->loaded);
  assert_int_equal(r.evictions, 1);
  preft_registry_install(&r, c, small_adapter(5));
  preft_registry_load_done(&r, c);
  assert_int_equal(r.n_loaded, 2);
  assert_non_null(a->loaded);
  assert_non_null(c->loaded);
  a->refs = 1;                    /* held by a waiting request only: does not pin the weights */
  preft_registry_activate(&r, c); /* running: pinned, so a goes although c is older now */
  load(&r, b, 6);
  assert_null(a->loaded);
  assert_non_null(b->loaded);
  assert_non_null(c->loaded);
  a->refs = 0;
  preft_registry_deactivate(&r, c);
  preft_registry_free(&r);
}

static void nothing_loads_while_every_loaded_adapter_is_in_use(void **s) {
  preft_registry r;
  preft_registry_init(&r, 2, 0);
  preft_registered_adapter *a = add(&r, "a"), *b = add(&r, "b"), *c = add(&r, "c"), *d = add(&r, "d");
  load(&r, a, 1);
  preft_registry_activate(&r, a);
  assert_int_equal(preft_registry_reserve(&r, b, 1000), PREFT_RESERVE_OK); /* a free place: no eviction */
  assert_int_equal(r.evictions, 0);
  assert_int_equal(preft_registry_reserve(&r, c, 1000),
                   PREFT_RESERVE_NO_ROOM); /* a running, b's load reserved */
  preft_registry_install(&r, b, small_adapter(2));
  preft_registry_load_done(&r, b);
  preft_registry_activate(&r, b);
  assert_int_equal(preft_registry_reserve(&r, c, 1000), PREFT_RESERVE_NO_ROOM); /* both running */
  assert_false(c->loading);
  assert_int_equal(r.n_loaded, 2);
  preft_registry_deactivate(&r, b); /* idle again: c may take its place */
  assert_int_equal(preft_registry_reserve(&r, c, 1000), PREFT_RESERVE_OK);
  assert_null(b->loaded);
  assert_int_equal(preft_registry_reserve(&r, d, 1000), PREFT_RESERVE_NO_ROOM); /* a running, c loading */
  preft_registry_install(&r, c, small_adapter(3));
  preft_registry_load_done(&r, c);
  assert_true(r.n_loaded <= r.max_loaded);
  preft_registry_deactivate(&r, a);
  preft_registry_free(&r);
}

static void a_failed_load_is_unavailable_for_a_doubling_backoff(void **s) {
  preft_registry r;
  preft_registry_init(&r, 2, 0);
  preft_error err;
  preft_registered_adapter *a = NULL;
  char *path = test_data_path("adapters/lora-qv-r4");
  assert_int_equal(preft_registry_add(&r, "a", path, &a, &err), 0);
  assert_false(preft_registry_unavailable(a, 100.0)); /* never tried */
  assert_int_equal(preft_registry_reserve(&r, a, 1000), PREFT_RESERVE_OK);
  preft_registry_load_failed(&r, a, "bad file", 100.0);
  preft_registry_load_done(&r, a);
  assert_int_equal(r.n_loading, 0);
  assert_true(preft_registry_unavailable(a, 100.5));
  assert_false(preft_registry_unavailable(a, 101.0)); /* 1 s later: tried again */
  assert_int_equal(preft_registry_reserve(&r, a, 1000), PREFT_RESERVE_OK);
  preft_registry_load_failed(&r, a, "still bad", 101.0);
  preft_registry_load_done(&r, a);
  assert_true(preft_registry_unavailable(a, 102.5));
  assert_false(preft_registry_unavailable(a, 103.0)); /* then 2 s */
  assert_string_equal(a->error, "still bad");
  for (int i = 0; i < 20; i++) preft_registry_load_failed(&r, a, "bad", 200.0);
  assert_true(preft_registry_unavailable(a, 200.0 + PREFT_REGISTRY_RETRY_MAX_S - 0.5));
  assert_false(preft_registry_unavailable(a, 200.0 + PREFT_REGISTRY_RETRY_MAX_S)); /* at most 60 s */
  assert_int_equal(preft_registry_reserve(&r, a, 1000), PREFT_RESERVE_OK);
  preft_registry_install(&r, a, small_adapter(1)); /* a load that works clears the error */
  preft_registry_load_done(&r, a);
  assert_null(a->error);
  assert_int_equal(a->failures, 0);
  assert_int_equal(r.load_failures, 22);
  assert_int_equal(r.loads, 1);
  preft_registry_free(&r);
  free(path);
}

/* an in-memory adapter of `bytes` (its real size is what the cap counts) */
static preft_adapter *sized_adapter(size_t bytes) {
  preft_adapter *a = small_adapter(7);
  a->bytes = bytes;
  return a;
}

static void the_byte_cap_is_hard_and_counts_loads_under_way(void **s) {
  preft_registry r;
  preft_registry_init(&r, 100, 1000);
  preft_registered_adapter *a = add(&r, "a"), *b = add(&r, "b"), *c = add(&r, "c"), *d = add(&r, "d");
  assert_int_equal(preft_registry_reserve(&r, d, 1001), PREFT_RESERVE_TOO_BIG);
  assert_false(d->loading);
  assert_int_equal(preft_registry_reserve(&r, a, 400), PREFT_RESERVE_OK);
  preft_registry_install(&r, a, sized_adapter(300)); /* the real size replaces the bound */
  preft_registry_load_done(&r, a);
  assert_int_equal(r.loaded_bytes, 300);
  assert_int_equal(preft_registry_reserve(&r, b, 600), PREFT_RESERVE_OK);
  assert_int_equal(r.reserved_bytes, 600);
  /* 300 + 600 reserved + 200 > 1000: a is idle, so it goes */
  assert_int_equal(preft_registry_reserve(&r, c, 200), PREFT_RESERVE_OK);
  assert_null(a->loaded);
  assert_int_equal(r.loaded_bytes + r.reserved_bytes, 800);
  preft_registry_install(&r, b, sized_adapter(600));
  preft_registry_load_done(&r, b);
  preft_registry_activate(&r, b);
  preft_registry_load_failed(&r, c, "broken", 0.0); /* a failed load gives its reservation back */
  preft_registry_load_done(&r, c);
  assert_int_equal(r.reserved_bytes, 0);
  assert_int_equal(preft_registry_reserve(&r, a, 500), PREFT_RESERVE_NO_ROOM); /* b is running */
  preft_registry_deactivate(&r, b);
  assert_int_equal(preft_registry_reserve(&r, a, 500), PREFT_RESERVE_OK);
  assert_null(b->loaded);
  /* bigger than reserved (not expected): idle ones go to get back under */
  assert_int_equal(preft_registry_reserve(&r, d, 100), PREFT_RESERVE_OK);
  preft_registry_install(&r, d, sized_adapter(100));
  preft_registry_load_done(&r, d);
  preft_registry_install(&r, a, sized_adapter(950));
  preft_registry_load_done(&r, a);
  assert_null(d->loaded);
  assert_true(r.loaded_bytes <= r.max_bytes);
  preft_registry_free(&r);
}

/* Names found through the hash table after many adds and removes (the
 * removal shifts entries of a probe run back: every survivor must still be
 * found, and no removed one), and listing after a name in registration
 * order. */
static void many_names_are_found_and_listed_in_order(void **s) {
  enum { N = 20000 };
  preft_registry r;
  preft_registry_init(&r, 4, 0);
  preft_error err;
  char name[32];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "user-%d", i);
    add(&r, name);
  }
  for (int i = 0; i < N; i += 3) {
    snprintf(name, sizeof name, "user-%d", i);
    assert_int_equal(preft_registry_remove(&r, name, &err), 0);
  }
  assert_int_equal(r.n, N - (N + 2) / 3);
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "user-%d", i);
    preft_registered_adapter *a = preft_registry_find(&r, name);
    if (i % 3 == 0) {
      assert_null(a);
    } else {
      assert_non_null(a);
      assert_string_equal(a->name, name);
    }
  }
  assert_int_not_equal(preft_registry_remove(&r, "user-0", &err), 0);
  add(&r, "user-0"); /* a removed name can be registered again, last in order */
  assert_int_equal(preft_registry_after(&r, NULL), 0);
  assert_int_equal(preft_registry_after(&r, "nobody"), -1);
  int i = preft_registry_after(&r, "user-1");
  assert_string_equal(r.items[i]->name, "user-2");
  i = preft_registry_after(&r, "user-2");
  assert_string_equal(r.items[i]->name, "user-4");
  i = preft_registry_after(&r, "user-0");
  assert_int_equal(i, r.n);
  preft_registry_free(&r);
}

/* The registry file round-trips what it can hold (a name with a tab is
 * left out), and the resolver accepts only a plain name of a directory
 * with an adapter config inside the directory. */
static void the_registry_file_and_the_resolver(void **s) {
  char dir[] = "/tmp/preft-store-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char file[256];
  snprintf(file, sizeof file, "%s/adapters.tsv", dir);
  preft_store_entry in[3] = {{.name = "alice", .path = "/srv/a"},
                             {.name = "b\tob", .path = "/srv/b"},
                             {.name = "carol", .path = "/srv/c d"}};
  preft_error err;
  preft_store_entry *out;
  int n;
  assert_int_equal(preft_store_read(file, &out, &n, &err), 0); /* no file yet: empty */
  assert_int_equal(n, 0);
  assert_int_equal(preft_store_write(file, in, 3, &err), 0);
  assert_int_equal(preft_store_read(file, &out, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].name, "alice");
  assert_string_equal(out[1].path, "/srv/c d");
  preft_store_free(out, n);
  char *lora = test_data_path("adapters");
  char real[4096];
  assert_non_null(realpath(lora, real));
  char *p = preft_store_resolve(real, "lora-qv-r4");
  assert_non_null(p);
  free(p);
  assert_null(preft_store_resolve(real, "bad"));     /* no config directly inside */
  assert_null(preft_store_resolve(real, "nothing")); /* no such directory */
  assert_null(preft_store_resolve(real, ".."));
  assert_null(preft_store_resolve(real, "bad/lora-dora")); /* one component only */
  assert_null(preft_store_resolve(real, ""));
  free(lora);
  remove(file);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(removed_while_loading_is_freed_when_the_load_is_done),
      cmocka_unit_test(removed_while_loading_and_held_lives_until_unref),
      cmocka_unit_test(load_done_keeps_a_live_entry),
      cmocka_unit_test(reserve_evicts_the_least_recently_used_idle_adapter),
      cmocka_unit_test(nothing_loads_while_every_loaded_adapter_is_in_use),
      cmocka_unit_test(a_failed_load_is_unavailable_for_a_doubling_backoff),
      cmocka_unit_test(the_byte_cap_is_hard_and_counts_loads_under_way),
      cmocka_unit_test(many_names_are_found_and_listed_in_order),
      cmocka_unit_test(the_registry_file_and_the_resolver),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
