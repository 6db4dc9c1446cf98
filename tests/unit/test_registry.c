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
#include <stdlib.h>
#include <string.h>

#include "engine/adapter_registry.h"
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
  assert_true(preft_registry_reserve(r, a));
  preft_registry_install(r, a, small_adapter(seed));
  preft_registry_load_done(r, a);
}

static void removed_while_loading_is_freed_when_the_load_is_done(void **s) {
  preft_registry r;
  preft_registry_init(&r, 4);
  preft_registered_adapter *a = add(&r, "a");
  assert_true(preft_registry_reserve(&r, a));
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
  preft_registry_init(&r, 4);
  preft_registered_adapter *a = add(&r, "a");
  assert_true(preft_registry_reserve(&r, a));
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
  preft_registry_init(&r, 4);
  preft_registered_adapter *a = add(&r, "a");
  assert_true(preft_registry_reserve(&r, a));
  preft_registry_install(&r, a, small_adapter(2));
  preft_registry_load_done(&r, a);
  assert_ptr_equal(preft_registry_find(&r, "a"), a);
  assert_false(a->loading);
  assert_non_null(a->loaded);
  preft_registry_free(&r);
}

static void reserve_evicts_the_least_recently_used_idle_adapter(void **s) {
  preft_registry r;
  preft_registry_init(&r, 2);
  preft_registered_adapter *a = add(&r, "a"), *b = add(&r, "b"), *c = add(&r, "c");
  load(&r, a, 3);
  load(&r, b, 4);
  preft_registry_activate(&r, a); /* a used last: b is the least recently used */
  preft_registry_deactivate(&r, a);
  assert_true(preft_registry_reserve(&r, c)); /* room is made before the load */
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
  preft_registry_init(&r, 2);
  preft_registered_adapter *a = add(&r, "a"), *b = add(&r, "b"), *c = add(&r, "c"), *d = add(&r, "d");
  load(&r, a, 1);
  preft_registry_activate(&r, a);
  assert_true(preft_registry_reserve(&r, b)); /* a free place: no eviction */
  assert_int_equal(r.evictions, 0);
  assert_false(preft_registry_reserve(&r, c)); /* a running, b's load reserved */
  preft_registry_install(&r, b, small_adapter(2));
  preft_registry_load_done(&r, b);
  preft_registry_activate(&r, b);
  assert_false(preft_registry_reserve(&r, c)); /* both running */
  assert_false(c->loading);
  assert_int_equal(r.n_loaded, 2);
  preft_registry_deactivate(&r, b); /* idle again: c may take its place */
  assert_true(preft_registry_reserve(&r, c));
  assert_null(b->loaded);
  assert_false(preft_registry_reserve(&r, d)); /* a running, c loading */
  preft_registry_install(&r, c, small_adapter(3));
  preft_registry_load_done(&r, c);
  assert_true(r.n_loaded <= r.max_loaded);
  preft_registry_deactivate(&r, a);
  preft_registry_free(&r);
}

static void a_failed_load_is_unavailable_for_a_doubling_backoff(void **s) {
  preft_registry r;
  preft_registry_init(&r, 2);
  preft_error err;
  preft_registered_adapter *a = NULL;
  char *path = test_data_path("adapters/lora-qv-r4");
  assert_int_equal(preft_registry_add(&r, "a", path, &a, &err), 0);
  assert_false(preft_registry_unavailable(a, 100.0)); /* never tried */
  assert_true(preft_registry_reserve(&r, a));
  preft_registry_load_failed(&r, a, "bad file", 100.0);
  preft_registry_load_done(&r, a);
  assert_int_equal(r.n_loading, 0);
  assert_true(preft_registry_unavailable(a, 100.5));
  assert_false(preft_registry_unavailable(a, 101.0)); /* 1 s later: tried again */
  assert_true(preft_registry_reserve(&r, a));
  preft_registry_load_failed(&r, a, "still bad", 101.0);
  preft_registry_load_done(&r, a);
  assert_true(preft_registry_unavailable(a, 102.5));
  assert_false(preft_registry_unavailable(a, 103.0)); /* then 2 s */
  assert_string_equal(a->error, "still bad");
  for (int i = 0; i < 20; i++) preft_registry_load_failed(&r, a, "bad", 200.0);
  assert_true(preft_registry_unavailable(a, 200.0 + PREFT_REGISTRY_RETRY_MAX_S - 0.5));
  assert_false(preft_registry_unavailable(a, 200.0 + PREFT_REGISTRY_RETRY_MAX_S)); /* at most 60 s */
  assert_true(preft_registry_reserve(&r, a));
  preft_registry_install(&r, a, small_adapter(1)); /* a load that works clears the error */
  preft_registry_load_done(&r, a);
  assert_null(a->error);
  assert_int_equal(a->failures, 0);
  assert_int_equal(r.load_failures, 22);
  assert_int_equal(r.loads, 1);
  preft_registry_free(&r);
  free(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(removed_while_loading_is_freed_when_the_load_is_done),
      cmocka_unit_test(removed_while_loading_and_held_lives_until_unref),
      cmocka_unit_test(load_done_keeps_a_live_entry),
      cmocka_unit_test(reserve_evicts_the_least_recently_used_idle_adapter),
      cmocka_unit_test(nothing_loads_while_every_loaded_adapter_is_in_use),
      cmocka_unit_test(a_failed_load_is_unavailable_for_a_doubling_backoff),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
