/* cli_bench_adapters.c - `preft bench adapters`: the PreFT throughput
 * experiment at engine level (no HTTP). R requests of P prompt tokens and O
 * output tokens, spread round-robin over N distinct adapters, are submitted
 * at once to the serving engine; each method is timed end to end:
 *   base      no adapter (the ceiling)
 *   lora      LoRA on all seven projections, all-token (classic multi-LoRA)
 *   lora-p    the same adapters, prefill-only (decode runs the base model)
 *   direft, direft-p, loreft-p   ReFT on every layer's residual stream
 * Adapters have random weights and are made in memory.
 *
 * Reported per run: wall time; output tokens/s (R*O / wall); prefill tokens/s
 * (R*P over the time until the last request's first token) and decode
 * tokens/s (the other R*(O-1) tokens over the remaining time) -- the phases
 * are separate because every request is admitted at once when R fits the
 * running limit; peak RSS. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/svg_plot.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "model/adapter_plan.h"
#include "model/shapes.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft bench adapters (--shape NAME | -m DIR) [options]\n\n"
          "R requests (prompt P, output O tokens) round-robin over N distinct random adapters,\n"
          "all submitted at once to the engine; throughput per method and adapter count.\n\n"
          "  --shape NAME        random weights of a known shape: %s\n"
          "  -m DIR              or a Hugging Face model directory\n"
          "  --layers L          override the depth of --shape (shorter runs)\n"
          "  --dtype f32|bf16    base weights for --shape (default bf16)\n"
          "  --adapter-dtype T   LoRA weights (default: the base's)\n"
          "  --methods LIST      of base,lora,lora-p,direft,direft-p,loreft-p (default these six),\n"
          "                      lora-u, lora-p-u (LoRA on the unfused path: the expand as its\n"
          "                      own pass, adapter_plan.h; to compare the paths in one run)\n"
          "  --adapters LIST     adapter counts N (default 1,8,32,128,512)\n"
          "  --rank R            adapter rank (default 16)\n"
          "  --requests R        (default 64)\n"
          "  --prompt-len P      (default 128)\n"
          "  --output-len O      (default 32)\n"
          "  --step-tokens N     token rows per engine step (default 512)\n"
          "  --reps K            run the whole sweep K times, interleaved, and keep each\n"
          "                      cell's best (other load on the machine only slows a run)\n"
          "  --threads N         (default: all cores)\n" CLI_MATMUL_HELP CLI_QUANTIZE_HELP
          "  --json FILE         records as JSON (atomically)\n"
          "  --plot FILE.svg     throughput against adapter count, one line per method\n",
          preft_shape_names());
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int remaining, tokens;
  double t0, last_first_token;
  bool *got_first;
} run_state;

static bool on_token(void *user, const preft_token_event *ev) {
  run_state *st = user;
  pthread_mutex_lock(&st->mu);
  if (ev->token >= 0) {
    st->tokens++;
    double now = preft_now();
    if (ev->completion_tokens == 1 && now > st->last_first_token) st->last_first_token = now;
  }
  if (ev->finish != PREFT_FINISH_NONE && --st->remaining == 0) pthread_cond_signal(&st->cv);
  pthread_mutex_unlock(&st->mu);
  return true;
}

static double peak_rss_mb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double mb = 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) mb = atof(line + 6) / 1024.0;
  fclose(f);
  return mb;
}

typedef struct {
  const char *name;
  preft_adapter_kind kind;
  preft_adapter_mode mode;
  bool adapted;
  bool unfused; /* LoRA on the unfused path (adapter_plan.h) */
} method;

static const method methods[] = {
    {"base", PREFT_ADAPTER_LORA, PREFT_MODE_ALL, false, false},
    {"lora", PREFT_ADAPTER_LORA, PREFT_MODE_ALL, true, false},
    {"lora-p", PREFT_ADAPTER_LORA, PREFT_MODE_PREFILL, true, false},
    {"direft", PREFT_ADAPTER_DIREFT, PREFT_MODE_ALL, true, false},
    {"direft-p", PREFT_ADAPTER_DIREFT, PREFT_MODE_PREFILL, true, false},
    {"loreft-p", PREFT_ADAPTER_LOREFT, PREFT_MODE_PREFILL, true, false},
    {"lora-u", PREFT_ADAPTER_LORA, PREFT_MODE_ALL, true, true},
    {"lora-p-u", PREFT_ADAPTER_LORA, PREFT_MODE_PREFILL, true, true},
};
enum { N_METHODS = sizeof methods / sizeof methods[0] };

typedef struct {
  int method, n_adapters;
  double wall, tps, prefill_tps, decode_tps, rss;
} record;

typedef struct {
  preft_model *m;
  int threads, rank, requests, prompt_len, output_len, step_tokens;
  preft_dtype adapter_dtype;
} bench_opts;

static int run_one_path(const bench_opts *o, const method *me, int n_adapters, record *rec, preft_error *err);

/* One run on the method's LoRA path (the process-wide switch, restored). */
static int run_one(const bench_opts *o, const method *me, int n_adapters, record *rec, preft_error *err) {
  int fused = preft_lora_get_fused();
  if (me->unfused) preft_lora_set_fused(0);
  int rc = run_one_path(o, me, n_adapters, rec, err);
  preft_lora_set_fused(fused);
  return rc;
}

static int run_one_path(const bench_opts *o, const method *me, int n_adapters, record *rec,
                        preft_error *err) {
  const preft_model_config *c = &o->m->cfg;
  preft_engine_config ec = {.threads = o->threads,
                            .max_running = o->requests,
                            .max_step_tokens = o->step_tokens,
                            .max_queue = o->requests,
                            .max_loaded_adapters = n_adapters + 1,
                            .borrow_model = true};
  ec.max_context = o->prompt_len + o->output_len;
  size_t block = preft_kv_block_bytes(c->n_layers, c->n_kv_heads * c->head_dim, 16);
  size_t blocks = (size_t)o->requests * ((size_t)(o->prompt_len + o->output_len + 15) / 16 + 1);
  /* the adapters first: their memory comes out of the KV cache (engine.c:
   * at most the cache less one full context), so the cache holds the
   * requests' blocks, one context and every adapter (each in whole blocks);
   * an in-memory adapter evicted for room could not be loaded again */
  int n_made = me->adapted ? n_adapters : 0;
  preft_adapter **ads = preft_xcalloc((size_t)(n_made > 0 ? n_made : 1), sizeof *ads);
  size_t adapter_bytes = 0;
  for (int a = 0; a < n_made; a++) {
    ads[a] = preft_adapter_random(me->kind, c, o->rank, me->mode, o->adapter_dtype, (uint64_t)a + 1);
    adapter_bytes += (ads[a]->bytes + block - 1) / block * block;
  }
  size_t ctx = ((size_t)(ec.max_context + 15) / 16 + 1) * block;
  ec.kv_cache_mb = ((blocks * block + ctx + adapter_bytes) >> 20) + 1;
  preft_engine *e = NULL;
  int made = preft_engine_create(&e, o->m, &ec, err);
  char name[32];
  for (int a = 0; a < n_made; a++) {
    snprintf(name, sizeof name, "a%d", a);
    if (made != 0) {
      preft_adapter_free(ads[a]); /* not given to the engine */
      continue;
    }
    if (preft_engine_add_loaded_adapter(e, name, ads[a], err) != 0) made = -1;
  }
  free(ads);
  if (made != 0) {
    if (e) preft_engine_free(e);
    return -1;
  }
  run_state st = {.remaining = o->requests};
  pthread_mutex_init(&st.mu, NULL);
  pthread_cond_init(&st.cv, NULL);
  int *prompt = preft_xmalloc(sizeof(int) * (size_t)o->prompt_len);
  int rc = 0;
  st.t0 = preft_now();
  for (int r = 0; r < o->requests && rc == 0; r++) {
    for (int i = 0; i < o->prompt_len; i++)
      prompt[i] = (int)((7919u * (unsigned)(r * 131 + i) + 17u) % (unsigned)c->vocab);
    snprintf(name, sizeof name, "a%d", r % (n_adapters > 0 ? n_adapters : 1));
    preft_request_params p = {.prompt = prompt,
                              .n_prompt = o->prompt_len,
                              .adapter = me->adapted ? name : NULL,
                              .adapter_mode = me->mode,
                              .max_tokens = o->output_len};
    uint64_t id;
    if (preft_engine_submit(e, &p, on_token, &st, &id, err) != PREFT_SUBMIT_OK) rc = -1;
  }
  if (rc == 0) {
    pthread_mutex_lock(&st.mu);
    while (st.remaining > 0) pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);
    double wall = preft_now() - st.t0, prefill = st.last_first_token - st.t0;
    rec->wall = wall;
    rec->tps = st.tokens / wall;
    rec->prefill_tps = (double)o->requests * o->prompt_len / prefill;
    rec->decode_tps = wall > prefill ? (double)o->requests * (o->output_len - 1) / (wall - prefill) : 0;
    rec->rss = peak_rss_mb();
  }
  free(prompt);
  preft_engine_free(e); /* waits for nothing: every request has finished */
  pthread_mutex_destroy(&st.mu);
  pthread_cond_destroy(&st.cv);
  return rc;
}

/* One line of the table; "vs base" against base_tps (0: none yet). */
static void print_record(const record *r, double base_tps, int rep, int reps) {
  char vs[16] = "-", run[32] = "";
  if (base_tps > 0) snprintf(vs, sizeof vs, "%.3fx", r->tps / base_tps);
  if (reps > 1) snprintf(run, sizeof run, "  run %d/%d", rep + 1, reps);
  printf("%-9s %9d | %9.2f %12.1f %13.1f %13.1f %9.0f | %8s%s\n", methods[r->method].name, r->n_adapters,
         r->wall, r->tps, r->prefill_tps, r->decode_tps, r->rss, vs, run);
  fflush(stdout);
}

static int parse_methods(const char *s, bool *on) {
  char *copy = preft_xstrdup(s), *save = NULL;
  int n = 0;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < N_METHODS && strcmp(methods[k].name, t) != 0) k++;
    if (k == N_METHODS) {
      fprintf(stderr,
              "preft bench adapters: unknown method '%s' (base, lora, lora-p, direft, direft-p, loreft-p, "
              "lora-u, lora-p-u)\n",
              t);
      free(copy);
      return -1;
    }
    on[k] = true;
    n++;
  }
  free(copy);
  return n > 0 ? 0 : -1;
}

static int write_outputs(const record *recs, int n, const bench_opts *o, const char *label,
                         const char *json_path, const char *plot_path, preft_error *err) {
  if (json_path) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
      cJSON *r = cJSON_CreateObject();
      cJSON_AddStringToObject(r, "model", label);
      cJSON_AddStringToObject(r, "method", methods[recs[i].method].name);
      cJSON_AddNumberToObject(r, "n_adapters", recs[i].n_adapters);
      cJSON_AddNumberToObject(r, "rank", o->rank);
      cJSON_AddNumberToObject(r, "requests", o->requests);
      cJSON_AddNumberToObject(r, "prompt_len", o->prompt_len);
      cJSON_AddNumberToObject(r, "output_len", o->output_len);
      cJSON_AddStringToObject(r, "dtype", preft_dtype_name(o->m->layers[0].wq.dtype));
      cJSON_AddStringToObject(r, "kernels", preft_cpu_path_name(preft_cpu_path()));
      cJSON_AddStringToObject(r, "matmul_precision",
                              preft_matmul_precision_name(preft_matmul_get_precision()));
      cJSON_AddNumberToObject(r, "wall_s", recs[i].wall);
      cJSON_AddNumberToObject(r, "tokens_per_s", recs[i].tps);
      cJSON_AddNumberToObject(r, "prefill_tokens_per_s", recs[i].prefill_tps);
      cJSON_AddNumberToObject(r, "decode_tokens_per_s", recs[i].decode_tps);
      cJSON_AddNumberToObject(r, "peak_rss_mb", recs[i].rss);
      cJSON_AddItemToArray(arr, r);
    }
    int rc = cli_write_json(json_path, arr, err);
    cJSON_Delete(arr);
    if (rc != 0) return -1;
  }
  if (!plot_path) return 0;
  preft_plot_series series[N_METHODS];
  double xs[N_METHODS][64], ys[N_METHODS][64];
  int ns = 0, max_n = 1, min_n = 1 << 30;
  for (int i = 0; i < n; i++)
    if (recs[i].n_adapters > 0) {
      max_n = recs[i].n_adapters > max_n ? recs[i].n_adapters : max_n;
      min_n = recs[i].n_adapters < min_n ? recs[i].n_adapters : min_n;
    }
  if (min_n > max_n) min_n = 1;
  for (int k = 0; k < N_METHODS; k++) {
    int cnt = 0;
    for (int i = 0; i < n && cnt < 62; i++) {
      if (recs[i].method != k) continue;
      if (k == 0) { /* the base model: a flat ceiling across the x range */
        xs[k][cnt] = min_n, ys[k][cnt++] = recs[i].tps;
        xs[k][cnt] = max_n, ys[k][cnt++] = recs[i].tps;
      } else {
        xs[k][cnt] = recs[i].n_adapters, ys[k][cnt++] = recs[i].tps;
      }
    }
    if (cnt) series[ns++] = (preft_plot_series){methods[k].name, xs[k], ys[k], cnt, k == 0};
  }
  char title[160];
  snprintf(title, sizeof title, "%s: %d requests, prompt %d, output %d, rank %d", label, o->requests,
           o->prompt_len, o->output_len, o->rank);
  preft_plot plot = {title, "distinct adapters (N)", "output tokens/s", true, true, series, ns};
  return preft_plot_write_svg(&plot, plot_path, err);
}

int cli_bench_adapters(int argc, char **argv) {
  const char *shape = NULL, *dir = NULL, *json_path = NULL, *plot_path = NULL, *method_list = NULL;
  preft_dtype dtype = PREFT_BF16, adapter_dtype = (preft_dtype)-1;
  bool on[N_METHODS] = {0};
  long layers = 0, threads = 0, rank = 16, requests = 64, P = 128, O = 32, step_tokens = 512, reps = 1;
  cli_ids count_list = {0};
  const cli_opt opts[] = {
      {"--shape", NULL, CLI_STR, &shape},
      {"--model", "-m", CLI_STR, &dir},
      {"--json", NULL, CLI_STR, &json_path},
      {"--plot", NULL, CLI_STR, &plot_path},
      {"--dtype", NULL, CLI_DTYPE, &dtype},
      {"--adapter-dtype", NULL, CLI_DTYPE, &adapter_dtype},
      {"--methods", NULL, CLI_STR, &method_list},
      {"--adapters", NULL, CLI_IDS, &count_list},
      {"--layers", NULL, CLI_INT, &layers, 1, 1024},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      CLI_QUANTIZE_OPTION,
      {"--rank", NULL, CLI_INT, &rank, 1, 4096},
      {"--requests", NULL, CLI_INT, &requests, 1, 100000},
      {"--prompt-len", NULL, CLI_INT, &P, 1, 1 << 20},
      {"--output-len", NULL, CLI_INT, &O, 1, 1 << 20},
      {"--step-tokens", NULL, CLI_INT, &step_tokens, 1, 1 << 20},
      {"--reps", NULL, CLI_INT, &reps, 1, 100},
      {NULL},
  };
  int pr = cli_parse("bench adapters", argc, argv, opts, usage);
  if (pr == 0 && method_list && parse_methods(method_list, on) != 0) pr = -1;
  if (pr == 0) pr = cli_require_positive("bench adapters", "--adapters", count_list.v, count_list.n);
  if (pr != 0) {
    free(count_list.v);
    return cli_parse_exit(pr);
  }
  int *counts = count_list.v, n_counts = count_list.n;
  if (!shape == !dir) {
    fprintf(stderr, "preft bench adapters: give exactly one of --shape and -m (see --help)\n");
    free(counts);
    return CLI_EXIT_USAGE;
  }
  if (!method_list)
    for (int k = 0; k < N_METHODS; k++) on[k] = !methods[k].unfused;
  if (!counts) {
    static const int dflt[] = {1, 8, 32, 128, 512};
    cli_default_list(&counts, &n_counts, dflt, 5);
  }
  preft_error err;
  bench_opts o = {.threads = (int)threads,
                  .rank = (int)rank,
                  .requests = (int)requests,
                  .prompt_len = (int)P,
                  .output_len = (int)O,
                  .step_tokens = (int)step_tokens};
  int rc = 0;
  if (shape) {
    preft_model_config cfg;
    rc = preft_shape_config(shape, &cfg, &err);
    if (rc == 0 && layers > 0) cfg.n_layers = (int)layers;
    if (rc == 0) rc = preft_model_init_random(&o.m, &cfg, dtype, 1, &err);
  } else {
    rc = preft_model_load(&o.m, dir, &err);
  }
  if (rc == 0) rc = cli_apply_quantize(o.m, &err);
  if (rc != 0) {
    fprintf(stderr, "preft bench adapters: %s\n", err.msg);
    free(counts);
    return CLI_EXIT_ERROR;
  }
  /* adapters stay exact on a quantized base */
  preft_dtype base_dt = o.m->layers[0].wq.dtype;
  o.adapter_dtype = (int)adapter_dtype >= 0         ? adapter_dtype
                    : preft_dtype_is_quant(base_dt) ? PREFT_F32
                                                    : base_dt;
  const char *label = shape ? shape : dir;
  printf(
      "bench adapters: %s, %d layers, %s weights, %d requests x (prompt %d + output %d), rank %d, "
      "kernels %s, matmul %s\n",
      label, o.m->cfg.n_layers, preft_dtype_name(o.m->layers[0].wq.dtype), o.requests, o.prompt_len,
      o.output_len, o.rank, preft_cpu_path_name(preft_cpu_path()),
      preft_matmul_precision_name(preft_matmul_get_precision()));
  printf("%-9s %9s | %9s %12s %13s %13s %9s | %8s\n", "method", "adapters", "wall s", "out tok/s",
         "prefill tok/s", "decode tok/s", "rss MB", "vs base");
  { /* warm-up: first touch of the weights and the allocator's arenas */
    record warm;
    bench_opts w = o;
    w.requests = o.requests < 4 ? o.requests : 4;
    rc = run_one(&w, &methods[0], 0, &warm, &err);
  }
  /* one cell per (method, adapter count); each keeps its best run */
  record *recs = preft_xcalloc((size_t)(N_METHODS * (n_counts + 1)), sizeof *recs);
  int n_recs = 0;
  for (int rep = 0; rep < reps && rc == 0; rep++) {
    double base_tps = 0;
    int cell = 0;
    for (int k = 0; k < N_METHODS && rc == 0; k++) {
      if (!on[k]) continue;
      for (int j = 0; j < (methods[k].adapted ? n_counts : 1) && rc == 0; j++, cell++) {
        record r = {.method = k, .n_adapters = methods[k].adapted ? counts[j] : 0};
        rc = run_one(&o, &methods[k], r.n_adapters, &r, &err);
        if (rc != 0) break;
        if (k == 0) base_tps = r.tps;
        if (rep == 0 || r.tps > recs[cell].tps) recs[cell] = r;
        n_recs = cell + 1 > n_recs ? cell + 1 : n_recs;
        print_record(&r, base_tps, rep, (int)reps);
      }
    }
  }
  if (rc == 0 && reps > 1) {
    printf("\nbest of %ld runs:\n", reps);
    double base_tps = recs[0].method == 0 ? recs[0].tps : 0;
    for (int i = 0; i < n_recs; i++) print_record(&recs[i], base_tps, 0, 1);
  }
  if (rc == 0) rc = write_outputs(recs, n_recs, &o, label, json_path, plot_path, &err);
  if (rc != 0) fprintf(stderr, "preft bench adapters: %s\n", err.msg);
  free(recs);
  free(counts);
  preft_model_free(o.m);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}
