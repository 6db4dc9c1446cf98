/* bench_lora.c - the LoRA delta of one module on one thread: the small-rank
 * expand (lora_kernels.h) against the preft_gemm call it replaced, and the
 * whole delta, old and new, as a share of the module's base GEMM.
 *
 * Usage: bench_lora [rank] [reps] [exact|bf16]   (matmul precision, gemm.h)
 * Per module shape of qwen2.5-0.5b and rows n: microseconds of
 *   base      y += x·Wᵀ (W [out, in] BF16),
 *   shrink    t = x·Aᵀ, t *= s with preft_gemm (both versions of lora.c),
 *   exp gemm  y += t·Bᵀ with preft_gemm (the old lora.c),
 *   exp kern  preft_lora_expand (Bt transposed at load; the new lora.c),
 * and "g64": 64 one-row groups with 64 different adapters (a decode step of
 * all-token LoRA), where A and B come from memory rather than cache.
 * Each figure is the best of `reps` runs, the three methods interleaved, so
 * a shared, noisy machine still gives comparable numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/lora_kernels.h"
#include "tensor/gemm.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void *rand_weights(size_t n, preft_dtype dt, unsigned *seed) {
  uint16_t *h = malloc(n * preft_dtype_size(dt));
  float *f = (float *)h;
  for (size_t i = 0; i < n; i++) {
    float v = ((float)rand_r(seed) / RAND_MAX - 0.5f) * 0.04f;
    if (dt == PREFT_F32)
      f[i] = v;
    else
      h[i] = dt == PREFT_BF16 ? preft_f32_to_bf16(v) : preft_f32_to_f16(v);
  }
  return h;
}

typedef struct {
  const char *name;
  int in, out;
} shape;

int main(int argc, char **argv) {
  int rank = argc > 1 ? atoi(argv[1]) : 16, reps = argc > 2 ? atoi(argv[2]) : 20;
  if (argc > 3) {
    int p = preft_matmul_precision_parse(argv[3]);
    if (p < 0) {
      fprintf(stderr, "bench_lora: precision %s is neither exact nor bf16\n", argv[3]);
      return 2;
    }
    preft_matmul_set_precision((preft_matmul_precision)p);
  }
  const shape shapes[] = {{"q/o", 896, 896}, {"k/v", 896, 128}, {"gate/up", 896, 4864}, {"down", 4864, 896}};
  const int ns[] = {1, 4, 16, 64, 128};
  const preft_dtype dts[] = {PREFT_BF16, PREFT_F16, PREFT_F32};
  enum { G = 64 };
  unsigned seed = 1;
  float *x = malloc(sizeof(float) * 128 * 4864), *y = calloc(128 * 4864, sizeof(float));
  float *t = malloc(sizeof(float) * 128 * (size_t)rank);
  for (int i = 0; i < 128 * 4864; i++) x[i] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
  printf("rank %d, one thread, best of %d, microseconds; base: the module's own GEMM (BF16 W)\n", rank, reps);
  printf("%-5s %-8s %4s | %9s %9s | %9s %9s %6s | %9s %9s\n", "dtype", "module", "n", "base", "shrink",
         "exp gemm", "exp kern", "speed", "old/base", "new/base");
  for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
    preft_dtype dt = dts[d];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      int in = shapes[s].in, out = shapes[s].out;
      void *w = rand_weights((size_t)in * out, PREFT_BF16, &seed);
      void *a[G], *b[G], *bt[G];
      for (int g = 0; g < G; g++) {
        a[g] = rand_weights((size_t)rank * in, dt, &seed);
        b[g] = rand_weights((size_t)rank * out, dt, &seed);
        bt[g] = malloc((size_t)rank * out * preft_dtype_size(dt));
        preft_lora_transpose_b(bt[g], b[g], dt, out, rank);
      }
      for (size_t k = 0; k <= sizeof ns / sizeof ns[0]; k++) {
        int all = k == sizeof ns / sizeof ns[0], n = all ? 1 : ns[k], groups = all ? G : 1;
        double best[4] = {1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < reps; r++) {
          double c[5];
          c[0] = now_us();
          if (!all) preft_gemm(NULL, y, out, x, in, w, PREFT_BF16, n, in, out, 1);
          c[1] = now_us();
          for (int g = 0; g < groups; g++) {
            preft_gemm(NULL, t + (size_t)g * rank * all, rank, x + (size_t)g * in * all, in, a[g], dt, n, in,
                       rank, 0);
            for (int i = 0; i < n * rank; i++) t[(size_t)g * rank * all + i] *= 0.5f;
          }
          c[2] = now_us();
          for (int g = 0; g < groups; g++)
            preft_gemm(NULL, y + (size_t)g * out * all, out, t + (size_t)g * rank * all, rank, b[g], dt, n,
                       rank, out, 1);
          c[3] = now_us();
          for (int g = 0; g < groups; g++)
            preft_lora_expand(y + (size_t)g * out * all, (size_t)out, NULL, t + (size_t)g * rank * all,
                              (size_t)rank, bt[g], (size_t)out, dt, n, rank, out);
          c[4] = now_us();
          for (int q = 0; q < 4; q++) best[q] = c[q + 1] - c[q] < best[q] ? c[q + 1] - c[q] : best[q];
        }
        char nn[16];
        snprintf(nn, sizeof nn, all ? "g%d" : "%d", all ? G : n);
        double old = best[1] + best[2], neu = best[1] + best[3];
        printf("%-5s %-8s %4s | %9.1f %9.1f | %9.1f %9.1f %5.2fx", preft_dtype_name(dt), shapes[s].name, nn,
               all ? 0.0 : best[0], best[1], best[2], best[3], best[2] / best[3]);
        if (all)
          printf(" | %9s %9s\n", "-", "-");
        else
          printf(" | %8.1f%% %8.1f%%\n", 100 * old / best[0], 100 * neu / best[0]);
      }
      for (int g = 0; g < G; g++) {
        free(a[g]);
        free(b[g]);
        free(bt[g]);
      }
      free(w);
    }
  }
  free(x);
  free(y);
  free(t);
  return 0;
}
