/* cli_make_model.c - `preft make-model`: writes a random-weight model of a
 * known shape in the Hugging Face layout (for demos, tests, benchmarks). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "model/llama.h"
#include "model/shapes.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft make-model --shape NAME -o DIR [--dtype f32|f16|bf16] [--layers L] [--seed S]\n\n"
          "Writes config.json, generation_config.json and model.safetensors of a model\n"
          "with random weights and the shape of a known checkpoint.\n\n"
          "  --shape NAME   one of: %s\n"
          "  -o DIR         output directory (created; files written atomically)\n"
          "  --dtype T      weight storage type (default f32)\n"
          "  --layers L     override the number of layers\n"
          "  --vocab V      override the vocabulary size (to match a tokenizer)\n"
          "  --seed S       random seed (default 0)\n",
          preft_shape_names());
}

int cli_make_model(int argc, char **argv) {
  const char *shape = NULL, *out = NULL;
  preft_dtype dtype = PREFT_F32;
  long layers = 0, seed = 0, vocab = 0;
  const cli_opt opts[] = {
      {"--shape", NULL, CLI_STR, &shape},
      {"--output", "-o", CLI_STR, &out},
      {"--dtype", NULL, CLI_DTYPE, &dtype},
      {"--layers", NULL, CLI_INT, &layers, 1, 1024},
      {"--vocab", NULL, CLI_INT, &vocab, 1, 1 << 24},
      {"--seed", NULL, CLI_INT, &seed, 0, 0x7fffffff},
      {NULL},
  };
  int pr = cli_parse("make-model", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!shape || !out) {
    fprintf(stderr, "preft make-model: --shape and -o are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_model_config cfg;
  if (preft_shape_config(shape, &cfg, &err) != 0) {
    fprintf(stderr, "preft make-model: %s\n", err.msg);
    return CLI_EXIT_USAGE;
  }
  if (layers > 0) cfg.n_layers = (int)layers;
  if (vocab > 0) cfg.vocab = (int)vocab;
  preft_model *m;
  if (preft_model_init_random(&m, &cfg, dtype, (uint64_t)seed, &err) != 0) {
    fprintf(stderr, "preft make-model: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  if (preft_model_save(m, out, &err) != 0) {
    fprintf(stderr, "preft make-model: %s\n", err.msg);
    preft_model_free(m);
    return CLI_EXIT_ERROR;
  }
  fprintf(stderr, "preft make-model: wrote %s (%s shape, %zu parameters, %s)\n", out, shape,
          preft_model_n_params(m), preft_dtype_name(dtype));
  preft_model_free(m);
  return CLI_EXIT_OK;
}
