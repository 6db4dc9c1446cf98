/* cli_logits.c - `preft logits`: the logits of every position of a token
 * sequence, written as little-endian float32 [T, vocab], row-major. The
 * porting aid for checking a model against PyTorch; needs no tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "cli/cli.h"
#include "engine/generate.h"
#include "model/adapter.h"
#include "model/llama.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft logits -m DIR --ids 1,2,3 -o FILE [-a ADAPTER_DIR [--adapter-mode all|prefill]\n"
          "                    [--prompt-len N]] [--threads N]\n\n"
          "Runs the model over the token ids and writes the logits of every position\n"
          "as little-endian float32, row-major [T, vocab] (T = number of ids).\n\n"
          "  -m, --model DIR   Hugging Face model directory (config.json + safetensors)\n"
          "  --ids LIST        comma-separated token ids\n"
          "  -o, --output FILE where to write the logits (written atomically)\n"
          "  -a, --adapter DIR a LoRA (PEFT) or ReFT adapter directory\n"
          "  --adapter-mode M  all (every token) or prefill (prompt tokens only);\n"
          "                    default: the adapter's own config\n"
          "  --prompt-len N    ids at positions >= N count as generated tokens\n"
          "                    (teacher-forced); default: all ids are the prompt\n"
          "  --threads N       worker threads (default: all cores)\n" CLI_MATMUL_HELP CLI_QUANTIZE_HELP
              CLI_LORA_DTYPE_HELP);
}

int cli_logits(int argc, char **argv) {
  const char *model_dir = NULL, *out_path = NULL, *adapter_dir = NULL;
  long threads = 0, prompt_len = -1;
  int mode_arg = -1;
  cli_ids idlist = {0};
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--ids", NULL, CLI_IDS, &idlist},
      {"--output", "-o", CLI_STR, &out_path},
      {"--adapter", "-a", CLI_STR, &adapter_dir},
      {"--adapter-mode", NULL, CLI_MODE, &mode_arg},
      {"--prompt-len", NULL, CLI_INT, &prompt_len, 1, 1 << 30},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      CLI_QUANTIZE_OPTION,
      CLI_LORA_DTYPE_OPTION,
      {NULL},
  };
  int pr = cli_parse("logits", argc, argv, opts, usage);
  if (pr != 0) {
    free(idlist.v);
    return cli_parse_exit(pr);
  }
  if (!model_dir || !idlist.v || !out_path) {
    fprintf(stderr, "preft logits: -m, --ids and -o are required (see --help)\n");
    free(idlist.v);
    return CLI_EXIT_USAGE;
  }
  int *ids = idlist.v, n = idlist.n;
  preft_error err;
  cli_model cm;
  cli_model_args ma = {.model_dir = model_dir, .adapter_dir = adapter_dir, .adapter_mode = mode_arg};
  if (cli_model_load(&cm, &ma, &err) != 0) {
    fprintf(stderr, "preft logits: %s\n", err.msg);
    free(ids);
    return CLI_EXIT_ERROR;
  }
  const preft_model *m = cm.model;
  preft_pool *pool = preft_pool_create((int)threads);
  size_t count = (size_t)n * (size_t)m->cfg.vocab;
  float *logits = malloc(sizeof(float) * count);
  int rc = CLI_EXIT_OK;
  if (!logits) {
    fprintf(stderr, "preft logits: cannot allocate %zu MiB for the logits\n", (count * 4) >> 20);
    rc = CLI_EXIT_ERROR;
  } else if (preft_all_logits_adapted(m, pool, ids, n, cm.adapter, cm.mode,
                                      prompt_len > 0 ? (int)prompt_len : n, logits, &err) != 0 ||
             preft_write_atomic(out_path, logits, sizeof(float) * count, &err) != 0) {
    fprintf(stderr, "preft logits: %s\n", err.msg);
    rc = CLI_EXIT_ERROR;
  } else {
    fprintf(stderr, "preft logits: wrote %d x %d float32 to %s\n", n, m->cfg.vocab, out_path);
  }
  free(logits);
  preft_pool_free(pool);
  cli_model_free(&cm);
  free(ids);
  return rc;
}
