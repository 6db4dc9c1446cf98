/* cli_encode.c - `preft encode`: a BERT encoder's last hidden state
 * (float32 [T, hidden]) or pooler output (float32 [hidden]) for token ids
 * or a text (or a pair of texts) tokenized by the model's WordPiece
 * tokenizer, as transformers' BertModel(**tokenizer(a, b)) gives them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "cli/cli.h"
#include "model/bert.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: preft encode -m DIR [-a DIR] (--ids 1,2,3 [--types 0,0,1] | --text TEXT [--text-pair TEXT])\n"
      "                    -o FILE [--pooled] [--tokenizer PATH] [--threads N]\n\n"
      "Runs a BERT encoder (Hugging Face BertModel, BertForMaskedLM or\n"
      "BertForSequenceClassification checkpoint) and writes the last hidden state as\n"
      "little-endian float32, row-major [T, hidden] (T tokens), or with --pooled the\n"
      "pooler output [hidden].\n\n"
      "  -m, --model DIR    model directory (config.json + model.safetensors); a PEFT LoRA\n"
      "                     directory alone stands for its base_model_name_or_path with it\n"
      "  -a, --adapter DIR  a PEFT LoRA directory (adapter_config.json,\n"
      "                     adapter_model.safetensors) merged into the encoder\n"
      "  --ids LIST         comma-separated token ids (no special tokens added)\n"
      "  --types LIST       token type ids for --ids (default: all 0)\n"
      "  --text TEXT        text to tokenize: [CLS] TEXT [SEP]\n"
      "  --text-pair TEXT   second text: [CLS] TEXT [SEP] PAIR [SEP], PAIR's part type 1\n"
      "  --tokenizer PATH   tokenizer directory, tokenizer.json or vocab.txt (default: the\n"
      "                     model's, the base's with an adapter)\n"
      "  -o, --output FILE  where to write (atomically)\n"
      "  --pooled           write the pooler output of the first token instead\n"
      "  --threads N        worker threads (default: all cores)\n" CLI_MATMUL_HELP
      "\nThe ids used are printed to stderr. Exit status: 0 written, 1 error (model,\n"
      "tokenizer, ids), 2 usage.\n");
}

/* ids (and types) from --text / --text-pair */
static int tokenize(const char *path, const char *text, const char *pair, int **ids, int **types, int *n,
                    preft_error *err) {
  preft_tokenizer *tok;
  if (preft_tokenizer_load(&tok, path, err) != 0) return -1;
  int32_t *i32, *t32;
  size_t count;
  int rc = preft_tokenizer_encode_pair(tok, text, strlen(text), pair, pair ? strlen(pair) : 0, true, &i32,
                                       &t32, &count, err);
  preft_tokenizer_free(tok);
  if (rc != 0) return -1;
  *ids = malloc(sizeof(int) * (count + 1));
  *types = malloc(sizeof(int) * (count + 1));
  for (size_t k = 0; k < count; k++) {
    (*ids)[k] = i32[k];
    (*types)[k] = t32[k];
  }
  *n = (int)count;
  free(i32);
  free(t32);
  return 0;
}

static void print_list(const char *label, const int *v, int n) {
  fprintf(stderr, "%s", label);
  for (int i = 0; i < n; i++) fprintf(stderr, i ? ",%d" : "%d", v[i]);
  fputc('\n', stderr);
}

int cli_encode(int argc, char **argv) {
  const char *model_dir = NULL, *adapter_dir = NULL, *out_path = NULL, *text = NULL, *pair = NULL,
             *tok_path = NULL;
  bool pooled = false;
  long threads = 0;
  cli_ids idlist = {0}, typelist = {0};
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--adapter", "-a", CLI_STR, &adapter_dir},
      {"--ids", NULL, CLI_IDS, &idlist},
      {"--types", NULL, CLI_IDS, &typelist},
      {"--text", NULL, CLI_STR, &text},
      {"--text-pair", NULL, CLI_STR, &pair},
      {"--tokenizer", NULL, CLI_STR, &tok_path},
      {"--output", "-o", CLI_STR, &out_path},
      {"--pooled", NULL, CLI_FLAG, &pooled},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      CLI_MATMUL_OPTION,
      {NULL},
  };
  int rc = cli_parse("encode", argc, argv, opts, usage);
  int *ids = idlist.v, *types = typelist.v, n = idlist.n;
  if (rc != 0) {
    free(ids);
    free(types);
    return cli_parse_exit(rc);
  }
  const char *problem = !model_dir || !out_path           ? "-m and -o are required"
                        : (ids != NULL) == (text != NULL) ? "give exactly one of --ids or --text"
                        : pair && !text                   ? "--text-pair needs --text"
                        : types && !ids                   ? "--types goes with --ids"
                        : types && typelist.n != n        ? "--types must list as many values as --ids"
                                                          : NULL;
  if (problem) {
    fprintf(stderr, "preft encode: %s (see --help)\n", problem);
    free(ids);
    free(types);
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_bert *m = NULL;
  preft_bert_source src = {0};
  rc = CLI_EXIT_ERROR;
  if (preft_bert_source_resolve(&src, model_dir, adapter_dir, &err) != 0) {
    fprintf(stderr, "preft encode: %s\n", err.msg);
    goto out;
  }
  if (text && tokenize(tok_path ? tok_path : src.base, text, pair, &ids, &types, &n, &err) != 0) {
    fprintf(stderr, "preft encode: tokenizer: %s\n", err.msg);
    goto out;
  }
  if (preft_bert_load_source(&m, &src, &err) != 0) {
    fprintf(stderr, "preft encode: %s\n", err.msg);
    goto out;
  }
  print_list("preft encode: ids ", ids, n);
  if (types) print_list("preft encode: types ", types, n);
  int D = m->cfg.dim;
  size_t count = pooled ? (size_t)D : (size_t)n * (size_t)D;
  float *hidden = malloc(sizeof(float) * (size_t)n * (size_t)D),
        *pool_out = malloc(sizeof(float) * (size_t)D);
  preft_pool *pool = preft_pool_create((int)threads);
  preft_bert_workspace ws = {0};
  preft_bert_batch b = {.n_seqs = 1, .seq_len = n, .ids = ids, .types = types};
  if (!hidden || !pool_out) {
    fprintf(stderr, "preft encode: cannot allocate %zu MiB for the hidden states\n",
            ((size_t)n * D * 4) >> 20);
  } else if (preft_bert_forward(m, pool, &b, &ws, hidden, pooled ? pool_out : NULL, &err) != 0 ||
             preft_write_atomic(out_path, pooled ? pool_out : hidden, sizeof(float) * count, &err) != 0) {
    fprintf(stderr, "preft encode: %s\n", err.msg);
  } else {
    if (pooled)
      fprintf(stderr, "preft encode: wrote the pooled output, %d float32, to %s\n", D, out_path);
    else
      fprintf(stderr, "preft encode: wrote %d x %d float32 to %s\n", n, D, out_path);
    rc = CLI_EXIT_OK;
  }
  preft_bert_workspace_free(&ws);
  preft_pool_free(pool);
  free(hidden);
  free(pool_out);
out:
  preft_bert_source_free(&src);
  preft_bert_free(m);
  free(ids);
  free(types);
  return rc;
}
