/* quant_r4.c - the R4 layout of Q4_K matrices (tensor/quant.h): a block
 * between it and ggml's, the repacking of whole matrices both ways, and
 * the dequantization of a row through the plain type's.
 *
 * A group of four rows takes the same bytes in both layouts (4 rows of nb
 * blocks), so each group is converted through a copy of its own bytes, in
 * place or not. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"

#define R4_STRIDE sizeof(preft_group_q4_Kr4)
#define HEAD offsetof(preft_block_q4_K, qs) /* d, dmin, scales: a ggml block's first 16 bytes */

/* A row's address is its head's place in the group's first line: its code
 * pieces lie 64 (the heads' line) + 64 k bytes further. */
void preft_quant_r4_block_get(const void *row, size_t b, preft_block_q4_K *out) {
  const unsigned char *p = (const unsigned char *)row + b * R4_STRIDE;
  memcpy(out, p, HEAD);
  for (int k = 0; k < 8; k++) memcpy(out->qs + 16 * k, p + 64 + 64 * k, 16);
}

void preft_quant_r4_block_put(void *row, size_t b, const preft_block_q4_K *in) {
  unsigned char *p = (unsigned char *)row + b * R4_STRIDE;
  memcpy(p, in, HEAD);
  for (int k = 0; k < 8; k++) memcpy(p + 64 + 64 * k, in->qs + 16 * k, 16);
}

/* Rows [0, rows) of k values, from ggml's row after row (to_r4) or back. */
static void convert(const void *src, void *dst, size_t rows, size_t k, int to_r4) {
  PREFT_ASSERT(rows % 4 == 0 && k % PREFT_QK_K == 0);
  const size_t nb = k / PREFT_QK_K, rb = nb * sizeof(preft_block_q4_K), group = 4 * rb;
  unsigned char *tmp = preft_xmalloc(group);
  for (size_t g = 0; g < rows / 4; g++) {
    memcpy(tmp, (const unsigned char *)src + g * group, group);
    unsigned char *out = (unsigned char *)dst + g * group;
    for (size_t r = 0; r < 4; r++)
      for (size_t b = 0; b < nb; b++) {
        preft_block_q4_K *plain = (preft_block_q4_K *)(to_r4 ? tmp : out) + r * nb + b;
        const size_t row = preft_dtype_row_offset(PREFT_Q4_K_R4, rb, r); /* in the group */
        if (to_r4)
          preft_quant_r4_block_put(out + row, b, plain);
        else
          preft_quant_r4_block_get(tmp + row, b, plain);
      }
  }
  free(tmp);
}

void preft_quant_to_r4(const void *src, void *dst, size_t rows, size_t k) { convert(src, dst, rows, k, 1); }

void preft_quant_from_r4(const void *src, void *dst, size_t rows, size_t k) { convert(src, dst, rows, k, 0); }

void preft_dequantize_r4_via(const void *src, float *dst, size_t n,
                             void (*plain)(preft_dtype t, const void *src, float *dst, size_t n)) {
  for (size_t b = 0; b < n / PREFT_QK_K; b++) {
    preft_block_q4_K blk;
    preft_quant_r4_block_get(src, b, &blk);
    plain(PREFT_Q4_K, &blk, dst + PREFT_QK_K * b, PREFT_QK_K);
  }
}
