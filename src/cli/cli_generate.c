/* cli_generate.c - `preft generate`: generates from a model and streams the
 * result to stdout as it is produced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "engine/generate.h"
#include "model/adapter.h"
#include "model/llama.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft generate -m DIR --ids 1,2,3 [-n N] [sampling options] [--threads N]\n\n"
          "Generates up to N tokens after the prompt and streams them to stdout.\n"
          "Sampling defaults come from the model's generation_config.json (greedy\n"
          "when it says do_sample=false or is absent); options override them.\n\n"
          "  -m, --model DIR      Hugging Face model directory\n"
          "  --ids LIST           prompt as comma-separated token ids\n"
          "  -n, --max-tokens N   tokens to generate (default 128)\n"
          "  --temperature T      0 = greedy\n"
          "  --top-k K            keep the K most likely tokens (0 = off)\n"
          "  --top-p P            nucleus sampling (1 = off)\n"
          "  --min-p P            drop tokens below P x the top probability (0 = off)\n"
          "  --seed S             RNG seed (default 0)\n"
          "  --ignore-eos         do not stop at the model's end-of-sequence ids\n"
          "  -a, --adapter DIR    a LoRA (PEFT) or ReFT adapter directory\n"
          "  --adapter-mode M     all (every token) or prefill (prompt only, decode\n"
          "                       runs the base model); default: the adapter's config\n"
          "  --threads N          worker threads (default: all cores)\n"
          "  -v, --verbose        print timing to stderr\n");
}

typedef struct {
  int count;
} stream_state;

static bool print_token(void *ctx, int token) {
  stream_state *s = ctx;
  printf(s->count++ ? " %d" : "%d", token);
  fflush(stdout);
  return true;
}

int cli_generate(int argc, char **argv) {
  const char *model_dir = NULL, *ids_arg = NULL, *adapter_dir = NULL, *mode_arg = NULL, *v;
  long n_tokens = 128, threads = 0, seed = 0, top_k = -1;
  double temperature = -1, top_p = -1, min_p = -1;
  bool ignore_eos = false, verbose = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
      if (!(model_dir = cli_value("generate", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--ids")) {
      if (!(ids_arg = cli_value("generate", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
      if (!(v = cli_value("generate", argc, argv, &i)) || cli_parse_int("generate", a, v, 0, 1 << 24, &n_tokens) != 0)
        return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--temperature")) {
      if (!(v = cli_value("generate", argc, argv, &i)) || cli_parse_float("generate", a, v, &temperature) != 0)
        return CLI_EXIT_USAGE;
      if (temperature < 0) return fprintf(stderr, "preft generate: --temperature must be >= 0\n"), CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--top-k")) {
      if (!(v = cli_value("generate", argc, argv, &i)) || cli_parse_int("generate", a, v, 0, 1 << 24, &top_k) != 0)
        return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--top-p") || !strcmp(a, "--min-p")) {
      double *dst = !strcmp(a, "--top-p") ? &top_p : &min_p;
      if (!(v = cli_value("generate", argc, argv, &i)) || cli_parse_float("generate", a, v, dst) != 0)
        return CLI_EXIT_USAGE;
      if (*dst < 0 || *dst > 1) return fprintf(stderr, "preft generate: %s must be in [0, 1]\n", a), CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--seed")) {
      if (!(v = cli_value("generate", argc, argv, &i)) || cli_parse_int("generate", a, v, 0, 0x7fffffffL, &seed) != 0)
        return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--threads")) {
      if (!(v = cli_value("generate", argc, argv, &i)) || cli_parse_int("generate", a, v, 1, 1024, &threads) != 0)
        return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "-a") || !strcmp(a, "--adapter")) {
      if (!(adapter_dir = cli_value("generate", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--adapter-mode")) {
      preft_adapter_mode tmp;
      if (!(mode_arg = cli_value("generate", argc, argv, &i))) return CLI_EXIT_USAGE;
      if (preft_adapter_mode_parse(mode_arg, &tmp) != 0)
        return fprintf(stderr, "preft generate: --adapter-mode expects all or prefill\n"), CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--ignore-eos")) {
      ignore_eos = true;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      verbose = true;
    } else {
      fprintf(stderr, "preft generate: unknown option '%s' (see --help)\n", a);
      return CLI_EXIT_USAGE;
    }
  }
  if (!model_dir || !ids_arg) {
    fprintf(stderr, "preft generate: -m and --ids are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  int *ids, n_ids;
  if (cli_parse_ids("generate", ids_arg, &ids, &n_ids) != 0) return CLI_EXIT_USAGE;
  preft_error err;
  preft_model *m = NULL;
  preft_generation_config gen;
  if (preft_model_load(&m, model_dir, &err) != 0 || preft_generation_config_load(&gen, model_dir, &err) != 0) {
    fprintf(stderr, "preft generate: %s\n", err.msg);
    preft_model_free(m);
    free(ids);
    return CLI_EXIT_ERROR;
  }
  preft_adapter *adapter = NULL;
  if (adapter_dir && preft_adapter_load(&adapter, adapter_dir, NULL, &m->cfg, &err) != 0) {
    fprintf(stderr, "preft generate: %s\n", err.msg);
    preft_model_free(m);
    free(ids);
    return CLI_EXIT_ERROR;
  }
  preft_generate_opts opts = {.max_new_tokens = (int)n_tokens, .adapter = adapter};
  if (adapter) {
    opts.adapter_mode = adapter->default_mode;
    if (mode_arg) preft_adapter_mode_parse(mode_arg, &opts.adapter_mode);
  }
  opts.sampling.temperature = temperature >= 0 ? (float)temperature : gen.do_sample ? (float)gen.temperature : 0.0f;
  opts.sampling.top_k = top_k >= 0 ? (int)top_k : gen.do_sample ? gen.top_k : 0;
  opts.sampling.top_p = top_p >= 0 ? (float)top_p : gen.do_sample ? (float)gen.top_p : 1.0f;
  opts.sampling.min_p = min_p >= 0 ? (float)min_p : gen.do_sample ? (float)gen.min_p : 0.0f;
  opts.sampling.seed = (uint64_t)seed;
  if (!ignore_eos) {
    opts.stop_ids = gen.n_eos > 0 ? gen.eos_ids : m->cfg.eos_ids;
    opts.n_stop_ids = gen.n_eos > 0 ? gen.n_eos : m->cfg.n_eos;
  }
  preft_pool *pool = preft_pool_create((int)threads);
  stream_state st = {0};
  int generated;
  double t0 = preft_now();
  int rc = preft_generate(m, pool, ids, n_ids, &opts, print_token, &st, &generated, &err);
  double dt = preft_now() - t0;
  printf("\n");
  if (rc != 0) fprintf(stderr, "preft generate: %s\n", err.msg);
  else if (verbose)
    fprintf(stderr, "preft generate: %d prompt + %d generated tokens in %.3f s (%.1f tokens/s overall)\n", n_ids,
            generated, dt, (n_ids + generated) / dt);
  preft_pool_free(pool);
  preft_adapter_free(adapter);
  preft_model_free(m);
  free(ids);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}
