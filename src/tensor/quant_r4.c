/* quant_r4.c - the R4 layout of Q4_K matrices (tensor/quant.h): the
 * repacking both ways and the dequantization of a row through the plain
 * type's.
 *
 * A group of four rows takes the same bytes in both layouts (4 rows of nb
 * blocks), so each group is converted through a copy of its own bytes, in
 * place or not. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"

/* Rows [0, rows) of k values, from ggml's row after row (to_r4) or back. */
static void convert(const void *src, void *dst, size_t rows, size_t k, int to_r4) {
  PREFT_ASSERT(rows % 4 == 0 && k % PREFT_QK_K == 0);
  const size_t bb = sizeof(preft_block_q4_K), nb = k / PREFT_QK_K, group = 4 * nb * bb;
  unsigned char *tmp = preft_xmalloc(group);
  for (size_t g = 0; g < rows / 4; g++) {
    memcpy(tmp, (const unsigned char *)src + g * group, group);
    unsigned char *out = (unsigned char *)dst + g * group;
    for (size_t r = 0; r < 4; r++)
      for (size_t b = 0; b < nb; b++) {
        const size_t plain = (r * nb + b) * bb, r4 = (4 * b + r) * bb;
        memcpy(out + (to_r4 ? r4 : plain), tmp + (to_r4 ? plain : r4), bb);
      }
  }
  free(tmp);
}

void preft_quant_to_r4(const void *src, void *dst, size_t rows, size_t k) { convert(src, dst, rows, k, 1); }

void preft_quant_from_r4(const void *src, void *dst, size_t rows, size_t k) { convert(src, dst, rows, k, 0); }

void preft_dequantize_r4_via(const void *src, float *dst, size_t n,
                             void (*plain)(preft_dtype t, const void *src, float *dst, size_t n)) {
  const size_t stride = preft_dtype_block_stride(PREFT_Q4_K_R4);
  for (size_t b = 0; b < n / PREFT_QK_K; b++)
    plain(PREFT_Q4_K, (const unsigned char *)src + b * stride, dst + PREFT_QK_K * b, PREFT_QK_K);
}
