/* test_bert_multitask.c - the multitask pieces around the training pass:
 * the data files (columns by header, CSV quotes, label checks, errors
 * naming file and line), batches, metrics; a saved model read back by the
 * inference path (bert_exit.h) giving the training model's outputs;
 * early exit (every example stops where its rule says, a batch gives what
 * each example gives alone, fewer layers run); the bi-encoder's cache
 * (each sentence encoded once); MLM masking (15%, 80/10/10, whole words);
 * a few training steps lower the loss; a run cut and resumed from its
 * checkpoint ends where the uncut run ends, bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "model/bert_exit.h"
#include "train/mlm.h"
#include "train/multitask_train.h"
#include "testutil.h"

static const char *const words[] = {"[PAD]", "[UNK]", "[CLS]",  "[SEP]", "[MASK]", "the",  "a",    "film",
                                    "is",    "good",  "bad",    "not",   "very",   "what", "how",  "do",
                                    "i",     "you",   "learn",  "cook",  "why",    "sky",  "blue", "dog",
                                    "cat",   "runs",  "sleeps", ".",     "?",      ",",    "##s",  "man"};
enum { NW = sizeof words / sizeof words[0] };

static char *dir;

static void write_file(const char *name, const char *text) {
  char *p = preft_path_join(dir, name);
  preft_error err;
  assert_int_equal(preft_write_atomic(p, text, strlen(text), &err), 0);
  free(p);
}

static int setup(void **state) {
  (void)state;
  dir = test_tmpdir();
  char vocab[1024] = "";
  for (int i = 0; i < NW; i++) strcat(strcat(vocab, words[i]), "\n");
  write_file("vocab.txt", vocab);
  write_file("ids-sst-train.csv",
             "\tid\tsentence\tsentiment\n"
             "0\ta1\tthe film is good .\t4\n"
             "1\ta2\tthe film is not good .\t1\n"
             "2\ta3\t\"a \"\"very\"\" bad film\"\t0\n"
             "3\ta4\tthe dog runs .\t2\n");
  write_file("quora-train.csv",
             "\tid\tsentence1\tsentence2\tis_duplicate\n"
             "0\tb1\thow do i cook ?\thow do you cook ?\t1.0\n"
             "1\tb2\twhy is the sky blue ?\twhat is a dog ?\t0.0\n"
             "2\tb3\twhat is a cat ?\twhy is the sky blue ?\t0.0\n");
  write_file("sts-train.csv",
             "\tid\tsentence1\tsentence2\tsimilarity\n"
             "0\tc1\ta man runs .\ta man runs .\t5.0\n"
             "1\tc2\ta dog sleeps .\tthe cat runs .\t1.2\n"
             "2\tc3\tthe cat sleeps .\ta cat sleeps .\t4.4\n");
  write_file("bad-label.csv", "\tid\tsentence\tsentiment\n0\tz\tgood\t7\n");
  write_file("bad-header.csv", "\tid\ttext\tsentiment\n0\tz\tgood\t1\n");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(dir);
  return 0;
}

static preft_tokenizer *tokenizer(void) {
  preft_tokenizer *tok;
  preft_error err;
  char *p = preft_path_join(dir, "vocab.txt");
  if (preft_tokenizer_load(&tok, p, &err) != 0) fail_msg("%s", err.msg);
  free(p);
  return tok;
}

static void load_set(preft_mt_set *s, const char *file, preft_bt_task t, preft_tokenizer *tok) {
  char *p = preft_path_join(dir, file);
  preft_error err;
  if (preft_mt_load(s, p, t, tok, 32, 0, &err) != 0) fail_msg("%s", err.msg);
  free(p);
}

static void test_data_files(void **state) {
  (void)state;
  preft_tokenizer *tok = tokenizer();
  preft_mt_set s;
  load_set(&s, "ids-sst-train.csv", PREFT_BT_SST, tok);
  assert_int_equal(s.n, 4);
  assert_true(s.ex[0].label == 4.0f && s.ex[2].label == 0.0f);
  /* [CLS] the film is good . [SEP] */
  int want0[] = {2, 5, 7, 8, 9, 27, 3};
  assert_int_equal(s.ex[0].n, 7);
  assert_memory_equal(s.ex[0].ids, want0, sizeof want0);
  /* the quoted field: a "very" bad film -> quotes are punctuation, unknown here */
  assert_int_equal(s.ex[2].ids[1], 6);
  preft_mt_free(&s);
  load_set(&s, "quora-train.csv", PREFT_BT_PARA, tok);
  assert_int_equal(s.n, 3);
  assert_true(s.ex[0].label == 1.0f);
  /* pair: token types 0 then 1; bi-encoder halves with their own [CLS] */
  assert_int_equal(s.ex[0].types[0], 0);
  assert_int_equal(s.ex[0].types[s.ex[0].n - 1], 1);
  assert_int_equal(s.ex[0].ids_b[0], 2);
  assert_int_equal(s.ex[0].n, s.ex[0].n_a + s.ex[0].n_b - 1);
  /* a batch of the bi-encoder: a's then b's */
  preft_mt_batch mb = {0};
  int idx[2] = {0, 2};
  preft_mt_batch_make(&mb, &s, idx, 2, true);
  assert_int_equal(mb.b.n_seqs, 4);
  assert_int_equal(mb.lengths[2], s.ex[0].n_b);
  preft_mt_batch_make(&mb, &s, idx, 2, false);
  assert_int_equal(mb.b.n_seqs, 2);
  assert_int_equal(mb.lengths[1], s.ex[2].n);
  preft_mt_batch_free(&mb);
  preft_mt_free(&s);
  /* errors name the file and the line */
  char *p = preft_path_join(dir, "bad-label.csv");
  preft_error err;
  assert_int_equal(preft_mt_load(&s, p, PREFT_BT_SST, tok, 32, 0, &err), -1);
  assert_non_null(strstr(err.msg, "bad-label.csv: line 2"));
  free(p);
  p = preft_path_join(dir, "bad-header.csv");
  assert_int_equal(preft_mt_load(&s, p, PREFT_BT_SST, tok, 32, 0, &err), -1);
  assert_non_null(strstr(err.msg, "no column 'sentence'"));
  free(p);
  preft_tokenizer_free(tok);
}

static void test_metrics(void **state) {
  (void)state;
  float out[10] = {0, 1, 0, 0, 0, /**/ 3, 0, 0, 0, 0}, lab[2] = {1, 4};
  assert_true(preft_mt_metric(PREFT_BT_SST, out, lab, 2) == 0.5);
  float z[3] = {2, -1, 0.5f}, y[3] = {1, 0, 0};
  assert_true(fabs(preft_mt_metric(PREFT_BT_PARA, z, y, 3) - 2.0 / 3) < 1e-12);
  float a[4] = {1, 2, 3, 4}, b[4] = {2, 4, 6, 8.5f};
  double r = preft_mt_metric(PREFT_BT_STS, a, b, 4);
  assert_true(r > 0.99 && r < 1.0);
  assert_true(fabs(preft_mt_score(0.5, 0.8, 0.6) - (0.5 + 0.8 + 0.8) / 3) < 1e-12);
}

/* D 16, H 2, F 32 over the test vocabulary */
static preft_bert_config tiny_config(int layers) {
  return (preft_bert_config){.vocab = NW,
                             .dim = 16,
                             .n_heads = 2,
                             .head_dim = 8,
                             .ffn = 32,
                             .n_layers = layers,
                             .max_pos = 64,
                             .type_vocab = 2,
                             .ln_eps = 1e-12f,
                             .torch_dtype = PREFT_F32};
}

/* a random multitask model with exit heads, saved beside the vocabulary */
static void make_model(preft_bt_model *m, bool siamese, const char *sub) {
  preft_bert_config cfg = tiny_config(3);
  preft_bt_opts o = {.tasks = true, .exits = !siamese, .dropout = 0.1};
  if (siamese) o.arch = PREFT_BT_SIAMESE, o.pooling = PREFT_BT_POOL_MEAN;
  preft_bt_model_init(m, &cfg, &o, 11);
  for (int k = 0; k < m->ps.n_t; k++) /* matrices N(0, 0.2): outputs that differ by layer */
    if (m->ps.t[k].decay)
      for (size_t i = 0; i < m->ps.t[k].n; i++) m->ps.t[k].p[i] *= 10.0f;
  char *d = preft_path_join(dir, sub);
  preft_error err;
  if (preft_bt_model_save(m, d, &err) != 0) fail_msg("%s", err.msg);
  char *v = preft_path_join(d, "vocab.txt"), *src = preft_path_join(dir, "vocab.txt");
  char *data;
  size_t size;
  assert_int_equal(preft_read_file(src, &data, &size, &err), 0);
  assert_int_equal(preft_write_atomic(v, data, size, &err), 0);
  free(data), free(v), free(src), free(d);
}

static void test_inference_matches_training_model(void **state) {
  (void)state;
  preft_bt_model m;
  make_model(&m, false, "cross");
  preft_tokenizer *tok = tokenizer();
  preft_mt_set s;
  load_set(&s, "ids-sst-train.csv", PREFT_BT_SST, tok);
  preft_mt_batch mb = {0};
  int idx[4] = {0, 1, 2, 3};
  preft_mt_batch_make(&mb, &s, idx, 4, false);
  preft_pool *pool = preft_pool_create(2);
  preft_bt_step_ws ws = {0};
  preft_error err;
  char *d = preft_path_join(dir, "cross");
  preft_bert_classifier *c;
  if (preft_bert_classifier_load(&c, d, NULL, &err) != 0) fail_msg("%s", err.msg);
  assert_true(c->has_exits);
  float ref[3][20], out[20];
  for (int l = 0; l < 3; l++)
    assert_int_equal(preft_bt_predict(&m, pool, &mb.b, PREFT_BT_SST, 4, l, ref[l], &ws, &err), 0);
  int used[4];
  preft_bert_exit_rule none = {.kind = PREFT_EXIT_NONE};
  assert_int_equal(preft_bert_classify(c, pool, &mb.b, 0, &none, out, used, &err), 0);
  for (int i = 0; i < 20; i++) assert_true(fabsf(out[i] - ref[2][i]) < 1e-4f);
  for (int i = 0; i < 4; i++) assert_int_equal(used[i], 3);
  /* entropy above any possible value (log 5): everyone leaves after layer 1 with the exit head's output */
  preft_bert_exit_rule all = {.kind = PREFT_EXIT_ENTROPY, .threshold = 2.0};
  assert_int_equal(preft_bert_classify(c, pool, &mb.b, 0, &all, out, used, &err), 0);
  for (int i = 0; i < 20; i++) assert_true(fabsf(out[i] - ref[0][i]) < 1e-4f);
  for (int i = 0; i < 4; i++) assert_int_equal(used[i], 1);
  /* an entropy threshold between the examples' entropies at layer 1: the
   * batch result equals each example alone, and each one stopped where the
   * rule says (layer 1 if its exit-head entropy is below, else later) */
  double h[4];
  for (int i = 0; i < 4; i++) {
    const float *o = ref[0] + 5 * i;
    double mx = o[0], z = 0;
    for (int k = 1; k < 5; k++) mx = fmax(mx, o[k]);
    for (int k = 0; k < 5; k++) z += exp(o[k] - mx);
    h[i] = 0;
    for (int k = 0; k < 5; k++) {
      double p = exp(o[k] - mx) / z;
      h[i] -= p > 0 ? p * log(p) : 0;
    }
  }
  double lo = fmin(fmin(h[0], h[1]), fmin(h[2], h[3])), hi = fmax(fmax(h[0], h[1]), fmax(h[2], h[3]));
  assert_true(hi > lo);
  preft_bert_exit_rule mid = {.kind = PREFT_EXIT_ENTROPY, .threshold = (lo + hi) / 2};
  assert_int_equal(preft_bert_classify(c, pool, &mb.b, 0, &mid, out, used, &err), 0);
  int stopped_early = 0;
  for (int i = 0; i < 4; i++) {
    if (h[i] < mid.threshold) {
      assert_int_equal(used[i], 1);
      stopped_early++;
    } else {
      assert_true(used[i] > 1);
    }
    preft_mt_batch one = {0};
    preft_mt_batch_make(&one, &s, &i, 1, false);
    float o1[5];
    int u1;
    assert_int_equal(preft_bert_classify(c, pool, &one.b, 0, &mid, o1, &u1, &err), 0);
    assert_int_equal(u1, used[i]);
    for (int k = 0; k < 5; k++) assert_true(fabsf(o1[k] - out[5 * i + k]) < 1e-4f);
    preft_mt_batch_free(&one);
  }
  assert_true(stopped_early > 0 && stopped_early < 4);
  /* patience 1: stops at the first layer whose prediction equals the previous one */
  preft_bert_exit_rule pat = {.kind = PREFT_EXIT_PATIENCE, .patience = 1, .tolerance = 0.1};
  assert_int_equal(preft_bert_classify(c, pool, &mb.b, 0, &pat, out, used, &err), 0);
  for (int i = 0; i < 4; i++) {
    int expect = 3;
    for (int l = 1; l < 3; l++)
      if (preft_mt_prediction(PREFT_BT_SST, ref[l] + 5 * i) ==
          preft_mt_prediction(PREFT_BT_SST, ref[l - 1] + 5 * i)) {
        expect = l + 1;
        break;
      }
    assert_int_equal(used[i], expect);
  }
  /* rules parse, and bad ones are refused */
  preft_bert_exit_rule r;
  assert_int_equal(preft_bert_exit_rule_parse("patience:2:0.25", &r, &err), 0);
  assert_true(r.kind == PREFT_EXIT_PATIENCE && r.patience == 2 && r.tolerance == 0.25);
  assert_int_equal(preft_bert_exit_rule_parse("entropy:x", &r, &err), -1);
  assert_int_equal(preft_bert_exit_rule_parse("patience:0", &r, &err), -1);
  preft_bert_classifier_free(c);
  free(d);
  preft_bt_step_ws_free(&ws);
  preft_pool_free(pool);
  preft_mt_batch_free(&mb);
  preft_mt_free(&s);
  preft_tokenizer_free(tok);
  preft_bt_model_free(&m);
}

static void test_siamese_cache(void **state) {
  (void)state;
  preft_bt_model m;
  make_model(&m, true, "siamese");
  preft_tokenizer *tok = tokenizer();
  preft_mt_set s;
  load_set(&s, "sts-train.csv", PREFT_BT_STS, tok);
  preft_pool *pool = preft_pool_create(1);
  preft_error err;
  char *d = preft_path_join(dir, "siamese");
  preft_bert_classifier *c;
  if (preft_bert_classifier_load(&c, d, NULL, &err) != 0) fail_msg("%s", err.msg);
  assert_true(c->siamese && c->mean_pool);
  /* the training model's outputs for the three pairs */
  preft_mt_batch mb = {0};
  int idx[3] = {0, 1, 2};
  preft_mt_batch_make(&mb, &s, idx, 3, true);
  preft_bt_step_ws ws = {0};
  float ref[3];
  assert_int_equal(preft_bt_predict(&m, pool, &mb.b, PREFT_BT_STS, 3, 2, ref, &ws, &err), 0);
  assert_true(fabsf(ref[0] - 5.0f) < 1e-4f); /* identical sentences: cosine 1 */
  /* one sentence against the three b's, then again: 4 encodings in all */
  preft_bert_emb_cache cache = {0};
  for (int rep = 0; rep < 2; rep++)
    for (int i = 0; i < 3; i++) {
      const float *u = preft_bert_emb_cache_get(&cache, c, pool, s.ex[i].ids_a, s.ex[i].n_a, &err);
      const float *v = preft_bert_emb_cache_get(&cache, c, pool, s.ex[i].ids_b, s.ex[i].n_b, &err);
      assert_non_null(u);
      assert_non_null(v);
      assert_true(fabsf(preft_bert_pair_output(c, 2, u, v) - ref[i]) < 1e-3f);
    }
  /* 6 distinct sentences minus the repeated "a man runs ." */
  assert_int_equal(c->n_encoded, 5);
  preft_bert_emb_cache_free(&cache);
  preft_bert_classifier_free(c);
  free(d);
  preft_bt_step_ws_free(&ws);
  preft_mt_batch_free(&mb);
  preft_pool_free(pool);
  preft_mt_free(&s);
  preft_tokenizer_free(tok);
  preft_bt_model_free(&m);
}

static void test_masking(void **state) {
  (void)state;
  enum { B = 64, T = 40 };
  int *ids = malloc(sizeof(int) * B * T), lengths[B], *rows = malloc(sizeof(int) * B * T),
      *targets = malloc(sizeof(int) * B * T), *orig = malloc(sizeof(int) * B * T);
  uint8_t *ws = malloc(B * T);
  for (int b = 0; b < B; b++) {
    lengths[b] = T - (b % 5);
    for (int t = 0; t < T; t++) {
      ids[b * T + t] = t == 0 ? 2 : t == lengths[b] - 1 ? 3 : t < lengths[b] ? 10 + (t * 7 + b) % 90 : 0;
      ws[b * T + t] = t > 0 && t < lengths[b] - 1 && t % 3 != 2; /* words of 1 or 2 tokens */
    }
  }
  memcpy(orig, ids, sizeof(int) * B * T);
  preft_mlm_mask_opts o = {.prob = 0.15, .mask_id = 4, .first_normal = 5, .vocab = 100};
  preft_rng r;
  preft_rng_seed(&r, 3);
  int M = preft_mlm_mask(&o, ids, ws, B, T, lengths, &r, rows, targets);
  int inner = 0, masked = 0, random = 0, kept = 0;
  for (int b = 0; b < B; b++) inner += lengths[b] - 2;
  for (int i = 0; i < M; i++) {
    int t = rows[i] % T, b = rows[i] / T;
    assert_true(t > 0 && t < lengths[b] - 1); /* never [CLS], [SEP] or padding */
    assert_int_equal(targets[i], orig[rows[i]]);
    if (ids[rows[i]] == 4)
      masked++;
    else if (ids[rows[i]] == orig[rows[i]])
      kept++;
    else
      random++;
  }
  assert_true(fabs((double)M / inner - 0.15) < 0.01);
  assert_true(fabs((double)masked / M - 0.8) < 0.06);
  assert_true(random > M / 20 && kept > M / 20);
  for (int i = 0; i < B * T; i++) { /* nothing else changed */
    bool chosen = false;
    for (int k = 0; k < M; k++) chosen |= rows[k] == i;
    if (!chosen) assert_int_equal(ids[i], orig[i]);
  }
  /* whole words: a chosen word's pieces are all chosen */
  memcpy(ids, orig, sizeof(int) * B * T);
  o.whole_word = true;
  M = preft_mlm_mask(&o, ids, ws, B, T, lengths, &r, rows, targets);
  uint8_t *ch = calloc(B * T, 1);
  for (int i = 0; i < M; i++) ch[rows[i]] = 1;
  for (int b = 0; b < B; b++)
    for (int t = 2; t < lengths[b] - 1; t++)
      if (!ws[b * T + t]) assert_int_equal(ch[b * T + t], ch[b * T + t - 1]);
  assert_true(fabs((double)M / inner - 0.15) < 0.03);
  free(ch), free(ids), free(rows), free(targets), free(orig), free(ws);
}

/* A few steps of multitask training with SMART and joint exits lower the
 * training loss of a fixed batch. */
/* SMART (one ascent step), the Bregman teacher and joint exits: the step
 * options both training tests run with. */
static preft_bt_step_opts smart_bregman_step(void) {
  return (preft_bt_step_opts){.lambda_s = 1.0,
                              .sigma = 1e-3,
                              .eta = 1e-3,
                              .eps = 1e-2,
                              .steps = 1,
                              .mu = 0.5,
                              .exits = PREFT_BT_EXITS_JOINT};
}

static void test_training_lowers_loss(void **state) {
  (void)state;
  preft_tokenizer *tok = tokenizer();
  preft_mt_set train[3] = {{0}}, dev[3] = {{0}};
  load_set(&train[0], "ids-sst-train.csv", PREFT_BT_SST, tok);
  load_set(&dev[0], "ids-sst-train.csv", PREFT_BT_SST, tok);
  preft_bert_config cfg = tiny_config(2);
  preft_bt_opts bo = {.tasks = true, .exits = true};
  preft_bt_model m;
  preft_bt_model_init(&m, &cfg, &bo, 5);
  preft_pool *pool = preft_pool_create(1);
  preft_error err;
  preft_mt_eval before, after;
  assert_int_equal(preft_mt_evaluate(&m, pool, dev, 4, -1, &before, &err), 0);
  preft_mt_train_opts o = {.steps = 80,
                           .batch = 4,
                           .lr = 1e-2,
                           .warmup_frac = 0.1,
                           .clip = 1.0,
                           .seed = 1,
                           .step = smart_bregman_step(),
                           .bregman_beta = 0.9,
                           .quiet = true};
  preft_mt_history h;
  if (preft_mt_train(&m, pool, train, dev, &o, &h, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(h.n_steps, 80);
  assert_true(h.step_loss[79] < h.step_loss[0]);
  assert_int_equal(preft_mt_evaluate(&m, pool, dev, 4, -1, &after, &err), 0);
  if (after.metric[0] != 1.0)
    fail_msg("accuracy %g, loss %g -> %g", after.metric[0], h.step_loss[0], h.step_loss[79]);
  preft_mt_history_free(&h);
  preft_pool_free(pool);
  preft_bt_model_free(&m);
  preft_mt_free(&train[0]);
  preft_mt_free(&dev[0]);
  preft_tokenizer_free(tok);
}

/* One run of the loop on all three tasks: proportional sampling, dropout,
 * SMART, the Bregman teacher, joint exits, evaluations; LoRA when rank > 0.
 * With ckpt, stop_after > 0 cuts it and resume continues it. */
static void resume_run(preft_bt_model *m, int rank, const preft_mt_set *train, const char *ckpt,
                       int stop_after, bool resume, preft_mt_history *h) {
  preft_bert_config cfg = tiny_config(2);
  preft_bt_opts bo = {
      .tasks = true, .exits = true, .dropout = 0.1, .lora_rank = rank, .lora_alpha = 2.0 * rank};
  preft_bt_model_init(m, &cfg, &bo, 5);
  preft_pool *pool = preft_pool_create(1);
  preft_error err;
  preft_mt_train_opts o = {.steps = 10,
                           .batch = 2,
                           .lr = 1e-2,
                           .warmup_frac = 0.2,
                           .weight_decay = 0.01,
                           .clip = 1.0,
                           .proportional = true,
                           .seed = 3,
                           .step = smart_bregman_step(),
                           .bregman_beta = 0.9,
                           .eval_every = 3,
                           .ckpt_every = 4,
                           .ckpt_path = ckpt,
                           .resume = resume,
                           .stop_after = stop_after,
                           .quiet = true};
  if (preft_mt_train(m, pool, train, train, &o, h, &err) != 0) fail_msg("%s", err.msg);
  preft_pool_free(pool);
}

static void assert_same_run(const preft_bt_model *a, const preft_mt_history *ha, const preft_bt_model *b,
                            const preft_mt_history *hb) {
  assert_int_equal(ha->n_steps, hb->n_steps);
  assert_memory_equal(ha->step_loss, hb->step_loss, sizeof(double) * (size_t)ha->n_steps);
  assert_memory_equal(ha->step_task, hb->step_task, sizeof(int) * (size_t)ha->n_steps);
  assert_int_equal(ha->n_evals, hb->n_evals);
  for (int e = 0; e < ha->n_evals; e++) assert_true(ha->evals[e].score == hb->evals[e].score);
  assert_int_equal(a->ps.n, b->ps.n);
  assert_memory_equal(a->ps.mem, b->ps.mem, sizeof(float) * a->ps.n);
}

/* 10 steps straight against 4 (cut, checkpointed) + resume to 10, with a
 * checkpoint in between as well (step 8): the same weights and logged
 * losses bit for bit; a checkpoint of another run is refused naming the
 * file. */
static void test_resume_is_exact(void **state) {
  (void)state;
  preft_tokenizer *tok = tokenizer();
  preft_mt_set train[3] = {{0}};
  load_set(&train[0], "ids-sst-train.csv", PREFT_BT_SST, tok);
  load_set(&train[1], "quora-train.csv", PREFT_BT_PARA, tok);
  load_set(&train[2], "sts-train.csv", PREFT_BT_STS, tok);
  char *ckpt = preft_path_join(dir, "mt-checkpoint.bin");
  for (int rank = 0; rank <= 2; rank += 2) {
    preft_bt_model a, b;
    preft_mt_history ha, hb;
    resume_run(&a, rank, train, NULL, 0, false, &ha);
    assert_int_equal(ha.n_steps, 10);
    remove(ckpt);
    resume_run(&b, rank, train, ckpt, 4, true, &hb);
    assert_int_equal(hb.n_steps, 4);
    assert_true(preft_file_exists(ckpt));
    assert_memory_not_equal(a.ps.mem, b.ps.mem, sizeof(float) * a.ps.n); /* the cut run is behind */
    preft_bt_model_free(&b);
    preft_mt_history_free(&hb);
    resume_run(&b, rank, train, ckpt, 0, true, &hb);
    assert_int_equal(hb.resumed_from, 4);
    assert_same_run(&a, &ha, &b, &hb);
    preft_bt_model_free(&b);
    preft_mt_history_free(&hb);
    if (rank == 2) { /* a checkpoint of the LoRA run does not fit full fine-tuning */
      preft_bt_model c;
      preft_mt_history hc;
      preft_bert_config cfg = a.cfg;
      preft_bt_opts bo = {.tasks = true, .exits = true, .dropout = 0.1};
      preft_bt_model_init(&c, &cfg, &bo, 5);
      preft_pool *pool = preft_pool_create(1);
      preft_error err;
      preft_mt_train_opts o = {
          .steps = 10, .batch = 2, .lr = 1e-2, .seed = 3, .ckpt_path = ckpt, .resume = true, .quiet = true};
      assert_int_not_equal(preft_mt_train(&c, pool, train, train, &o, &hc, &err), 0);
      assert_non_null(strstr(err.msg, "mt-checkpoint.bin"));
      preft_mt_history_free(&hc);
      preft_pool_free(pool);
      preft_bt_model_free(&c);
    }
    preft_bt_model_free(&a);
    preft_mt_history_free(&ha);
  }
  free(ckpt);
  for (int t = 0; t < 3; t++) preft_mt_free(&train[t]);
  preft_tokenizer_free(tok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data_files),
      cmocka_unit_test(test_metrics),
      cmocka_unit_test(test_inference_matches_training_model),
      cmocka_unit_test(test_siamese_cache),
      cmocka_unit_test(test_masking),
      cmocka_unit_test(test_training_lowers_loss),
      cmocka_unit_test(test_resume_is_exact),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
