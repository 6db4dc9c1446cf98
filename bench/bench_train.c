/* bench_train.c - training throughput: tokens/s of one forward+backward
 * pass (full model; and a LoRA in prefill-only mode on a frozen base) for
 * Llama-shaped models of widths 256..1024, as a fraction of the measured
 * sgemm rate (preft_roofline_sgemm_gflops n=1024, the same kernel's best case,
 * measured right before and after each pass, the better of the two) and
 * of the FMA peak; activation memory per token of context.
 *
 * The full pass runs at both training matmul precisions (FP32 and BF16,
 * gemm_train.h) in alternation, best of 3 each, so their ratio comes from
 * the same minutes of a shared machine. BF16 rows are measured only where
 * the CPU has AVX512_BF16 (elsewhere BF16 is an emulation, slower than FP32
 * by design); their "of FMA peak" counts the same useful FLOPs against the
 * same FP32 FMA peak, so it may pass 100% in principle (vdpbf16ps does two
 * multiply-adds per FP32 lane).
 *
 * usage: bench_train [--threads N] [--seq T] [--batch B] [--stats] [--bert] [--bf16] [WIDTH...]
 *
 * --stats: instead of the throughput table, what one FP32 full pass costs
 * apart from its products, as counts that do not depend on how loaded the
 * machine is (except the wall and system seconds): thread-pool runs (parallel regions) and their tasks, the
 * pool's futex sleeps and wakes and sched_yield calls, minor page faults,
 * and the process's user and system CPU seconds (getrusage), each the mean
 * of 5 passes after one warm-up; with --threads 1, the CPU seconds are the
 * work of the pass on one core. "single-threaded s": the calling thread's
 * CPU seconds outside parallel runs (preft_pool_time_runs), the part a
 * second thread cannot share (with --threads 1: all of it).
 * --bf16: --stats of a pass at BF16 matmul precision instead of FP32.
 * --bert (with --stats): the same counts for the BERT encoder's training
 * pass (bert_fwd_bwd.c: forward with dropout 0.1, the MLM head on every
 * seventh token (bert_heads.c), backward from its gradient plus a fixed
 * output gradient, all parameter gradients), L=4, Dh=64, H=D/64, F=4D,
 * vocabulary 4096, B sequences of T tokens (the MLM pretraining's shape
 * with --batch 32 --seq 128).
 * Model per width D: L=4, Dh=64, H=D/64, Hkv=H/2, F=8D/3 (multiple of 64),
 * V=4096. Useful FLOPs per step: 6·N·P (P = matmul parameters incl. the
 * head) + 12·L·H·Dh·pairs (causal attention, pairs = B·T(T+1)/2); the
 * attention backward's recomputed scores are not counted. */
#include <math.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "base/timer.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/roofline.h"
#include "train/bert_train.h"
#include "train/train_model.h"

/* Seconds of one forward+backward pass. */
static double one_pass(preft_train_model *tm, preft_train_adapter *ad, preft_pool *pool, preft_train_batch *b,
                       preft_train_acts *a) {
  double s;
  preft_error err;
  preft_param_set_zero_grad(ad ? &ad->ps : &tm->ps);
  double t0 = preft_now();
  if (preft_train_pass(tm, ad, pool, b, a, 1.0f / (float)b->n_targets, &s, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  return preft_now() - t0;
}

static double time_pass(preft_train_model *tm, preft_train_adapter *ad, preft_pool *pool,
                        preft_train_batch *b, preft_train_acts *a) {
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    double dt = one_pass(tm, ad, pool, b, a);
    best = dt < best ? dt : best;
  }
  return best;
}

typedef struct {
  preft_pool_stats ps;
  double user, sys, wall, caller; /* caller: the calling thread's CPU seconds */
  long minflt;
} usage;

static usage usage_now(preft_pool *pool) {
  usage u;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  preft_pool_stats_get(pool, &u.ps);
  u.user = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
  u.sys = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  u.minflt = ru.ru_minflt;
  getrusage(RUSAGE_THREAD, &ru);
  u.caller = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
             ru.ru_stime.tv_usec * 1e-6;
  u.wall = preft_now();
  return u;
}

typedef struct {
  preft_train_model *tm;
  preft_train_batch *b;
  preft_train_acts *a;
} decoder_pass;

static void run_decoder_pass(void *ctx, preft_pool *pool) {
  decoder_pass *d = ctx;
  one_pass(d->tm, NULL, pool, d->b, d->a);
}

/* --stats: one warm-up pass (pass(ctx, pool)), then the mean counts of 5 (see the usage). */
static void print_stats(int D, void (*pass)(void *ctx, preft_pool *pool), void *ctx, preft_pool *pool) {
  enum { PASSES = 5 };
  pass(ctx, pool);
  preft_pool_time_runs(pool, 1);
  usage u0 = usage_now(pool);
  for (int i = 0; i < PASSES; i++) pass(ctx, pool);
  usage u1 = usage_now(pool);
  preft_pool_time_runs(pool, 0);
  double runs = (double)(u1.ps.runs - u0.ps.runs) / PASSES, user = (u1.user - u0.user) / PASSES,
         sys = (u1.sys - u0.sys) / PASSES;
  /* the caller's CPU outside parallel runs: the pass's single-threaded part */
  double serial = ((u1.caller - u0.caller) - (u1.ps.caller_cpu_in_runs - u0.ps.caller_cpu_in_runs)) / PASSES;
  printf("| %d | %.0f | %.1f | %.0f | %.0f | %.0f | %.0f | %.3f | %.3f | %.1f%% | %.3f | %.3f |\n", D, runs,
         runs > 0 ? (double)(u1.ps.tasks - u0.ps.tasks) / PASSES / runs : 0.0,
         (double)(u1.ps.futex_waits - u0.ps.futex_waits) / PASSES,
         (double)(u1.ps.futex_wakes - u0.ps.futex_wakes) / PASSES,
         (double)(u1.ps.yields - u0.ps.yields) / PASSES, (double)(u1.minflt - u0.minflt) / PASSES, user, sys,
         user + sys > 0 ? 100 * sys / (user + sys) : 0.0, serial, (u1.wall - u0.wall) / PASSES);
  fflush(stdout);
}

/* Best of 3 passes at each precision, alternating FP32 and BF16 (bf16 0:
 * FP32 only; best[1] left at 0). */
static void time_precisions(preft_train_model *tm, preft_pool *pool, preft_train_batch *b,
                            preft_train_acts *a, int bf16, double best[2]) {
  best[0] = best[1] = 1e30;
  for (int rep = 0; rep < 3; rep++)
    for (int p = 0; p <= bf16; p++) {
      tm->matmul = p ? PREFT_MATMUL_BF16 : PREFT_MATMUL_EXACT;
      double dt = one_pass(tm, NULL, pool, b, a);
      best[p] = dt < best[p] ? dt : best[p];
    }
  tm->matmul = PREFT_MATMUL_EXACT;
  if (!bf16) best[1] = 0;
}

typedef struct {
  preft_bt_model m;
  preft_bt_acts a;
  preft_bert_batch b;
  preft_rng rng;
  float **d_out; /* [L]: only the last layer's gradient set */
  const float *d0;
  size_t nd;
  int *rows, *targets, n_mlm;
} bert_pass;

static void run_bert_pass(void *ctx, preft_pool *pool) {
  bert_pass *p = ctx;
  preft_error err;
  preft_param_set_zero_grad(&p->m.ps);
  if (preft_bt_forward(&p->m, pool, &p->b, NULL, &p->a, &p->rng, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    exit(1);
  }
  float *d = p->d_out[p->m.cfg.n_layers - 1];
  memcpy(d, p->d0, sizeof(float) * p->nd);
  preft_bt_mlm_loss(&p->m, pool, &p->a, p->rows, p->targets, p->n_mlm, d);
  preft_bt_backward(&p->m, pool, &p->a, p->d_out, NULL, true);
}

/* --stats --bert: the BERT training pass's counts at width D. */
static void bert_stats(int D, int T, int B, preft_pool *pool) {
  preft_bert_config c = {
      .vocab = 4096, .dim = D, .n_heads = D / 64, .head_dim = 64, .ffn = 4 * D, .n_layers = 4, .max_pos = T};
  c.type_vocab = 2;
  c.ln_eps = 1e-12f;
  bert_pass p = {0};
  preft_bt_opts o = {.dropout = 0.1, .mlm = true};
  preft_bt_model_init(&p.m, &c, &o, 7);
  preft_rng_seed(&p.rng, 1);
  size_t N = (size_t)B * T, ND = N * (size_t)D;
  int *ids = malloc(sizeof(int) * N);
  for (size_t i = 0; i < N; i++) ids[i] = (int)((i * 104729 + 7) % (size_t)c.vocab);
  p.b = (preft_bert_batch){.n_seqs = B, .seq_len = T, .ids = ids};
  p.d_out = calloc((size_t)c.n_layers, sizeof(float *));
  float *d = malloc(sizeof(float) * ND);
  for (size_t i = 0; i < ND; i++) d[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-6f;
  float *d0 = malloc(sizeof(float) * ND);
  memcpy(d0, d, sizeof(float) * ND);
  p.d_out[c.n_layers - 1] = d;
  p.d0 = d0;
  p.nd = ND;
  p.n_mlm = (int)(N / 7);
  p.rows = malloc(sizeof(int) * (size_t)p.n_mlm);
  p.targets = malloc(sizeof(int) * (size_t)p.n_mlm);
  for (int r = 0; r < p.n_mlm; r++) p.rows[r] = 7 * r, p.targets[r] = (r * 31 + 3) % c.vocab;
  print_stats(D, run_bert_pass, &p, pool);
  preft_bt_acts_free(&p.a);
  preft_bt_model_free(&p.m);
  free(d);
  free(d0);
  free(p.rows);
  free(p.targets);
  free(p.d_out);
  free(ids);
}

int main(int argc, char **argv) {
  int threads = 0, T = 256, B = 2, widths[16], nw = 0, stats = 0, bert = 0, stats_bf16 = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--stats"))
      stats = 1;
    else if (!strcmp(argv[i], "--bert"))
      stats = bert = 1;
    else if (!strcmp(argv[i], "--bf16"))
      stats = stats_bf16 = 1;
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seq") && i + 1 < argc)
      T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      B = atoi(argv[++i]);
    else if (nw < 16)
      widths[nw++] = atoi(argv[i]);
  }
  if (nw == 0) {
    int d[] = {256, 512, 768, 1024};
    memcpy(widths, d, sizeof d);
    nw = 4;
  }
  preft_pool *pool = preft_pool_create(threads);
  if (stats)
    printf(
        "%s, %d threads, T=%d, B=%d; per pass, mean of 5:\n"
        "| width | pool runs | tasks / run | futex sleeps | futex wakes | yields | minor faults | user s | "
        "system s | system share | single-threaded s | wall s |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        bert         ? "BERT training pass (dropout 0.1)"
        : stats_bf16 ? "BF16 full pass (--matmul-precision bf16)"
                     : "FP32 full pass",
        preft_pool_size(pool), T, B);
  double fma = 0, sg = 0;
  int bf16 = preft_gemm_bf16_native();
  if (!stats) {
    fma = preft_roofline_fma_gflops(pool, 1.0);
    sg = preft_roofline_sgemm_gflops(pool, 1024);
    printf(
        "cpu path %s, %d threads; FMA peak %.1f GFLOP/s, sgemm (n=1024) %.1f GFLOP/s; T=%d, B=%d; BF16 %s\n",
        preft_cpu_path_name(preft_cpu_path()), preft_pool_size(pool), fma, sg, T, B,
        bf16 ? "vdpbf16ps" : "not measured (no AVX512_BF16)");
    printf(
        "| width | params (M) | full: tokens/s | full: GFLOP/s | of sgemm | of FMA peak | BF16: tokens/s | "
        "BF16: of FMA peak | BF16 / FP32 | LoRA-P r16: tokens/s | act. bytes/token |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n");
  }
  for (int w = 0; bert && w < nw; w++) bert_stats(widths[w], T, B, pool);
  for (int w = 0; !bert && w < nw; w++) {
    int D = widths[w];
    preft_model_config c = {0};
    c.arch = PREFT_ARCH_LLAMA;
    c.dim = D;
    c.n_layers = 4;
    c.head_dim = 64;
    c.n_heads = D / 64;
    c.n_kv_heads = c.n_heads / 2 > 0 ? c.n_heads / 2 : 1;
    c.ffn = (8 * D / 3 + 63) / 64 * 64;
    c.vocab = 4096;
    c.max_pos = T;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000;
    c.bos_id = -1;
    preft_error err;
    preft_train_model tm;
    if (preft_train_model_init(&tm, &c, 1, &err) != 0) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    preft_train_batch b = {0};
    int *ids = malloc(sizeof(int) * (size_t)T), *tg = malloc(sizeof(int) * (size_t)T);
    uint8_t *fl = malloc((size_t)T);
    for (int s = 0; s < B; s++) {
      for (int t = 0; t < T; t++) {
        ids[t] = (s * 7919 + t * 104729) % c.vocab;
        tg[t] = (ids[t] * 31 + 7) % c.vocab;
        fl[t] = t < T / 2 ? PREFT_ADAPT_ON : PREFT_ADAPT_OFF;
      }
      preft_train_batch_add(&b, ids, tg, fl, T);
    }
    preft_train_acts a;
    preft_train_acts_init(&a, &tm, NULL, B * T, T, preft_pool_size(pool), false);
    if (stats) {
      decoder_pass dp = {&tm, &b, &a};
      tm.matmul = stats_bf16 ? PREFT_MATMUL_BF16 : PREFT_MATMUL_EXACT;
      print_stats(D, run_decoder_pass, &dp, pool);
      preft_train_acts_free(&a);
      preft_train_model_free(&tm);
      preft_train_batch_free(&b);
      free(ids);
      free(tg);
      free(fl);
      continue;
    }
    /* the VM is shared: measure the sgemm rate next to each pass */
    sg = preft_roofline_sgemm_gflops(pool, 1024);
    double best[2];
    time_precisions(&tm, pool, &b, &a, bf16, best);
    double dt = best[0];
    double sg2 = preft_roofline_sgemm_gflops(pool, 1024);
    sg = sg2 > sg ? sg2 : sg;
    int qd = c.n_heads * 64, kvd = c.n_kv_heads * 64;
    double P = (double)c.n_layers * ((double)qd * D * 2 + (double)kvd * D * 2 + 3.0 * c.ffn * D) +
               (double)c.vocab * D;
    double pairs = (double)B * T * (T + 1) / 2.0;
    double flops = 6.0 * b.n * P + 12.0 * c.n_layers * c.n_heads * 64.0 * pairs;
    double gf = flops / dt * 1e-9;
    size_t act_bytes = preft_train_acts_bytes(&a);
    preft_train_acts_free(&a);
    /* LoRA r=16 on all modules, prefill-only flags (first half of each sequence) */
    preft_train_model frozen;
    preft_model *view = preft_train_model_view(&tm);
    preft_train_model_from(&frozen, view, false);
    preft_train_model_view_free(view);
    preft_train_adapter ad;
    preft_train_adapter_opts ao = {
        .kind = PREFT_ADAPTER_LORA, .mode = PREFT_MODE_PREFILL, .rank = 16, .alpha = 32, .seed = 1};
    for (int m = 0; m < PREFT_N_MODULES; m++) ao.modules[m] = true;
    preft_train_adapter_init(&ad, &c, &ao, &err);
    preft_train_acts_init(&a, &frozen, &ad, B * T, T, preft_pool_size(pool), false);
    double dl = time_pass(&frozen, &ad, pool, &b, &a);
    preft_train_acts_free(&a);
    char bcols[96] = "n/a | n/a | n/a";
    if (bf16) {
      double gb = flops / best[1] * 1e-9;
      snprintf(bcols, sizeof bcols, "%.0f | %.0f%% | %.2fx", b.n / best[1], 100 * gb / fma, dt / best[1]);
    }
    printf("| %d | %.1f | %.0f | %.1f | %.0f%% | %.0f%% | %s | %.0f | %.0f |\n", D,
           (P + D * 2.0 * c.n_layers) * 1e-6, b.n / dt, gf, 100 * gf / sg, 100 * gf / fma, bcols, b.n / dl,
           (double)act_bytes / b.n);
    fflush(stdout);
    preft_train_adapter_free(&ad);
    preft_train_model_free(&frozen);
    preft_train_model_free(&tm);
    preft_train_batch_free(&b);
    free(ids);
    free(tg);
    free(fl);
  }
  preft_pool_free(pool);
  return 0;
}
