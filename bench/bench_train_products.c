/* bench_train_products.c - the training forward's product at BF16 matmul
 * precision, the two ways gemm_train.c can take for an FP32 weight:
 *   packed  preft_gemm_bf16_f32w_multi: each panel of W rounded as it is
 *           packed for the 12 × 32 vdpbf16ps tile (what preft_train_gemm
 *           runs from BF16_PACKED_MIN_ROWS rows of x on);
 *   rows    preft_round_bf16 of the whole W into a copy, then the rows
 *           kernel on it (preft_gemm_bf16; what it runs below that);
 * on the training shapes of bench_train (width 512: q/o 512 × 512, gate/up
 * 1344 × 512, down 512 × 1344) and a Qwen2.5-0.5B MLP matrix (4864 × 896,
 * 17 MB: W from memory), for N rows of x. GFLOP/s of each, best of `reps`
 * with the two interleaved call by call (the same minutes of a shared
 * machine), W written once before (hot in the caches where it fits), and
 * their ratio. Only on CPUs with AVX512_BF16 (elsewhere both are
 * emulations).
 *
 * usage: bench_train_products [--threads N] [--reps R] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "base/timer.h"
#include "tensor/gemm.h"
#include "tensor/gemm_train.h"

static float *filled(size_t n) {
  float *p = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) p[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-3f;
  return p;
}

int main(int argc, char **argv) {
  int threads = 0, reps = 60;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else {
      const int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
      fprintf(help ? stdout : stderr, "usage: bench_train_products [--threads N] [--reps R]\n");
      return help ? 0 : 2;
    }
  }
  if (!preft_gemm_bf16_native()) {
    printf("no AVX512_BF16 on this CPU: both ways are emulations, nothing to compare\n");
    return 0;
  }
  preft_pool *pool = preft_pool_create(threads);
  static const int shapes[][2] = {{512, 512}, {1344, 512}, {512, 1344}, {4864, 896}}; /* M × K */
  static const int ns[] = {16, 32, 64, 128, 256, 512};
  printf("BF16 forward of an FP32 W, %d threads, best of %d: GFLOP/s packed / rows (ratio)\n",
         preft_pool_size(pool), reps);
  printf("| M × K | N = 16 | 32 | 64 | 128 | 256 | 512 |\n|---|---|---|---|---|---|---|\n");
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int m = shapes[s][0], k = shapes[s][1];
    float *w = filled((size_t)m * k), *x = filled((size_t)512 * k),
          *y = malloc(sizeof(float) * 512 * (size_t)m);
    uint16_t *wb = malloc(sizeof(uint16_t) * (size_t)m * k);
    printf("| %d × %d |", m, k);
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
      const int n = ns[ni];
      preft_gemm_out out = {.y = y, .y_stride = m, .w = w, .wdt = PREFT_F32, .m = m};
      double best[2] = {1e30, 1e30};
      for (int r = 0; r < reps; r++) {
        double t0 = preft_now();
        preft_gemm_bf16_f32w_multi(pool, x, k, n, k, &out, 1, 0);
        double t1 = preft_now();
        preft_round_bf16(pool, wb, w, (size_t)m * k);
        preft_gemm_bf16(pool, y, m, x, k, wb, n, k, m, 0);
        double t2 = preft_now();
        best[0] = t1 - t0 < best[0] ? t1 - t0 : best[0];
        best[1] = t2 - t1 < best[1] ? t2 - t1 : best[1];
      }
      const double gflop = 2.0 * n * k * m * 1e-9;
      printf(" %.0f / %.0f (%.2fx) |", gflop / best[0], gflop / best[1], best[1] / best[0]);
      fflush(stdout);
    }
    printf("\n");
    free(w);
    free(x);
    free(y);
    free(wb);
  }
  preft_pool_free(pool);
  return 0;
}
