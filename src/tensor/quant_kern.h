/* quant_kern.h - internal: the kernels behind preft_qgemm (quant.h), one
 * table per instruction set. quant_gemm.c owns the threading and blocking;
 * a table knows how to dot a range of weight rows with a few activation
 * rows, and how to add a dequantized weight tile into the gradient of x.
 *
 * Legend: N rows of x (quantized to the weight type's activation format,
 * rows xqs bytes apart), K input features, weight rows wrow bytes apart.
 */
#ifndef PREFT_TENSOR_QUANT_KERN_H
#define PREFT_TENSOR_QUANT_KERN_H

#include <stddef.h>

#include "tensor/quant.h"

/* y[i*ys + j] = (accumulate ? y[i*ys + j] : 0) + dot(w row j, xq row i)
 * for i in [0, n), j in [j0, j1). */
typedef void (*preft_qrows_fn)(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow,
                               int n, int k, int j0, int j1, int accumulate);

/* dx[i*dxs + 0:kc] += sum_r dy[i*dys + r] * tile[r*kc + 0:kc] for i in
 * [0, n), r in [0, rows): one FP32 tile of dequantized weight rows added
 * into the x gradient (the backward of the product for x). kc is a
 * multiple of 8. */
typedef void (*preft_qtile_dx_fn)(float *dx, size_t dxs, const float *dy, size_t dys, const float *tile,
                                  int rows, int kc, int n);

#define PREFT_QTILE_MIN_N 16 /* below, the rows kernels (docs/KERNELS.md) */
/* Q8_0, Q4_0, Q4_K, Q6_K, Q5_0, Q4_0_X4, Q5_0_X4, Q4_K_R4: preft_dtype order from PREFT_Q8_0 */
#define PREFT_QKERN_TYPES (PREFT_N_LAYOUTS - PREFT_Q8_0)

typedef struct {
  preft_qrows_fn rows[PREFT_QKERN_TYPES]; /* by wdt - PREFT_Q8_0 */
  /* The same product for N >= PREFT_QTILE_MIN_N (at most 64 rows of x per
   * call) by weight tiles repacked once for every row of x; NULL: rows. */
  preft_qrows_fn tiles[PREFT_QKERN_TYPES];
  /* Optional (NULL: none): rows kernels that read x laid out once per
   * product by x_layout (x_layout_bytes(t, k) bytes a row; 0: the type
   * has none), so the tasks of a product share that work; called with xq
   * the laid-out rows and xqs their bytes. */
  preft_qrows_fn rows_laid[PREFT_QKERN_TYPES];
  size_t (*x_layout_bytes)(preft_dtype t, int k);
  void (*x_layout)(preft_dtype t, void *dst, const void *xq, size_t xqs, int n, int k);
  /* x quantized to the activation formats (preft_quantize_act_rows, the
   * same bytes) */
  void (*quantize_act)(preft_qact a, void *dst, size_t dst_stride, const float *x, size_t x_stride, int n,
                       int k);
  preft_qtile_dx_fn tile_dx;
  /* dst[0:n] = the values of a row of type t, bit-exact with
   * preft_dequantize_row (the tiles of the backward for x). */
  void (*dequant)(preft_dtype t, const void *src, float *dst, size_t n);
  const char *name;
} preft_quant_kernels;

/* The product for an in-memory layout t (X4, R4: quant.h) by `plain`, a
 * kernel of its stored type: the weight rows unpacked a few at a time
 * (quant_layout.c), for the tables without kernels of their own for t. */
void preft_qrows_via_plain(preft_qrows_fn plain, preft_dtype t, float *y, size_t ys, const void *xq,
                           size_t xqs, const void *w, size_t wrow, int n, int k, int j0, int j1,
                           int accumulate);
/* dst[0:n] = the values of an X4 row (layout t), a group at a time as the
 * plain type's four blocks through `plain` (a table's dequant, or
 * preft_dequantize_row). */
void preft_dequantize_x4_via(preft_dtype t, const void *src, float *dst, size_t n,
                             void (*plain)(preft_dtype t, const void *src, float *dst, size_t n));
/* The same for an R4 row (its address as preft_dtype_row_offset gives it):
 * a block at a time as Q4_K through `plain`. */
void preft_dequantize_r4_via(const void *src, float *dst, size_t n,
                             void (*plain)(preft_dtype t, const void *src, float *dst, size_t n));
#define PREFT_QROWS_VIA_PLAIN(NAME, PLAIN, T, ATTR)                                                         \
  ATTR void NAME(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n, int k, \
                 int j0, int j1, int accumulate) {                                                          \
    preft_qrows_via_plain(PLAIN, T, y, ys, xq, xqs, w, wrow, n, k, j0, j1, accumulate);                     \
  }

/* CALL with NRC the constant nr (1..4; above 4: 4): a kernel specialised
 * on a constant number of rows of x keeps its accumulators in registers. */
#define PREFT_QDISPATCH_NR(nr, CALL) \
  switch (nr) {                      \
    case 1: {                        \
      enum { NRC = 1 };              \
      CALL;                          \
    } break;                         \
    case 2: {                        \
      enum { NRC = 2 };              \
      CALL;                          \
    } break;                         \
    case 3: {                        \
      enum { NRC = 3 };              \
      CALL;                          \
    } break;                         \
    default: {                       \
      enum { NRC = 4 };              \
      CALL;                          \
    }                                \
  }

extern const preft_quant_kernels preft_quant_portable;
#if defined(__x86_64__) || defined(__i386__)
#define PREFT_HAVE_QUANT_AVX 1
extern const preft_quant_kernels preft_quant_avx2;       /* AVX2 + FMA + F16C: maddubs/madd */
extern const preft_quant_kernels preft_quant_avxvnni;    /* + AVX-VNNI: vpdpbusd on ymm */
extern const preft_quant_kernels preft_quant_avx512vnni; /* + AVX512-VNNI/VL/BW: vpdpbusd, zmm kernels */
#endif

#ifdef PREFT_HAVE_QUANT_AVX
/* The AVX512-VNNI tiles (quant_tile16.c): the same product as a
 * preft_qrows_fn for the whole tiles of 16 weight rows in [j0, j1); returns
 * the first row not done. Bit-identical with preft_qgemm_ref. */
#define PREFT_QTILE16_DECL(T)                                                                               \
  int preft_qtile16_##T(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n, \
                        int k, int j0, int j1, int accumulate);
PREFT_QTILE16_DECL(q8_0)
PREFT_QTILE16_DECL(q4_0)
PREFT_QTILE16_DECL(q5_0)
PREFT_QTILE16_DECL(q4_K)
PREFT_QTILE16_DECL(q6_K)
PREFT_QTILE16_DECL(q4_0x4)
PREFT_QTILE16_DECL(q5_0x4)
PREFT_QTILE16_DECL(q4_Kr4)
#undef PREFT_QTILE16_DECL

/* The AVX512-VNNI rows kernels on zmm, preft_qrows_fn: of the K-quants
 * and Q4_K's R4 layout (quant_rows512.c), bit-identical with
 * preft_qgemm_ref; of Q4_0 / Q5_0 and
 * their X4 layouts (quant_rows512_q5.c), within test_quant's tolerance;
 * Q4_0 / Q5_0, their X4 layouts and Q4_K (R4 too) also as rows_laid, x laid
 * out once per product: preft_qx512_layout (preft_qx512_layout_bytes a
 * row) for the Q4_0 / Q5_0 families, preft_qx512_layout_q4_K for Q4_K; the table's
 * x_layout picks by type (quant_avx_body.h). */
#define PREFT_QROWS512_DECL(NAME)                                                                      \
  void NAME(float *y, size_t ys, const void *xq, size_t xqs, const void *w, size_t wrow, int n, int k, \
            int j0, int j1, int accumulate);
PREFT_QROWS512_DECL(preft_qrows512_q4_K)
PREFT_QROWS512_DECL(preft_qrows512_q6_K)
PREFT_QROWS512_DECL(preft_qrows512_q4_0)
PREFT_QROWS512_DECL(preft_qrows512_q5_0)
PREFT_QROWS512_DECL(preft_qrows512_q4_0x4)
PREFT_QROWS512_DECL(preft_qrows512_q5_0x4)
PREFT_QROWS512_DECL(preft_qrows512_laid_q4_0)
PREFT_QROWS512_DECL(preft_qrows512_laid_q5_0)
PREFT_QROWS512_DECL(preft_qrows512_laid_q4_0x4)
PREFT_QROWS512_DECL(preft_qrows512_laid_q5_0x4)
PREFT_QROWS512_DECL(preft_qrows512_laid_q4_K)
PREFT_QROWS512_DECL(preft_qrows512_q4_Kr4)
PREFT_QROWS512_DECL(preft_qrows512_laid_q4_Kr4)
#undef PREFT_QROWS512_DECL
size_t preft_qx512_layout_bytes(preft_dtype t, int k);
void preft_qx512_layout(preft_dtype t, void *dst, const void *xq, size_t xqs, int n, int k);
size_t preft_qx512_layout_bytes_q4_K(int k);
void preft_qx512_layout_q4_K(void *dst, const void *xq, size_t xqs, int n, int k);

/* The activations' quantization on zmm (quant_act512.c), bytes as
 * preft_quantize_act_rows. */
void preft_quantize_act_rows_avx512(preft_qact a, void *dst, size_t dst_stride, const float *x,
                                    size_t x_stride, int n, int k);
#endif

/* Caps the kernels preft_qgemm picks (tests run every table the CPU has):
 * 0 portable, 1 avx2, 2 avx-vnni, 3 avx512-vnni; 3 lifts the cap. */
void preft_qgemm_limit(int most);
/* The smallest N that takes the tile kernels (default PREFT_QTILE_MIN_N;
 * tests and the benchmark move it; INT_MAX: never). */
void preft_qgemm_tile_min_n(int n);

/* The table for a cap level if this CPU runs it, else NULL. */
const preft_quant_kernels *preft_quant_kernels_at(int level);

#endif
