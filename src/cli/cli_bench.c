/* cli_bench.c - `preft bench`: the machine's ceilings and the model's
 * prefill and decode throughput, each stated as a fraction of the ceiling
 * measured in the same run.
 *
 *   preft bench roofline       FMA peak, memory bandwidth, own sgemm
 *   preft bench model ...      prefill/decode tokens/s at several batch sizes
 *
 * Prefill at batch B: B sequences of P prompt tokens in one forward (B*P
 * rows, logits for the last row of each). Decode at batch B: B sequences
 * with P cached tokens each take one new token per step (positions P,
 * P+1, ...); decode tokens/s is B·steps over the time of all steps (--stat
 * mean, as llama-batched-bench's S_TG) or B over the median step (--stat
 * median); every step's time goes to the JSON. Before the first batch size
 * one untimed forward of --warmup tokens touches every weight (the warm-up
 * llama-batched-bench runs). Prefill is compared with the FMA peak
 * (FLOPs of every matrix product and of attention); decode with memory
 * bandwidth (bytes of every weight matrix read once per step plus the KV
 * cache read by attention), measured before the first batch size and again
 * after each one: a row's "of bw" is against the mean of the probes on
 * either side of it (this VM's bandwidth moves by half within minutes, so
 * one probe at the start could fall in another minute than the decode). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "model/adapter.h"
#include "model/adapter_plan.h"
#include "model/llama.h"
#include "model/shapes.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/roofline.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft bench roofline [--threads N]\n"
          "       preft bench model (--shape NAME | -m DIR) [options]\n"
          "       preft bench adapter-step --shape NAME [options]\n"
          "       preft bench adapters --help    (the PreFT throughput experiment)\n"
          "       preft bench encoder --help     (BERT encoder sentences/s beside the sgemm ceiling)\n"
          "       preft bench serve --help       (load on an OpenAI-compatible server)\n"
          "       preft bench spec --help        (speculative decoding in the engine)\n\n"
          "roofline: measures the FP32 FMA peak (GFLOP/s), main-memory read bandwidth\n"
          "(GB/s) and preft's own sgemm on this machine.\n\n"
          "model: prefill and decode tokens/s of a model, each as a fraction of the\n"
          "roofline measured in the same run (prefill vs FMA peak, decode vs the mean of\n"
          "the bandwidth probes just before and just after that batch size's decode).\n"
          "  --shape NAME        random weights of a known shape: %s\n"
          "  -m DIR              or a Hugging Face model directory\n"
          "  --dtype f32|f16|bf16 weight storage for --shape (default bf16)\n"
          "  --layers L          override the number of layers of --shape (shorter runs)\n"
          "  --batch LIST        batch sizes (default 1,8,64)\n"
          "  --prompt-len P      prompt tokens per sequence (default 64)\n"
          "  --decode-steps S    decode steps timed per batch size (default 8)\n"
          "  --stat mean|median  decode rate from the mean step (all steps' time, as\n"
          "                      llama-batched-bench) or the median step (default mean)\n"
          "  --warmup N          one untimed forward of N tokens first (default 16; 0: none)\n"
          "  --no-prefill, --no-decode  skip a phase\n"
          "  --threads N         worker threads (default: all cores)\n" CLI_MATMUL_HELP CLI_QUANTIZE_HELP
          "  --probe-seconds S   time of each bandwidth probe (default 1; the peak is\n"
          "                      measured for S/2); every probe reads one 1 GiB buffer\n"
          "  --json FILE         also write the results as JSON (atomically)\n\n"
          "adapter-step: one decode step of B sequences, each with its own rank-R LoRA\n"
          "on all seven projections, against the same step on the base model: the\n"
          "all-token overhead, the prefill-only overhead (decode rows run the base\n"
          "model) and the adapter bytes read per step. Options: --shape, --dtype,\n"
          "--layers, --threads, --json as above; --batch (default 1,8,32,64,128),\n"
          "--rank R (default 16), --adapter-dtype f32|f16|bf16 (A and B as stored, default\n"
          "f32), --context P (cached tokens per sequence, default 64),\n"
          "--steps S (timed steps per measurement, default 5), --reps K (rounds of every\n"
          "measurement back to back, their order rotating from round to round; each time\n"
          "is the median of the rounds, each overhead the median of the rounds' own\n"
          "overheads against the base step of the same round, default 1),\n"
          "--unfused (also time all-token LoRA on the unfused path, adapter_plan.h, in\n"
          "every round: the fused path against the separate expand pass in one run),\n"
          "--cpu-time (time steps in the process's CPU time, all threads, instead of wall\n"
          "time: on a machine shared with other work, what the step cost whatever the\n"
          "scheduler gave it; the pool's spin-waits count too), --prompt P (time the\n"
          "prefill of a P-token prompt per sequence instead of a decode step: the lora\n"
          "column is then what LoRA-P, like LoRA, pays on prompt rows), --probe-seconds S\n"
          "(as for model: the one bandwidth probe's time).\n",
          preft_shape_names());
}

typedef struct {
  const preft_model *m;
  double mat_bytes; /* bytes of the layer matrices, all layers */
  double lm_bytes;  /* bytes of the LM head */
  double row_flops; /* matrix FLOPs per token row, all layers, without the LM head */
} model_costs;

static model_costs costs_of(const preft_model *m) {
  const preft_model_config *c = &m->cfg;
  double D = c->dim, F = c->ffn, qd = (double)c->n_heads * c->head_dim,
         kvd = (double)c->n_kv_heads * c->head_dim;
  double per_layer = D * qd * 2 + D * kvd * 2 + 3 * D * F;
  model_costs k = {m, 0, 0, 0};
  /* bytes as stored: block-quantized rows (GGUF, --quantize) included */
#define BYTES(w, rows, cols) ((double)(rows) * (double)preft_dtype_row_bytes((w).dtype, (size_t)(cols)))
  for (int l = 0; l < c->n_layers; l++) {
    const preft_layer_weights *w = &m->layers[l];
    k.mat_bytes += BYTES(w->wq, qd, D) + BYTES(w->wk, kvd, D) + BYTES(w->wv, kvd, D) + BYTES(w->wo, D, qd) +
                   BYTES(w->w_gate, F, D) + BYTES(w->w_up, F, D) + BYTES(w->w_down, D, F);
  }
  k.lm_bytes = BYTES(m->lm_head, c->vocab, D);
#undef BYTES
  k.row_flops = 2 * per_layer * c->n_layers;
  return k;
}

/* Attention FLOPs of one row at position pos (q·k and p·v, all heads, layers). */
static double attn_flops(const preft_model_config *c, int pos) {
  return 4.0 * (pos + 1) * c->n_heads * c->head_dim * c->n_layers;
}

typedef struct {
  int batch;
  double prefill_tps, prefill_gflops, prefill_s, decode_tps, decode_gbs, decode_step_ms;
  double step_mean, step_median, step_min, step_max; /* seconds */
  double *step_times;                                /* [steps], in order; owned */
} bench_row;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* One untimed forward of `n` tokens of one sequence: every weight is read
 * once (page faults, caches, the pool's threads) before anything is timed,
 * as llama-batched-bench's warm-up does. */
static int warm_up(const preft_model *m, preft_pool *pool, int n, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  int block = 16;
  preft_kv_cache kv;
  if (preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, block, (n + block - 1) / block, 1, n,
                    err) != 0)
    return -1;
  int rc = preft_kv_reserve(&kv, 0, n, err);
  int *tok = preft_xmalloc(sizeof(int) * (size_t)n), *pos = preft_xmalloc(sizeof(int) * (size_t)n);
  int *seq = preft_xcalloc((size_t)n, sizeof(int)), last = n - 1;
  for (int t = 0; t < n; t++) {
    tok[t] = (int)((2654435761u * (unsigned)t + 7u) % (unsigned)c->vocab);
    pos[t] = t;
  }
  float *logits = preft_xmalloc(sizeof(float) * (size_t)c->vocab);
  preft_workspace ws = {0};
  preft_batch b = {.n = n, .token = tok, .pos = pos, .seq = seq, .logit_rows = &last, .n_logits = 1};
  if (rc == 0) rc = preft_model_forward(m, pool, &kv, &b, &ws, logits, err);
  free(tok);
  free(pos);
  free(seq);
  free(logits);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  return rc;
}

static int bench_batch(const preft_model *m, preft_pool *pool, int B, int P, int steps, bool prefill,
                       bool decode, bool use_mean, bench_row *row, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  model_costs k = costs_of(m);
  int ctx = P + steps + 1, block = 16;
  int blocks = B * ((ctx + block - 1) / block);
  preft_kv_cache kv;
  if (preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, block, blocks, B, ctx, err) != 0)
    return -1;
  for (int s = 0; s < B; s++)
    if (preft_kv_reserve(&kv, s, ctx, err) != 0) return preft_kv_free(&kv), -1;
  int rows = B * P;
  int *tok = preft_xmalloc(sizeof(int) * (size_t)rows), *pos = preft_xmalloc(sizeof(int) * (size_t)rows);
  int *seq = preft_xmalloc(sizeof(int) * (size_t)rows), *last = preft_xmalloc(sizeof(int) * (size_t)B);
  for (int s = 0; s < B; s++) {
    for (int t = 0; t < P; t++) {
      int r = s * P + t;
      tok[r] = (int)((1000003u * (unsigned)r + 12345u) % (unsigned)c->vocab);
      pos[r] = t;
      seq[r] = s;
    }
    last[s] = s * P + P - 1;
  }
  float *logits = preft_xmalloc(sizeof(float) * (size_t)B * (size_t)c->vocab);
  preft_workspace ws = {0};
  preft_batch b = {.n = rows, .token = tok, .pos = pos, .seq = seq, .logit_rows = last, .n_logits = B};
  /* One forward always runs: it fills the cache that decode reads. */
  double t0 = preft_now();
  int rc = preft_model_forward(m, pool, &kv, &b, &ws, logits, err);
  double dt = preft_now() - t0;
  if (rc == 0 && prefill) {
    double flops = k.row_flops * rows + 2.0 * c->dim * c->vocab * B;
    for (int t = 0; t < P; t++) flops += attn_flops(c, t) * B;
    row->prefill_tps = rows / dt;
    row->prefill_gflops = flops / dt * 1e-9;
    row->prefill_s = dt;
  }
  if (rc == 0 && decode && steps > 0) {
    double *times = preft_xmalloc(sizeof(double) * (size_t)steps);
    double bytes = 0;
    for (int i = 0; i < steps && rc == 0; i++) {
      for (int s = 0; s < B; s++) {
        tok[s] = (int)((7919u * (unsigned)(s + i) + 1u) % (unsigned)c->vocab);
        pos[s] = P + i;
        seq[s] = s;
        last[s] = s;
      }
      preft_batch d = {.n = B, .token = tok, .pos = pos, .seq = seq, .logit_rows = last, .n_logits = B};
      t0 = preft_now();
      rc = preft_model_forward(m, pool, &kv, &d, &ws, logits, err);
      times[i] = preft_now() - t0;
      if (i == steps / 2)
        bytes = k.mat_bytes + k.lm_bytes +
                (double)B * (P + i + 1) * c->n_kv_heads * c->head_dim * 2 * 4 * c->n_layers;
    }
    row->step_times = preft_xmalloc(sizeof(double) * (size_t)steps);
    memcpy(row->step_times, times, sizeof(double) * (size_t)steps);
    double sum = 0;
    for (int i = 0; i < steps; i++) sum += times[i];
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    row->step_mean = sum / steps;
    row->step_median = times[steps / 2];
    row->step_min = times[0];
    row->step_max = times[steps - 1];
    double step = use_mean ? row->step_mean : row->step_median;
    row->decode_step_ms = step * 1e3;
    row->decode_tps = B / step;
    row->decode_gbs = bytes / step * 1e-9;
    free(times);
  }
  free(tok);
  free(pos);
  free(seq);
  free(last);
  free(logits);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  return rc;
}

static int bench_roofline(int argc, char **argv) {
  long threads = 0;
  const cli_opt opts[] = {{"--threads", NULL, CLI_INT, &threads, 1, 1024}, {NULL}};
  int pr = cli_parse("bench roofline", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  preft_pool *pool = preft_pool_create((int)threads);
  double peak = preft_roofline_fma_gflops(pool, 0.5), bw = preft_roofline_bandwidth_gbs(pool, 1.0);
  double sgemm = preft_roofline_sgemm_gflops(pool, 1024);
  printf("threads %d, kernels %s\n", preft_pool_size(pool), preft_cpu_path_name(preft_cpu_path()));
  printf("FP32 FMA peak      %8.1f GFLOP/s\n", peak);
  double dp = preft_roofline_bf16dot_gflops(pool, 0.5);
  if (dp > 0) printf("BF16 dot peak      %8.1f GFLOP/s (vdpbf16ps)\n", dp);
  printf("memory bandwidth   %8.1f GB/s\n", bw);
  printf("preft sgemm n=1024 %8.1f GFLOP/s (%.0f%% of peak)\n", sgemm, 100 * sgemm / peak);
  preft_pool_free(pool);
  return CLI_EXIT_OK;
}

static int bench_model(int argc, char **argv) {
  const char *shape = NULL, *dir = NULL, *json_path = NULL;
  preft_dtype dtype = PREFT_BF16;
  const char *stat = "mean";
  long layers = 0, threads = 0, P = 64, steps = 8, warmup = 16;
  double probe_s = 1.0;
  bool no_prefill = false, no_decode = false;
  cli_ids batch_list = {0};
  const cli_opt opts[] = {
      {"--shape", NULL, CLI_STR, &shape},
      {"--model", "-m", CLI_STR, &dir},
      {"--json", NULL, CLI_STR, &json_path},
      {"--dtype", NULL, CLI_DTYPE, &dtype},
      {"--layers", NULL, CLI_INT, &layers, 1, 1024},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      CLI_QUANTIZE_OPTION,
      {"--prompt-len", NULL, CLI_INT, &P, 1, 1 << 20},
      {"--decode-steps", NULL, CLI_INT, &steps, 1, 1 << 20},
      {"--warmup", NULL, CLI_INT, &warmup, 0, 1 << 20},
      {"--stat", NULL, CLI_STR, &stat},
      {"--batch", NULL, CLI_IDS, &batch_list},
      {"--no-prefill", NULL, CLI_FLAG, &no_prefill},
      {"--no-decode", NULL, CLI_FLAG, &no_decode},
      {"--probe-seconds", NULL, CLI_FLOAT, &probe_s, 0.01, 60},
      {NULL},
  };
  int pr = cli_parse("bench model", argc, argv, opts, usage);
  if (pr == 0) pr = cli_require_positive("bench model", "--batch", batch_list.v, batch_list.n);
  if (pr != 0) {
    free(batch_list.v);
    return cli_parse_exit(pr);
  }
  bool prefill = !no_prefill, decode = !no_decode, use_mean = strcmp(stat, "mean") == 0;
  int *batches = batch_list.v, n_batches = batch_list.n;
  if (!use_mean && strcmp(stat, "median") != 0) {
    fprintf(stderr, "preft bench model: --stat is mean or median, not '%s'\n", stat);
    free(batches);
    return CLI_EXIT_USAGE;
  }
  if (!shape == !dir) {
    fprintf(stderr, "preft bench model: give exactly one of --shape and -m (see --help)\n");
    free(batches);
    return CLI_EXIT_USAGE;
  }
  if (!batches) {
    static const int dflt[] = {1, 8, 64};
    cli_default_list(&batches, &n_batches, dflt, 3);
  }
  preft_error err;
  preft_model *m = NULL;
  preft_model_config cfg;
  int rc = 0;
  if (shape) {
    rc = preft_shape_config(shape, &cfg, &err);
    if (rc == 0 && layers > 0) cfg.n_layers = (int)layers;
    if (rc == 0) rc = preft_model_init_random(&m, &cfg, dtype, 1, &err);
  } else {
    rc = preft_model_load(&m, dir, &err);
  }
  if (rc == 0) rc = cli_apply_quantize(m, &err);
  if (rc != 0) {
    fprintf(stderr, "preft bench model: %s\n", err.msg);
    free(batches);
    return CLI_EXIT_ERROR;
  }
  preft_pool *pool = preft_pool_create((int)threads);
  /* the ceiling of these weights at this matmul precision: the FP32 FMA
   * peak, or the vdpbf16ps peak for BF16 weights at bf16 precision */
  size_t probe_bytes = PREFT_ROOFLINE_READ_BYTES; /* one buffer for every probe: page faults once */
  void *probe = preft_roofline_probe_alloc(&probe_bytes);
  double peak = preft_roofline_matmul_gflops(pool, m->layers[0].wq.dtype, probe_s / 2),
         bw = preft_roofline_read_buffer_gbs(pool, probe, probe_bytes, probe_s);
  const char *peak_name = m->layers[0].wq.dtype == PREFT_BF16 &&
                                  preft_matmul_get_precision() == PREFT_MATMUL_BF16 &&
                                  preft_roofline_bf16dot_gflops(pool, 0.05) > 0
                              ? "BF16-dot"
                              : "FP32 FMA";
  const preft_model_config *c = &m->cfg;
  const char *label = shape ? shape : dir;
  printf(
      "model %s: %d layers, D=%d, F=%d, H=%d/%d, V=%d, %s weights (%.0f MB), threads %d, kernels %s, matmul "
      "%s\n",
      label, c->n_layers, c->dim, c->ffn, c->n_heads, c->n_kv_heads, c->vocab,
      preft_dtype_name(m->layers[0].wq.dtype), preft_model_weight_bytes(m) / 1e6, preft_pool_size(pool),
      preft_cpu_path_name(preft_cpu_path()), preft_matmul_precision_name(preft_matmul_get_precision()));
  printf(
      "rooflines: %s peak %.1f GFLOP/s, memory bandwidth %.1f GB/s; prompt %ld, decode steps %ld (%s "
      "step), warm-up %ld tokens\n\n",
      peak_name, peak, bw, P, steps, stat, warmup);
  if (warmup > 0) rc = warm_up(m, pool, (int)warmup, &err);
  printf("%6s | %12s %10s %8s | %12s %10s %9s %8s\n", "batch", "prefill tok/s", "GFLOP/s", "of peak",
         "decode tok/s", "step ms", "GB/s", "of bw");
  cJSON *json = cJSON_CreateObject();
  cJSON_AddStringToObject(json, "model", label);
  cJSON_AddStringToObject(json, "dtype", preft_dtype_name(m->layers[0].wq.dtype));
  cJSON_AddNumberToObject(json, "layers", c->n_layers);
  cJSON_AddNumberToObject(json, "threads", preft_pool_size(pool));
  cJSON_AddStringToObject(json, "kernels", preft_cpu_path_name(preft_cpu_path()));
  cJSON_AddStringToObject(json, "matmul_precision",
                          preft_matmul_precision_name(preft_matmul_get_precision()));
  cJSON_AddNumberToObject(json, "peak_gflops", peak);
  cJSON_AddStringToObject(json, "peak_kind", peak_name);
  cJSON_AddNumberToObject(json, "bandwidth_gbs", bw);
  cJSON_AddNumberToObject(json, "prompt_len", (double)P);
  cJSON_AddNumberToObject(json, "warmup_tokens", (double)warmup);
  cJSON_AddStringToObject(json, "decode_statistic", stat);
  cJSON *results = cJSON_AddArrayToObject(json, "results");
  double bw_before = bw;
  for (int i = 0; i < n_batches && rc == 0; i++) {
    bench_row r = {.batch = batches[i]};
    rc = bench_batch(m, pool, batches[i], (int)P, (int)steps, prefill, decode, use_mean, &r, &err);
    if (rc != 0) break;
    const double bw_after =
        decode ? preft_roofline_read_buffer_gbs(pool, probe, probe_bytes, probe_s) : bw_before;
    const double bw_row = 0.5 * (bw_before + bw_after);
    printf("%6d | %12.1f %10.1f %7.0f%% | %12.2f %10.2f %9.2f %7.0f%%  (bw %.1f / %.1f GB/s)\n", r.batch,
           r.prefill_tps, r.prefill_gflops, 100 * r.prefill_gflops / peak, r.decode_tps, r.decode_step_ms,
           r.decode_gbs, 100 * r.decode_gbs / bw_row, bw_before, bw_after);
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", r.batch);
    cJSON_AddNumberToObject(o, "prefill_tokens_per_s", r.prefill_tps);
    cJSON_AddNumberToObject(o, "prefill_gflops", r.prefill_gflops);
    cJSON_AddNumberToObject(o, "prefill_fraction_of_peak", r.prefill_gflops / peak);
    cJSON_AddNumberToObject(o, "decode_tokens_per_s", r.decode_tps);
    cJSON_AddNumberToObject(o, "decode_step_ms", r.decode_step_ms);
    cJSON_AddNumberToObject(o, "decode_gbs", r.decode_gbs);
    cJSON_AddNumberToObject(o, "bandwidth_gbs_before", bw_before);
    cJSON_AddNumberToObject(o, "bandwidth_gbs_after", bw_after);
    cJSON_AddNumberToObject(o, "bandwidth_gbs_row", bw_row);
    cJSON_AddNumberToObject(o, "decode_fraction_of_bandwidth", r.decode_gbs / bw_row);
    bw_before = bw_after;
    cJSON_AddNumberToObject(o, "prefill_seconds", r.prefill_s);
    if (r.step_times) {
      cJSON_AddNumberToObject(o, "decode_step_ms_mean", r.step_mean * 1e3);
      cJSON_AddNumberToObject(o, "decode_step_ms_median", r.step_median * 1e3);
      cJSON_AddNumberToObject(o, "decode_step_ms_min", r.step_min * 1e3);
      cJSON_AddNumberToObject(o, "decode_step_ms_max", r.step_max * 1e3);
      cJSON *all = cJSON_AddArrayToObject(o, "decode_step_ms_all");
      for (long t = 0; t < steps; t++) cJSON_AddItemToArray(all, cJSON_CreateNumber(r.step_times[t] * 1e3));
      free(r.step_times);
    }
    cJSON_AddItemToArray(results, o);
  }
  if (rc != 0) fprintf(stderr, "preft bench model: %s\n", err.msg);
  if (rc == 0 && json_path) {
    rc = cli_write_json(json_path, json, &err);
    if (rc != 0) fprintf(stderr, "preft bench model: %s\n", err.msg);
  }
  cJSON_Delete(json);
  free(probe);
  preft_pool_free(pool);
  preft_model_free(m);
  free(batches);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

/* Median time of `steps` forward steps of B sequences, `len` rows each at
 * positions pos0 .. pos0+len-1 (a decode step: len 1, pos0 the context; a
 * prefill: len P from 0), row r of sequence s being row s·len + r of the
 * batch with row_ad / row_flag. Wall time, or the process's CPU time when
 * `cpu` (all threads together). */
static double time_decode_step(const preft_model *m, preft_pool *pool, preft_kv_cache *kv,
                               preft_workspace *ws, int B, int len, int pos0, int steps, bool cpu,
                               const preft_adapter *const *row_ad, const uint8_t *row_flag, float *logits,
                               preft_error *err) {
  const int n = B * len;
  int *tok = preft_xmalloc(sizeof(int) * (size_t)n), *pos = preft_xmalloc(sizeof(int) * (size_t)n);
  int *seq = preft_xmalloc(sizeof(int) * (size_t)n), *last = preft_xmalloc(sizeof(int) * (size_t)B);
  double *times = preft_xmalloc(sizeof(double) * (size_t)steps), med = -1;
  int rc = 0;
  for (int i = 0; i < steps && rc == 0; i++) {
    for (int r = 0; r < n; r++) {
      tok[r] = (int)((7919u * (unsigned)(r + i) + 1u) % (unsigned)m->cfg.vocab);
      pos[r] = pos0 + r % len;
      seq[r] = r / len;
    }
    for (int s2 = 0; s2 < B; s2++) last[s2] = s2 * len + len - 1;
    preft_batch d = {.n = n,
                     .token = tok,
                     .pos = pos,
                     .seq = seq,
                     .logit_rows = last,
                     .n_logits = B,
                     .adapter = row_ad,
                     .adapt = row_flag};
    double t0 = cpu ? preft_cpu_now() : preft_now();
    rc = preft_model_forward(m, pool, kv, &d, ws, logits, err);
    times[i] = (cpu ? preft_cpu_now() : preft_now()) - t0;
  }
  if (rc == 0) {
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    med = times[steps / 2];
  }
  free(tok);
  free(pos);
  free(seq);
  free(last);
  free(times);
  return med;
}

/* The median over `reps` rounds (rows of 4 in t) of column q, or with
 * base >= 0 of each round's t[q] / t[base] - 1; *lo and *hi (if not NULL)
 * get the smallest and largest of those values. */
static double round_median(const double *t, long reps, int q, int base, double *lo, double *hi) {
  double col[1000];
  for (long r = 0; r < reps; r++) col[r] = base < 0 ? t[4 * r + q] : t[4 * r + q] / t[4 * r + base] - 1;
  qsort(col, (size_t)reps, sizeof(double), cmp_double);
  if (lo) *lo = col[0];
  if (hi) *hi = col[reps - 1];
  return reps % 2 ? col[reps / 2] : 0.5 * (col[reps / 2 - 1] + col[reps / 2]);
}

static int bench_adapter_step(int argc, char **argv) {
  const char *shape = NULL, *json_path = NULL;
  preft_dtype dtype = PREFT_BF16, adapter_dtype = PREFT_F32;
  long layers = 0, threads = 0, rank = 16, ctx = 64, steps = 5, reps = 1, prompt = 0;
  double probe_s = 1.0;
  bool unfused = false, cpu_time = false;
  cli_ids batch_list = {0};
  const cli_opt opts[] = {
      {"--shape", NULL, CLI_STR, &shape},
      {"--json", NULL, CLI_STR, &json_path},
      {"--dtype", NULL, CLI_DTYPE, &dtype},
      {"--layers", NULL, CLI_INT, &layers, 1, 1024},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      {"--rank", NULL, CLI_INT, &rank, 1, 4096},
      {"--adapter-dtype", NULL, CLI_DTYPE, &adapter_dtype},
      {"--context", NULL, CLI_INT, &ctx, 1, 1 << 20},
      {"--steps", NULL, CLI_INT, &steps, 1, 1000},
      {"--reps", NULL, CLI_INT, &reps, 1, 1000},
      {"--unfused", NULL, CLI_FLAG, &unfused},
      {"--cpu-time", NULL, CLI_FLAG, &cpu_time},
      {"--prompt", NULL, CLI_INT, &prompt, 1, 1 << 16},
      {"--batch", NULL, CLI_IDS, &batch_list},
      {"--probe-seconds", NULL, CLI_FLOAT, &probe_s, 0.01, 60},
      {NULL},
  };
  int pr = cli_parse("bench adapter-step", argc, argv, opts, usage);
  if (pr == 0) pr = cli_require_positive("bench adapter-step", "--batch", batch_list.v, batch_list.n);
  if (pr != 0) {
    free(batch_list.v);
    return cli_parse_exit(pr);
  }
  int *batches = batch_list.v, n_batches = batch_list.n;
  if (!shape) {
    fprintf(stderr, "preft bench adapter-step: --shape is required (see --help)\n");
    free(batches);
    return CLI_EXIT_USAGE;
  }
  if (!batches) {
    static const int dflt[] = {1, 8, 32, 64, 128};
    cli_default_list(&batches, &n_batches, dflt, 5);
  }
  preft_error err;
  preft_model_config cfg;
  preft_model *m = NULL;
  if (preft_shape_config(shape, &cfg, &err) != 0 || (layers > 0 && (cfg.n_layers = (int)layers, 0)) ||
      preft_model_init_random(&m, &cfg, dtype, 1, &err) != 0) {
    fprintf(stderr, "preft bench adapter-step: %s\n", err.msg);
    free(batches);
    return CLI_EXIT_ERROR;
  }
  int max_b = 0;
  for (int i = 0; i < n_batches; i++) max_b = batches[i] > max_b ? batches[i] : max_b;
  preft_pool *pool = preft_pool_create((int)threads);
  const preft_model_config *c = &m->cfg;
  /* a decode step's sequences hold ctx cached tokens; a prefill writes P */
  const int len = prompt > 0 ? (int)prompt : 1, pos0 = prompt > 0 ? 0 : (int)ctx;
  const int seq_len = prompt > (long)ctx + 1 ? (int)prompt : (int)ctx + 1;
  int block = 16, blocks_per_seq = (seq_len + block - 1) / block, rc = 0;
  preft_kv_cache kv;
  if (preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, block, blocks_per_seq * max_b, max_b,
                    seq_len, &err) != 0) {
    fprintf(stderr, "preft bench adapter-step: %s\n", err.msg);
    preft_model_free(m);
    preft_pool_free(pool);
    free(batches);
    return CLI_EXIT_ERROR;
  }
  memset(kv.k, 0, sizeof(float) * (size_t)kv.n_blocks * c->n_layers * block * kv.kv_dim);
  memset(kv.v, 0, sizeof(float) * (size_t)kv.n_blocks * c->n_layers * block * kv.kv_dim);
  for (int s2 = 0; s2 < max_b; s2++) preft_kv_reserve(&kv, s2, seq_len, &err);
  preft_adapter **adapters = preft_xcalloc((size_t)max_b, sizeof *adapters);
  for (int s2 = 0; s2 < max_b; s2++)
    adapters[s2] = preft_adapter_random(PREFT_ADAPTER_LORA, c, (int)rank, PREFT_MODE_ALL, adapter_dtype,
                                        (uint64_t)s2 + 1);
  /* per batch row: its sequence's adapter, flag on (all-token) or off */
  const size_t max_rows = (size_t)max_b * (size_t)len;
  const preft_adapter **ad = preft_xmalloc(sizeof *ad * max_rows);
  for (size_t r = 0; r < max_rows; r++) ad[r] = adapters[r / (size_t)len];
  uint8_t *on = preft_xmalloc(max_rows), *off = preft_xcalloc(max_rows, 1);
  memset(on, PREFT_ADAPT_ON, max_rows);
  float *logits = preft_xmalloc(sizeof(float) * (size_t)max_b * (size_t)c->vocab);
  preft_workspace ws = {0};
  double bw = preft_roofline_bandwidth_gbs(pool, probe_s);
  printf(
      "adapter %s: %s, %d layers, %s base, rank-%ld %s LoRA on all 7 projections (%.1f MB per "
      "adapter),\n"
      "context %ld, threads %d, memory bandwidth %.1f GB/s; times are %s, medians of %ld rounds;\n"
      "overheads: the median of each round's own against its base step (a round's measurements back to\n"
      "back, their order rotating), then the range of the all-token one over the rounds\n\n",
      prompt > 0 ? "prefill step (prompt rows)" : "decode step", shape, c->n_layers, preft_dtype_name(dtype),
      rank, preft_dtype_name(adapter_dtype), adapters[0]->bytes / 1e6, prompt > 0 ? 0 : ctx,
      preft_pool_size(pool), bw, cpu_time ? "process CPU time" : "wall time", reps);
  printf("%6s | %10s %10s %10s %10s | %9s %9s %9s | %12s | %14s\n", "batch", "base ms", "lora ms",
         "unfused ms", "lora-p ms", "lora ovh", "unfus ovh", "lora-p ovh", "lora ovh, %", "adapter MB/step");
  cJSON *json = cJSON_CreateObject();
  cJSON_AddStringToObject(json, "shape", shape);
  cJSON_AddNumberToObject(json, "rank", (double)rank);
  cJSON_AddStringToObject(json, "adapter_dtype", preft_dtype_name(adapter_dtype));
  cJSON_AddNumberToObject(json, "layers", c->n_layers);
  cJSON_AddNumberToObject(json, "bandwidth_gbs", bw);
  cJSON_AddNumberToObject(json, "reps", (double)reps);
  cJSON_AddStringToObject(json, "clock", cpu_time ? "process cpu time" : "wall");
  cJSON_AddNumberToObject(json, "prompt", (double)prompt);
  cJSON *results = cJSON_AddArrayToObject(json, "results");
  const int fused0 = preft_lora_get_fused();
  /* per round: base, all-token (fused), all-token unfused, prefill-only */
  double *t = preft_xcalloc((size_t)reps * 4, sizeof(double)), med[4];
  for (int i = 0; i < n_batches && rc == 0; i++) {
    int B = batches[i];
    /* warm-up, then rounds of base / all-token / [unfused] / prefill-only (decode rows flagged off) */
    time_decode_step(m, pool, &kv, &ws, B, len, pos0, 1, false, NULL, NULL, logits, &err);
    /* the measurements of a round back to back, their order rotating from
     * round to round so that none is always first after the previous one */
    const int nk = unfused ? 4 : 3; /* base, all-token, [unfused,] prefill-only */
    for (long r = 0; r < reps && rc == 0; r++) {
      double *tr = t + 4 * r;
      tr[2] = 0;
      for (int q = 0; q < nk; q++) {
        int kind = (int)((q + r) % nk);
        if (!unfused && kind == 2) kind = 3;
        const preft_adapter **rows_ad = kind == 0 ? NULL : ad;
        const uint8_t *flags = kind == 0 ? NULL : kind == 3 ? off : on;
        if (kind == 2) preft_lora_set_fused(0);
        tr[kind] = time_decode_step(m, pool, &kv, &ws, B, len, pos0, (int)steps, cpu_time, rows_ad, flags,
                                    logits, &err);
        if (kind == 2) preft_lora_set_fused(fused0);
        if (tr[kind] < 0) rc = -1;
      }
    }
    if (rc != 0) {
      fprintf(stderr, "preft bench adapter-step: %s\n", err.msg);
      break;
    }
    /* med[q]: each measurement's median step; ovh[q]: the median of the
     * rounds' own overheads against their base step, lo/hi their range */
    double ovh[4] = {0}, lo[4] = {0}, hi[4] = {0};
    for (int q = 0; q < 4; q++) {
      med[q] = round_median(t, reps, q, -1, NULL, NULL);
      if (q > 0) ovh[q] = round_median(t, reps, q, 0, &lo[q], &hi[q]);
    }
    double mb = B * adapters[0]->bytes / 1e6;
    printf("%6d | %10.2f %10.2f %10.2f %10.2f | %8.1f%% %8.1f%% %8.1f%% | %5.1f..%-5.1f | %14.1f\n", B,
           med[0] * 1e3, med[1] * 1e3, med[2] * 1e3, med[3] * 1e3, 100 * ovh[1], unfused ? 100 * ovh[2] : 0.0,
           100 * ovh[3], 100 * lo[1], 100 * hi[1], mb);
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", B);
    cJSON_AddNumberToObject(o, "base_step_ms", med[0] * 1e3);
    cJSON_AddNumberToObject(o, "lora_step_ms", med[1] * 1e3);
    if (unfused) cJSON_AddNumberToObject(o, "lora_unfused_step_ms", med[2] * 1e3);
    cJSON_AddNumberToObject(o, "lora_prefill_only_step_ms", med[3] * 1e3);
    cJSON_AddNumberToObject(o, "lora_overhead", ovh[1]); /* median of the rounds' overheads */
    cJSON_AddNumberToObject(o, "lora_overhead_min", lo[1]);
    cJSON_AddNumberToObject(o, "lora_overhead_max", hi[1]);
    if (unfused) cJSON_AddNumberToObject(o, "lora_unfused_overhead", ovh[2]);
    cJSON_AddNumberToObject(o, "lora_prefill_only_overhead", ovh[3]);
    cJSON_AddNumberToObject(o, "adapter_mb_per_step", mb);
    cJSON *rounds = cJSON_AddArrayToObject(o, "rounds_ms"); /* raw: [base, lora, unfused, lora-p] per round */
    for (long r = 0; r < reps; r++) {
      cJSON *row = cJSON_CreateArray();
      for (int q = 0; q < 4; q++) cJSON_AddItemToArray(row, cJSON_CreateNumber(t[4 * r + q] * 1e3));
      cJSON_AddItemToArray(rounds, row);
    }
    cJSON_AddItemToArray(results, o);
  }
  free(t);
  if (rc == 0 && json_path) {
    if (cli_write_json(json_path, json, &err) != 0) {
      fprintf(stderr, "preft bench adapter-step: %s\n", err.msg);
      rc = -1;
    }
  }
  cJSON_Delete(json);
  for (int s2 = 0; s2 < max_b; s2++) preft_adapter_free(adapters[s2]);
  free(adapters);
  free(ad);
  free(on);
  free(off);
  free(logits);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  preft_pool_free(pool);
  preft_model_free(m);
  free(batches);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

int cli_bench(int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  if (!strcmp(argv[1], "roofline")) return bench_roofline(argc - 1, argv + 1);
  if (!strcmp(argv[1], "model")) return bench_model(argc - 1, argv + 1);
  if (!strcmp(argv[1], "adapter-step")) return bench_adapter_step(argc - 1, argv + 1);
  if (!strcmp(argv[1], "adapters")) return cli_bench_adapters(argc - 1, argv + 1);
  if (!strcmp(argv[1], "encoder")) return cli_bench_encoder(argc - 1, argv + 1);
  if (!strcmp(argv[1], "serve")) return cli_bench_serve(argc - 1, argv + 1);
  if (!strcmp(argv[1], "spec")) return cli_bench_spec(argc - 1, argv + 1);
  fprintf(
      stderr,
      "preft bench: unknown benchmark '%s' (roofline, model, adapter-step, adapters, encoder, serve, spec)\n",
      argv[1]);
  return CLI_EXIT_USAGE;
}
