/* bench_attention.c - single-thread time of the attention and element-wise
 * kernels of one Qwen2.5-0.5B layer (H=14, Hkv=2, Dh=64, D=896, F=4864),
 * plain reference against the dispatched kernel on each CPU path.
 *
 *   bench_attention [reps]
 *
 * Each figure is the best of `reps` timings (default 20): the machine may be
 * shared, and the minimum is the least disturbed run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/timer.h"
#include "tensor/attention.h"
#include "tensor/cpu.h"
#include "tensor/ops.h"

enum { G = 7, HKV = 2, DH = 64, BS = 16, D = 896, F = 4864, CTX = 129, PREFILL = 128 };

typedef void (*attn_fn)(float *, const float *, int, int, const preft_kv_view *, int, int, float, float *);

static float frand(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)(*s >> 8) * 0x1p-23f - 1.0f;
}

static double best_of(int reps, double (*run)(void *), void *ctx) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t = run(ctx);
    best = t < best ? t : best;
  }
  return best;
}

typedef struct {
  attn_fn fn;
  preft_kv_view view;
  float *q, *out, *scratch;
  int decode; /* 1: 16 rows at position CTX-1; 0: rows at positions 0..PREFILL-1 */
} attn_ctx;

/* One layer's attention for one KV head group of a batch, in seconds. */
static double run_attn(void *p) {
  attn_ctx *a = p;
  double t0 = preft_now();
  if (a->decode)
    for (int r = 0; r < 16; r++) a->fn(a->out, a->q, G, DH, &a->view, 0, CTX - 1, 0.125f, a->scratch);
  else
    for (int pos = 0; pos < PREFILL; pos++) a->fn(a->out, a->q, G, DH, &a->view, 0, pos, 0.125f, a->scratch);
  return (preft_now() - t0) * HKV; /* both KV heads */
}

typedef struct {
  int which; /* 0 swiglu ref, 1 swiglu fast, 2 rmsnorm ref, 3 rmsnorm fast */
  float *a, *b, *w, *out;
  int rows;
} elem_ctx;

static double run_elem(void *p) {
  elem_ctx *e = p;
  double t0 = preft_now();
  for (int r = 0; r < e->rows; r++) {
    switch (e->which) {
      case 0:
        preft_swiglu(e->a, e->b, F);
        break;
      case 1:
        preft_swiglu_fast(e->a, e->b, F);
        break;
      case 2:
        preft_rmsnorm(e->out, e->a, e->w, D, 1e-6f);
        break;
      default:
        preft_rmsnorm_fast(e->out, e->a, e->w, D, 1e-6f);
        break;
    }
  }
  return preft_now() - t0;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 20;
  unsigned seed = 1;
  int n_blocks = (CTX + BS - 1) / BS;
  size_t ps = (size_t)HKV * DH, total = (size_t)n_blocks * BS * ps;
  float *k = malloc(sizeof(float) * total), *v = malloc(sizeof(float) * total);
  for (size_t i = 0; i < total; i++) k[i] = frand(&seed), v[i] = frand(&seed);
  int table[64];
  for (int i = 0; i < n_blocks; i++) table[i] = n_blocks - 1 - i;
  float q[G * DH], out[G * DH], *scratch = malloc(sizeof(float) * G * CTX);
  for (int i = 0; i < G * DH; i++) q[i] = frand(&seed);
  float *a = malloc(sizeof(float) * F), *b = malloc(sizeof(float) * F), *w = malloc(sizeof(float) * D);
  float *o = malloc(sizeof(float) * D);
  for (int i = 0; i < F; i++) a[i] = frand(&seed) * 4, b[i] = frand(&seed);
  for (int i = 0; i < D; i++) w[i] = frand(&seed);

  printf("per layer, one thread, best of %d (microseconds)\n", reps);
  printf("%-14s %-34s %10s\n", "path", "kernel", "us");
  for (int path = -1; path <= (int)preft_cpu_detected(); path++) {
    if (path >= 0) preft_cpu_limit((preft_cpu_path_kind)path);
    const char *name = path < 0 ? "reference" : preft_cpu_path_name((preft_cpu_path_kind)path);
    attn_ctx ac = {
        path < 0 ? preft_attention_ref : preft_attention, {k, v, table, BS * ps, ps, BS}, q, out, scratch, 1};
    printf("%-14s %-34s %10.1f\n", name, "attention decode 16 x ctx 129", 1e6 * best_of(reps, run_attn, &ac));
    ac.decode = 0;
    printf("%-14s %-34s %10.1f\n", name, "attention prefill 128", 1e6 * best_of(reps, run_attn, &ac));
    elem_ctx e = {path < 0 ? 0 : 1, a, b, w, o, 16};
    printf("%-14s %-34s %10.1f\n", name, "swiglu 16 x 4864", 1e6 * best_of(reps, run_elem, &e));
    e.which = path < 0 ? 2 : 3;
    e.rows = 128;
    printf("%-14s %-34s %10.1f\n", name, "rmsnorm 128 x 896", 1e6 * best_of(reps, run_elem, &e));
  }
  preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
  free(k);
  free(v);
  free(scratch);
  free(a);
  free(b);
  free(w);
  free(o);
  return 0;
}
