/* lora_kernels.h - the expand half of a LoRA delta over the rows of one
 * adapter group, for small rank (lora.c runs it per group and row chunk,
 * or per run of rows inside a block of the base product's output).
 *
 * Legend: n rows of the group, R rank, out the columns to update.
 * Bt is lora_B transposed, [R, ·] with rows bt_ld elements apart
 * (preft_lora_transpose_b, done once at load; a block of columns j0.. of a
 * module's Bt is bt + j0 elements with bt_ld the module's width); t[n, R]
 * is the already scaled shrink x·Aᵀ, rows t_stride floats apart.
 *
 *   expand:  y[n, out] += t[n, R] · Bt[R, out]
 *
 * Why not preft_gemm: with K = R (often 8..64) its dot kernel reduces
 * horizontally once per output element, and its packed kernel packs a
 * 16-column panel of B to use it for only the group's few rows. Here each
 * loaded chunk of Bt serves every row of the group, with broadcast FMAs
 * and no reductions. (The shrink, K = in, is the shape preft_gemm is made
 * for, and lora.c calls it.)
 *
 * Row i of y is y + rows[i]·y_stride, or row i when rows is NULL, so rows
 * of a group scattered over the batch are written in place. Bt is F32, F16
 * or BF16, converted to FP32 in registers; compute is FP32. Single-threaded;
 * takes the AVX+FMA+F16C path when preft_cpu_path() allows, plain C
 * otherwise. Cannot fail.
 *
 * Each y element is y + Σ_r t[r]·Bt[r] summed in rank order, with one
 * rounding per term on the AVX path (FMA, also in its column tail) and two
 * in plain C; which block of columns an element is computed in never
 * changes its value, so a product split into blocks (the fused path)
 * matches the whole-width call bit for bit.
 */
#ifndef PREFT_MODEL_LORA_KERNELS_H
#define PREFT_MODEL_LORA_KERNELS_H

#include <stddef.h>

#include "tensor/dtype.h"

void preft_lora_expand(float *y, size_t y_stride, const int *rows, const float *t, size_t t_stride,
                       const void *bt, size_t bt_ld, preft_dtype bdt, int n, int rank, int out);

/* The same with the chunked kernel whatever n (preft_lora_expand takes it
 * above 4 rows and a few-rows kernel up to 4): the same bits, for the tests
 * and benchmarks that compare the two. */
void preft_lora_expand_chunked(float *y, size_t y_stride, const int *rows, const float *t, size_t t_stride,
                               const void *bt, size_t bt_ld, preft_dtype bdt, int n, int rank, int out);

/* bt[R, out] = b[out, R]ᵀ, elements copied bit for bit (same dtype). */
void preft_lora_transpose_b(void *bt, const void *b, preft_dtype dt, int out, int rank);

#endif
