/* embed.c - a program embedding libpreft through its public API only
 * (include/preft, linked against libpreft.so): loads a Hugging Face model
 * directory, generates a few tokens greedily after a prompt of token ids,
 * and prints them on one line, space-separated (as `preft generate --ids
 * ... --print-ids` does).
 *
 *   usage: embed MODEL_DIR IDS N      e.g. embed models/llama 1,2,3 8
 *
 * Build (outside this repository's CMake):
 *   cc -std=c11 -Iinclude examples/embed.c -Lbuild -lpreft -o embed
 */
#include <preft/preft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses "1,2,3" into ids[] (at most cap); returns the count, or -1 on a
 * value that is not a non-negative integer. */
static int parse_ids(const char *s, int *ids, int cap) {
  int n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0 || v > 0x7fffffff || n == cap || (*end && *end != ',')) return -1;
    ids[n++] = (int)v;
    s = *end ? end + 1 : end;
  }
  return n;
}

/* The generation callback: prints each token as it comes. */
static bool print_token(void *ctx, int token) {
  int *count = ctx;
  printf((*count)++ ? " %d" : "%d", token);
  return true;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: embed MODEL_DIR IDS N   (libpreft %s)\n", preft_version());
    return 2;
  }
  int prompt[256];
  int n_prompt = parse_ids(argv[2], prompt, 256);
  int max_new = atoi(argv[3]);
  if (n_prompt <= 0 || max_new <= 0) {
    fprintf(stderr, "embed: IDS must be a comma-separated list of token ids and N a positive count\n");
    return 2;
  }

  preft_error err;
  preft_model *model;
  if (preft_model_load(&model, argv[1], &err) != 0) {
    fprintf(stderr, "embed: %s\n", err.msg);
    return 1;
  }
  const preft_model_config *cfg = preft_model_get_config(model);
  fprintf(stderr, "embed: %d layers, width %d, vocabulary %d, %zu parameters\n", cfg->n_layers, cfg->dim,
          cfg->vocab, preft_model_n_params(model));

  preft_pool *pool = preft_pool_create(2);
  preft_generate_opts opts = {.max_new_tokens = max_new}; /* sampling all zero: greedy */
  int count = 0, n_generated = 0;
  int rc = preft_generate(model, pool, prompt, n_prompt, &opts, print_token, &count, &n_generated, &err);
  printf("\n");
  if (rc != 0) fprintf(stderr, "embed: %s\n", err.msg);
  preft_pool_free(pool);
  preft_model_free(model);
  return rc == 0 ? 0 : 1;
}
