/* cli_bench_spec.c - `preft bench spec`: speculative decoding in the serving
 * engine (no HTTP). For each batch size B, B greedy requests of P prompt
 * tokens and O output tokens are submitted at once, once with speculation
 * off and once with it (prompt lookup, or a draft model), on the same
 * engine settings;
 * reported: decode tokens/s (the tokens after each request's first, over
 * the time after the last first token), the ratio on/off, the acceptance
 * rate and the tokens kept per drafted step, and whether every request's
 * tokens were the same both ways (greedy: they must be).
 *
 * Prompts: slices of a text file (`text`: continuation of prose, where
 * n-grams repeat as the model's output does), and the same slices cut to a
 * quarter and repeated four times (`repeat`: a repetitive prompt). With
 * --adapter, each case also runs the adapter prefill-only (decode rows run
 * the base weights) and all-token (the verify forward runs the adapter; a
 * draft model drafts with base weights either way). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "engine/engine.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft bench spec -m DIR --text FILE [options]\n\n"
          "Decode throughput of the engine with and without speculative decoding\n"
          "(prompt lookup, or a draft model), B greedy requests at once; prints a table.\n\n"
          "  -m DIR              Hugging Face model directory (with its tokenizer)\n"
          "  --text FILE         prompts are consecutive slices of this text\n"
          "  --batch LIST        batch sizes (default 1,8,32)\n"
          "  --prompt-len P      prompt tokens (default 64)\n"
          "  --output-len O      tokens generated per request (default 128)\n"
          "  --speculative KIND  ngram (default) or draft\n"
          "  --spec-k K          tokens drafted per step at most (default 4)\n"
          "  --draft-model DIR   the draft model (implies --speculative draft)\n"
          "  --prompts LIST      of text,repeat (default both)\n"
          "  --adapter DIR       also run this adapter prefill-only and all-token\n"
          "  --reps N            runs per cell, interleaved; the best is kept (default 3)\n"
          "  --threads N         (default: all cores)\n" CLI_MATMUL_HELP CLI_QUANTIZE_HELP);
}

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int remaining;
  double last_first;
  int *tokens; /* [B][O] */
  int *n;      /* [B] */
  int O;
} run_state;

typedef struct {
  run_state *st;
  int index;
} req_ctx;

static bool on_event(void *user, const preft_token_event *ev) {
  req_ctx *rc = user;
  run_state *st = rc->st;
  pthread_mutex_lock(&st->mu);
  if (ev->token >= 0) {
    if (st->n[rc->index] < st->O)
      st->tokens[(size_t)rc->index * (size_t)st->O + (size_t)st->n[rc->index]++] = ev->token;
    if (ev->completion_tokens == 1) st->last_first = preft_now();
  }
  if (ev->finish != PREFT_FINISH_NONE && --st->remaining == 0) pthread_cond_signal(&st->cv);
  pthread_mutex_unlock(&st->mu);
  return true;
}

typedef struct {
  double decode_tps, accept;
  double kept_per_step; /* tokens per drafted sequence-step: accepted + 1 */
  int *tokens;          /* [B][O] of the last run */
} cell;

/* One run: B requests (prompts[b], P tokens) on a fresh engine; fills c
 * (keeping the best decode rate over calls). */
static int run_once(preft_model *m, int threads, const preft_speculation *spec, const char *adapter_dir,
                    int mode, int **prompts, int B, int P, int O, cell *c, preft_error *err) {
  preft_engine_config ec = {.threads = threads,
                            .kv_cache_mb = 256,
                            .max_running = B,
                            .max_step_tokens = 512,
                            .borrow_model = true,
                            .speculation = *spec};
  preft_engine *e;
  if (preft_engine_create(&e, m, &ec, err) != 0) return -1;
  if (adapter_dir && preft_engine_load_adapter(e, "a", adapter_dir, err) != 0) {
    preft_engine_free(e);
    return -1;
  }
  run_state st = {.remaining = B, .O = O};
  pthread_mutex_init(&st.mu, NULL);
  pthread_cond_init(&st.cv, NULL);
  st.tokens = preft_xcalloc((size_t)B * (size_t)O, sizeof(int));
  st.n = preft_xcalloc((size_t)B, sizeof(int));
  req_ctx *ctx = preft_xcalloc((size_t)B, sizeof *ctx);
  int rc = 0;
  double t0 = preft_now();
  for (int b = 0; b < B && rc == 0; b++) {
    ctx[b] = (req_ctx){&st, b};
    preft_request_params p = {.prompt = prompts[b],
                              .n_prompt = P,
                              .adapter = adapter_dir ? "a" : NULL,
                              .adapter_mode = adapter_dir ? mode : -1,
                              .max_tokens = O};
    uint64_t id;
    if (preft_engine_submit(e, &p, on_event, &ctx[b], &id, err) != PREFT_SUBMIT_OK) rc = -1;
  }
  pthread_mutex_lock(&st.mu);
  while (rc == 0 && st.remaining > 0) pthread_cond_wait(&st.cv, &st.mu);
  double t_end = preft_now();
  pthread_mutex_unlock(&st.mu);
  preft_engine_drain(e);
  preft_engine_stats es;
  preft_engine_get_stats(e, &es);
  preft_engine_free(e);
  (void)t0;
  if (rc == 0) {
    long total = 0;
    for (int b = 0; b < B; b++) total += st.n[b];
    double tps = (double)(total - B) / (t_end - st.last_first);
    if (tps > c->decode_tps) c->decode_tps = tps;
    c->accept = es.spec.drafted ? (double)es.spec.accepted / (double)es.spec.drafted : 0;
    c->kept_per_step = es.spec.steps ? (double)(es.spec.accepted + es.spec.steps) / (double)es.spec.steps : 0;
    free(c->tokens);
    c->tokens = st.tokens;
    st.tokens = NULL;
  }
  free(st.tokens);
  free(st.n);
  free(ctx);
  pthread_mutex_destroy(&st.mu);
  pthread_cond_destroy(&st.cv);
  return rc;
}

int cli_bench_spec(int argc, char **argv) {
  const char *dir = NULL, *text_path = NULL, *adapter_dir = NULL, *prompt_kinds = "text,repeat";
  long threads = 0, P = 64, O = 128, reps = 3;
  cli_spec_args spec_args = {.k = 4};
  cli_ids batch_list = {0};
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &dir},
      {"--text", NULL, CLI_STR, &text_path},
      {"--batch", NULL, CLI_IDS, &batch_list},
      {"--prompt-len", NULL, CLI_INT, &P, 4, 1 << 16},
      {"--output-len", NULL, CLI_INT, &O, 2, 1 << 16},
      CLI_SPEC_OPTIONS(spec_args),
      {"--prompts", NULL, CLI_STR, &prompt_kinds},
      {"--adapter", NULL, CLI_STR, &adapter_dir},
      {"--reps", NULL, CLI_INT, &reps, 1, 100},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      CLI_QUANTIZE_OPTION,
      {NULL},
  };
  int pr = cli_parse("bench spec", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!dir || !text_path) {
    fprintf(stderr, "preft bench spec: -m and --text are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (!spec_args.kind && !spec_args.draft_model) spec_args.kind = "ngram";
  preft_speculation s_on;
  if (cli_speculation("bench spec", &spec_args, &s_on) != 0) return CLI_EXIT_USAGE;
  if (s_on.kind == PREFT_SPEC_OFF) {
    fprintf(stderr, "preft bench spec: --speculative off leaves nothing to compare\n");
    return CLI_EXIT_USAGE;
  }
  const char *on_name = s_on.kind == PREFT_SPEC_DRAFT ? "draft" : "ngram";
  long k = s_on.k;
  static int default_batches[] = {1, 8, 32};
  int *batches = batch_list.n ? batch_list.v : default_batches, n_batches = batch_list.n ? batch_list.n : 3;
  int max_b = 0;
  for (int i = 0; i < n_batches; i++) max_b = batches[i] > max_b ? batches[i] : max_b;
  preft_error err;
  cli_model cm = {0};
  cli_model_args ma = {.model_dir = dir, .tokenizer = CLI_TOK_REQUIRED};
  char *text = NULL;
  size_t text_len = 0;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  int rc = CLI_EXIT_ERROR;
  int **prompts = NULL;
  preft_model *draft = NULL;
  if (cli_model_load(&cm, &ma, &err) != 0 ||
      cli_load_draft(&spec_args, dir, cm.model, &s_on, &draft, &err) != 0 ||
      preft_read_file(text_path, &text, &text_len, &err) != 0 ||
      preft_tokenizer_encode(cm.tok, text, text_len, false, &ids, &n_ids, &err) != 0)
    goto fail;
  if ((size_t)max_b * (size_t)P > n_ids) {
    preft_fail(&err, "%s: %zu tokens, fewer than %d prompts of %ld", text_path, n_ids, max_b, P);
    goto fail;
  }
  if (P + O > cm.model->cfg.max_pos) {
    preft_fail(&err, "--prompt-len + --output-len = %ld exceeds the model's context of %d", P + O,
               cm.model->cfg.max_pos);
    goto fail;
  }
  prompts = preft_xcalloc((size_t)max_b, sizeof *prompts);
  for (int b = 0; b < max_b; b++) prompts[b] = preft_xmalloc(sizeof(int) * (size_t)P);
  printf(
      "# preft bench spec: %s, text %s (%zu tokens), P=%ld O=%ld, %s k=%ld%s%s, %ld reps (best kept), "
      "threads %ld (0: all cores)\n",
      dir, text_path, n_ids, P, O, on_name, k, draft ? " draft model " : "",
      draft ? spec_args.draft_model : "", reps, threads);
  char on_col[32];
  snprintf(on_col, sizeof on_col, "%s tok/s", on_name);
  printf("%-7s %-9s %5s %14s %14s %8s %8s %10s %9s\n", "prompts", "adapter", "B", "off tok/s", on_col,
         "speedup", "accept", "kept/step", "same");
  char kinds[64];
  snprintf(kinds, sizeof kinds, "%s", prompt_kinds);
  for (char *save = NULL, *kind = strtok_r(kinds, ",", &save); kind; kind = strtok_r(NULL, ",", &save)) {
    bool repeat = !strcmp(kind, "repeat");
    if (!repeat && strcmp(kind, "text") != 0) {
      preft_fail(&err, "--prompts: '%s' is neither text nor repeat", kind);
      goto fail;
    }
    for (int b = 0; b < max_b; b++) {
      const int32_t *src = ids + (size_t)b * (size_t)P;
      int q = (int)P / 4;
      for (int i = 0; i < P; i++) prompts[b][i] = repeat ? src[i % q] : src[i];
    }
    for (int mi = 0; mi < (adapter_dir ? 3 : 1); mi++) {
      const char *aname = mi == 0 ? "base" : mi == 1 ? "prefill" : "all";
      int mode = mi == 1 ? PREFT_MODE_PREFILL : PREFT_MODE_ALL;
      for (int bi = 0; bi < n_batches; bi++) {
        int B = batches[bi];
        cell off = {0}, on = {0};
        preft_speculation s_off = {0};
        for (int r = 0; r < reps; r++)
          if (run_once(cm.model, (int)threads, &s_off, mi ? adapter_dir : NULL, mode, prompts, B, (int)P,
                       (int)O, &off, &err) != 0 ||
              run_once(cm.model, (int)threads, &s_on, mi ? adapter_dir : NULL, mode, prompts, B, (int)P,
                       (int)O, &on, &err) != 0)
            goto fail;
        bool same = memcmp(off.tokens, on.tokens, sizeof(int) * (size_t)B * (size_t)O) == 0;
        printf("%-7s %-9s %5d %14.1f %14.1f %7.2fx %7.1f%% %10.2f %9s\n", kind, aname, B, off.decode_tps,
               on.decode_tps, on.decode_tps / off.decode_tps, 100 * on.accept, on.kept_per_step,
               same ? "yes" : "NO");
        fflush(stdout);
        free(off.tokens);
        free(on.tokens);
        if (!same) {
          preft_fail(&err, "greedy tokens differ with speculation (B=%d, %s prompts)", B, kind);
          goto fail;
        }
      }
    }
  }
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft bench spec: %s\n", err.msg);
done:
  for (int b = 0; prompts && b < max_b; b++) free(prompts[b]);
  free(prompts);
  free(ids);
  free(text);
  free(batch_list.v);
  preft_model_free(draft);
  cli_model_free(&cm);
  return rc;
}
