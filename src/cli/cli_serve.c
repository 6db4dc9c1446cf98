/* cli_serve.c - `preft serve`: the OpenAI-compatible HTTP server over the
 * serving engine, with every registered adapter selectable per request.
 *
 * Signals: SIGTERM and SIGINT start a graceful stop (no new connections,
 * 503 for new requests on open ones, requests in flight finish, or are
 * cancelled after --drain-timeout), then the process exits 0. Every thread
 * is started with these signals blocked; the main thread takes them with
 * sigwait, so no handler runs inside library code. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/log.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "engine/engine.h"
#include "io/hf_config.h"
#include "model/bert.h"
#include "model/llama.h"
#include "server/http_server.h"
#include "text/tokenizer.h"

#define MAX_ADAPTER_ARGS 256

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: preft serve -m DIR [options]\n\n"
      "Serves the model over an OpenAI-compatible HTTP API: POST /v1/completions,\n"
      "POST /v1/chat/completions (stream: true for server-sent events), GET /v1/models,\n"
      "POST /v1/load_lora_adapter, POST /v1/unload_lora_adapter, GET /health, GET /metrics,\n"
      "POST /v1/embeddings, POST /tokenize, POST /detokenize, GET /version, and a chat page\n"
      "at GET / (open http://HOST:PORT/ in a browser). A BERT encoder directory is served for\n"
      "/v1/embeddings only (its pooled output), with /tokenize and /detokenize.\n"
      "A request's \"model\" names the base model or a registered adapter; the extra\n"
      "field \"adapter_mode\": \"all\" | \"prefill\" overrides the adapter's default.\n\n"
      "  -m, --model DIR            Hugging Face model directory or GGUF file (its tokenizer, if\n"
      "                             any, serves text prompts and chat)\n"
      "  --tokenizer PATH           tokenizer to use instead of the model directory's\n"
      "  --served-model-name NAME   the base model's id (default: the directory's name)\n"
      "  --adapters DIR             register every adapter subdirectory of DIR (by name)\n"
      "  --adapter NAME=PATH        register one adapter (repeatable)\n"
      "  --host ADDR                address to bind (default 127.0.0.1, loopback only)\n"
      "  --port N                   port (default 8080; 0 = any free port)\n"
      "  --api-key KEY              require 'Authorization: Bearer KEY' on /v1/*\n"
      "                             (default: $PREFT_API_KEY when set)\n"
      "  --cors-origin ORIGIN       let browser pages from ORIGIN call the API (CORS;\n"
      "                             repeatable, e.g. http://localhost:3000; * = any)\n"
      "  --max-loaded-adapters N    adapters held in memory at most (default 64): a\n"
      "                             request for another one waits until one is idle\n"
      "  --adapter-cache-mb N       memory for loaded adapters at most, in MiB (default\n"
      "                             1024; 0: the KV cache's limit): a hard cap, taken\n"
      "                             from the KV cache (one budget, see --kv-cache-mb)\n"
      "  --adapter-registry FILE    keep adapters loaded at run time in FILE and register\n"
      "                             them again at the next start\n"
      "  --no-adapter-check         do not load every adapter at start-up to check it\n"
      "                             (a broken one is then found on first use)\n"
      "  --no-adapter-prefetch      load an adapter only when its request is admitted, not\n"
      "                             ahead for queued requests (to measure what that gains)\n"
      "  --lora-dtype T             LoRA weights in memory: auto (as the files store them,\n"
      "                             default), float16 or bfloat16 (A and B rounded at load:\n"
      "                             an FP32 adapter takes half the memory and decode reads\n"
      "                             half the bytes for it; ReFT weights stay FP32)\n"
      "  --kv-cache-mb N            memory for keys, values and loaded adapters, in MiB\n"
      "                             (default 1024); adapters take at most this less one\n"
      "                             full context, and idle ones give way to requests\n"
      "  --prefix-cache-dir DIR     keep prompt KV blocks evicted from memory (and those\n"
      "                             cached at shutdown) in DIR, and restore them for a\n"
      "                             returning user instead of recomputing the prefill\n"
      "  --prefix-cache-disk-gb G   bound on DIR's files, in GiB (default 10; fractions\n"
      "                             allowed); least recently used files are removed\n"
      "  --max-queue N              waiting requests before 429 (default 1024)\n"
      "  --max-running N            sequences decoding at once (default 256)\n"
      "  --max-step-tokens N        token rows per engine step (default 512)\n"
      "  --max-model-len N          context per sequence (default: the model's)\n"
      "  --max-body-mb N            largest request body (default 8)\n"
      "  --drain-timeout S          on SIGTERM, cancel what is still running after S\n"
      "                             seconds (default 30), and stop writing the prefix cache to\n"
      "                             its disk tier then; a second SIGTERM/SIGINT exits at once\n"
      "  --allow-runtime-adapters   enable POST /v1/load_lora_adapter and /v1/unload_lora_adapter\n"
      "  --adapter-root DIR         directory runtime-loaded adapters must be inside\n"
      "                             (default: the --adapters directory)\n"
      "  --max-connections N        open connections (default 1024)\n"
      "  --header-timeout S         seconds a client has to send a request's headers (default 10)\n"
      "  --body-timeout S           seconds a client has to send a request's body (default 60)\n"
      "  --idle-timeout S           seconds an idle keep-alive connection is kept (default 30)\n"
      "  --threads N                compute threads (default: all cores)\n" CLI_MATMUL_HELP CLI_QUANTIZE_HELP
      "  -v, --verbose              log requests and engine events to stderr\n");
  fputs(
      "  --speculative KIND         speculative decoding for every request without a grammar\n"
      "                             or penalties (the output distributed as without, greedy\n"
      "                             output the same tokens, in fewer steps; docs/SERVING.md):\n"
      "                             ngram (prompt lookup) or draft (--draft-model); off (default)\n"
      "  --spec-k K                 tokens drafted per step at most (default 4)\n"
      "  --draft-model DIR          a small model with the model's tokenizer that drafts\n"
      "                             (implies --speculative draft; base weights only, so one\n"
      "                             draft serves every adapter; e.g. assets/draft-model).\n"
      "                             Its KV cache is memory beside --kv-cache-mb: as many\n"
      "                             16-position blocks as the model's cache, sized by the\n"
      "                             draft's layers (assets/draft-model: a sixth more next to\n"
      "                             the default model)\n",
      out);
}

/* The last path component of dir, without trailing slashes. */
static char *dir_name(const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  size_t start = n;
  while (start > 0 && dir[start - 1] != '/') start--;
  char *s = preft_xmalloc(n - start + 1);
  memcpy(s, dir + start, n - start);
  s[n - start] = 0;
  return s;
}

static void report_unavailable(void *ctx, const preft_adapter_info *a) {
  (void)ctx;
  if (a->error) fprintf(stderr, "preft serve: adapter '%s' is unavailable: %s\n", a->name, a->error);
}

/* Loads every registered adapter once to check it (the first max-loaded
 * stay loaded); broken ones are reported and stay listed as unavailable. */
static void check_adapters(preft_engine *engine, int n_adapters) {
  double t0 = preft_now();
  int bad = preft_engine_check_adapters(engine);
  if (bad > 0) preft_engine_each_adapter(engine, report_unavailable, NULL);
  fprintf(stderr, "preft serve: checked %d adapters in %.2f s: %d unavailable\n", n_adapters,
          preft_now() - t0, bad);
}

/* Waits for a second SIGTERM/SIGINT while the first one drains, and ends
 * the process at once with 128 + the signal's number, as a shell reports a
 * process the signal killed. */
static void *exit_on_second_signal(void *stop_sigs) {
  int sig = 0;
  while (sigwait(stop_sigs, &sig) != 0) {
  }
  static const char msg[] = "preft serve: second stop signal, exiting without finishing the drain\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  _exit(128 + sig);
}

/* An encoder's tokenizer: --tokenizer, else the model directory's when it
 * has tokenizer.json or vocab.txt, else none (token-id inputs only). */
static int load_encoder_tokenizer(const char *dir, const char *tok_path, preft_tokenizer **out,
                                  preft_error *err) {
  *out = NULL;
  char json[4096], vocab[4096];
  snprintf(json, sizeof json, "%s/tokenizer.json", dir);
  snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
  if (!tok_path && access(json, R_OK) != 0 && access(vocab, R_OK) != 0) return 0;
  return preft_tokenizer_load(out, tok_path ? tok_path : dir, err);
}

int cli_serve(int argc, char **argv) {
  const char *model_dir = NULL, *tok_path = NULL, *name = NULL, *adapters_dir = NULL, *host = "127.0.0.1";
  const char *api_key = getenv("PREFT_API_KEY"), *adapter_args[MAX_ADAPTER_ARGS];
  cli_strs adapters = {adapter_args, 0, MAX_ADAPTER_ARGS};
  const char *cors_args[16];
  cli_strs cors = {cors_args, 0, 16};
  long port = 8080, max_loaded = 0, adapter_mb = 1024, kv_mb = 0, max_queue = 0, max_running = 0,
       step_tokens = 0, max_len = 0;
  long body_mb = 8, drain_s = 30, threads = 0, max_conns = 0, header_s = 10, body_s = 60, idle_s = 30;
  const char *adapter_root = NULL, *registry_file = NULL, *prefix_dir = NULL;
  cli_spec_args spec_args = {0};
  double prefix_disk_gb = 10;
  bool verbose = false, runtime_adapters = false, no_adapter_check = false, no_prefetch = false;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--tokenizer", NULL, CLI_STR, &tok_path},
      {"--served-model-name", NULL, CLI_STR, &name},
      {"--adapters", NULL, CLI_STR, &adapters_dir},
      {"--adapter", NULL, CLI_STRS, &adapters},
      {"--host", NULL, CLI_STR, &host},
      {"--port", NULL, CLI_INT, &port, 0, 65535},
      {"--api-key", NULL, CLI_STR, &api_key},
      {"--cors-origin", NULL, CLI_STRS, &cors},
      {"--max-loaded-adapters", NULL, CLI_INT, &max_loaded, 1, 1 << 20},
      {"--no-adapter-check", NULL, CLI_FLAG, &no_adapter_check},
      {"--no-adapter-prefetch", NULL, CLI_FLAG, &no_prefetch},
      CLI_LORA_DTYPE_OPTION,
      {"--adapter-cache-mb", NULL, CLI_INT, &adapter_mb, 0, 1 << 24},
      {"--adapter-registry", NULL, CLI_STR, &registry_file},
      {"--kv-cache-mb", NULL, CLI_INT, &kv_mb, 1, 1 << 24},
      {"--prefix-cache-dir", NULL, CLI_STR, &prefix_dir},
      {"--prefix-cache-disk-gb", NULL, CLI_FLOAT, &prefix_disk_gb, 1e-6, 1 << 20},
      {"--max-queue", NULL, CLI_INT, &max_queue, 1, 1 << 24},
      {"--max-running", NULL, CLI_INT, &max_running, 1, 1 << 16},
      {"--max-step-tokens", NULL, CLI_INT, &step_tokens, 1, 1 << 20},
      {"--max-model-len", NULL, CLI_INT, &max_len, 2, 1 << 24},
      {"--max-body-mb", NULL, CLI_INT, &body_mb, 1, 1024},
      {"--drain-timeout", NULL, CLI_INT, &drain_s, 0, 86400},
      {"--allow-runtime-adapters", NULL, CLI_FLAG, &runtime_adapters},
      {"--adapter-root", NULL, CLI_STR, &adapter_root},
      {"--max-connections", NULL, CLI_INT, &max_conns, 1, 1 << 20},
      {"--header-timeout", NULL, CLI_INT, &header_s, 1, 86400},
      {"--body-timeout", NULL, CLI_INT, &body_s, 1, 86400},
      {"--idle-timeout", NULL, CLI_INT, &idle_s, 1, 86400},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_SPEC_OPTIONS(spec_args),
      CLI_MATMUL_OPTION,
      CLI_QUANTIZE_OPTION,
      {"--verbose", "-v", CLI_FLAG, &verbose},
      {NULL},
  };
  int pr = cli_parse("serve", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  preft_speculation spec;
  if (cli_speculation("serve", &spec_args, &spec) != 0) return CLI_EXIT_USAGE;
  for (int i = 0; i < adapters.n; i++) {
    const char *eq = strchr(adapter_args[i], '=');
    if (!eq || eq == adapter_args[i] || !eq[1]) {
      fprintf(stderr, "preft serve: --adapter expects NAME=PATH, got '%s'\n", adapter_args[i]);
      return CLI_EXIT_USAGE;
    }
  }
  int n_adapter_args = adapters.n;
  if (!model_dir) {
    fprintf(stderr, "preft serve: -m DIR is required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (adapter_root && !runtime_adapters) {
    fprintf(stderr, "preft serve: --adapter-root needs --allow-runtime-adapters\n");
    return CLI_EXIT_USAGE;
  }
  if (runtime_adapters && !adapter_root && !(adapter_root = adapters_dir)) {
    fprintf(stderr, "preft serve: --allow-runtime-adapters needs --adapter-root DIR (or --adapters DIR)\n");
    return CLI_EXIT_USAGE;
  }
  if (verbose) preft_log_set_level(PREFT_LOG_INFO);

  /* Block the stop signals before any thread starts, so that every thread
   * inherits the mask and only sigwait below receives them. */
  sigset_t stop_sigs;
  sigemptyset(&stop_sigs);
  sigaddset(&stop_sigs, SIGTERM);
  sigaddset(&stop_sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  preft_error err;
  cli_model cm = {0};
  preft_engine *engine = NULL;
  preft_model *draft = NULL;
  preft_server *server = NULL;
  char *model_name = name ? preft_xstrdup(name) : dir_name(model_dir);
  int rc = CLI_EXIT_ERROR;
  preft_generation_config gen;
  preft_bert_config bert_cfg;
  preft_bert *bert = NULL;
  preft_tokenizer *bert_tok = NULL;
  int n_adapters = 0, max_context = 0;
  if (preft_bert_config_load(&bert_cfg, model_dir, &err) == 0) { /* an encoder: embeddings only */
    if (adapters_dir || n_adapter_args || registry_file || runtime_adapters) {
      fprintf(stderr, "preft serve: %s is an encoder (BERT): it takes no adapters\n", model_dir);
      rc = CLI_EXIT_USAGE;
      goto done;
    }
    if (preft_bert_load(&bert, model_dir, &err) != 0 ||
        load_encoder_tokenizer(model_dir, tok_path, &bert_tok, &err) != 0)
      goto fail;
    max_context = max_len > 0 ? (int)max_len : bert->cfg.max_pos;
    goto start;
  }
  cli_model_args ma = {.model_dir = model_dir, .tok_path = tok_path, .tokenizer = CLI_TOK_IF_PRESENT};
  if (cli_model_load(&cm, &ma, &err) != 0 || preft_generation_config_load(&gen, model_dir, &err) != 0 ||
      cli_load_draft(&spec_args, model_dir, cm.model, &spec, &draft, &err) != 0)
    goto fail;
  preft_engine_config ec = {.threads = (int)threads,
                            .kv_cache_mb = (size_t)kv_mb,
                            .max_running = (int)max_running,
                            .max_step_tokens = (int)step_tokens,
                            .max_queue = (int)max_queue,
                            .max_loaded_adapters = (int)max_loaded,
                            .adapter_cache_mb = (size_t)adapter_mb,
                            .max_context = (int)max_len,
                            .no_adapter_prefetch = no_prefetch,
                            .prefix_cache_dir = prefix_dir,
                            .prefix_cache_disk_bytes = (uint64_t)(prefix_disk_gb * (double)(1 << 30)),
                            .speculation = spec,
                            .lora_dtype = cli_lora_dtype};
  max_context = max_len > 0 ? (int)max_len : cm.model->cfg.max_pos;
  if (preft_engine_create(&engine, cm.model, &ec, &err) != 0) goto fail; /* owns the model from here */
  cm.model = NULL;
  if (adapters_dir) {
    int n = preft_engine_add_adapter_dir(engine, adapters_dir, &err);
    if (n < 0 || preft_engine_set_adapter_dir(engine, adapters_dir, &err) != 0) goto fail;
    n_adapters += n;
  }
  for (int i = 0; i < n_adapter_args; i++) {
    const char *eq = strchr(adapter_args[i], '=');
    char *an = preft_xmalloc((size_t)(eq - adapter_args[i]) + 1);
    memcpy(an, adapter_args[i], (size_t)(eq - adapter_args[i]));
    an[eq - adapter_args[i]] = 0;
    int arc = !strcmp(an, model_name) ? preft_fail(&err, "adapter name '%s' is the base model's name", an)
                                      : preft_engine_add_adapter(engine, an, eq + 1, &err);
    free(an);
    if (arc != 0) goto fail;
    n_adapters++;
  }
  if (registry_file) {
    int n = preft_engine_use_registry_file(engine, registry_file, &err);
    if (n < 0) goto fail;
    n_adapters += n;
  }
  if (n_adapters > 0 && !no_adapter_check) check_adapters(engine, n_adapters);
start:;
  preft_server_config sc = {.host = host,
                            .port = (int)port,
                            .api_key = api_key,
                            .model_name = model_name,
                            .max_body = (size_t)body_mb << 20,
                            .max_context = max_context,
                            .adapter_root = runtime_adapters ? adapter_root : NULL,
                            .max_connections = (int)max_conns,
                            .header_timeout_s = (int)header_s,
                            .body_timeout_s = (int)body_s,
                            .idle_timeout_s = (int)idle_s,
                            .cors_origins = cors_args,
                            .n_cors_origins = cors.n,
                            .encoder = bert};
  if (preft_server_start(&server, engine, bert ? bert_tok : cm.tok, bert ? NULL : &gen, &sc, &err) != 0)
    goto fail;
  bool v6 = strchr(host, ':') != NULL;
  fprintf(stderr, "preft serve: listening on http://%s%s%s:%d (model '%s', %s%d adapters%s)\n", v6 ? "[" : "",
          host, v6 ? "]" : "", preft_server_port(server), model_name,
          bert ? "an encoder for embeddings, " : "", n_adapters,
          sc.api_key && *sc.api_key ? ", API key required" : "");
  fflush(stderr);

  int sig = 0;
  while (sigwait(&stop_sigs, &sig) != 0) {
  }
  fprintf(stderr, "preft serve: %s received, draining (send it again to exit at once)\n",
          sig == SIGTERM ? "SIGTERM" : "SIGINT");
  pthread_t second;
  if (pthread_create(&second, NULL, exit_on_second_signal, &stop_sigs) == 0) pthread_detach(second);
  double drain_t0 = preft_now();
  int cancelled = preft_server_drain(server, (double)drain_s);
  if (engine) preft_engine_drain(engine);
  /* the prefix cache's disk tier is written at exit within the same bound */
  if (engine) preft_engine_set_shutdown_timeout(engine, (double)drain_s - (preft_now() - drain_t0));
  preft_server_stop(server);
  server = NULL;
  fprintf(stderr, "preft serve: stopped (%d requests cancelled at the drain timeout)\n", cancelled);
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft serve: %s\n", err.msg);
done:
  preft_server_stop(server);
  preft_engine_free(engine);
  preft_model_free(draft); /* after the engine that drafts with it */
  preft_bert_free(bert);
  preft_tokenizer_free(bert_tok);
  cli_model_free(&cm);
  free(model_name);
  return rc;
}
