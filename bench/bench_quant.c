/* bench_quant.c - the quantized matrix products (tensor/quant.h) against
 * this machine's memory read roofline, measured in the same run.
 *
 * Usage: bench_quant [threads] [seconds-per-point] [kernels] [dtypes] [ns] [hot]
 *   kernels: portable|avx2|avx-vnni|avx512-vnni caps the quantized kernels
 *            (default: the best this CPU runs);
 *   dtypes:  a subset of "q8_0,q4_0,q5_0,q4_k,q6_k,bf16,q4_0x4,q5_0x4,q4_kr4"
 *            (the X4 and R4 layouts the loader repacks Q4_0 / Q5_0 / Q4_K
 *            to; bf16: preft_gemm's
 *            BF16 kernels on the same shapes, for comparison), plus "dx"
 *            to time preft_qgemm_dx (the QLoRA backward for x) at the
 *            largest N;
 *   ns:      rows of x, e.g. "1,4,16,64,256";
 *   hot:     one copy of the weights (from the caches after the first call)
 *            and the calling thread's CPU time instead of wall time, with 1
 *            thread: the kernels' own speed per core, which other programs
 *            on a shared machine change far less than they change memory
 *            bandwidth and wall time.
 *
 * Shapes: the projections of Qwen2.5-0.5B (D 896, F 4864) and Llama-3.2-1B
 * (D 2048, F 8192), M × K = out × in; K must be a multiple of the type's
 * block (K = 896 has no Q4_K / Q6_K: llama.cpp stores those tensors in a
 * fallback type). For each point: the best time over the run, GFLOP/s
 * (2·N·M·K), GB/s of weight bytes, and for N <= 4 the read bandwidth of the
 * same weight arena measured right after (preft_roofline_read_buffer_gbs:
 * on a shared virtual machine the bandwidth drifts from second to second,
 * so only close measurements compare). The weights cycle through copies
 * filling >= 256 MiB, so every call reads them from memory as a model's
 * layers do. Weights are random blocks with finite scales (speed does not
 * depend on the values).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "base/timer.h"
#include <time.h>
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/quant.h"
#include "tensor/quant_kern.h"
#include "tensor/roofline.h"

#define ARENA_BYTES ((size_t)256 << 20)

static double thread_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t rng = 12345u;
static uint32_t next(void) { return rng = rng * 1664525u + 1013904223u; }

/* Random blocks of type t with finite fp16 scales of magnitude ~1e-2. */
static void fill_random(unsigned char *w, preft_dtype t, int m, int k) {
  size_t bytes = preft_dtype_row_bytes(t, (size_t)k) * (size_t)m, bb = preft_dtype_block_bytes(t);
  for (size_t i = 0; i < bytes; i++) w[i] = (unsigned char)(next() >> 24);
  if (!preft_dtype_is_quant(t)) {
    for (size_t i = 0; i < bytes / 2; i++)
      ((uint16_t *)w)[i] = preft_f32_to_bf16((float)(next() >> 8) * 0x1p-24f - 0.5f);
    return;
  }
  for (size_t b = 0; b < bytes / bb; b++) {
    unsigned char *p = w + b * bb;
    uint16_t d = preft_f32_to_f16(((float)(next() >> 8) * 0x1p-24f + 0.5f) * 0.01f);
    if (preft_dtype_is_x4(t)) { /* an X4 group's four d are its last 8 bytes */
      for (int i = 0; i < 4; i++) memcpy(p + bb - 8 + 2 * i, &d, 2);
      continue;
    }
    size_t off = t == PREFT_Q6_K ? 208 : 0;
    memcpy(p + off, &d, 2);
    if (preft_dtype_stored(t) == PREFT_Q4_K) memcpy(p + 2, &d, 2);
  }
  /* R4: ggml's Q4_K blocks, filled as above, regrouped (m is a multiple of 4) */
  if (preft_dtype_is_r4(t)) preft_quant_to_r4(w, w, (size_t)m, (size_t)k);
}

static int listed(const char *list, const char *key) {
  size_t n = strlen(key);
  for (const char *p = list; (p = strstr(p, key)); p += n)
    if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
  return 0;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 0;
  double seconds = argc > 2 ? atof(argv[2]) : 0.3;
  if (argc > 3 && argv[3][0]) {
    static const char *const names[] = {"portable", "avx2", "avx-vnni", "avx512-vnni"};
    int level = -1;
    for (int i = 0; i < 4; i++)
      if (!strcmp(argv[3], names[i])) level = i;
    if (level < 0 || !preft_quant_kernels_at(level)) {
      fprintf(stderr,
              "bench_quant: kernels %s unknown or not on this CPU (portable, avx2, avx-vnni, avx512-vnni)\n",
              argv[3]);
      return 2;
    }
    preft_qgemm_limit(level);
  }
  const char *dtypes = argc > 4 ? argv[4] : "q8_0,q4_0,q4_k,q6_k,bf16";
  if (getenv("PREFT_QTILE_MIN_N"))
    preft_qgemm_tile_min_n(atoi(getenv("PREFT_QTILE_MIN_N"))); /* experiments */
  const char *nlist = argc > 5 ? argv[5] : "1,4,16,64,256";
  int ns[16], n_ns = 0;
  for (const char *p = nlist; *p && n_ns < 16;) {
    ns[n_ns++] = atoi(p);
    p = strchr(p, ',');
    if (!p) break;
    p++;
  }
  int hot = argc > 6 && !strcmp(argv[6], "hot");
  if (hot) threads = 1;
  double (*clock_fn)(void) = hot ? thread_cpu_now : preft_now;
  preft_pool *pool = preft_pool_create(threads);
  threads = preft_pool_size(pool);

  double peak = preft_roofline_fma_gflops(pool, 0.5);
  double bw = preft_roofline_bandwidth_gbs(pool, 1.0);
  printf("quantized kernels %s (CPU path %s, avx-vnni %s, avx512-vnni %s), %d threads\n",
         preft_qgemm_kernel_name(PREFT_Q4_K), preft_cpu_path_name(preft_cpu_path()),
         preft_cpu_has_avx_vnni() ? "yes" : "no", preft_cpu_has_avx512_vnni() ? "yes" : "no", threads);
  printf("roofline: FP32 FMA peak %.1f GFLOP/s | memory read (1 GiB) %.1f GB/s\n", peak, bw);
  printf("%s\n\n",
         hot ? "hot: weights from the caches, CPU time of the one thread" : "weights from memory, wall time");

  static const struct {
    const char *model;
    int m, k;
  } shapes[] = {{"qwen0.5b q/o", 896, 896},  {"qwen0.5b gate/up", 4864, 896}, {"qwen0.5b down", 896, 4864},
                {"llama1b q/o", 2048, 2048}, {"llama1b gate/up", 8192, 2048}, {"llama1b down", 2048, 8192}};
  static const struct {
    const char *key;
    preft_dtype t;
  } types[] = {{"q8_0", PREFT_Q8_0},      {"q4_0", PREFT_Q4_0},      {"q5_0", PREFT_Q5_0},
               {"q4_k", PREFT_Q4_K},      {"q6_k", PREFT_Q6_K},      {"bf16", PREFT_BF16},
               {"q4_0x4", PREFT_Q4_0_X4}, {"q5_0x4", PREFT_Q5_0_X4}, {"q4_kr4", PREFT_Q4_K_R4}};
  printf("%-5s %-17s %5s %5s %4s %9s %8s %8s %7s %7s\n", "dtype", "shape", "M", "K", "N", "time_us",
         "GFLOP/s", "GB/s(w)", "roofGB", "of_roof");
  for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
    if (!listed(dtypes, types[ti].key)) continue;
    preft_dtype t = types[ti].t;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
      int m = shapes[s].m, k = shapes[s].k;
      if (k % (int)preft_dtype_block(t)) continue;
      size_t wbytes = preft_dtype_row_bytes(t, (size_t)k) * (size_t)m;
      size_t stride = (wbytes + 63) & ~(size_t)63;
      int copies = hot ? 1 : (int)((ARENA_BYTES + stride - 1) / stride);
      unsigned char *arena = preft_xmalloc((size_t)copies * stride);
      fill_random(arena, t, m, k);
      for (int c = 1; c < copies; c++) memcpy(arena + (size_t)c * stride, arena, wbytes);
      int nmax = 1;
      for (int i = 0; i < n_ns; i++) nmax = ns[i] > nmax ? ns[i] : nmax;
      float *x = preft_xmalloc((size_t)nmax * (size_t)k * sizeof(float));
      float *y = preft_xmalloc((size_t)nmax * (size_t)m * sizeof(float));
      for (size_t i = 0; i < (size_t)nmax * (size_t)k; i++) x[i] = (float)(next() >> 8) * 0x1p-24f - 0.5f;
      for (int ni = 0; ni < n_ns; ni++) {
        int n = ns[ni];
        double best = 1e30, start = preft_now();
        for (int rep = 0, c = 0; rep < 3 || preft_now() - start < seconds; rep++, c = (c + 1) % copies) {
          double t0 = clock_fn();
          preft_gemm(pool, y, m, x, k, arena + (size_t)c * stride, t, n, k, m, 0);
          double el = clock_fn() - t0;
          if (el < best) best = el;
        }
        double gflops = 2.0 * n * (double)k * m / best * 1e-9, gbs = (double)wbytes / best * 1e-9;
        if (n <= 4 && !hot) {
          double roof = preft_roofline_read_buffer_gbs(pool, arena, (size_t)copies * stride, 0.2);
          printf("%-5s %-17s %5d %5d %4d %9.1f %8.1f %8.1f %7.1f %6.0f%%\n", types[ti].key, shapes[s].model,
                 m, k, n, best * 1e6, gflops, gbs, roof, 100 * gbs / roof);
        } else {
          printf("%-5s %-17s %5d %5d %4d %9.1f %8.1f %8.1f %7s %7s\n", types[ti].key, shapes[s].model, m, k,
                 n, best * 1e6, gflops, gbs, "-", "-");
        }
        fflush(stdout);
      }
      /* the backward for x of a QLoRA step (dequantized FP32 tiles) */
      if (listed(dtypes, "dx") && preft_dtype_is_quant(t)) {
        float *dx = preft_xmalloc((size_t)nmax * (size_t)k * sizeof(float));
        double best = 1e30, start = preft_now();
        for (int rep = 0, c = 0; rep < 2 || preft_now() - start < seconds; rep++, c = (c + 1) % copies) {
          double t0 = clock_fn();
          preft_qgemm_dx(pool, dx, k, y, m, arena + (size_t)c * stride, t, nmax, m, k, 0);
          double el = clock_fn() - t0;
          if (el < best) best = el;
        }
        printf("%-5s %-17s %5d %5d %4d %9.1f %8.1f %8s %7s %7s  (backward dx = dy . W)\n", types[ti].key,
               shapes[s].model, m, k, nmax, best * 1e6, 2.0 * nmax * (double)k * m / best * 1e-9, "-", "-",
               "-");
        free(dx);
      }
      free(arena), free(x), free(y);
    }
  }
  preft_pool_free(pool);
  return 0;
}
