/* bench_lora_decode.c - the LoRA kernels of a decode step against the
 * machine's read bandwidth: every sequence has its own adapter, so each
 * decode row's shrink (t = x·Aᵀ, preft_gemm) and expand (y += t·Bt,
 * lora_kernels.h) read that adapter's A and Bt from memory, and nothing
 * else about the step matters to them (y and x are one row, in L1).
 *
 * Usage: bench_lora_decode [reps] [MB]
 * For the qwen2.5-0.5b module shapes at rank 16, F32 and BF16 adapters:
 * as many adapters as fill MB megabytes (default 256, far beyond the last-
 * level cache), one row each, on one thread; GB/s of
 *   shrink    preft_gemm on each adapter's A (lora.c's shrink),
 *   chunked   the expand's chunked kernel (preft_lora_expand_chunked),
 *   few-rows  preft_lora_expand at n = 1 (the kernel a decode row takes),
 *   read      a plain read of the same Bt buffers (preft_roofline_read_buffer_gbs,
 *             one thread), the ceiling all of them are held to;
 * each the median of `reps` rounds with the four interleaved, so that all
 * see the same minutes of a machine whose bandwidth drifts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/huge_alloc.h"
#include "base/timer.h"
#include "model/lora_kernels.h"
#include "tensor/gemm.h"
#include "tensor/roofline.h"

enum { RANK = 16, MAX_REPS = 101 };

typedef struct {
  const char *name;
  int in, out;
} shape;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* On huge pages, as adapters' A and Bt are (huge_alloc.h). */
static void *random_bytes(size_t bytes, preft_dtype dt, unsigned *seed) {
  void *p = preft_xalloc_big(bytes);
  for (size_t i = 0; i < bytes / preft_dtype_size(dt); i++) {
    float v = ((float)rand_r(seed) / RAND_MAX - 0.5f) * 0.04f;
    if (dt == PREFT_F32)
      ((float *)p)[i] = v;
    else
      ((uint16_t *)p)[i] = preft_f32_to_bf16(v);
  }
  return p;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 11;
  long mb = argc > 2 ? atol(argv[2]) : 256;
  if (reps < 1 || reps > MAX_REPS || mb < 1) {
    fprintf(stderr, "usage: bench_lora_decode [reps 1..%d] [MB >= 1]\n", MAX_REPS);
    return 2;
  }
  const shape shapes[] = {{"q/o", 896, 896}, {"k/v", 896, 128}, {"gate/up", 896, 4864}, {"down", 4864, 896}};
  const preft_dtype dts[] = {PREFT_F32, PREFT_BF16};
  unsigned seed = 1;
  float x[4864], y[4864], t[RANK];
  for (int i = 0; i < 4864; i++) x[i] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
  memset(y, 0, sizeof y);
  printf(
      "rank %d, one thread, %ld MB of adapters per row (one decode row per adapter), GB/s, median of %d\n\n",
      RANK, mb, reps);
  printf(
      "| dtype | module (in->out) | adapters | shrink | expand chunked | expand few-rows | read | "
      "few-rows / chunked | shrink, few-rows / read |\n|---|---|---|---|---|---|---|---|---|\n");
  for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      const preft_dtype dt = dts[d];
      const int in = shapes[s].in, out = shapes[s].out;
      const size_t a_bytes = (size_t)RANK * in * preft_dtype_size(dt),
                   b_bytes = (size_t)RANK * out * preft_dtype_size(dt);
      const int na = (int)((size_t)mb * 1000000 / b_bytes) + 1;
      char *a = random_bytes(a_bytes * (size_t)na, dt, &seed),
           *bt = random_bytes(b_bytes * (size_t)na, dt, &seed);
      double g[4][MAX_REPS];
      for (int r = 0; r < reps; r++) {
        double t0 = preft_now();
        for (int k = 0; k < na; k++)
          preft_gemm(NULL, t, RANK, x, in, a + (size_t)k * a_bytes, dt, 1, in, RANK, 0);
        double t1 = preft_now();
        for (int k = 0; k < na; k++)
          preft_lora_expand_chunked(y, (size_t)out, NULL, t, RANK, bt + (size_t)k * b_bytes, (size_t)out, dt,
                                    1, RANK, out);
        double t2 = preft_now();
        for (int k = 0; k < na; k++)
          preft_lora_expand(y, (size_t)out, NULL, t, RANK, bt + (size_t)k * b_bytes, (size_t)out, dt, 1, RANK,
                            out);
        double t3 = preft_now();
        g[0][r] = (double)a_bytes * na / (t1 - t0) / 1e9;
        g[1][r] = (double)b_bytes * na / (t2 - t1) / 1e9;
        g[2][r] = (double)b_bytes * na / (t3 - t2) / 1e9;
        g[3][r] = preft_roofline_read_buffer_gbs(NULL, bt, b_bytes * (size_t)na, 0.0);
      }
      double m[4];
      for (int q = 0; q < 4; q++) m[q] = median(g[q], reps);
      printf("| %s | %s (%d->%d) | %d | %.1f | %.1f | %.1f | %.1f | %.2fx | %.0f%%, %.0f%% |\n",
             preft_dtype_name(dt), shapes[s].name, in, out, na, m[0], m[1], m[2], m[3], m[2] / m[1],
             100 * m[0] / m[3], 100 * m[2] / m[3]);
      fflush(stdout);
      free(a);
      free(bt);
    }
  return y[0] == 12345.0f; /* keeps y live */
}
