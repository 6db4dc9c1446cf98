/* cli_bench_serve.c - `preft bench serve`: a closed-loop load generator for
 * an OpenAI-compatible server (preft serve, or any other).
 *
 * C client threads each send one streamed /v1/completions request at a time
 * until R requests have been sent in all; client i uses adapter i mod N
 * (or the base model), or with --adapter-pick uniform each request names
 * one of the N adapters drawn uniformly (traffic over more adapters than
 * the server keeps loaded). Prompts are P random token ids (a fresh draw per
 * request, so the prefix cache does not turn the run into a cache test),
 * generation is greedy with ignore_eos so every request produces exactly O
 * tokens. Per request it records the time to the first token (TTFT) and
 * the time per output token after it (TPOT = (last - first) / (O - 1)).
 * Before and after the run it reads the server's /metrics (when it is
 * preft) to report the mean engine step time and the HTTP layer's share of
 * it. It stops by itself: the number of requests is bounded and each has a
 * timeout. */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "model/adapter.h"
#include "server/client.h"
#include "server/sse.h"

#define MAX_BENCH_ADAPTERS 4096

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft bench serve --url URL [options]\n\n"
          "Closed-loop load on an OpenAI-compatible server: C clients, each sending one\n"
          "streamed completion request at a time, R requests in all, P random prompt\n"
          "tokens and O generated tokens each (greedy, ignore_eos). Reports output\n"
          "tokens/s, time to first token and time per output token (p50/p90/p99), errors,\n"
          "and, against preft serve, the engine's mean step time and the HTTP layer's\n"
          "share of it.\n\n"
          "  --url URL            server base URL, e.g. http://127.0.0.1:8080\n"
          "  --api-key KEY        sent as 'Authorization: Bearer KEY'\n"
          "  --model NAME         base model id (default: the server's first model)\n"
          "  --adapters A,B,...   adapters to use; client i uses adapter i mod N\n"
          "  --num-adapters N     or the first N adapters the server lists\n"
          "  --adapter-pick K     client (default): client i uses adapter i mod N; uniform:\n"
          "                       each request a random one of the N (seeded by --seed)\n"
          "  --adapter-mode M     all | prefill: override each adapter's default mode\n"
          "  --concurrency C      clients (default 8)\n"
          "  --requests R         requests in all (default 64)\n"
          "  --prompt-len P       prompt tokens (default 64)\n"
          "  --output-len O       generated tokens per request (default 64)\n"
          "  --vocab V            prompt ids are drawn from [1, V) (default 256)\n"
          "  --seed S             prompt RNG seed (default 1)\n"
          "  --timeout S          per-request timeout in seconds (default 600)\n"
          "  --json FILE          also write the results as JSON (atomically)\n");
}

typedef struct {
  double t0, t_first, t_last;
  int tokens, usage_tokens;
  long status;
  bool ok, done;
  char error[160];
} req_rec;

typedef struct bench {
  const char *url, *api_key, *model, *mode;
  char **adapters;
  int n_adapters;
  bool uniform; /* each request a random adapter, not the client's */
  long C, R, P, O, vocab, seed, timeout;
  atomic_long next;
  req_rec *recs;
} bench;

typedef struct {
  bench *b;
  int client;
} client_arg;

/* One SSE payload of a streamed completion. */
static bool on_event(void *ctx, const char *data, size_t len) {
  req_rec *r = ctx;
  if (!strcmp(data, "[DONE]")) {
    r->done = true;
    return true;
  }
  cJSON *j = cJSON_ParseWithLength(data, len);
  if (!j) {
    snprintf(r->error, sizeof r->error, "malformed event: %.80s", data);
    return false;
  }
  const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
  if (err) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    snprintf(r->error, sizeof r->error, "error event: %.120s", cJSON_IsString(m) ? m->valuestring : "?");
  }
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
  const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
  const cJSON *ids = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "token_ids") : NULL;
  int k = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : 0;
  if (k > 0) {
    double now = preft_now();
    if (r->tokens == 0) r->t_first = now;
    r->t_last = now;
    r->tokens += k;
  }
  const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
  const cJSON *ct = usage ? cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens") : NULL;
  if (cJSON_IsNumber(ct)) r->usage_tokens = ct->valueint;
  cJSON_Delete(j);
  return true;
}

static uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static char *request_body(const bench *b, long index, int client) {
  srv_buf s = {0};
  const char *model =
      !b->n_adapters ? b->model
      : b->uniform
          ? b->adapters[mix(mix((uint64_t)b->seed ^ 0xADA7ull) + (uint64_t)index) % (uint64_t)b->n_adapters]
          : b->adapters[client % b->n_adapters];
  preft_srv_buf_puts(&s, "{\"model\":");
  preft_srv_buf_json_str(&s, model, strlen(model));
  preft_srv_buf_puts(&s, ",\"prompt\":[");
  uint64_t rng = mix((uint64_t)b->seed * 1000003u + (uint64_t)index);
  for (long i = 0; i < b->P; i++) {
    rng = mix(rng);
    preft_srv_buf_printf(&s, i ? ",%ld" : "%ld", 1 + (long)(rng % (uint64_t)(b->vocab - 1)));
  }
  preft_srv_buf_printf(&s,
                       "],\"max_tokens\":%ld,\"temperature\":0,\"ignore_eos\":true,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"return_token_ids\":true",
                       b->O);
  if (b->mode && b->n_adapters) preft_srv_buf_printf(&s, ",\"adapter_mode\":\"%s\"", b->mode);
  preft_srv_buf_puts(&s, "}");
  return s.p;
}

static void *client_main(void *arg) {
  client_arg *a = arg;
  bench *b = a->b;
  preft_client *c = preft_client_new(b->url, b->api_key, (double)b->timeout);
  for (;;) {
    long i = atomic_fetch_add(&b->next, 1);
    if (i >= b->R) break;
    req_rec *r = &b->recs[i];
    char *body = request_body(b, i, a->client);
    preft_http_response resp;
    preft_error err;
    r->t0 = preft_now();
    int rc = preft_client_post(c, "/v1/completions", body, on_event, r, &resp, &err);
    double t_end = preft_now();
    free(body);
    r->status = resp.status;
    if (rc != 0)
      snprintf(r->error, sizeof r->error, "%.150s", err.msg);
    else if (resp.status != 200)
      snprintf(r->error, sizeof r->error, "HTTP %ld: %.120s", resp.status, resp.body);
    else if (!r->error[0] && !r->done)
      snprintf(r->error, sizeof r->error, "stream ended without [DONE]");
    else if (!r->error[0] && (r->tokens != b->O || r->usage_tokens != b->O))
      snprintf(r->error, sizeof r->error, "got %d tokens (usage says %d), expected %ld", r->tokens,
               r->usage_tokens, b->O);
    r->ok = !r->error[0];
    if (!r->t_last) r->t_last = t_end;
    preft_http_response_free(&resp);
  }
  preft_client_free(c);
  return NULL;
}

/* ---- the server's /metrics -------------------------------------------------------- */

typedef struct {
  bool ok;
  double step_sum, steps, cb, http_cpu, gen_tokens;
  double loads, prefetches, load_s; /* adapter loads, those started ahead, their seconds */
  double load_cpu, cpu;             /* the loads' CPU seconds; the server process's */
} server_stats;

static double metric(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, name, n) && p[n] == ' ') return atof(p + n + 1);
  return 0;
}

static server_stats read_stats(preft_client *c) {
  server_stats s = {0};
  preft_http_response r;
  preft_error err;
  if (preft_client_get(c, "/metrics", &r, &err) == 0 && r.status == 200 &&
      strstr(r.body, "preft_step_seconds_sum")) {
    s.ok = true;
    s.step_sum = metric(r.body, "preft_step_seconds_sum");
    s.steps = metric(r.body, "preft_step_seconds_count");
    s.cb = metric(r.body, "preft_http_engine_callback_seconds_total");
    s.http_cpu = metric(r.body, "preft_http_cpu_seconds_total");
    s.gen_tokens = metric(r.body, "preft_generation_tokens_total{mode=\"all\"}") +
                   metric(r.body, "preft_generation_tokens_total{mode=\"prefill\"}");
    s.loads = metric(r.body, "preft_adapter_loads_total");
    s.prefetches = metric(r.body, "preft_adapter_prefetches_total");
    s.load_s = metric(r.body, "preft_adapter_load_seconds_sum");
    s.load_cpu = metric(r.body, "preft_adapter_load_cpu_seconds_total");
    s.cpu = metric(r.body, "process_cpu_seconds_total");
  }
  preft_http_response_free(&r);
  return s;
}

/* The base model and the adapters the server lists (GET /v1/models). */
static int list_models(preft_client *c, char **base, char ***adapters, int *n, preft_error *err) {
  preft_http_response r;
  if (preft_client_get(c, "/v1/models", &r, err) != 0) return -1;
  cJSON *j = r.status == 200 ? cJSON_Parse(r.body) : NULL;
  preft_http_response_free(&r);
  const cJSON *data = j ? cJSON_GetObjectItemCaseSensitive(j, "data") : NULL;
  if (!cJSON_IsArray(data)) {
    cJSON_Delete(j);
    return preft_fail(err, "GET /v1/models did not return a model list (HTTP %ld)", r.status);
  }
  *base = NULL;
  *adapters = preft_xcalloc((size_t)cJSON_GetArraySize(data) + 1, sizeof(char *));
  *n = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, data) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id"),
                *parent = cJSON_GetObjectItemCaseSensitive(m, "parent");
    if (!cJSON_IsString(id)) continue;
    if (cJSON_IsString(parent))
      (*adapters)[(*n)++] = preft_xstrdup(id->valuestring);
    else if (!*base)
      *base = preft_xstrdup(id->valuestring);
  }
  cJSON_Delete(j);
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  double p50, p90, p99, mean;
} pcts;

/* Nearest-rank percentiles. */
static pcts percentiles(double *v, int n) {
  pcts p = {0};
  if (n == 0) return p;
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  int i50 = (int)ceil(0.50 * n) - 1, i90 = (int)ceil(0.90 * n) - 1, i99 = (int)ceil(0.99 * n) - 1;
  p.p50 = v[i50 < 0 ? 0 : i50];
  p.p90 = v[i90 < 0 ? 0 : i90];
  p.p99 = v[i99 < 0 ? 0 : i99];
  p.mean = sum / n;
  return p;
}

static void add_pcts(cJSON *o, const char *name, pcts p) {
  cJSON *x = cJSON_AddObjectToObject(o, name);
  cJSON_AddNumberToObject(x, "p50", p.p50);
  cJSON_AddNumberToObject(x, "p90", p.p90);
  cJSON_AddNumberToObject(x, "p99", p.p99);
  cJSON_AddNumberToObject(x, "mean", p.mean);
}

int cli_bench_serve(int argc, char **argv) {
  bench b = {.C = 8, .R = 64, .P = 64, .O = 64, .vocab = 256, .seed = 1, .timeout = 600};
  const char *adapters_arg = NULL, *json_path = NULL, *pick = "client";
  long num_adapters = 0;
  int mode = -1;
  const cli_opt opts[] = {
      {"--url", NULL, CLI_STR, &b.url},
      {"--api-key", NULL, CLI_STR, &b.api_key},
      {"--model", NULL, CLI_STR, &b.model},
      {"--adapters", NULL, CLI_STR, &adapters_arg},
      {"--num-adapters", NULL, CLI_INT, &num_adapters, 1, MAX_BENCH_ADAPTERS},
      {"--adapter-pick", NULL, CLI_STR, &pick},
      {"--adapter-mode", NULL, CLI_MODE, &mode},
      {"--concurrency", NULL, CLI_INT, &b.C, 1, 4096},
      {"--requests", NULL, CLI_INT, &b.R, 1, 10000000},
      {"--prompt-len", NULL, CLI_INT, &b.P, 1, 1 << 20},
      {"--output-len", NULL, CLI_INT, &b.O, 1, 1 << 20},
      {"--vocab", NULL, CLI_INT, &b.vocab, 2, 1 << 30},
      {"--seed", NULL, CLI_INT, &b.seed, 0, 0x7fffffff},
      {"--timeout", NULL, CLI_INT, &b.timeout, 1, 86400},
      {"--json", NULL, CLI_STR, &json_path},
      {NULL},
  };
  int pr = cli_parse("bench serve", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!b.url) {
    fprintf(stderr, "preft bench serve: --url is required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (adapters_arg && num_adapters) {
    fprintf(stderr, "preft bench serve: give --adapters or --num-adapters, not both\n");
    return CLI_EXIT_USAGE;
  }
  if (strcmp(pick, "client") && strcmp(pick, "uniform")) {
    fprintf(stderr, "preft bench serve: --adapter-pick expects client or uniform, got '%s'\n", pick);
    return CLI_EXIT_USAGE;
  }
  b.uniform = !strcmp(pick, "uniform");
  if (mode >= 0) b.mode = preft_adapter_mode_name((preft_adapter_mode)mode);

  preft_client_global_init();
  preft_client *ctl = preft_client_new(b.url, b.api_key, 30);
  preft_error err;
  char *base = NULL, **listed = NULL;
  int n_listed = 0, rc = CLI_EXIT_ERROR;
  if (list_models(ctl, &base, &listed, &n_listed, &err) != 0) {
    fprintf(stderr, "preft bench serve: %s\n", err.msg);
    goto done;
  }
  if (!b.model) b.model = base;
  if (!b.model) {
    fprintf(stderr, "preft bench serve: the server lists no base model; give --model\n");
    goto done;
  }
  if (num_adapters) {
    if (num_adapters > n_listed) {
      fprintf(stderr, "preft bench serve: --num-adapters %ld but the server lists %d adapters\n",
              num_adapters, n_listed);
      goto done;
    }
    b.adapters = listed;
    b.n_adapters = (int)num_adapters;
  } else if (adapters_arg) {
    b.adapters = preft_xcalloc(MAX_BENCH_ADAPTERS, sizeof(char *));
    char *copy = preft_xstrdup(adapters_arg);
    for (char *tok = strtok(copy, ","); tok && b.n_adapters < MAX_BENCH_ADAPTERS; tok = strtok(NULL, ","))
      b.adapters[b.n_adapters++] = preft_xstrdup(tok);
    free(copy);
  }

  b.recs = preft_xcalloc((size_t)b.R, sizeof *b.recs);
  server_stats s0 = read_stats(ctl);
  pthread_t *th = preft_xmalloc(sizeof(pthread_t) * (size_t)b.C);
  client_arg *args = preft_xmalloc(sizeof(client_arg) * (size_t)b.C);
  double t0 = preft_now();
  for (int i = 0; i < b.C; i++) {
    args[i] = (client_arg){&b, i};
    pthread_create(&th[i], NULL, client_main, &args[i]);
  }
  for (int i = 0; i < b.C; i++) pthread_join(th[i], NULL);
  double wall = preft_now() - t0;
  server_stats s1 = read_stats(ctl);
  free(th);
  free(args);

  double *ttft = preft_xmalloc(sizeof(double) * (size_t)b.R),
         *tpot = preft_xmalloc(sizeof(double) * (size_t)b.R);
  double *lat = preft_xmalloc(sizeof(double) * (size_t)b.R);
  int n_ok = 0, n_tpot = 0, n_err = 0;
  long out_tokens = 0;
  for (long i = 0; i < b.R; i++) {
    req_rec *r = &b.recs[i];
    out_tokens += r->tokens;
    if (!r->ok) {
      if (n_err++ < 5) fprintf(stderr, "preft bench serve: request %ld: %s\n", i, r->error);
      continue;
    }
    ttft[n_ok] = r->t_first - r->t0;
    lat[n_ok++] = r->t_last - r->t0;
    if (r->tokens > 1) tpot[n_tpot++] = (r->t_last - r->t_first) / (r->tokens - 1);
  }
  pcts p_ttft = percentiles(ttft, n_ok), p_tpot = percentiles(tpot, n_tpot), p_lat = percentiles(lat, n_ok);
  double tps = out_tokens / wall;
  printf("preft bench serve: %s, %ld clients, %ld requests, prompt %ld, output %ld, ", b.url, b.C, b.R, b.P,
         b.O);
  if (b.n_adapters)
    printf("%d adapters (%s, mode %s)\n", b.n_adapters, b.uniform ? "uniform per request" : "one per client",
           b.mode ? b.mode : "each adapter's default");
  else
    printf("base model %s\n", b.model);
  printf("requests      %d ok, %d errors in %.2f s (%.2f requests/s)\n", n_ok, n_err, wall, n_ok / wall);
  printf("output tokens %ld: %.1f tokens/s\n", out_tokens, tps);
  printf("TTFT ms       p50 %8.1f  p90 %8.1f  p99 %8.1f  mean %8.1f\n", p_ttft.p50 * 1e3, p_ttft.p90 * 1e3,
         p_ttft.p99 * 1e3, p_ttft.mean * 1e3);
  printf("TPOT ms       p50 %8.1f  p90 %8.1f  p99 %8.1f  mean %8.1f\n", p_tpot.p50 * 1e3, p_tpot.p90 * 1e3,
         p_tpot.p99 * 1e3, p_tpot.mean * 1e3);
  printf("latency s     p50 %8.2f  p90 %8.2f  p99 %8.2f  mean %8.2f\n", p_lat.p50, p_lat.p90, p_lat.p99,
         p_lat.mean);
  cJSON *json = cJSON_CreateObject();
  if (s0.ok && s1.ok && s1.steps > s0.steps) {
    double steps = s1.steps - s0.steps, step_s = s1.step_sum - s0.step_sum;
    double cb = s1.cb - s0.cb, http = s1.http_cpu - s0.http_cpu;
    printf(
        "server        %.0f steps, mean step %.2f ms (%.0f%% of wall time); HTTP layer %.2f%% of step time "
        "(engine callback %.2f%%, connection threads %.2f%%)\n",
        steps, 1e3 * step_s / steps, 100 * step_s / wall, 100 * (cb + http) / step_s, 100 * cb / step_s,
        100 * http / step_s);
    cJSON *sv = cJSON_AddObjectToObject(json, "server");
    cJSON_AddNumberToObject(sv, "steps", steps);
    cJSON_AddNumberToObject(sv, "step_seconds", step_s);
    cJSON_AddNumberToObject(sv, "mean_step_ms", 1e3 * step_s / steps);
    cJSON_AddNumberToObject(sv, "callback_seconds", cb);
    cJSON_AddNumberToObject(sv, "http_cpu_seconds", http);
    cJSON_AddNumberToObject(sv, "http_fraction_of_step_time", (cb + http) / step_s);
    cJSON_AddNumberToObject(sv, "generated_tokens", s1.gen_tokens - s0.gen_tokens);
    double loads = s1.loads - s0.loads, cpu = s1.cpu - s0.cpu, gen = s1.gen_tokens - s0.gen_tokens;
    if (cpu > 0 && gen > 0)
      printf(
          "server CPU    %.2f s, %.1f ms per generated token (it moves less than tokens/s with other load on "
          "the machine)\n",
          cpu, 1e3 * cpu / gen);
    if (loads > 0)
      printf(
          "adapters      %.0f loads (%.0f started ahead of admission), %.1f ms each on the loader thread "
          "(%.1f ms CPU)\n",
          loads, s1.prefetches - s0.prefetches, 1e3 * (s1.load_s - s0.load_s) / loads,
          1e3 * (s1.load_cpu - s0.load_cpu) / loads);
    cJSON_AddNumberToObject(sv, "cpu_seconds", cpu);
    cJSON_AddNumberToObject(sv, "adapter_load_cpu_seconds", s1.load_cpu - s0.load_cpu);
    cJSON_AddNumberToObject(sv, "adapter_loads", loads);
    cJSON_AddNumberToObject(sv, "adapter_prefetches", s1.prefetches - s0.prefetches);
    cJSON_AddNumberToObject(sv, "adapter_load_seconds", s1.load_s - s0.load_s);
  }
  cJSON_AddStringToObject(json, "url", b.url);
  cJSON_AddStringToObject(json, "model", b.model);
  cJSON_AddNumberToObject(json, "adapters", b.n_adapters);
  cJSON_AddStringToObject(json, "adapter_pick", b.uniform ? "uniform" : "client");
  cJSON_AddStringToObject(json, "adapter_mode", b.mode ? b.mode : b.n_adapters ? "default" : "base");
  cJSON_AddNumberToObject(json, "concurrency", (double)b.C);
  cJSON_AddNumberToObject(json, "requests", (double)b.R);
  cJSON_AddNumberToObject(json, "prompt_len", (double)b.P);
  cJSON_AddNumberToObject(json, "output_len", (double)b.O);
  cJSON_AddNumberToObject(json, "ok", n_ok);
  cJSON_AddNumberToObject(json, "errors", n_err);
  cJSON_AddNumberToObject(json, "wall_seconds", wall);
  cJSON_AddNumberToObject(json, "output_tokens", (double)out_tokens);
  cJSON_AddNumberToObject(json, "output_tokens_per_s", tps);
  add_pcts(json, "ttft_s", p_ttft);
  add_pcts(json, "tpot_s", p_tpot);
  add_pcts(json, "latency_s", p_lat);
  rc = n_err ? CLI_EXIT_ERROR : CLI_EXIT_OK;
  if (json_path) {
    if (cli_write_json(json_path, json, &err) != 0) {
      fprintf(stderr, "preft bench serve: %s\n", err.msg);
      rc = CLI_EXIT_ERROR;
    }
  }
  cJSON_Delete(json);
  free(ttft);
  free(tpot);
  free(lat);
done:
  if (b.adapters != listed && b.adapters) {
    for (int i = 0; i < b.n_adapters; i++) free(b.adapters[i]);
    free(b.adapters);
  }
  for (int i = 0; i < n_listed; i++) free(listed[i]);
  free(listed);
  free(base);
  free(b.recs);
  preft_client_free(ctl);
  return rc;
}
