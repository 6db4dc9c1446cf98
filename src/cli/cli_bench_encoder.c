/* cli_bench_encoder.c - `preft bench encoder`: BERT encoder throughput
 * (sentences/s and tokens/s at several batch sizes) beside the ceilings
 * measured in the same run: the FP32 FMA peak and preft's own sgemm on a
 * square FP32 problem (tensor/roofline.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "model/bert.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/roofline.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft bench encoder (--shape NAME | -m DIR) [--seq-len T] [--batch 1,32]\n"
          "                           [--dtype f32|f16|bf16] [--layers N] [--reps N] [--threads N]\n"
          "                           [--json FILE]\n\n"
          "Times the BERT encoder's forward pass (hidden states and pooler) over B\n"
          "sequences of T tokens and prints sentences/s, tokens/s and GFLOP/s beside the\n"
          "FP32 FMA peak and preft's sgemm (1024^3) measured in the same run.\n\n"
          "  --shape NAME  random weights of bert-base, bert-large, bert-medium, bert-small,\n"
          "                bert-mini or bert-tiny\n"
          "  -m DIR        a Hugging Face BERT directory instead\n"
          "  --seq-len T   tokens per sequence (default 128)\n"
          "  --batch LIST  batch sizes (default 1,32)\n"
          "  --dtype D     weights of a --shape model (default f32)\n"
          "  --layers N    override the shape's layer count\n"
          "  --reps N      timed passes per batch size after one warm-up; the median is\n"
          "                reported (default 3)\n"
          "  --json FILE   also write the results as JSON\n" CLI_MATMUL_HELP);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds of `reps` forward passes of B sequences of T tokens. */
static int time_batch(const preft_bert *m, preft_pool *pool, int B, int T, int reps, double *seconds,
                      preft_error *err) {
  size_t N = (size_t)B * (size_t)T, D = (size_t)m->cfg.dim;
  int *ids = malloc(sizeof(int) * N), *types = malloc(sizeof(int) * N);
  float *hidden = malloc(sizeof(float) * N * D), *pooled = malloc(sizeof(float) * (size_t)B * D);
  double *times = malloc(sizeof(double) * (size_t)(reps + 1));
  int rc = -1;
  if (!ids || !types || !hidden || !pooled || !times) {
    preft_fail(err, "cannot allocate the buffers of a batch of %d x %d tokens", B, T);
    goto out;
  }
  for (size_t i = 0; i < N; i++) {
    ids[i] = (int)((7919u * (unsigned)i + 101u) % (unsigned)m->cfg.vocab);
    types[i] = (int)(i % (size_t)T) >= T / 2;
  }
  preft_bert_workspace ws = {0};
  preft_bert_batch b = {.n_seqs = B, .seq_len = T, .ids = ids, .types = types};
  rc = 0;
  for (int r = 0; r <= reps && rc == 0; r++) { /* pass 0 warms up */
    double t0 = preft_now();
    rc = preft_bert_forward(m, pool, &b, &ws, hidden, pooled, err);
    times[r] = preft_now() - t0;
  }
  preft_bert_workspace_free(&ws);
  if (rc == 0) {
    qsort(times + 1, (size_t)reps, sizeof(double), cmp_double);
    *seconds = times[1 + reps / 2];
  }
out:
  free(ids);
  free(types);
  free(hidden);
  free(pooled);
  free(times);
  return rc;
}

int cli_bench_encoder(int argc, char **argv) {
  const char *shape = NULL, *dir = NULL, *json_path = NULL;
  preft_dtype dtype = PREFT_F32;
  long T = 128, layers = 0, reps = 3, threads = 0;
  cli_ids batch_list = {0};
  const cli_opt opts[] = {
      {"--shape", NULL, CLI_STR, &shape},
      {"--model", "-m", CLI_STR, &dir},
      {"--seq-len", NULL, CLI_INT, &T, 1, 1 << 16},
      {"--batch", NULL, CLI_IDS, &batch_list},
      {"--dtype", NULL, CLI_DTYPE, &dtype},
      {"--layers", NULL, CLI_INT, &layers, 1, 1024},
      {"--reps", NULL, CLI_INT, &reps, 1, 1000},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {"--json", NULL, CLI_STR, &json_path},
      CLI_MATMUL_OPTION,
      {NULL},
  };
  int pr = cli_parse("bench encoder", argc, argv, opts, usage);
  if (pr == 0) pr = cli_require_positive("bench encoder", "--batch", batch_list.v, batch_list.n);
  if (pr != 0) {
    free(batch_list.v);
    return cli_parse_exit(pr);
  }
  int *batches = batch_list.v, n_batches = batch_list.n;
  if (!shape == !dir) {
    fprintf(stderr, "preft bench encoder: give exactly one of --shape and -m (see --help)\n");
    free(batches);
    return CLI_EXIT_USAGE;
  }
  if (!batches) {
    static const int dflt[] = {1, 32};
    cli_default_list(&batches, &n_batches, dflt, 2);
  }
  preft_error err;
  preft_bert *m = NULL;
  preft_bert_config cfg;
  int rc = 0;
  if (shape) {
    rc = preft_bert_shape_config(shape, &cfg, &err);
    if (rc == 0 && layers > 0) cfg.n_layers = (int)layers;
    if (rc == 0) rc = preft_bert_init_random(&m, &cfg, dtype, 1, &err);
  } else {
    rc = preft_bert_load(&m, dir, &err);
  }
  if (rc == 0 && T > m->cfg.max_pos)
    rc =
        preft_fail(&err, "--seq-len %ld exceeds the model's max_position_embeddings (%d)", T, m->cfg.max_pos);
  if (rc != 0) {
    fprintf(stderr, "preft bench encoder: %s\n", err.msg);
    preft_bert_free(m);
    free(batches);
    return CLI_EXIT_ERROR;
  }
  preft_pool *pool = preft_pool_create((int)threads);
  const preft_bert_config *c = &m->cfg;
  const char *label = shape ? shape : dir;
  double peak = preft_roofline_fma_gflops(pool, 0.5), sgemm = preft_roofline_sgemm_gflops(pool, 1024);
  printf(
      "encoder %s: %d layers, D=%d, F=%d, H=%d, %s weights, seq len %ld, threads %d, kernels %s, matmul %s\n",
      label, c->n_layers, c->dim, c->ffn, c->n_heads, preft_dtype_name(m->layers[0].wq.dtype), T,
      preft_pool_size(pool), preft_cpu_path_name(preft_cpu_path()),
      preft_matmul_precision_name(preft_matmul_get_precision()));
  printf("ceilings this run: FP32 FMA peak %.1f GFLOP/s, sgemm 1024^3 %.1f GFLOP/s\n\n", peak, sgemm);
  printf("%6s | %12s %12s %10s %9s %9s\n", "batch", "sentences/s", "tokens/s", "GFLOP/s", "of sgemm",
         "of peak");
  cJSON *json = cJSON_CreateObject();
  cJSON_AddStringToObject(json, "model", label);
  cJSON_AddStringToObject(json, "dtype", preft_dtype_name(m->layers[0].wq.dtype));
  cJSON_AddNumberToObject(json, "layers", c->n_layers);
  cJSON_AddNumberToObject(json, "seq_len", (double)T);
  cJSON_AddNumberToObject(json, "threads", preft_pool_size(pool));
  cJSON_AddStringToObject(json, "kernels", preft_cpu_path_name(preft_cpu_path()));
  cJSON_AddNumberToObject(json, "fma_peak_gflops", peak);
  cJSON_AddNumberToObject(json, "sgemm_gflops", sgemm);
  cJSON *results = cJSON_AddArrayToObject(json, "results");
  for (int i = 0; i < n_batches && rc == 0; i++) {
    double s;
    rc = time_batch(m, pool, batches[i], (int)T, (int)reps, &s, &err);
    if (rc != 0) break;
    double gflops = preft_bert_forward_flops(c, batches[i], (int)T) / s / 1e9;
    printf("%6d | %12.2f %12.1f %10.1f %8.0f%% %8.0f%%\n", batches[i], batches[i] / s, batches[i] * T / s,
           gflops, 100 * gflops / sgemm, 100 * gflops / peak);
    fflush(stdout);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", batches[i]);
    cJSON_AddNumberToObject(o, "seconds", s);
    cJSON_AddNumberToObject(o, "sentences_per_s", batches[i] / s);
    cJSON_AddNumberToObject(o, "tokens_per_s", batches[i] * T / s);
    cJSON_AddNumberToObject(o, "gflops", gflops);
    cJSON_AddNumberToObject(o, "fraction_of_sgemm", gflops / sgemm);
    cJSON_AddItemToArray(results, o);
  }
  if (rc != 0) fprintf(stderr, "preft bench encoder: %s\n", err.msg);
  if (rc == 0 && json_path && cli_write_json(json_path, json, &err) != 0) {
    fprintf(stderr, "preft bench encoder: %s\n", err.msg);
    rc = -1;
  }
  cJSON_Delete(json);
  preft_pool_free(pool);
  preft_bert_free(m);
  free(batches);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}
