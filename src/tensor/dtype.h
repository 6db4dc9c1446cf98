/* dtype.h - element types of stored weights and their scalar conversions.
 *
 * Compute is always FP32; weights may be stored as F32, F16 (IEEE half) or
 * BF16 (upper half of an FP32) and are converted inside kernels' inner tiles,
 * or block-quantized as ggml stores them (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K: see
 * tensor/quant.h), which the matrix products read with int8 kernels.
 *
 * The X4 layouts (PREFT_Q4_0_X4, PREFT_Q5_0_X4) are Q4_0 / Q5_0 rows in
 * memory with their blocks regrouped by four, the same bytes per row
 * (tensor/quant.h); files never hold them. The R4 layout (PREFT_Q4_K_R4)
 * is a Q4_K matrix whose rows are interleaved four at a time: row j of a
 * matrix starts preft_dtype_row_offset(t, row bytes, j) bytes in and its
 * blocks lie preft_dtype_block_stride(t) apart (each block spread over its
 * group's 576 bytes); every function that takes "a row" of type t takes
 * the row's address so.
 *
 * Sizes: a row of n elements of type t takes preft_dtype_row_bytes(t, n)
 * bytes, n a multiple of preft_dtype_block(t) (1 for the element types);
 * a matrix of m rows m times that (R4: m a multiple of 4).
 */
#ifndef PREFT_TENSOR_DTYPE_H
#define PREFT_TENSOR_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "preft/model.h" /* preft_dtype */

/* True for the block-quantized types (and their in-memory X4 layouts). */
static inline int preft_dtype_is_quant(preft_dtype t) { return t >= PREFT_Q8_0 && t < PREFT_N_LAYOUTS; }
/* True for the X4 layouts (in memory only, tensor/quant.h). */
static inline int preft_dtype_is_x4(preft_dtype t) { return t == PREFT_Q4_0_X4 || t == PREFT_Q5_0_X4; }
/* True for the R4 layout (in memory only, tensor/quant.h). */
static inline int preft_dtype_is_r4(preft_dtype t) { return t == PREFT_Q4_K_R4; }
/* The type a file stores for t: the plain type (Q4_0, Q5_0, Q4_K) of an
 * X4 or R4 layout, t itself otherwise. */
static inline preft_dtype preft_dtype_stored(preft_dtype t) {
  return t == PREFT_Q4_0_X4   ? PREFT_Q4_0
         : t == PREFT_Q5_0_X4 ? PREFT_Q5_0
         : t == PREFT_Q4_K_R4 ? PREFT_Q4_K
                              : t;
}
/* The X4 layout of a plain type (Q4_0, Q5_0); other types map to
 * themselves. */
static inline preft_dtype preft_dtype_x4_of(preft_dtype t) {
  return t == PREFT_Q4_0 ? PREFT_Q4_0_X4 : t == PREFT_Q5_0 ? PREFT_Q5_0_X4 : t;
}
/* Elements per block: 1, 32, 128 (a group of four blocks of an X4 layout)
 * or 256. */
static inline size_t preft_dtype_block(preft_dtype t) {
  return t == PREFT_Q4_K || t == PREFT_Q6_K || t == PREFT_Q4_K_R4 ? 256
         : preft_dtype_is_x4(t)                                   ? 128
         : preft_dtype_is_quant(t)                                ? 32
                                                                  : 1;
}
/* Bytes per block (ggml's block sizes; static-asserted in quant.h). */
static inline size_t preft_dtype_block_bytes(preft_dtype t) {
  switch (t) {
    case PREFT_F32:
      return 4;
    case PREFT_Q8_0:
      return 34;
    case PREFT_Q4_0:
      return 18;
    case PREFT_Q5_0:
      return 22;
    case PREFT_Q4_K:
    case PREFT_Q4_K_R4:
      return 144;
    case PREFT_Q6_K:
      return 210;
    case PREFT_Q4_0_X4:
      return 4 * 18;
    case PREFT_Q5_0_X4:
      return 4 * 22;
    default:
      return 2;
  }
}
/* Bytes of a row of n elements (n a multiple of preft_dtype_block(t)). */
static inline size_t preft_dtype_row_bytes(preft_dtype t, size_t n) {
  return n / preft_dtype_block(t) * preft_dtype_block_bytes(t);
}
/* Where row j of a matrix of type t (rows row_bytes = preft_dtype_row_bytes
 * apart) starts, in bytes from the matrix: j row_bytes, or in the R4
 * layout the place of its first block's head in its group of four rows
 * (tensor/quant.h). */
static inline size_t preft_dtype_row_offset(preft_dtype t, size_t row_bytes, size_t j) {
  return preft_dtype_is_r4(t) ? (j & ~(size_t)3) * row_bytes + (j & 3) * 16 : j * row_bytes;
}
/* Bytes from one block of a row to its next: the block's bytes, or in the
 * R4 layout those of four (the group's four rows' blocks b lie together). */
static inline size_t preft_dtype_block_stride(preft_dtype t) {
  return preft_dtype_is_r4(t) ? 4 * preft_dtype_block_bytes(t) : preft_dtype_block_bytes(t);
}
/* Bytes per element of the element types (4 or 2); 0 for the quantized
 * types, which have no per-element size (use preft_dtype_row_bytes). */
static inline size_t preft_dtype_size(preft_dtype t) {
  return t == PREFT_F32 ? 4 : preft_dtype_is_quant(t) ? 0 : 2;
}
static inline const char *preft_dtype_name(preft_dtype t) {
  static const char *const names[] = {"F32",  "F16",  "BF16",   "Q8_0",   "Q4_0",  "Q4_K",
                                      "Q6_K", "Q5_0", "Q4_0x4", "Q5_0x4", "Q4_Kr4"};
  _Static_assert(sizeof names / sizeof names[0] == PREFT_N_LAYOUTS, "a name per type");
  return t >= 0 && t < PREFT_N_LAYOUTS ? names[t] : "unknown";
}
/* "f32", "q4_k", ... (any case) to a type; -1 if unknown. */
int preft_dtype_parse(const char *s);
/* config.json's "torch_dtype" and back: "bfloat16", "float16", else F32
 * (absent, "float32", or a type whose weights load as F32 anyway). */
static inline preft_dtype preft_dtype_from_torch(const char *s) {
  return s && !strcmp(s, "bfloat16") ? PREFT_BF16 : s && !strcmp(s, "float16") ? PREFT_F16 : PREFT_F32;
}
static inline const char *preft_dtype_torch_name(preft_dtype t) {
  return t == PREFT_BF16 ? "bfloat16" : t == PREFT_F16 ? "float16" : "float32";
}

/* The bits of an FP32, and the FP32 of bits. */
static inline uint32_t preft_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float preft_f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline float preft_bf16_to_f32(uint16_t h) { return preft_f32_from_bits((uint32_t)h << 16); }

/* Round-to-nearest-even, NaN kept quiet (as PyTorch's conversion does). */
static inline uint16_t preft_f32_to_bf16(float f) {
  uint32_t u = preft_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static inline float preft_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400u));
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return preft_f32_from_bits(u);
}

/* Round-to-nearest-even with overflow to infinity and subnormals. */
static inline uint16_t preft_f32_to_f16(float f) {
  uint32_t u = preft_f32_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (a < 0x38800000u) {                                   /* below the smallest normal half */
    if (a < 0x33000000u) return (uint16_t)sign;            /* rounds to zero */
    uint32_t e = a >> 23, man = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t h = ((a >> 13) - ((127 - 15) << 10));
  uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

/* Element i of a block-quantized buffer (elements counted from p, row after
 * row), exactly as ggml's row dequantization gives it (quant_ref.c). */
float preft_quant_load_elem(const void *p, preft_dtype t, size_t i);

/* Reads element i of a buffer of type t as FP32. */
static inline float preft_load_elem(const void *p, preft_dtype t, size_t i) {
  switch (t) {
    case PREFT_F32:
      return ((const float *)p)[i];
    case PREFT_F16:
      return preft_f16_to_f32(((const uint16_t *)p)[i]);
    case PREFT_BF16:
      return preft_bf16_to_f32(((const uint16_t *)p)[i]);
    default:
      return preft_quant_load_elem(p, t, i);
  }
}

#endif
