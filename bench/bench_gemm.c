/* bench_gemm.c - preft_gemm speed against this machine's rooflines.
 *
 * Usage: bench_gemm [threads] [seconds-per-point] [path] [precision] [dtypes]
 *   path: portable|avx|avx2|avx512 caps the kernels (as PREFT_CPU does);
 *   precision: exact|bf16 (gemm.h); dtypes: a subset of "f32,f16,bf16".
 *
 * Prints the rooflines (FMA peak, memory read bandwidth, square SGEMM), then
 * for each weight type and shape (M, K) the GFLOP/s and the GB/s of weight
 * bytes at N = 1, 8, 16, 32, 64, 256 rows of x, each as a fraction of its
 * roofline: decode (N <= 8) against memory bandwidth, larger N against the
 * compute ceiling of the weight type at the current precision (the FP32 FMA
 * peak, or the vdpbf16ps peak for BF16 weights at bf16 precision).
 *
 * The weights cycle through enough copies (>= 256 MiB in all, one arena)
 * that every call reads them from memory, not from the last-level cache, as
 * the layers of a real model do. On a shared virtual machine the memory
 * bandwidth available drifts (here between about 33 and 58 GB/s from one
 * second to the next), so each decode point is compared with the read
 * bandwidth of the same arena measured right after it ("roof" column), and
 * each prefill point with the FMA peak measured right after it (other
 * programs on the machine slow both alike).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "base/timer.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/roofline.h"

#define ARENA_BYTES ((size_t)256 << 20)

static void fill_weights(void *w, preft_dtype dt, size_t count, uint32_t seed) {
  for (size_t i = 0; i < count; i++) {
    seed = seed * 1664525u + 1013904223u;
    float v = (float)(seed >> 8) * 0x1p-24f - 0.5f;
    if (dt == PREFT_F32)
      ((float *)w)[i] = v;
    else if (dt == PREFT_F16)
      ((uint16_t *)w)[i] = preft_f32_to_f16(v);
    else
      ((uint16_t *)w)[i] = preft_f32_to_bf16(v);
  }
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 0;
  double seconds = argc > 2 ? atof(argv[2]) : 0.3;
  if (argc > 3) { /* a path name caps the kernels, as PREFT_CPU does */
    int path = preft_cpu_path_parse(argv[3]);
    if (path < 0) {
      fprintf(stderr, "bench_gemm: unknown path %s (portable, avx, avx2, avx512)\n", argv[3]);
      return 2;
    }
    preft_cpu_limit((preft_cpu_path_kind)path);
  }
  if (argc > 4) {
    int prec = preft_matmul_precision_parse(argv[4]);
    if (prec < 0) {
      fprintf(stderr, "bench_gemm: unknown precision %s (exact, bf16)\n", argv[4]);
      return 2;
    }
    preft_matmul_set_precision((preft_matmul_precision)prec);
  }
  const char *dtypes = argc > 5 ? argv[5] : "f32,f16,bf16";
  preft_pool *pool = preft_pool_create(threads);
  threads = preft_pool_size(pool);

  double peak = preft_roofline_fma_gflops(pool, 1.0);
  double bw = preft_roofline_bandwidth_gbs(pool, 2.0);
  double sgemm = preft_roofline_sgemm_gflops(pool, 1024);
  printf("path %s, precision %s, %d threads\n", preft_cpu_path_name(preft_cpu_path()),
         preft_matmul_precision_name(preft_matmul_get_precision()), threads);
  printf(
      "roofline: FMA peak %.1f GFLOP/s | memory read (1 GiB) %.1f GB/s | "
      "preft_gemm F32 1024^3 %.1f GFLOP/s = %.0f%% of peak\n\n",
      peak, bw, sgemm, 100 * sgemm / peak);

  static const int shapes[][2] = {{4864, 896}, {896, 4864}, {8192, 2048}};
  static const int ns[] = {1, 8, 16, 32, 64, 256};
  printf("%-5s %6s %6s %4s %10s %9s %9s %10s %7s\n", "dtype", "M", "K", "N", "time_us", "GFLOP/s", "GB/s(w)",
         "roof", "of_roof");
  static const char *const dt_keys[] = {"f32", "f16", "bf16"};
  for (int dt = 0; dt < 3; dt++) {
    char key[8];
    snprintf(key, sizeof key, "%s", dt_keys[dt]);
    const char *hit = strstr(dtypes, key);
    if (!hit || (hit > dtypes && hit[-1] != ',') || (hit[strlen(key)] && hit[strlen(key)] != ',')) continue;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      int m = shapes[s][0], k = shapes[s][1];
      size_t wbytes = (size_t)m * (size_t)k * preft_dtype_size((preft_dtype)dt);
      size_t stride = (wbytes + 63) & ~(size_t)63;
      int copies = (int)((ARENA_BYTES + stride - 1) / stride);
      char *arena = preft_xmalloc((size_t)copies * stride);
      for (int c = 0; c < copies; c++)
        fill_weights(arena + (size_t)c * stride, (preft_dtype)dt, (size_t)m * (size_t)k, 7u + (uint32_t)c);
      float *x = preft_xmalloc((size_t)256 * (size_t)k * sizeof(float));
      float *y = preft_xmalloc((size_t)256 * (size_t)m * sizeof(float));
      for (size_t i = 0; i < (size_t)256 * (size_t)k; i++) x[i] = (float)(i % 17) * 0.01f - 0.08f;
      for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
        int n = ns[ni];
        double best = 1e30, start = preft_now();
        for (int rep = 0, c = 0; rep < 3 || preft_now() - start < seconds; rep++, c = (c + 1) % copies) {
          double t0 = preft_now();
          preft_gemm(pool, y, m, x, k, arena + (size_t)c * stride, (preft_dtype)dt, n, k, m, 0);
          double t = preft_now() - t0;
          if (t < best) best = t;
        }
        double gflops = 2.0 * n * (double)k * m / best * 1e-9, gbs = (double)wbytes / best * 1e-9;
        int decode = n <= 8;
        double roof = decode ? preft_roofline_read_buffer_gbs(pool, arena, (size_t)copies * stride, 0.2)
                             : preft_roofline_matmul_gflops(pool, (preft_dtype)dt, 0.1);
        printf("%-5s %6d %6d %4d %10.1f %9.1f %9.1f %5.1f %-4s %6.0f%%\n", preft_dtype_name((preft_dtype)dt),
               m, k, n, best * 1e6, gflops, gbs, roof, decode ? "GB/s" : "GF/s",
               100 * (decode ? gbs : gflops) / roof);
        fflush(stdout);
      }
      free(arena), free(x), free(y);
    }
  }
  preft_pool_free(pool);
  return 0;
}
