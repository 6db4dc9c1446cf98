/* kv_cache.h - the paged key/value cache of a decoder.
 *
 * Memory is a pool of fixed-size blocks; each block holds `block_size`
 * consecutive positions of one sequence for every layer:
 *   k, v: [n_blocks][L][block_size][Hkv*Dh]  (FP32)
 * A sequence slot owns a block table mapping position/block_size to a block.
 * Blocks are taken from the free list as a sequence grows (preft_kv_reserve)
 * and returned when it is released, so memory follows the tokens actually in
 * flight rather than the model's maximum context.
 *
 * Blocks are reference-counted so that sequences can share them (prefix
 * caching, engine/prefix_cache.c): preft_kv_map_shared appends an existing
 * block to a sequence. A block whose count drops to zero returns to the free
 * list, unless it is marked cached: then it stays as it is, and the `evict`
 * hook hands it back when the free list runs dry.
 */
#ifndef PREFT_MODEL_KV_CACHE_H
#define PREFT_MODEL_KV_CACHE_H

#include <stddef.h>

#include "base/error.h"

typedef struct preft_kv_cache {
  int n_layers, kv_dim, block_size, n_blocks, max_seqs, max_ctx, max_blocks_per_seq;
  float *k, *v;     /* [n_blocks][L][block_size][kv_dim] */
  int *free_blocks; /* stack of free block ids */
  int n_free;
  int *tables;           /* [max_seqs][max_blocks_per_seq], -1 = none */
  int *n_mapped;         /* [max_seqs] blocks mapped per sequence */
  int *refs;             /* [n_blocks] sequences mapping each block */
  unsigned char *cached; /* [n_blocks] kept for reuse when unreferenced */
  int n_used;            /* blocks referenced by sequences */
  int *pinned;           /* stack of blocks lent to memory held elsewhere (adapters' weights) */
  int n_pinned;
  /* Called when no block is free: returns an unreferenced cached block it
   * has forgotten (now uncached), or -1. */
  int (*evict)(void *ctx);
  void *evict_ctx;
} preft_kv_cache;

/* n_blocks * block_size positions in total, shared by up to max_seqs
 * sequences of at most max_ctx positions each. */
int preft_kv_init(preft_kv_cache *kv, int n_layers, int kv_dim, int block_size, int n_blocks, int max_seqs,
                  int max_ctx, preft_error *err);
void preft_kv_free(preft_kv_cache *kv);

/* Bytes one block takes (keys and values, all layers). */
size_t preft_kv_block_bytes(int n_layers, int kv_dim, int block_size);

/* Makes positions [0, n_pos) of seq writable. Fails (state unchanged) when
 * n_pos exceeds max_ctx or the pool has too few free blocks. */
int preft_kv_reserve(preft_kv_cache *kv, int seq, int n_pos, preft_error *err);
/* Drops seq's references to its blocks (freeing those no one else maps and
 * that are not cached). */
void preft_kv_release(preft_kv_cache *kv, int seq);
/* Keeps only the blocks of seq that back positions [0, n_pos), dropping its
 * references to the others as preft_kv_release does (speculative decoding
 * gives back the blocks of rejected draft positions). */
void preft_kv_truncate(preft_kv_cache *kv, int seq, int n_pos);
/* Appends an existing block to seq's table (its next block) and takes a
 * reference. The block must hold the right positions for seq. */
void preft_kv_map_shared(preft_kv_cache *kv, int seq, int block);
/* Lends n more blocks to memory held elsewhere (the engine's adapters:
 * one memory budget for keys, values and adapters): they leave the free
 * list (unreferenced cached blocks are evicted for them as for a
 * sequence) and their pages go back to the system until they are returned.
 * Returns 0, or -1 taking nothing when fewer than n can be freed. */
int preft_kv_pin(preft_kv_cache *kv, int n);
/* Returns n lent blocks to the free list. */
void preft_kv_unpin(preft_kv_cache *kv, int n);
/* The block holding position pos of seq (mapped). */
static inline int preft_kv_block_of(const preft_kv_cache *kv, int seq, int pos) {
  return kv->tables[(size_t)seq * (size_t)kv->max_blocks_per_seq + (size_t)(pos / kv->block_size)];
}
/* Positions of seq currently backed by blocks. */
int preft_kv_capacity(const preft_kv_cache *kv, int seq);

/* Pointer to the key (value) vector [kv_dim] of (layer, seq, pos); the
 * position must be reserved. */
static inline float *preft_kv_k(const preft_kv_cache *kv, int layer, int seq, int pos) {
  int block = kv->tables[(size_t)seq * (size_t)kv->max_blocks_per_seq + (size_t)(pos / kv->block_size)];
  return kv->k + (((size_t)block * (size_t)kv->n_layers + (size_t)layer) * (size_t)kv->block_size +
                  (size_t)(pos % kv->block_size)) *
                     (size_t)kv->kv_dim;
}
static inline float *preft_kv_v(const preft_kv_cache *kv, int layer, int seq, int pos) {
  int block = kv->tables[(size_t)seq * (size_t)kv->max_blocks_per_seq + (size_t)(pos / kv->block_size)];
  return kv->v + (((size_t)block * (size_t)kv->n_layers + (size_t)layer) * (size_t)kv->block_size +
                  (size_t)(pos % kv->block_size)) *
                     (size_t)kv->kv_dim;
}

#endif
