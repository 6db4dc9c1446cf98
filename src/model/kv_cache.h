/* kv_cache.h - the paged key/value cache of a decoder.
 *
 * Memory is a pool of fixed-size blocks; each block holds `block_size`
 * consecutive positions of one sequence for every layer:
 *   k, v: [n_blocks][L][block_size][Hkv*Dh]  (FP32)
 * A sequence slot owns a block table mapping position/block_size to a block.
 * Blocks are taken from the free list as a sequence grows (preft_kv_reserve)
 * and returned when it is released, so memory follows the tokens actually in
 * flight rather than the model's maximum context.
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
  int *tables;   /* [max_seqs][max_blocks_per_seq], -1 = none */
  int *n_mapped; /* [max_seqs] blocks mapped per sequence */
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
/* Returns all of seq's blocks to the pool. */
void preft_kv_release(preft_kv_cache *kv, int seq);
/* Positions of seq currently backed by blocks. */
int preft_kv_capacity(const preft_kv_cache *kv, int seq);

/* Pointer to the key (value) vector [kv_dim] of (layer, seq, pos); the
 * position must be reserved. */
static inline float *preft_kv_k(const preft_kv_cache *kv, int layer, int seq, int pos) {
  int block = kv->tables[(size_t)seq * (size_t)kv->max_blocks_per_seq + (size_t)(pos / kv->block_size)];
  return kv->k + (((size_t)block * (size_t)kv->n_layers + (size_t)layer) * (size_t)kv->block_size +
                  (size_t)(pos % kv->block_size)) * (size_t)kv->kv_dim;
}
static inline float *preft_kv_v(const preft_kv_cache *kv, int layer, int seq, int pos) {
  int block = kv->tables[(size_t)seq * (size_t)kv->max_blocks_per_seq + (size_t)(pos / kv->block_size)];
  return kv->v + (((size_t)block * (size_t)kv->n_layers + (size_t)layer) * (size_t)kv->block_size +
                  (size_t)(pos % kv->block_size)) * (size_t)kv->kv_dim;
}

#endif
