/* bench_lora_fused.c - one module's base product with its LoRA delta, on
 * the fused path (shrink pass, then the expand in the base product's
 * epilogue) against the unfused one (base product, then shrink and expand
 * per group), and the base product alone (adapter_plan.h).
 *
 * Usage: bench_lora_fused [reps] [threads] [exact|bf16]
 * qwen2.5-0.5b module shapes, BF16 base weights, rank-16 F32 adapters (as
 * `preft bench adapter-step`), two batches:
 *   decode  32 rows, each with its own adapter (all-token LoRA's step);
 *   prefill 64 rows of one adapter (a prompt: what LoRA-P pays on it).
 * Each figure is the best of `reps` runs with base, unfused and fused
 * interleaved: on a machine shared with other work the best run is the one
 * least disturbed, and the three see the same conditions. Overheads are
 * against the base product. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/threadpool.h"
#include "model/adapter.h"
#include "model/adapter_plan.h"
#include "tensor/gemm.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 30, threads = argc > 2 ? atoi(argv[2]) : 1;
  if (argc > 3) {
    int p = preft_matmul_precision_parse(argv[3]);
    if (p < 0) {
      fprintf(stderr, "bench_lora_fused: precision %s is neither exact nor bf16\n", argv[3]);
      return 2;
    }
    preft_matmul_set_precision((preft_matmul_precision)p);
  }
  if (reps < 1 || threads < 1) {
    fprintf(stderr, "usage: bench_lora_fused [reps >= 1] [threads >= 1] [exact|bf16]\n");
    return 2;
  }
  preft_model_config c = {0};
  c.dim = 896;
  c.n_heads = 14;
  c.n_kv_heads = 2;
  c.head_dim = 64;
  c.ffn = 4864;
  c.n_layers = 1;
  enum { NA = 32, NMAX = 64 };
  preft_adapter *ads[NA];
  for (int k = 0; k < NA; k++)
    ads[k] = preft_adapter_random(PREFT_ADAPTER_LORA, &c, 16, PREFT_MODE_ALL, PREFT_F32, 1 + k);
  preft_pool *pool = threads > 1 ? preft_pool_create(threads) : NULL;
  unsigned seed = 1;
  float *x = malloc(sizeof(float) * NMAX * 4864), *y = malloc(sizeof(float) * NMAX * 4864);
  for (int i = 0; i < NMAX * 4864; i++) x[i] = (float)rand_r(&seed) / RAND_MAX - 0.5f;
  static const preft_module mods[] = {PREFT_MOD_Q, PREFT_MOD_K, PREFT_MOD_GATE, PREFT_MOD_DOWN};
  static const char *const names[] = {"q", "k", "gate", "down"};
  printf("bench_lora_fused: %d thread(s), best of %d, %s precision; microseconds per module\n", threads, reps,
         preft_matmul_precision_name(preft_matmul_get_precision()));
  printf("%-8s %-5s | %9s %9s %9s | %9s %9s | %7s\n", "batch", "mod", "base", "unfused", "fused", "unf ovh",
         "fused ovh", "speedup");
  for (int b = 0; b < 2; b++) {
    int n = b == 0 ? 32 : 64;
    const preft_adapter *row_ad[NMAX];
    uint8_t flag[NMAX];
    for (int i = 0; i < n; i++) {
      row_ad[i] = ads[b == 0 ? i : 0];
      flag[i] = PREFT_ADAPT_ON;
    }
    preft_adapter_plan plan = {0};
    preft_adapter_plan_build(&plan, n, row_ad, flag, c.ffn, preft_pool_size(pool));
    for (size_t q = 0; q < sizeof mods / sizeof mods[0]; q++) {
      int in, out;
      preft_module_dims(&c, mods[q], &in, &out);
      uint16_t *w = malloc(sizeof(uint16_t) * (size_t)in * out);
      for (size_t i = 0; i < (size_t)in * out; i++)
        w[i] = preft_f32_to_bf16(((float)rand_r(&seed) / RAND_MAX - 0.5f) * 0.04f);
      preft_gemm_out o = {.y = y, .y_stride = out, .w = w, .wdt = PREFT_BF16, .m = out};
      double best[3] = {1e30, 1e30, 1e30};
      for (int r = 0; r < reps; r++) {
        double c0 = now_us();
        preft_gemm_multi(pool, x, in, n, in, &o, 1, 0);
        double c1 = now_us();
        preft_lora_set_fused(0);
        preft_lora_gemm(pool, &plan, 0, &mods[q], x, in, n, in, &o, 1, 0);
        double c2 = now_us();
        preft_lora_set_fused(1);
        preft_lora_gemm(pool, &plan, 0, &mods[q], x, in, n, in, &o, 1, 0);
        double c3 = now_us();
        best[0] = c1 - c0 < best[0] ? c1 - c0 : best[0];
        best[1] = c2 - c1 < best[1] ? c2 - c1 : best[1];
        best[2] = c3 - c2 < best[2] ? c3 - c2 : best[2];
      }
      printf("%-8s %-5s | %9.1f %9.1f %9.1f | %8.1f%% %8.1f%% | %6.2fx\n", b == 0 ? "decode32" : "prompt64",
             names[q], best[0], best[1], best[2], 100 * (best[1] / best[0] - 1),
             100 * (best[2] / best[0] - 1), (best[1] - best[0]) / (best[2] - best[0]));
      fflush(stdout);
      free(w);
    }
    preft_adapter_plan_free(&plan);
  }
  for (int k = 0; k < NA; k++) preft_adapter_free(ads[k]);
  preft_pool_free(pool);
  free(x);
  free(y);
  return 0;
}
