/* cli_generate.c - `preft generate`: generates from a model and streams the
 * result to stdout as it is produced: text when the model directory has a
 * tokenizer, token ids otherwise (or with --print-ids). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "engine/generate.h"
#include "engine/stop.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "text/tokenizer.h"

#define MAX_STOPS 16

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft generate -m DIR (-p TEXT | --ids 1,2,3) [-n N] [options]\n\n"
          "Generates up to N tokens after the prompt and streams them to stdout.\n"
          "Sampling defaults come from the model's generation_config.json (greedy\n"
          "when it says do_sample=false or is absent); options override them.\n\n"
          "  -m, --model DIR      Hugging Face model directory\n"
          "  -p, --prompt TEXT    prompt text, encoded with the model's tokenizer\n"
          "                       (special tokens such as BOS added as it says)\n"
          "  --chat               treat the prompt as a user message and render the\n"
          "                       model's chat template (with the generation prompt)\n"
          "  --system TEXT        system message for --chat\n"
          "  --ids LIST           prompt as comma-separated token ids instead of text\n"
          "  --tokenizer PATH     tokenizer to use (default: the model directory's)\n"
          "  --print-ids          print token ids, not text\n"
          "  -n, --max-tokens N   tokens to generate (default 128)\n"
          "  --temperature T      0 = greedy\n"
          "  --top-k K            keep the K most likely tokens (0 = off)\n"
          "  --top-p P            nucleus sampling (1 = off)\n"
          "  --min-p P            drop tokens below P x the top probability (0 = off)\n"
          "  --seed S             RNG seed (default 0)\n"
          "  --stop STR           stop before this text (repeatable, up to %d)\n"
          "  --ignore-eos         do not stop at the model's end-of-sequence ids\n"
          "  -a, --adapter DIR    a LoRA (PEFT) or ReFT adapter directory\n"
          "  --adapter-mode M     all (every token) or prefill (prompt only, decode\n"
          "                       runs the base model); default: the adapter's config\n"
          "  --threads N          worker threads (default: all cores)\n" CLI_SPEC_HELP CLI_MATMUL_HELP
              CLI_QUANTIZE_HELP CLI_LORA_DTYPE_HELP
          "  -v, --verbose        print timing (and speculation's acceptance) to stderr\n",
          MAX_STOPS);
}

typedef struct {
  const preft_tokenizer *tok; /* NULL: print ids */
  preft_decode_stream *ds;
  preft_stop_matcher stop;
  int count;
  preft_error err;
  bool failed;
} stream_state;

static bool emit_text(stream_state *s, const char *piece, size_t n) {
  const char *out;
  size_t out_len;
  bool stopped = preft_stop_feed(&s->stop, piece, n, &out, &out_len);
  if (out_len) fwrite(out, 1, out_len, stdout);
  fflush(stdout);
  return !stopped;
}

static bool on_token(void *ctx, int token) {
  stream_state *s = ctx;
  if (!s->tok) {
    printf(s->count++ ? " %d" : "%d", token);
    fflush(stdout);
    return true;
  }
  char *piece = NULL;
  if (preft_decode_stream_step(s->ds, token, &piece, &s->err) != 0) {
    s->failed = true;
    return false;
  }
  bool go_on = true;
  if (piece) go_on = emit_text(s, piece, strlen(piece));
  free(piece);
  return go_on;
}

/* -p TEXT, optionally through the chat template, into token ids. */
static int prompt_ids(const preft_tokenizer *tok, const char *prompt, const char *system, bool chat,
                      int **ids, int *n, preft_error *err) {
  char *rendered = NULL;
  const char *text = prompt;
  if (chat) {
    cJSON *arr = cJSON_CreateArray();
    const char *parts[2] = {system, prompt}, *roles[2] = {"system", "user"};
    for (int p = 0; p < 2; p++) {
      if (!parts[p]) continue;
      cJSON *msg = cJSON_CreateObject();
      cJSON_AddStringToObject(msg, "role", roles[p]);
      cJSON_AddStringToObject(msg, "content", parts[p]);
      cJSON_AddItemToArray(arr, msg);
    }
    char *msgs = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    int rc = preft_chat_template_render(tok, msgs, true, &rendered, err);
    free(msgs);
    if (rc != 0) return -1;
    text = rendered;
  }
  int32_t *tids;
  size_t tn;
  /* A rendered chat template already holds its special tokens. */
  int rc = preft_tokenizer_encode(tok, text, strlen(text), !chat, &tids, &tn, err);
  free(rendered);
  if (rc != 0) return -1;
  if (tn == 0) {
    free(tids);
    return preft_fail(err, "the prompt encodes to no tokens");
  }
  *ids = preft_xmalloc(sizeof(int) * tn);
  for (size_t i = 0; i < tn; i++) (*ids)[i] = tids[i];
  *n = (int)tn;
  free(tids);
  return 0;
}

int cli_generate(int argc, char **argv) {
  const char *model_dir = NULL, *ids_arg = NULL, *adapter_dir = NULL, *prompt = NULL, *system = NULL,
             *tok_path = NULL, *stop_items[MAX_STOPS];
  cli_strs stops = {stop_items, 0, MAX_STOPS};
  long n_tokens = 128, threads = 0, seed = 0, top_k = -1;
  double temperature = -1, top_p = -1, min_p = -1;
  int mode_arg = -1;
  bool ignore_eos = false, verbose = false, chat = false, print_ids = false;
  cli_spec_args spec_args = {0};
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--prompt", "-p", CLI_STR, &prompt},
      {"--system", NULL, CLI_STR, &system},
      {"--tokenizer", NULL, CLI_STR, &tok_path},
      {"--stop", NULL, CLI_STRS, &stops},
      {"--ids", NULL, CLI_STR, &ids_arg},
      {"--max-tokens", "-n", CLI_INT, &n_tokens, 0, 1 << 24},
      {"--temperature", NULL, CLI_FLOAT, &temperature, 0, 1e6},
      {"--top-k", NULL, CLI_INT, &top_k, 0, 1 << 24},
      {"--top-p", NULL, CLI_FLOAT, &top_p, 0, 1},
      {"--min-p", NULL, CLI_FLOAT, &min_p, 0, 1},
      {"--seed", NULL, CLI_INT, &seed, 0, 0x7fffffff},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      CLI_QUANTIZE_OPTION,
      CLI_LORA_DTYPE_OPTION,
      {"--adapter", "-a", CLI_STR, &adapter_dir},
      {"--adapter-mode", NULL, CLI_MODE, &mode_arg},
      {"--ignore-eos", NULL, CLI_FLAG, &ignore_eos},
      {"--chat", NULL, CLI_FLAG, &chat},
      {"--print-ids", NULL, CLI_FLAG, &print_ids},
      CLI_SPEC_OPTIONS(spec_args),
      {"--verbose", "-v", CLI_FLAG, &verbose},
      {NULL},
  };
  int pr = cli_parse("generate", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir || !prompt == !ids_arg) {
    fprintf(stderr, "preft generate: -m and exactly one of -p and --ids are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_speculation spec;
  if (cli_speculation("generate", &spec_args, &spec) != 0) return CLI_EXIT_USAGE;
  if (chat && !prompt) {
    fprintf(stderr, "preft generate: --chat needs -p\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  cli_model cm = {0};
  preft_pool *pool = NULL;
  preft_model *draft = NULL;
  int *ids = NULL, n_ids = 0, rc = CLI_EXIT_ERROR;
  stream_state st = {0};
  preft_generation_config gen;
  cli_model_args ma = {.model_dir = model_dir,
                       .tok_path = tok_path,
                       .tokenizer = prompt      ? CLI_TOK_REQUIRED
                                    : print_ids ? CLI_TOK_IF_GIVEN
                                                : CLI_TOK_IF_PRESENT,
                       .adapter_dir = adapter_dir,
                       .adapter_mode = mode_arg};
  if (ids_arg && cli_parse_ids("generate", ids_arg, &ids, &n_ids) != 0) return CLI_EXIT_USAGE;
  if (cli_model_load(&cm, &ma, &err) != 0 || preft_generation_config_load(&gen, model_dir, &err) != 0 ||
      cli_load_draft(&spec_args, model_dir, cm.model, &spec, &draft, &err) != 0)
    goto fail;
  preft_model *m = cm.model;
  preft_tokenizer *tok = cm.tok;
  if (!ids_arg && prompt_ids(tok, prompt, system, chat, &ids, &n_ids, &err) != 0) goto fail;
  preft_generate_opts gopts = {
      .max_new_tokens = (int)n_tokens, .adapter = cm.adapter, .adapter_mode = cm.mode, .speculation = spec};
  preft_spec_stats spec_stats = {0};
  gopts.spec_stats = &spec_stats;
  gopts.sampling.temperature = temperature >= 0 ? (float)temperature
                               : gen.do_sample  ? (float)gen.temperature
                                                : 0.0f;
  gopts.sampling.top_k = top_k >= 0 ? (int)top_k : gen.do_sample ? gen.top_k : 0;
  gopts.sampling.top_p = top_p >= 0 ? (float)top_p : gen.do_sample ? (float)gen.top_p : 1.0f;
  gopts.sampling.min_p = min_p >= 0 ? (float)min_p : gen.do_sample ? (float)gen.min_p : 0.0f;
  gopts.sampling.seed = (uint64_t)seed;
  const int32_t *tok_eos = NULL;
  int n_tok_eos = tok ? preft_tokenizer_eos_ids(tok, &tok_eos) : 0;
  int stop_ids[3 * PREFT_MAX_EOS], n_stop_ids = 0;
  if (!ignore_eos) {
    for (int i = 0; i < gen.n_eos; i++) stop_ids[n_stop_ids++] = gen.eos_ids[i];
    for (int i = 0; i < m->cfg.n_eos; i++) stop_ids[n_stop_ids++] = m->cfg.eos_ids[i];
    for (int i = 0; i < n_tok_eos && i < PREFT_MAX_EOS; i++) stop_ids[n_stop_ids++] = tok_eos[i];
  }
  gopts.stop_ids = stop_ids;
  gopts.n_stop_ids = n_stop_ids;
  pool = preft_pool_create((int)threads);
  st.tok = print_ids ? NULL : tok;
  if (st.tok) st.ds = preft_decode_stream_new(tok, true);
  preft_stop_init(&st.stop, stops.items, stops.n);
  int generated;
  double t0 = preft_now();
  int grc = preft_generate(m, pool, ids, n_ids, &gopts, on_token, &st, &generated, &err);
  double dt = preft_now() - t0;
  if (st.failed) {
    err = st.err;
    grc = -1;
  }
  if (st.ds && !st.stop.stopped) {
    char *rest = preft_decode_stream_flush(st.ds);
    if (rest) emit_text(&st, rest, strlen(rest));
    free(rest);
  }
  const char *tail;
  size_t tail_len;
  preft_stop_finish(&st.stop, &tail, &tail_len);
  if (tail_len) fwrite(tail, 1, tail_len, stdout);
  printf("\n");
  if (grc != 0) goto fail;
  if (verbose)
    fprintf(stderr, "preft generate: %d prompt + %d generated tokens in %.3f s (%.1f tokens/s overall)\n",
            n_ids, generated, dt, (n_ids + generated) / dt);
  if (verbose && spec.kind != PREFT_SPEC_OFF)
    fprintf(stderr, "preft generate: speculation: %ld steps drafted %ld tokens, %ld accepted (%.1f%%)\n",
            spec_stats.steps, spec_stats.drafted, spec_stats.accepted,
            spec_stats.drafted ? 100.0 * (double)spec_stats.accepted / (double)spec_stats.drafted : 0.0);
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft generate: %s\n", err.msg);
  rc = CLI_EXIT_ERROR;
done:
  if (st.ds) preft_decode_stream_free(st.ds);
  preft_stop_free(&st.stop);
  preft_pool_free(pool);
  preft_model_free(draft);
  cli_model_free(&cm);
  free(ids);
  return rc;
}
