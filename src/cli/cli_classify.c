/* cli_classify.c - `preft classify`: one text (or pair) through a model
 * written by `preft train multitask`: the SST class, the paraphrase
 * probability or the similarity score, with early exit for the
 * cross-encoder and, for the bi-encoder, one text against many pairs with
 * each sentence encoded once (bert_exit.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "cli/cli.h"
#include "model/bert_exit.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft classify -m DIR [-a DIR] --task sst|para|sts --text TEXT [--text-pair TEXT]...\n"
          "                      [--early-exit entropy:T|patience:P[:TOL]] [--threads N]\n\n"
          "Runs a multitask BERT written by `preft train multitask` on one input and prints\n"
          "one line per pair: sst: the class 0-4 (very negative .. very positive) and its\n"
          "probabilities; para: the probability that the pair are paraphrases; sts: the\n"
          "similarity 0-5. With --early-exit (cross-encoder with exit heads) the line says\n"
          "at which layer the input left. --text-pair may repeat: the cross-encoder runs each\n"
          "pair; the bi-encoder encodes TEXT once and each pair text once.\n\n"
          "  -m, --model DIR      the model directory, or with -a the base model (a LoRA\n"
          "                       directory of --lora-rank also works alone)\n"
          "  -a, --adapter DIR    a PEFT LoRA directory on the base (with preft's heads)\n"
          "  --task T             sst, para or sts\n"
          "  --text TEXT          the sentence (sst) or the first of the pair\n"
          "  --text-pair TEXT     the second sentence (para, sts); repeatable\n"
          "  --early-exit RULE    entropy:T (DeeBERT) or patience:P[:TOL] (PABEE)\n"
          "  --max-len N          tokens per input (default 128)\n"
          "  --threads N          worker threads (default: all cores)\n\n"
          "Exit status: 0 done, 1 error (model, tokenizer), 2 usage.\n");
}

static int encode(const preft_tokenizer *tok, const char *a, const char *b, int max_len, int **ids,
                  int **types, int *n, preft_error *err) {
  int32_t *i32, *t32;
  size_t count;
  if (preft_tokenizer_encode_pair(tok, a, strlen(a), b, b ? strlen(b) : 0, true, &i32, &t32, &count, err) !=
      0)
    return -1;
  int k = (int)count > max_len ? max_len : (int)count;
  *ids = malloc(sizeof(int) * (size_t)(k + 1));
  *types = malloc(sizeof(int) * (size_t)(k + 1));
  for (int i = 0; i < k; i++) (*ids)[i] = i32[i], (*types)[i] = t32[i];
  if ((int)count > k) (*ids)[k - 1] = i32[count - 1], (*types)[k - 1] = t32[count - 1];
  *n = k;
  free(i32);
  free(t32);
  return 0;
}

static void print_output(int task, const float *o, int layers, int total, bool exits) {
  if (task == 0) {
    double mx = o[0], s = 0;
    int best = 0;
    for (int k = 1; k < 5; k++)
      if (o[k] > o[best]) best = k;
    mx = o[best];
    for (int k = 0; k < 5; k++) s += exp(o[k] - mx);
    printf("class %d  p = [", best);
    for (int k = 0; k < 5; k++) printf(k ? ", %.3f" : "%.3f", exp(o[k] - mx) / s);
    printf("]");
  } else if (task == 1) {
    printf("paraphrase probability %.4f", 1.0 / (1.0 + exp(-o[0])));
  } else {
    printf("similarity %.4f", o[0]);
  }
  if (exits) printf("  (exit after layer %d of %d)", layers, total);
  printf("\n");
}

int cli_classify(int argc, char **argv) {
  const char *model_dir = NULL, *adapter_dir = NULL, *task_name = NULL, *text = NULL, *early = NULL;
  const char *pairs_v[256];
  cli_strs pairs = {.items = pairs_v, .max = 256};
  long max_len = 128, threads = 0;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--adapter", "-a", CLI_STR, &adapter_dir},
      {"--task", NULL, CLI_STR, &task_name},
      {"--text", NULL, CLI_STR, &text},
      {"--text-pair", NULL, CLI_STRS, &pairs},
      {"--early-exit", NULL, CLI_STR, &early},
      {"--max-len", NULL, CLI_INT, &max_len, 4, 4096},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {NULL},
  };
  int rc = cli_parse("classify", argc, argv, opts, usage);
  if (rc != 0) return cli_parse_exit(rc);
  int task = !task_name                   ? -1
             : !strcmp(task_name, "sst")  ? 0
             : !strcmp(task_name, "para") ? 1
             : !strcmp(task_name, "sts")  ? 2
                                          : -1;
  preft_error err;
  preft_bert_exit_rule rule = {.kind = PREFT_EXIT_NONE};
  const char *problem = !model_dir || !text        ? "-m and --text are required"
                        : task < 0                 ? "--task is sst, para or sts"
                        : task == 0 && pairs.n > 0 ? "--task sst takes no --text-pair"
                        : task > 0 && pairs.n == 0 ? "--task para and sts need --text-pair"
                                                   : NULL;
  if (!problem && early && preft_bert_exit_rule_parse(early, &rule, &err) != 0) {
    fprintf(stderr, "preft classify: --early-exit: %s\n", err.msg);
    return CLI_EXIT_USAGE;
  }
  if (problem) {
    fprintf(stderr, "preft classify: %s (see --help)\n", problem);
    return CLI_EXIT_USAGE;
  }
  preft_bert_classifier *c = NULL;
  preft_tokenizer *tok = NULL;
  preft_pool *pool = NULL;
  preft_bert_emb_cache cache = {0};
  rc = CLI_EXIT_ERROR;
  if (preft_bert_classifier_load(&c, model_dir, adapter_dir, &err) != 0 ||
      preft_tokenizer_load(&tok, model_dir, &err) != 0)
    goto fail;
  if (c->siamese && task > 0 && early) {
    preft_fail(&err, "--early-exit is for cross-encoders; this model is a bi-encoder");
    goto fail;
  }
  pool = preft_pool_create((int)threads);
  int L = c->bert->cfg.n_layers;
  if (max_len > c->bert->cfg.max_pos) max_len = c->bert->cfg.max_pos;
  int n_in = task == 0 ? 1 : pairs.n;
  for (int i = 0; i < n_in; i++) {
    const char *b = task == 0 ? NULL : pairs.items[i];
    float o[5];
    int used = L;
    if (c->siamese && task > 0) {
      int *ia, *ta, *ib, *tb, na, nb;
      if (encode(tok, text, NULL, (int)max_len, &ia, &ta, &na, &err) != 0) goto fail;
      if (encode(tok, b, NULL, (int)max_len, &ib, &tb, &nb, &err) != 0) {
        free(ia), free(ta);
        goto fail;
      }
      const float *u = preft_bert_emb_cache_get(&cache, c, pool, ia, na, &err);
      const float *v = u ? preft_bert_emb_cache_get(&cache, c, pool, ib, nb, &err) : NULL;
      free(ia), free(ta), free(ib), free(tb);
      if (!v) goto fail;
      o[0] = preft_bert_pair_output(c, task, u, v);
    } else {
      int *ids, *types, n;
      if (encode(tok, text, b, (int)max_len, &ids, &types, &n, &err) != 0) goto fail;
      preft_bert_batch bb = {.n_seqs = 1, .seq_len = n, .ids = ids, .types = types};
      int r = preft_bert_classify(c, pool, &bb, task, &rule, o, &used, &err);
      free(ids), free(types);
      if (r != 0) goto fail;
    }
    if (n_in > 1) printf("%d\t", i);
    print_output(task, o, used, L, rule.kind != PREFT_EXIT_NONE);
  }
  if (c->siamese && task > 0)
    fprintf(stderr, "preft classify: %ld sentences encoded for %d pairs\n", c->n_encoded, n_in);
  rc = CLI_EXIT_OK;
  goto out;
fail:
  fprintf(stderr, "preft classify: %s\n", err.msg);
out:
  preft_bert_emb_cache_free(&cache);
  preft_pool_free(pool);
  preft_tokenizer_free(tok);
  preft_bert_classifier_free(c);
  return rc;
}
