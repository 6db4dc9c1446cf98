/* roofline.h - what this machine can do at best, measured, so kernel speed
 * can be stated as a fraction of it (docs/KERNELS.md).
 *
 * All three run on every thread of the pool (NULL: one thread) and return
 * the best of several timed repetitions; they take roughly `seconds` of
 * wall time (at least one repetition). They allocate and free their own
 * buffers and never fail except by aborting on out-of-memory.
 *
 *  preft_roofline_fma_gflops: peak FP32 GFLOP/s (one FMA = 2 FLOP) of the
 *    SIMD path the kernels take now (preft_cpu_path): a loop of FMAs on 12
 *    independent registers, with no memory traffic. With AVX+FMA this is
 *    8 lanes × 2 FLOP × FMA issue rate × clock × threads, on the avx512
 *    path 16 lanes (its FP32 kernels use zmm); a compute-bound kernel
 *    (prefill GEMM) cannot beat it.
 *
 *  preft_roofline_bf16dot_gflops: the same for vdpbf16ps (32 BF16 products
 *    summed into 16 FP32 lanes per instruction: 64 FLOP), the ceiling of
 *    BF16 weights at BF16 matmul precision (gemm.h); 0 when the kernels'
 *    path has no AVX512_BF16. preft_roofline_matmul_gflops is whichever
 *    of the two bounds preft_gemm on weights of type wdt at the current
 *    precision.
 *
 *  preft_roofline_bandwidth_gbs: read bandwidth from main memory in GB/s
 *    (1e9 bytes/s): all threads XOR-fold disjoint chunks of a 1 GiB buffer, far
 *    beyond the last-level cache, with SIMD loads; the better of a single
 *    sequential stream and four prefetched streams per chunk (the decode
 *    GEMM's pattern), since either can win depending on the machine's
 *    state. A memory-bound kernel (decode GEMM, whose traffic is its
 *    weights) should not beat it by more than measurement noise.
 *    preft_roofline_read_gbs does the same over a fresh buffer of `bytes`
 *    (small buffers measure a cache level instead of memory), and
 *    preft_roofline_read_buffer_gbs over the caller's buffer (any bytes:
 *    preft_roofline_probe_alloc makes one with every page mapped, for
 *    repeated probes that skip the page faults of a fresh buffer),
 *    e.g. the very weights a benchmark
 *    reads, so that both see the same pages at the same time: on a shared
 *    (virtual) machine the bandwidth available changes from second to
 *    second, and a ratio is only meaningful between close measurements.
 *
 *  preft_roofline_sgemm_gflops: preft_gemm itself on a square FP32 problem
 *    y[n,n] = x[n,n] · w[n,n]ᵀ, in GFLOP/s (2n³ FLOP per product); compare
 *    with the FMA peak for the GEMM's efficiency.
 */
#ifndef PREFT_TENSOR_ROOFLINE_H
#define PREFT_TENSOR_ROOFLINE_H

#include <stddef.h>

#include "base/threadpool.h"
#include "tensor/dtype.h"

double preft_roofline_fma_gflops(preft_pool *pool, double seconds);
double preft_roofline_bf16dot_gflops(preft_pool *pool, double seconds);
double preft_roofline_matmul_gflops(preft_pool *pool, preft_dtype wdt, double seconds);
#define PREFT_ROOFLINE_READ_BYTES ((size_t)1 << 30) /* preft_roofline_bandwidth_gbs's buffer */
double preft_roofline_bandwidth_gbs(preft_pool *pool, double seconds);
double preft_roofline_read_gbs(preft_pool *pool, size_t bytes, double seconds);
double preft_roofline_read_buffer_gbs(preft_pool *pool, const void *buf, size_t bytes, double seconds);
/* *bytes rounded up to 64 bytes, every page written (free() it) */
void *preft_roofline_probe_alloc(size_t *bytes);
double preft_roofline_sgemm_gflops(preft_pool *pool, int n);

#endif
