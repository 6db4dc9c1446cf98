/* bench_registry.c - the adapter registry's cost per operation against the
 * number of registered adapters (what the engine does under its lock):
 *
 *   find     looking a request's adapter up by name (every request)
 *   cycle    a load's reserve, which evicts the least recently used idle
 *            adapter, then its install and load_done (every adapter load)
 *   page     listing 100 adapters after a given one (GET /v1/models?limit)
 *   scan     a linear strcmp scan over every name: what a lookup cost
 *            before the hash table (the old preft_registry_find)
 *
 * Registered adapters are names only (in-memory entries); 64 of them are
 * loaded with a tiny random adapter, and a cycle loads one more, evicting
 * another. Prints nanoseconds per operation (the median of 5 runs).
 *
 * Usage: bench_registry [--max N]   (sizes 1000, 10000, 100000 up to N)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/timer.h"
#include "engine/adapter_registry.h"
#include "model/shapes.h"

enum { LOADED = 64, RUNS = 5 };

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v) {
  qsort(v, RUNS, sizeof *v, cmp_double);
  return v[RUNS / 2];
}

int main(int argc, char **argv) {
  int max = 100000;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--max") && i + 1 < argc) max = atoi(argv[++i]);
  preft_model_config cfg;
  preft_error err;
  if (preft_shape_config("tiny", &cfg, &err) != 0) return 1;
  cfg.n_layers = 1;
  printf(
      "| registered | find (ns) | cycle: reserve+evict, install (ns) | page of 100 (ns) | linear scan (ns) "
      "|\n");
  printf("|---:|---:|---:|---:|---:|\n");
  for (int n = 1000; n <= max; n *= 10) {
    preft_registry r;
    preft_registry_init(&r, LOADED, 0);
    char **names = malloc(sizeof *names * (size_t)n);
    preft_registered_adapter **entries = malloc(sizeof *entries * (size_t)n);
    for (int i = 0; i < n; i++) {
      char name[32];
      snprintf(name, sizeof name, "user-%07d", i);
      names[i] = strdup(name);
      if (preft_registry_add_memory(&r, name, &entries[i], &err) != 0) return 1;
      entries[i]->in_memory = false; /* may be evicted and loaded again, as a file-backed one */
    }
    preft_adapter *proto = preft_adapter_random(PREFT_ADAPTER_LORA, &cfg, 1, PREFT_MODE_ALL, PREFT_F32, 1);
    size_t bytes = proto->bytes;
    preft_adapter_free(proto);
    double find[RUNS], cycle[RUNS], page[RUNS], scan[RUNS];
    unsigned seed = 12345;
    int next_load = 0;
    for (int run = 0; run < RUNS; run++) {
      enum { LOOKUPS = 200000, CYCLES = 2000, PAGES = 2000, SCANS = 200 };
      volatile uintptr_t sink = 0;
      double t0 = preft_now();
      for (int k = 0; k < LOOKUPS; k++) {
        seed = seed * 1103515245u + 12345u;
        sink += (uintptr_t)preft_registry_find(&r, names[(seed >> 8) % (unsigned)n]);
      }
      find[run] = (preft_now() - t0) / LOOKUPS * 1e9;
      t0 = preft_now();
      for (int k = 0; k < CYCLES; k++) {
        preft_registered_adapter *a = entries[next_load];
        next_load = (next_load + 1) % n;
        if (a->loaded) continue; /* (n = LOADED would wrap onto loaded ones) */
        if (preft_registry_reserve(&r, a, bytes) != PREFT_RESERVE_OK) return 1;
        preft_registry_install(
            &r, a, preft_adapter_random(PREFT_ADAPTER_LORA, &cfg, 1, PREFT_MODE_ALL, PREFT_F32, 1));
        preft_registry_load_done(&r, a);
      }
      cycle[run] = (preft_now() - t0) / CYCLES * 1e9;
      t0 = preft_now();
      for (int k = 0; k < PAGES; k++) {
        seed = seed * 1103515245u + 12345u;
        int i = preft_registry_after(&r, names[(seed >> 8) % (unsigned)n]);
        for (int j = 0; j < 100 && i + j < r.n; j++) sink += (uintptr_t)r.items[i + j]->name[0];
      }
      page[run] = (preft_now() - t0) / PAGES * 1e9;
      t0 = preft_now();
      for (int k = 0; k < SCANS; k++) {
        seed = seed * 1103515245u + 12345u;
        const char *want = names[(seed >> 8) % (unsigned)n];
        for (int i = 0; i < r.n; i++)
          if (!strcmp(r.items[i]->name, want)) {
            sink += (uintptr_t)r.items[i];
            break;
          }
      }
      scan[run] = (preft_now() - t0) / SCANS * 1e9;
      (void)sink;
    }
    printf("| %d | %.0f | %.0f | %.0f | %.0f |\n", n, median(find), median(cycle), median(page),
           median(scan));
    preft_registry_free(&r);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(entries);
  }
  return 0;
}
