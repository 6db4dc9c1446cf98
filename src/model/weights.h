/* weights.h - what every model loader shares: a weight matrix as stored in
 * a memory-mapped safetensors file, and the lookups that check a tensor's
 * shape and fail naming the file and the tensor (missing, or shape [a, b]
 * where [c, d] is expected). Matrices stay in the mapping in their stored
 * type (F32, F16, BF16); small vectors (norms, biases) are copied to FP32.
 * Used by the decoder (llama_load.c) and the encoder (bert_load.c), which
 * also share the random fills of models made in memory. */
#ifndef PREFT_MODEL_WEIGHTS_H
#define PREFT_MODEL_WEIGHTS_H

#include <stdint.h>

#include "base/error.h"
#include "io/safetensors.h"
#include "tensor/dtype.h"

/* A weight matrix as stored: row-major [rows, cols] of dtype. */
typedef struct preft_weight {
  const void *data;
  preft_dtype dtype;
} preft_weight;

/* Finds `name` and checks its shape is exactly [d0] (d1 <= 0) or [d0, d1]. */
int preft_weights_expect(const preft_st_set *st, const char *name, int64_t d0, int64_t d1,
                         const preft_st_tensor **out, preft_error *err);

/* A [rows, cols] matrix, pointing into the mapping. */
int preft_weights_matrix(const preft_st_set *st, const char *name, int64_t rows, int64_t cols,
                         preft_weight *w, preft_error *err);

/* A [n] vector copied to FP32 (heap; the caller frees). */
int preft_weights_vector(const preft_st_set *st, const char *name, int64_t n, float **out, preft_error *err);

/* Random weights for models made in memory (benchmarks, tests): n values
 * uniform in [-scale, scale) from a splitmix64 stream *rng, stored as t;
 * and a heap FP32 vector of n values uniform around center. The same seed
 * gives the same values on every machine. */
void preft_weights_fill_uniform(void *dst, preft_dtype t, size_t n, float scale, uint64_t *rng);
float *preft_weights_random_vector(size_t n, float center, float scale, uint64_t *rng);

#endif
