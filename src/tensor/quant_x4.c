/* quant_x4.c - the X4 layouts of Q4_0 / Q5_0 rows (tensor/quant.h): the
 * repacking both ways, and their dequantization through the plain type's
 * (the tables' other kernels for them: quant_layout.c).
 *
 * A group of four blocks takes the same 72 / 88 bytes in both layouts, so
 * each group is converted through a copy of its own bytes, in place or
 * not. */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"

#define X4_VALUES (4 * PREFT_QK)

/* One group: four plain blocks at b to the group at g (not overlapping). */
static void group_to_x4(preft_dtype t, const unsigned char *b, unsigned char *g) {
  if (t == PREFT_Q4_0) {
    const preft_block_q4_0 *in = (const void *)b;
    preft_group_q4_0x4 out;
    for (int i = 0; i < 4; i++) {
      memcpy(out.qs + 16 * i, in[i].qs, 16);
      out.d[i] = in[i].d;
    }
    memcpy(g, &out, sizeof out);
    return;
  }
  const preft_block_q5_0 *in = (const void *)b;
  preft_group_q5_0x4 out;
  for (int i = 0; i < 4; i++) {
    uint32_t qh;
    memcpy(&qh, in[i].qh, 4);
    memcpy(out.qs + 16 * i, in[i].qs, 16);
    out.qh_lo[i] = (uint16_t)(qh & 0xFFFFu);
    out.qh_hi[i] = (uint16_t)(qh >> 16);
    out.d[i] = in[i].d;
  }
  memcpy(g, &out, sizeof out);
}

/* One group at g (layout t) to four plain blocks at b (not overlapping). */
static void group_from_x4(preft_dtype t, const unsigned char *g, unsigned char *b) {
  if (t == PREFT_Q4_0_X4) {
    preft_group_q4_0x4 in;
    memcpy(&in, g, sizeof in);
    preft_block_q4_0 *out = (void *)b;
    for (int i = 0; i < 4; i++) {
      memcpy(out[i].qs, in.qs + 16 * i, 16);
      out[i].d = in.d[i];
    }
    return;
  }
  preft_group_q5_0x4 in;
  memcpy(&in, g, sizeof in);
  preft_block_q5_0 *out = (void *)b;
  for (int i = 0; i < 4; i++) {
    const uint32_t qh = (uint32_t)in.qh_lo[i] | (uint32_t)in.qh_hi[i] << 16;
    memcpy(out[i].qh, &qh, 4);
    memcpy(out[i].qs, in.qs + 16 * i, 16);
    out[i].d = in.d[i];
  }
}

void preft_quant_to_x4(preft_dtype t, const void *src, void *dst, size_t n) {
  PREFT_ASSERT((t == PREFT_Q4_0 || t == PREFT_Q5_0) && n % X4_VALUES == 0);
  const size_t gb = 4 * preft_dtype_block_bytes(t);
  unsigned char tmp[4 * sizeof(preft_block_q5_0)];
  for (size_t g = 0; g < n / X4_VALUES; g++) {
    memcpy(tmp, (const unsigned char *)src + g * gb, gb);
    group_to_x4(t, tmp, (unsigned char *)dst + g * gb);
  }
}

void preft_quant_from_x4(preft_dtype t, const void *src, void *dst, size_t n) {
  PREFT_ASSERT(preft_dtype_is_x4(t) && n % X4_VALUES == 0);
  const size_t gb = preft_dtype_block_bytes(t);
  unsigned char tmp[4 * sizeof(preft_block_q5_0)];
  for (size_t g = 0; g < n / X4_VALUES; g++) {
    memcpy(tmp, (const unsigned char *)src + g * gb, gb);
    group_from_x4(t, tmp, (unsigned char *)dst + g * gb);
  }
}

void preft_dequantize_x4_via(preft_dtype t, const void *src, float *dst, size_t n,
                             void (*plain)(preft_dtype t, const void *src, float *dst, size_t n)) {
  const size_t gb = preft_dtype_block_bytes(t);
  for (size_t g = 0; g < n / X4_VALUES; g++) {
    unsigned char blocks[4 * sizeof(preft_block_q5_0)];
    preft_quant_from_x4(t, (const unsigned char *)src + g * gb, blocks, X4_VALUES);
    plain(preft_dtype_stored(t), blocks, dst + X4_VALUES * g, X4_VALUES);
  }
}
