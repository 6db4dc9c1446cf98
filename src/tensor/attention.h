/* attention.h - causal attention of one token over a paged KV cache, for a
 * group of query heads that share one KV head (grouped-query attention).
 *
 * Legend: G query heads per KV head (H / Hkv), Dh head width, n visible
 * positions (end - start + 1).
 *
 * The kernel reads keys and values through a preft_kv_view, which says where
 * one KV head of one layer of one sequence lies in a paged cache: position t
 * is in block table[t / block_size], at offset t % block_size, and positions
 * inside one block are pos_stride floats apart. The whole group of G heads is
 * done in one call so that every K and V row is read from memory once for
 * all G heads, one cache block at a time.
 *
 * Two passes: scores s[G, n] = q·Kᵀ·scale, a softmax per head, then
 * out = s·V. preft_attention picks the AVX+FMA kernel when preft_cpu_path()
 * allows it and Dh is a multiple of 8 (with a polynomial exp, see
 * preft_expf_fast), else the portable one. preft_attention_ref is the plain
 * per-head version (libm expf, one dot and one axpy per position) the tests
 * compare both with. None of them allocates or fails.
 */
#ifndef PREFT_TENSOR_ATTENTION_H
#define PREFT_TENSOR_ATTENTION_H

#include <stddef.h>

typedef struct {
  const float *k, *v;  /* this layer's and KV head's slot of position 0 in block id 0 */
  const int *table;    /* block id of positions [i*block_size, (i+1)*block_size) */
  size_t block_stride; /* floats from one block id to the next */
  size_t pos_stride;   /* floats from one position to the next inside a block */
  int block_size;
} preft_kv_view;

/* out[G, Dh] = softmax(q[G, Dh]·K[start..end]ᵀ·scale)·V[start..end].
 * q and out hold the G heads' vectors contiguously (Dh apart); out must not
 * alias q. scratch: at least G * (end - start + 1) floats.
 * Requires 0 <= start <= end. */
void preft_attention(float *out, const float *q, int g, int dh, const preft_kv_view *kv, int start, int end,
                     float scale, float *scratch);

/* The plain reference: one head at a time, preft_dot / preft_softmax /
 * preft_axpy per position. Same arguments. */
void preft_attention_ref(float *out, const float *q, int g, int dh, const preft_kv_view *kv, int start,
                         int end, float scale, float *scratch);

#endif
