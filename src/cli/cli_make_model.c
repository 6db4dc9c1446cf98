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

int cli_parse_dtype(const char *cmd, const char *s, preft_dtype *out) {
  if (!strcmp(s, "f32")) *out = PREFT_F32;
  else if (!strcmp(s, "f16")) *out = PREFT_F16;
  else if (!strcmp(s, "bf16")) *out = PREFT_BF16;
  else {
    fprintf(stderr, "preft %s: --dtype expects f32, f16 or bf16, got '%s'\n", cmd, s);
    return -1;
  }
  return 0;
}

int cli_make_model(int argc, char **argv) {
  const char *shape = NULL, *out = NULL, *v;
  preft_dtype dtype = PREFT_F32;
  long layers = 0, seed = 0, vocab = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(a, "--shape")) {
      if (!(shape = cli_value("make-model", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
      if (!(out = cli_value("make-model", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--dtype")) {
      if (!(v = cli_value("make-model", argc, argv, &i)) || cli_parse_dtype("make-model", v, &dtype) != 0)
        return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--layers")) {
      if (!(v = cli_value("make-model", argc, argv, &i)) || cli_parse_int("make-model", a, v, 1, 1024, &layers) != 0)
        return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--vocab")) {
      if (!(v = cli_value("make-model", argc, argv, &i)) || cli_parse_int("make-model", a, v, 1, 1 << 24, &vocab) != 0)
        return CLI_EXIT_USAGE;
    } else if (!strcmp(a, "--seed")) {
      if (!(v = cli_value("make-model", argc, argv, &i)) ||
          cli_parse_int("make-model", a, v, 0, 2147483647L, &seed) != 0)
        return CLI_EXIT_USAGE;
    } else {
      fprintf(stderr, "preft make-model: unknown option '%s' (see --help)\n", a);
      return CLI_EXIT_USAGE;
    }
  }
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
  fprintf(stderr, "preft make-model: wrote %s (%s shape, %zu parameters, %s)\n", out, shape, preft_model_n_params(m),
          preft_dtype_name(dtype));
  preft_model_free(m);
  return CLI_EXIT_OK;
}
