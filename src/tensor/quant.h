/* quant.h - ggml's block-quantized weight formats: their blocks, row
 * (de)quantization, the int8 activation formats, dot products and the
 * matrix products of quantized weights.
 *
 * Legend as in gemm.h: N token rows, K input features, M output features;
 * a weight is row-major [M, K], each row ceil-free whole blocks.
 *
 * Formats (element types in preft/model.h's preft_dtype; the layouts are
 * ggml's, byte for byte, so GGUF tensors are used in place):
 *
 *   Q8_0  32 values:  fp16 d, int8 q[32]            x = d * q
 *   Q4_0  32 values:  fp16 d, 16 bytes of nibbles   x = d * (q - 8); byte j
 *                     holds value j (low nibble) and value j+16 (high)
 *   Q5_0  32 values:  fp16 d, 4 bytes of 5th bits, 16 bytes of nibbles
 *                     x = d * (q - 16), q = nibble | bit << 4
 *   Q4_K  256 values: fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins
 *                     of 8 sub-blocks of 32, 128 bytes of nibbles
 *                     x = d * sc[s] * q - dmin * m[s]
 *   Q6_K  256 values: 128 bytes of low nibbles, 64 bytes of high 2 bits,
 *                     int8 scales of 16 sub-blocks of 16, fp16 d
 *                     x = d * sc[s] * (q - 32)
 *
 * Activations are quantized per block to int8 as llama.cpp does, then dotted
 * with the weights' integers (int32 sums per block, one float multiply-add
 * per block):
 *   Q8_0 and Q4_0 and Q5_0 weights take Q8_0 activations (fp16 d, 32 int8);
 *   Q4_K and Q6_K weights take Q8_K activations (fp32 d, 256 int8, and the
 *   sums of each 16 of them, which carry the Q4_K mins and the Q6_K -32).
 *
 * Every function here has a plain C reference in quant_ref.c that the
 * tests compare with; the products dispatch to SIMD kernels at run time
 * (quant_kern.h, docs/KERNELS.md).
 */
#ifndef PREFT_TENSOR_QUANT_H
#define PREFT_TENSOR_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h" /* preft_gemm_out */

#define PREFT_QK 32    /* values per Q8_0 / Q4_0 / Q5_0 block */
#define PREFT_QK_K 256 /* values per Q4_K / Q6_K / Q8_K super-block */

typedef struct {
  uint16_t d; /* fp16 */
  int8_t qs[PREFT_QK];
} preft_block_q8_0;

typedef struct {
  uint16_t d;               /* fp16 */
  uint8_t qs[PREFT_QK / 2]; /* value j: low nibble of qs[j]; value j+16: high nibble */
} preft_block_q4_0;

typedef struct {
  uint16_t d;               /* fp16 */
  uint8_t qh[4];            /* bit j (little-endian uint32): 5th bit of value j */
  uint8_t qs[PREFT_QK / 2]; /* low 4 bits as in Q4_0 */
} preft_block_q5_0;

typedef struct {
  uint16_t d;                 /* fp16 super-scale of the scales */
  uint16_t dmin;              /* fp16 super-scale of the mins */
  uint8_t scales[12];         /* 8 scales and 8 mins of 6 bits (get_scale_min in quant_ref.c) */
  uint8_t qs[PREFT_QK_K / 2]; /* 64 values per 32 bytes: low nibbles, then high nibbles */
} preft_block_q4_K;

typedef struct {
  uint8_t ql[PREFT_QK_K / 2];     /* low 4 bits */
  uint8_t qh[PREFT_QK_K / 4];     /* high 2 bits */
  int8_t scales[PREFT_QK_K / 16]; /* one per 16 values */
  uint16_t d;                     /* fp16 */
} preft_block_q6_K;

typedef struct {
  float d;
  int8_t qs[PREFT_QK_K];
  int16_t bsums[PREFT_QK_K / 16]; /* sum of each 16 qs */
} preft_block_q8_K;

_Static_assert(sizeof(preft_block_q8_0) == 34, "block_q8_0 is 34 bytes in ggml");
_Static_assert(sizeof(preft_block_q4_0) == 18, "block_q4_0 is 18 bytes in ggml");
_Static_assert(sizeof(preft_block_q5_0) == 22, "block_q5_0 is 22 bytes in ggml");
_Static_assert(sizeof(preft_block_q4_K) == 144, "block_q4_K is 144 bytes in ggml");
_Static_assert(sizeof(preft_block_q6_K) == 210, "block_q6_K is 210 bytes in ggml");
_Static_assert(sizeof(preft_block_q8_K) == 292, "block_q8_K is 292 bytes in ggml");

/* ---- the X4 layouts (in memory only) ----
 *
 * PREFT_Q4_0_X4 and PREFT_Q5_0_X4 hold a Q4_0 / Q5_0 row with its blocks
 * regrouped four at a time: group g takes the bytes of blocks 4g..4g+3
 * (the same bytes per row, so every size computation holds), laid out so
 * that one 64-byte load gives the nibbles of 128 values and the fifth bits
 * of each half of them are one 64-bit mask (quant_rows512_x4.c). Rows are
 * whole groups (K a multiple of 128). The loader repacks a GGUF's or a
 * --quantize'd Q4_0 / Q5_0 projections in place where the AVX512-VNNI
 * kernels run (preft_model_repack in model/llama.h); every kernel table
 * and every reference function here takes them, and export writes the
 * plain types back. */
typedef struct {
  uint8_t qs[4 * PREFT_QK / 2]; /* block i's 16 bytes at 16 i */
  uint16_t d[4];                /* fp16 */
} preft_group_q4_0x4;

typedef struct {
  uint8_t qs[4 * PREFT_QK / 2]; /* block i's 16 bytes at 16 i */
  uint16_t qh_lo[4];            /* block i's fifth bits of values 0-15 */
  uint16_t qh_hi[4];            /* ... and of values 16-31 */
  uint16_t d[4];                /* fp16 */
} preft_group_q5_0x4;

_Static_assert(sizeof(preft_group_q4_0x4) == 4 * sizeof(preft_block_q4_0), "an X4 group is four blocks");
_Static_assert(sizeof(preft_group_q5_0x4) == 4 * sizeof(preft_block_q5_0), "an X4 group is four blocks");

/* (preft_dtype_x4_of and preft_dtype_stored, dtype.h, map the types.) */
/* A row of n values (n a multiple of 128) from the plain type to its X4
 * layout (preft_quant_to_x4: t the plain type) and back
 * (preft_quant_from_x4: t the X4 layout). dst may be src (in place). */
void preft_quant_to_x4(preft_dtype t, const void *src, void *dst, size_t n);
/* Whether the kernels preft_qgemm takes now read the in-memory layouts (X4
 * and R4) natively (AVX512-VNNI): where not, they unpack them first, and
 * repacking loses. */
bool preft_quant_layouts_native(void);
void preft_quant_from_x4(preft_dtype t, const void *src, void *dst, size_t n);

/* ---- the R4 layout (in memory only) ----
 *
 * PREFT_Q4_K_R4 holds a Q4_K matrix with its rows interleaved four at a
 * time: the group of rows 4g..4g+3 takes the bytes of those rows in the
 * plain matrix (from 4g · row bytes), as one preft_group_q4_Kr4 per
 * super-block b (576 bytes, b · 576 in): the four blocks' 16-byte heads
 * (d, dmin, scales) in one cache line, then their codes 16 bytes of each
 * row at a time, so that one 64-byte load gives 32 values of each of the
 * four rows (a 128-bit lane each) and a decode kernel reads one sequential
 * stream instead of four (quant_rows512.c). Row j's address is
 * preft_dtype_row_offset(t, row bytes, j) from the matrix (its head in
 * the group's first line) and its blocks lie preft_dtype_block_stride(t)
 * (576) apart, each spread over its group: every function here that takes
 * a row of type t takes such an address (dequantization, the dot
 * references, quantize_row, load_elem within the row), and
 * preft_quant_r4_block_get / _put move one block between it and a plain
 * ggml block. Matrices have a multiple of 4 rows. The loader repacks Q4_K
 * matrices where the AVX512-VNNI kernels run, as the X4 layouts; export
 * writes Q4_K back. */
typedef struct {
  uint8_t heads[4][16]; /* row r's d, dmin and 12 scale bytes */
  uint8_t qs[8][4][16]; /* [k][r]: row r's qs[16k..16k+15] */
} preft_group_q4_Kr4;
_Static_assert(sizeof(preft_group_q4_Kr4) == 4 * sizeof(preft_block_q4_K), "an R4 group is four blocks");
_Static_assert(sizeof(((preft_group_q4_Kr4 *)0)->heads[0]) == 16 && offsetof(preft_block_q4_K, qs) == 16,
               "a head is a ggml block's first 16 bytes, 16 apart (preft_dtype_row_offset)");

/* Block b of the R4 row at `row` (its address, as above) to a plain ggml
 * block, and back. */
void preft_quant_r4_block_get(const void *row, size_t b, preft_block_q4_K *out);
void preft_quant_r4_block_put(void *row, size_t b, const preft_block_q4_K *in);

/* rows (a multiple of 4) of a Q4_K matrix of k values a row to the R4
 * layout and back; dst may be src (in place). */
void preft_quant_to_r4(const void *src, void *dst, size_t rows, size_t k);
void preft_quant_from_r4(const void *src, void *dst, size_t rows, size_t k);

/* dst = row j of matrix w (type t, rows wrow = preft_dtype_row_bytes
 * apart) in the bytes of its stored type (preft_dtype_stored): an X4 or R4
 * row unpacked, any other copied. */
void preft_quant_row_plain(preft_dtype t, const void *w, size_t wrow, size_t j, size_t k, void *dst);

/* ---- rows ---- */

/* dst[0:n] = the values of a row of n elements of type t (any preft_dtype;
 * n a multiple of preft_dtype_block(t)). Bit-exact with ggml's
 * dequantize_row_* (same float operations in the same order). */
void preft_dequantize_row(preft_dtype t, const void *src, float *dst, size_t n);

/* dst = src[0:n] quantized to type t, as ggml's reference quantizers
 * (quantize_row_*_ref, no importance matrix) write it:
 *  - Q8_0: the same bytes.
 *  - Q4_0, Q5_0: the same bytes as ggml built with FMA contraction (what
 *    gguf-py's numpy quantizer reproduces): x/d + 8.5 is rounded once; a
 *    ggml built without FMA can differ in the last step of a value that
 *    lands exactly on a rounding edge.
 *  - Q4_K: make_qkx2_quants' search per sub-block of 32, then the 6-bit
 *    scales, as quantize_row_q4_K_ref; the same bytes wherever ggml's own
 *    float sums are not contracted into FMAs by its compiler.
 *  - Q6_K: make_qx_quants (rmse_type 1) per 16, as quantize_row_q6_K_ref.
 * Element types (F32/F16/BF16) convert with round-to-nearest-even. */
void preft_quantize_row(preft_dtype t, const float *src, void *dst, size_t n);

/* rows × k values (rows src_stride floats apart) quantized to type t into
 * dst (rows preft_dtype_row_bytes(t, k) apart), rows split over the pool:
 * the same bytes as preft_quantize_row row by row. Q4_K takes ~90 ns per
 * value on one core (its scale search), so a 1B model takes a minute. */
void preft_quantize_rows(preft_pool *pool, preft_dtype t, const float *src, size_t src_stride, void *dst,
                         int rows, int k);

/* ---- activations ---- */

typedef enum { PREFT_QACT_Q8_0 = 0, PREFT_QACT_Q8_K = 1 } preft_qact;

/* The activation format the dot products of weight type t take. */
static inline preft_qact preft_quant_act_of(preft_dtype t) {
  return preft_dtype_block(t) == PREFT_QK_K ? PREFT_QACT_Q8_K : PREFT_QACT_Q8_0;
}
/* Bytes of a quantized activation row of k values. */
static inline size_t preft_qact_row_bytes(preft_qact a, size_t k) {
  return a == PREFT_QACT_Q8_K ? k / PREFT_QK_K * sizeof(preft_block_q8_K)
                              : k / PREFT_QK * sizeof(preft_block_q8_0);
}

/* x[0:k] to Q8_0 blocks (ggml's quantize_row_q8_0_ref: d = amax/127,
 * q = roundf(x/d)). */
void preft_quantize_q8_0(const float *x, preft_block_q8_0 *y, size_t k);
/* x[0:k] to Q8_K blocks (ggml's quantize_row_q8_K_ref: d = max/-127 of the
 * value of largest magnitude, q = nearest(x/d), bsums). */
void preft_quantize_q8_K(const float *x, preft_block_q8_K *y, size_t k);
/* Rows: dst row i (dst_stride bytes apart) = row i of x (x_stride floats
 * apart) in format a; k a multiple of the format's block. */
void preft_quantize_act_rows(preft_qact a, void *dst, size_t dst_stride, const float *x, size_t x_stride,
                             int n, int k);

/* ---- dot products (references) ---- */

/* A weight row of k values of type t (quantized) with an activation row in
 * preft_quant_act_of(t): exact int32 sums per block, then per block
 * sum += d_w * d_x * isum (K-quants: minus the mins' term), as ggml's
 * ggml_vec_dot_*_generic. */
float preft_quant_dot_ref(preft_dtype t, const void *w, const void *xq, int k);

/* ---- products ---- */

/* y[N,M] (+)= x[N,K] · W[M,K]ᵀ for a quantized W (rows of
 * preft_dtype_row_bytes(wdt, K) bytes, K a multiple of the block): x is
 * quantized to the activation format once per call, then every weight row
 * is dotted with every row of x by the best kernel this CPU has (AVX2, or
 * AVX-VNNI / AVX512-VNNI), on the pool. preft_gemm and preft_gemm_multi
 * call this for quantized weights; preft_qgemm_multi runs several outputs
 * (q/k/v) as one pool job, sharing the quantized x. */
void preft_qgemm(preft_pool *pool, float *y, int y_stride, const float *x, int x_stride, const void *w,
                 preft_dtype wdt, int n, int k, int m, int accumulate);
void preft_qgemm_multi(preft_pool *pool, const float *x, int x_stride, int n, int k,
                       const preft_gemm_out *outs, int n_outs, int accumulate);

/* The same product on one thread with the reference dots (quant_ref.c). */
void preft_qgemm_ref(float *y, int y_stride, const float *x, int x_stride, const void *w, preft_dtype wdt,
                     int n, int k, int m, int accumulate);

/* The backward of the product for x (training adapters on a frozen
 * quantized base, QLoRA): dx[N,K] (+)= dy[N,M] · dequant(W)[M,K], FP32
 * (dy is not quantized). W is dequantized on the fly into FP32 tiles of a
 * few rows, never as a whole; multi-threaded over the pool. */
void preft_qgemm_dx(preft_pool *pool, float *dx, int dx_stride, const float *dy, int dy_stride, const void *w,
                    preft_dtype wdt, int n, int m, int k, int accumulate);

/* The name of the kernel preft_qgemm takes now for weight type t
 * ("portable", "avx2", "avx-vnni", "avx512-vnni"). */
const char *preft_qgemm_kernel_name(preft_dtype t);

#endif
