/* test_registry.c - the adapter registry's lifetime rules: an entry removed
 * while its files load lives until the load is done, and then only while a
 * request holds it; a load that finishes on a live entry keeps it; the least
 * recently used unreferenced adapter is evicted beyond max_loaded. Counted
 * by the registry's own entries (r.n), and run under ASan for the frees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adapter_registry.h"
#include "model/shapes.h"

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

static void removed_while_loading_is_freed_when_the_load_is_done(void **s) {
  preft_registry r;
  preft_registry_init(&r, 4);
  preft_registered_adapter *a = add(&r, "a");
  a->loading = true;
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
  a->loading = true;
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
  a->loading = true;
  preft_registry_install(&r, a, small_adapter(2));
  preft_registry_load_done(&r, a);
  assert_ptr_equal(preft_registry_find(&r, "a"), a);
  assert_false(a->loading);
  assert_non_null(a->loaded);
  preft_registry_free(&r);
}

static void install_evicts_the_least_recently_used_unreferenced(void **s) {
  preft_registry r;
  preft_registry_init(&r, 2);
  preft_registered_adapter *a = add(&r, "a"), *b = add(&r, "b"), *c = add(&r, "c");
  preft_registry_install(&r, a, small_adapter(3));
  preft_registry_install(&r, b, small_adapter(4));
  preft_registry_touch(&r, a); /* b is now the least recently used */
  preft_registry_install(&r, c, small_adapter(5));
  assert_int_equal(r.n_loaded, 2);
  assert_non_null(a->loaded);
  assert_null(b->loaded);
  assert_non_null(c->loaded);
  b->refs = 0;
  a->refs = 1; /* held: never evicted, so c goes next */
  preft_registry_install(&r, b, small_adapter(6));
  assert_non_null(a->loaded);
  assert_non_null(b->loaded);
  assert_null(c->loaded);
  preft_registry_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(removed_while_loading_is_freed_when_the_load_is_done),
      cmocka_unit_test(removed_while_loading_and_held_lives_until_unref),
      cmocka_unit_test(load_done_keeps_a_live_entry),
      cmocka_unit_test(install_evicts_the_least_recently_used_unreferenced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
