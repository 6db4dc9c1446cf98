/* kv_cache.c - block allocation for the paged KV cache (see kv_cache.h). */
#include "model/kv_cache.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/huge_alloc.h"

size_t preft_kv_block_bytes(int n_layers, int kv_dim, int block_size) {
  return 2 * sizeof(float) * (size_t)n_layers * (size_t)block_size * (size_t)kv_dim;
}

int preft_kv_init(preft_kv_cache *kv, int n_layers, int kv_dim, int block_size, int n_blocks, int max_seqs,
                  int max_ctx, preft_error *err) {
  memset(kv, 0, sizeof *kv);
  if (n_layers <= 0 || kv_dim <= 0 || block_size <= 0 || n_blocks <= 0 || max_seqs <= 0 || max_ctx <= 0)
    return preft_fail(err, "kv cache: every size must be positive");
  size_t elems = (size_t)n_blocks * (size_t)n_layers * (size_t)block_size * (size_t)kv_dim;
  kv->k = preft_alloc_huge(elems * sizeof(float)); /* few page faults when blocks are first written */
  kv->v = preft_alloc_huge(elems * sizeof(float));
  if (!kv->k || !kv->v) {
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
    return preft_fail(err, "kv cache: cannot allocate %zu MiB for %d blocks",
                      (2 * elems * sizeof(float)) >> 20, n_blocks);
  }
  kv->n_layers = n_layers;
  kv->kv_dim = kv_dim;
  kv->block_size = block_size;
  kv->n_blocks = n_blocks;
  kv->max_seqs = max_seqs;
  kv->max_ctx = max_ctx;
  kv->max_blocks_per_seq = (max_ctx + block_size - 1) / block_size;
  kv->free_blocks = preft_xmalloc(sizeof(int) * (size_t)n_blocks);
  for (int i = 0; i < n_blocks; i++) kv->free_blocks[i] = n_blocks - 1 - i;
  kv->n_free = n_blocks;
  size_t tsize = (size_t)max_seqs * (size_t)kv->max_blocks_per_seq;
  kv->tables = preft_xmalloc(sizeof(int) * tsize);
  for (size_t i = 0; i < tsize; i++) kv->tables[i] = -1;
  kv->n_mapped = preft_xcalloc((size_t)max_seqs, sizeof(int));
  kv->refs = preft_xcalloc((size_t)n_blocks, sizeof(int));
  kv->cached = preft_xcalloc((size_t)n_blocks, 1);
  kv->pinned = preft_xmalloc(sizeof(int) * (size_t)n_blocks);
  return 0;
}

void preft_kv_free(preft_kv_cache *kv) {
  free(kv->k);
  free(kv->v);
  free(kv->free_blocks);
  free(kv->tables);
  free(kv->n_mapped);
  free(kv->refs);
  free(kv->pinned);
  free(kv->cached);
  memset(kv, 0, sizeof *kv);
}

/* Makes at least need blocks free, evicting unreferenced cached ones. */
static bool free_up(preft_kv_cache *kv, int need) {
  while (kv->n_free < need && kv->evict) {
    int b = kv->evict(kv->evict_ctx);
    if (b < 0) break;
    PREFT_ASSERT(kv->refs[b] == 0 && !kv->cached[b]);
    kv->free_blocks[kv->n_free++] = b;
  }
  return kv->n_free >= need;
}

int preft_kv_reserve(preft_kv_cache *kv, int seq, int n_pos, preft_error *err) {
  PREFT_ASSERT(seq >= 0 && seq < kv->max_seqs);
  if (n_pos > kv->max_ctx)
    return preft_fail(err, "sequence needs %d positions but the context holds at most %d", n_pos,
                      kv->max_ctx);
  int need = (n_pos + kv->block_size - 1) / kv->block_size - kv->n_mapped[seq];
  if (need <= 0) return 0;
  if (!free_up(kv, need))
    return preft_fail(err, "kv cache full: sequence needs %d more blocks, %d free", need, kv->n_free);
  int *table = kv->tables + (size_t)seq * (size_t)kv->max_blocks_per_seq;
  for (int i = 0; i < need; i++) {
    int b = kv->free_blocks[--kv->n_free];
    kv->refs[b] = 1;
    table[kv->n_mapped[seq]++] = b;
  }
  kv->n_used += need;
  return 0;
}

/* Gives the pages inside [p, p + n) back to the system (they read as zeros
 * when touched again; a block's keys and values are written before they are
 * read). */
static void drop_pages(void *p, size_t n) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), b = ((uintptr_t)p + n) & ~(page - 1);
  if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

int preft_kv_pin(preft_kv_cache *kv, int n) {
  if (n <= 0) return 0;
  if (!free_up(kv, n)) return -1;
  size_t per = (size_t)kv->n_layers * (size_t)kv->block_size * (size_t)kv->kv_dim;
  for (int i = 0; i < n; i++) {
    int b = kv->free_blocks[--kv->n_free];
    kv->pinned[kv->n_pinned++] = b;
    drop_pages(kv->k + (size_t)b * per, per * sizeof(float));
    drop_pages(kv->v + (size_t)b * per, per * sizeof(float));
  }
  return 0;
}

void preft_kv_unpin(preft_kv_cache *kv, int n) {
  PREFT_ASSERT(n <= kv->n_pinned);
  for (int i = 0; i < n; i++) kv->free_blocks[kv->n_free++] = kv->pinned[--kv->n_pinned];
}

void preft_kv_map_shared(preft_kv_cache *kv, int seq, int block) {
  PREFT_ASSERT(seq >= 0 && seq < kv->max_seqs && block >= 0 && block < kv->n_blocks);
  PREFT_ASSERT(kv->n_mapped[seq] < kv->max_blocks_per_seq);
  if (kv->refs[block]++ == 0) kv->n_used++;
  kv->tables[(size_t)seq * (size_t)kv->max_blocks_per_seq + (size_t)kv->n_mapped[seq]++] = block;
}

void preft_kv_release(preft_kv_cache *kv, int seq) { preft_kv_truncate(kv, seq, 0); }

void preft_kv_truncate(preft_kv_cache *kv, int seq, int n_pos) {
  PREFT_ASSERT(seq >= 0 && seq < kv->max_seqs && n_pos >= 0);
  int *table = kv->tables + (size_t)seq * (size_t)kv->max_blocks_per_seq;
  int keep = (n_pos + kv->block_size - 1) / kv->block_size;
  if (keep >= kv->n_mapped[seq]) return;
  for (int i = keep; i < kv->n_mapped[seq]; i++) {
    int b = table[i];
    PREFT_ASSERT(kv->refs[b] > 0);
    if (--kv->refs[b] == 0) {
      kv->n_used--;
      if (!kv->cached[b]) kv->free_blocks[kv->n_free++] = b;
    }
    table[i] = -1;
  }
  kv->n_mapped[seq] = keep;
}

int preft_kv_capacity(const preft_kv_cache *kv, int seq) { return kv->n_mapped[seq] * kv->block_size; }
