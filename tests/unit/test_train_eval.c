/* test_train_eval.c - the library side of evaluation: the hold-out split
 * (deterministic for a seed, disjoint, the right sizes, the tail in order,
 * refusing to leave no training example), preft_eval_loss against a sum
 * computed from the model's full logits and a double log-sum-exp (base
 * model, LoRA in prefill mode, LoReFT), the batch builder's view, and the
 * tokenizer files saved next to a model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/threadpool.h"
#include "engine/generate.h"
#include "model/adapter.h"
#include "model/batch.h"
#include "model/llama.h"
#include "model/shapes.h"
#include "text/tokenizer.h"
#include "train/data.h"
#include "train/eval_loss.h"
#include "testutil.h"

/* ---- hold-out split ------------------------------------------------------------ */

/* n examples; example i has i+2 tokens starting with id i (its name), the
 * loss on every token after the first two. */
static void make_dataset(preft_dataset *ds, int n) {
  memset(ds, 0, sizeof *ds);
  for (int i = 0; i < n; i++) {
    int ids[64];
    uint8_t loss[64];
    for (int t = 0; t < i + 2; t++) {
      ids[t] = t == 0 ? i : 100 + t;
      loss[t] = t >= 2;
    }
    preft_dataset_add(ds, ids, loss, i + 2, 1, 0);
  }
}

static void expect_counts(const preft_dataset *ds) {
  int64_t tokens = 0, targets = 0;
  for (int i = 0; i < ds->n; i++) {
    tokens += ds->ex[i].n;
    targets += ds->ex[i].n - 2;
  }
  assert_int_equal(ds->tokens, tokens);
  assert_int_equal(ds->targets, targets);
}

static void hold_out_random_is_deterministic_disjoint_and_sized(void **s) {
  enum { N = 40 };
  preft_dataset train[3], eval[3];
  uint64_t seeds[3] = {7, 7, 8};
  preft_error err;
  for (int r = 0; r < 3; r++) {
    make_dataset(&train[r], N);
    memset(&eval[r], 0, sizeof eval[r]);
    assert_int_equal(preft_dataset_hold_out(&train[r], &eval[r], 0.25, PREFT_HOLD_OUT_RANDOM, seeds[r], &err),
                     0);
    assert_int_equal(eval[r].n, 10); /* round(0.25 x 40) */
    assert_int_equal(train[r].n, 30);
    int seen[N] = {0};
    for (int i = 0; i < train[r].n; i++) seen[train[r].ex[i].ids[0]]++;
    for (int i = 0; i < eval[r].n; i++) seen[eval[r].ex[i].ids[0]] += 100;
    for (int i = 0; i < N; i++) assert_true(seen[i] == 1 || seen[i] == 100); /* each in exactly one */
    for (int i = 0; i < train[r].n; i++) assert_int_equal(train[r].ex[i].n, train[r].ex[i].ids[0] + 2);
    expect_counts(&train[r]);
    expect_counts(&eval[r]);
  }
  for (int i = 0; i < 10; i++) assert_int_equal(eval[0].ex[i].ids[0], eval[1].ex[i].ids[0]);
  bool differs = false, tail = true;
  for (int i = 0; i < 10; i++) {
    differs |= eval[0].ex[i].ids[0] != eval[2].ex[i].ids[0];
    tail &= eval[0].ex[i].ids[0] == N - 10 + i;
  }
  assert_true(differs); /* another seed, another choice */
  assert_false(tail);   /* shuffled, not the tail */
  for (int r = 0; r < 3; r++) {
    preft_dataset_free(&train[r]);
    preft_dataset_free(&eval[r]);
  }
}

static void hold_out_tail_takes_the_last_examples_in_order(void **s) {
  preft_dataset train, eval = {0};
  preft_error err;
  make_dataset(&train, 20);
  assert_int_equal(preft_dataset_hold_out(&train, &eval, 0.12, PREFT_HOLD_OUT_TAIL, 0, &err), 0);
  assert_int_equal(eval.n, 2); /* round(2.4) */
  assert_int_equal(train.n, 18);
  for (int i = 0; i < train.n; i++) assert_int_equal(train.ex[i].ids[0], i);
  for (int i = 0; i < eval.n; i++) assert_int_equal(eval.ex[i].ids[0], 18 + i);
  expect_counts(&train);
  expect_counts(&eval);
  preft_dataset_free(&train);
  preft_dataset_free(&eval);
}

static void hold_out_sizes_at_the_edges(void **s) {
  preft_dataset train, eval = {0};
  preft_error err;
  make_dataset(&train, 10);
  assert_int_equal(preft_dataset_hold_out(&train, &eval, 0, PREFT_HOLD_OUT_RANDOM, 1, &err), 0);
  assert_int_equal(eval.n, 0);
  assert_int_equal(train.n, 10);
  assert_int_equal(preft_dataset_hold_out(&train, &eval, 0.001, PREFT_HOLD_OUT_TAIL, 1, &err), 0);
  assert_int_equal(eval.n, 1); /* at least one */
  assert_int_equal(train.n, 9);
  preft_dataset_free(&train);
  preft_dataset_free(&eval);
  /* two examples, 90%: nothing would be left to train on */
  make_dataset(&train, 2);
  for (int order = 0; order < 2; order++) {
    assert_int_equal(preft_dataset_hold_out(&train, &eval, 0.9, (preft_hold_out_order)order, 1, &err), -1);
    assert_non_null(strstr(err.msg, "leaves none for training"));
    assert_int_equal(train.n, 2);
    assert_int_equal(eval.n, 0);
  }
  preft_dataset_free(&train);
}

/* ---- eval loss -------------------------------------------------------------------- */

static double lse_double(const float *x, int n) {
  double m = x[0], sum = 0;
  for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
  for (int i = 0; i < n; i++) sum += exp((double)x[i] - m);
  return m + log(sum);
}

/* Three examples with masked prompts, one too short to predict anything. */
static void make_scored_dataset(preft_dataset *ds, int vocab) {
  memset(ds, 0, sizeof *ds);
  const int lens[4] = {23, 9, 1, 31}, prompts[4] = {11, 4, 1, 29};
  for (int e = 0; e < 4; e++) {
    int ids[64];
    uint8_t loss[64];
    for (int t = 0; t < lens[e]; t++) {
      ids[t] = (int)((unsigned)(e * 977 + t * 131 + 5) % (unsigned)vocab);
      loss[t] = t >= prompts[e] && (t % 5 != 3); /* completion tokens, with holes */
    }
    preft_dataset_add(ds, ids, loss, lens[e], prompts[e], 0);
  }
}

static void eval_loss_equals_the_sum_over_full_logits(void **s) {
  preft_model_config c;
  preft_error err;
  assert_int_equal(preft_shape_config("tiny", &c, &err), 0);
  c.n_layers = 2;
  preft_model *m;
  assert_int_equal(preft_model_init_random(&m, &c, PREFT_F32, 3, &err), 0);
  preft_pool *pool = preft_pool_create(2);
  preft_dataset ds;
  make_scored_dataset(&ds, c.vocab);
  preft_adapter *lora = preft_adapter_random(PREFT_ADAPTER_LORA, &c, 4, PREFT_MODE_PREFILL, PREFT_F32, 11);
  preft_adapter *reft = preft_adapter_random(PREFT_ADAPTER_LOREFT, &c, 2, PREFT_MODE_ALL, PREFT_F32, 12);
  /* stronger than the benchmarks' random adapters, so that the mode's
   * flags (prompt only or every token) change the loss clearly */
  for (int i = 0; i < c.n_layers * PREFT_N_MODULES; i++) lora->lora[i].scale *= 300;
  for (int i = 0; i < c.n_layers * PREFT_REFT_SLOTS; i++)
    if (reft->reft[i].bias)
      for (int r = 0; r < 2; r++) reft->reft[i].bias[r] = r ? -3.0f : 3.0f;
  const preft_adapter *adapters[3] = {NULL, lora, reft};
  const preft_adapter_mode modes[3] = {PREFT_MODE_ALL, PREFT_MODE_PREFILL, PREFT_MODE_ALL};
  double base_nll = 0;
  for (int a = 0; a < 3; a++) {
    double want = 0;
    int64_t want_count = 0;
    for (int e = 0; e < ds.n; e++) {
      const preft_example *x = &ds.ex[e];
      if (x->n < 2) continue;
      float *logits = malloc(sizeof(float) * (size_t)x->n * (size_t)c.vocab);
      assert_int_equal(
          preft_all_logits_adapted(m, pool, x->ids, x->n, adapters[a], modes[a], x->prompt_len, logits, &err),
          0);
      for (int t = 0; t + 1 < x->n; t++)
        if (x->loss[t + 1]) {
          const float *row = logits + (size_t)t * (size_t)c.vocab;
          want += lse_double(row, c.vocab) - row[x->ids[t + 1]];
          want_count++;
        }
      free(logits);
    }
    double got;
    int64_t count;
    assert_int_equal(preft_eval_loss(m, pool, adapters[a], modes[a], &ds, &got, &count, &err), 0);
    assert_int_equal(count, want_count);
    assert_int_equal(count, ds.targets);
    if (!(fabs(got - want) <= 1e-5 * want))
      fail_msg("adapter %d: eval loss sum %.9g, want %.9g", a, got, want);
    if (a == 0)
      base_nll = got;
    else if (!(fabs(got - base_nll) > 1e-6 * base_nll))
      fail_msg("adapter %d: loss %.9g, base %.9g", a, got, base_nll);
  }
  /* a target outside the vocabulary is an error, not a read out of bounds */
  ds.ex[0].ids[ds.ex[0].n - 1] = c.vocab;
  double nll;
  int64_t count;
  assert_int_equal(preft_eval_loss(m, pool, NULL, PREFT_MODE_ALL, &ds, &nll, &count, &err), -1);
  assert_non_null(strstr(err.msg, "outside the vocabulary"));
  preft_adapter_free(lora);
  preft_adapter_free(reft);
  preft_dataset_free(&ds);
  preft_pool_free(pool);
  preft_model_free(m);
}

/* ---- batch builder ----------------------------------------------------------------- */

static void batch_builder_lays_rows_out_and_hides_unused_adapters(void **s) {
  preft_batch_buf bb;
  preft_batch_buf_init(&bb);
  for (int r = 0; r < 100; r++)
    assert_int_equal(preft_batch_buf_add(&bb, r + 1, r % 7, r % 3, NULL, PREFT_ADAPT_ON, r % 10 == 9), r);
  preft_batch b = preft_batch_buf_view(&bb);
  assert_int_equal(b.n, 100);
  assert_int_equal(b.n_logits, 10);
  assert_null(b.adapter); /* no row runs an adapter */
  assert_null(b.adapt);
  for (int r = 0; r < 100; r++) {
    assert_int_equal(b.token[r], r + 1);
    assert_int_equal(b.pos[r], r % 7);
    assert_int_equal(b.seq[r], r % 3);
  }
  for (int i = 0; i < 10; i++) assert_int_equal(b.logit_rows[i], 10 * i + 9);
  preft_batch_buf_clear(&bb);
  preft_adapter fake = {0};
  preft_batch_buf_add(&bb, 5, 0, 0, NULL, PREFT_ADAPT_ON, false);
  preft_batch_buf_add(&bb, 6, 1, 0, &fake, PREFT_ADAPT_LAST, true);
  b = preft_batch_buf_view(&bb);
  assert_int_equal(b.n, 2);
  assert_int_equal(b.n_logits, 1);
  assert_int_equal(b.logit_rows[0], 1);
  assert_non_null(b.adapter);
  assert_null(b.adapter[0]);
  assert_int_equal(b.adapt[0], PREFT_ADAPT_OFF); /* no adapter: never adapted */
  assert_ptr_equal(b.adapter[1], &fake);
  assert_int_equal(b.adapt[1], PREFT_ADAPT_LAST);
  preft_batch_buf_free(&bb);
  assert_int_equal(preft_adapter_row_flag(NULL, PREFT_MODE_ALL, 0, 4), PREFT_ADAPT_OFF);
}

/* ---- tokenizer files -------------------------------------------------------------- */

static char *read_text(const char *dir, const char *name) {
  char *p = preft_path_join(dir, name);
  size_t size;
  char *t = test_read_all(p, &size);
  free(p);
  if (!t) return NULL;
  t = realloc(t, size + 1);
  t[size] = 0;
  return t;
}

static void tokenizer_files_are_copied_or_made(void **s) {
  char *src = test_data_path("tokenizer/trained/tokenizer.json");
  char *src_dir = test_data_path("tokenizer/trained");
  char *want_json = read_text(src_dir, "tokenizer.json");
  assert_non_null(want_json);
  preft_tokenizer *tok;
  preft_error err;
  assert_int_equal(preft_tokenizer_load(&tok, src, &err), 0);
  /* from the file: no tokenizer_config.json next to it, so a minimal one */
  char *out = test_tmpdir();
  assert_int_equal(preft_tokenizer_save_files(tok, src, out, &err), 0);
  char *got = read_text(out, "tokenizer.json");
  assert_string_equal(got, want_json);
  free(got);
  got = read_text(out, "tokenizer_config.json");
  cJSON *j = cJSON_Parse(got);
  assert_non_null(j);
  assert_string_equal(cJSON_GetObjectItem(j, "tokenizer_class")->valuestring, "PreTrainedTokenizerFast");
  cJSON_Delete(j);
  free(got);
  /* from a directory with its own tokenizer_config.json: both copied */
  char *out2 = test_tmpdir();
  const char *config = "{\"tokenizer_class\": \"Mine\", \"note\": 42}\n";
  char *p = preft_path_join(out, "tokenizer_config.json");
  assert_int_equal(preft_write_atomic(p, config, strlen(config), &err), 0);
  free(p);
  assert_int_equal(preft_tokenizer_save_files(tok, out, out2, &err), 0);
  got = read_text(out2, "tokenizer_config.json");
  assert_string_equal(got, config);
  free(got);
  got = read_text(out2, "tokenizer.json");
  assert_string_equal(got, want_json);
  free(got);
  /* an output directory that does not exist: an error naming the path */
  char *missing = preft_path_join(out2, "no/such/dir");
  assert_int_equal(preft_tokenizer_save_files(tok, src, missing, &err), -1);
  assert_non_null(strstr(err.msg, "no/such/dir"));
  /* a source without tokenizer.json */
  assert_int_equal(preft_tokenizer_save_files(tok, missing, out2, &err), -1);
  free(missing);
  preft_tokenizer_free(tok);
  free(want_json);
  free(src);
  free(src_dir);
  free(out);
  free(out2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hold_out_random_is_deterministic_disjoint_and_sized),
      cmocka_unit_test(hold_out_tail_takes_the_last_examples_in_order),
      cmocka_unit_test(hold_out_sizes_at_the_edges),
      cmocka_unit_test(eval_loss_equals_the_sum_over_full_logits),
      cmocka_unit_test(batch_builder_lays_rows_out_and_hides_unused_adapters),
      cmocka_unit_test(tokenizer_files_are_copied_or_made),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
