/* quant_layout.c - what the in-memory layouts (X4, R4: tensor/quant.h)
 * share: a row of one back in its plain type's bytes, and the products of
 * the kernel tables that have no kernels of their own for a layout (the
 * weight rows unpacked a few at a time, then the table's plain kernel). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"

#define UNPACKED_STACK 16384 /* bytes of unpacked weight rows kept on the stack */

void preft_quant_row_plain(preft_dtype t, const void *w, size_t wrow, size_t j, size_t k, void *dst) {
  const unsigned char *row = (const unsigned char *)w + preft_dtype_row_offset(t, wrow, j);
  if (preft_dtype_is_x4(t)) {
    preft_quant_from_x4(t, row, dst, k);
  } else if (preft_dtype_is_r4(t)) {
    for (size_t b = 0; b < k / PREFT_QK_K; b++) preft_quant_r4_block_get(row, b, (preft_block_q4_K *)dst + b);
  } else {
    memcpy(dst, row, wrow);
  }
}

void preft_qrows_via_plain(preft_qrows_fn plain, preft_dtype t, float *y, size_t ys, const void *xq,
                           size_t xqs, const void *w, size_t wrow, int n, int k, int j0, int j1,
                           int accumulate) {
  unsigned char stack[UNPACKED_STACK] __attribute__((aligned(64)));
  int chunk = (int)(UNPACKED_STACK / wrow);
  unsigned char *buf = stack;
  if (chunk < 1) {
    chunk = 1;
    buf = preft_xmalloc(wrow);
  }
  for (int j = j0; j < j1; j += chunk) {
    const int rows = j1 - j < chunk ? j1 - j : chunk;
    for (int r = 0; r < rows; r++)
      preft_quant_row_plain(t, w, wrow, (size_t)(j + r), (size_t)k, buf + (size_t)r * wrow);
    plain(y + j, ys, xq, xqs, buf, wrow, n, k, 0, rows, accumulate);
  }
  if (buf != stack) free(buf);
}
