/* test_train_loop.c - the training loop end to end on a tiny reference
 * model (grads/full-llama-tiny: D=32, L=2, V=64) with pre-tokenised SFT data:
 *   - a LoRA trained all-token on a handful of examples reproduces their
 *     completions with greedy decoding through the serving engine;
 *   - prefill-only training of the same data lowers the loss well below the
 *     base model's, measured by the serving forward with the saved adapter;
 *   - same seed, same losses; a run interrupted after a checkpoint and
 *     resumed gives the same losses and weights as an uninterrupted one;
 *   - a NaN loss stops the run naming the step, keeping the last checkpoint;
 *   - bad JSONL lines are reported with file and line, or skipped;
 *   - the truncation rule keeps the prompt's tail and the completion's head. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "engine/generate.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "testutil.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/trainer.h"

#define N_EX 6
#define COMP 5

static preft_model *base;
static preft_train_model tm;

static int setup(void **state) {
  char *dir = test_data_path("grads/full-llama-tiny/model");
  preft_error err;
  if (preft_model_load(&base, dir, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  free(dir);
  preft_train_model_from(&tm, base, false);
  return 0;
}

static int teardown(void **state) {
  preft_train_model_free(&tm);
  preft_model_free(base);
  return 0;
}

/* N_EX examples: prompts of 6..11 random ids, completions of COMP ids. */
static void make_data(preft_dataset *ds, int seed) {
  uint64_t s = (uint64_t)seed * 2654435761u + 7;
  for (int e = 0; e < N_EX; e++) {
    int ids[32];
    uint8_t loss[32];
    int p = 6 + e % 6;
    for (int t = 0; t < p + COMP; t++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      ids[t] = 3 + (int)((s >> 33) % 60);
      loss[t] = t >= p;
    }
    preft_dataset_add(ds, ids, loss, p + COMP, p, 0);
  }
}

static preft_train_opts opts_for(const char *out, int64_t steps) {
  preft_train_opts o;
  preft_train_opts_default(&o);
  o.steps = steps;
  o.batch = 3;
  o.grad_accum = 2;
  o.max_tokens = 32;
  o.lr = 1e-2;
  o.threads = 2;
  o.quiet = true;
  o.out_dir = out;
  o.base_name = "llama-gqa-rope3";
  return o;
}

static void init_lora(preft_train_adapter *ad, preft_adapter_mode mode) {
  preft_train_adapter_opts ao = {.kind = PREFT_ADAPTER_LORA, .mode = mode, .rank = 8, .alpha = 16, .seed = 5};
  for (int m = 0; m < PREFT_N_MODULES; m++) ao.modules[m] = true;
  preft_error err;
  if (preft_train_adapter_init(ad, &tm.cfg, &ao, &err) != 0) fail_msg("%s", err.msg);
}

static void rm_rf(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* mean loss of ds through the serving forward with an optional adapter */
static double serve_loss(const preft_adapter *a, preft_adapter_mode mode, const preft_dataset *ds) {
  preft_pool *pool = preft_pool_create(2);
  double sum = 0;
  int n = 0;
  for (int e = 0; e < ds->n; e++) {
    const preft_example *x = &ds->ex[e];
    float *lg = malloc(sizeof(float) * (size_t)x->n * base->cfg.vocab);
    preft_error err;
    if (preft_all_logits_adapted(base, pool, x->ids, x->n, a, mode, x->prompt_len, lg, &err) != 0)
      fail_msg("%s", err.msg);
    for (int t = 0; t + 1 < x->n; t++) {
      if (!x->loss[t + 1]) continue;
      const float *l = lg + (size_t)t * base->cfg.vocab;
      double mx = l[0], z = 0;
      for (int c = 1; c < base->cfg.vocab; c++) mx = l[c] > mx ? l[c] : mx;
      for (int c = 0; c < base->cfg.vocab; c++) z += exp(l[c] - mx);
      sum += mx + log(z) - l[x->ids[t + 1]];
      n++;
    }
    free(lg);
  }
  preft_pool_free(pool);
  return sum / n;
}

typedef struct {
  int *v, *n;
} token_sink;

static bool on_tok(void *ctx, int tok) {
  token_sink *s = ctx;
  s->v[(*s->n)++] = tok;
  return true;
}

static void lora_all_mode_reproduces_completions_greedily(void **state) {
  preft_dataset ds = {0};
  make_data(&ds, 1);
  preft_train_adapter ad;
  init_lora(&ad, PREFT_MODE_ALL);
  char *out = test_tmpdir();
  preft_train_opts o = opts_for(out, 40);
  preft_train_result r;
  preft_error err;
  if (preft_train_run(&tm, &ad, &ds, &ds, &o, &r, &err) != 0) fail_msg("%s", err.msg);
  assert_true(r.eval_loss < 0.05);
  preft_adapter *a;
  if (preft_adapter_load(&a, out, "trained", &base->cfg, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(a->default_mode, PREFT_MODE_ALL);
  preft_pool *pool = preft_pool_create(2);
  for (int e = 0; e < ds.n; e++) {
    const preft_example *x = &ds.ex[e];
    int got[COMP], n = 0;
    preft_generate_opts g = {.max_new_tokens = COMP, .adapter = a, .adapter_mode = PREFT_MODE_ALL};
    token_sink sink = {got, &n};
    int generated;
    if (preft_generate(base, pool, x->ids, x->prompt_len, &g, on_tok, &sink, &generated, &err) != 0)
      fail_msg("%s", err.msg);
    assert_int_equal(n, COMP);
    for (int t = 0; t < COMP; t++)
      if (got[t] != x->ids[x->prompt_len + t])
        fail_msg("example %d: greedy token %d is %d, the completion has %d", e, t, got[t],
                 x->ids[x->prompt_len + t]);
  }
  /* eval-loss's definition through the serving forward equals the trainer's */
  double sl = serve_loss(a, PREFT_MODE_ALL, &ds);
  if (fabs(sl - r.eval_loss) > 1e-4 * fmax(1.0, r.eval_loss) + 1e-6)
    fail_msg("serving loss %.8f, trainer's eval loss %.8f", sl, r.eval_loss);
  preft_pool_free(pool);
  preft_adapter_free(a);
  preft_train_adapter_free(&ad);
  preft_dataset_free(&ds);
  rm_rf(out);
  free(out);
}

static void prefill_only_training_lowers_loss_well_below_base(void **state) {
  preft_dataset ds = {0};
  make_data(&ds, 2);
  double base_loss = serve_loss(NULL, PREFT_MODE_ALL, &ds);
  preft_train_adapter ad;
  init_lora(&ad, PREFT_MODE_PREFILL);
  char *out = test_tmpdir();
  preft_train_opts o = opts_for(out, 60);
  preft_train_result r;
  preft_error err;
  if (preft_train_run(&tm, &ad, &ds, &ds, &o, &r, &err) != 0) fail_msg("%s", err.msg);
  preft_adapter *a;
  if (preft_adapter_load(&a, out, "trained", &base->cfg, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(a->default_mode, PREFT_MODE_PREFILL);
  double trained = serve_loss(a, PREFT_MODE_PREFILL, &ds);
  if (!(trained < 0.5 * base_loss))
    fail_msg("prefill-only loss %.4f is not well below the base model's %.4f", trained, base_loss);
  if (fabs(trained - r.eval_loss) > 1e-4 * fmax(1.0, trained))
    fail_msg("serving loss %.8f, trainer's eval loss %.8f", trained, r.eval_loss);
  preft_adapter_free(a);
  preft_train_adapter_free(&ad);
  preft_dataset_free(&ds);
  rm_rf(out);
  free(out);
}

static double *read_ckpt_hist(const char *out, preft_ckpt_state *st, float **params) {
  char *p = preft_path_join(out, "checkpoint.bin");
  size_t size;
  void *raw = test_read_all(p, &size);
  assert_non_null(raw);
  free(raw);
  /* parameter count from a first load attempt is not known; read the header */
  preft_mapped_file f;
  preft_error err;
  assert_int_equal(preft_map_file(&f, p, &err), 0);
  uint64_t len;
  memcpy(&len, f.data + 8, 8);
  char *hdr = strndup((const char *)f.data + 16, len);
  char *np = strstr(hdr, "\"n_params\":");
  size_t n = (size_t)strtoull(np + 11, NULL, 10);
  free(hdr);
  preft_unmap_file(&f);
  *params = malloc(sizeof(float) * n * 3);
  double *hist;
  if (preft_checkpoint_load(p, st, *params, *params + n, *params + 2 * n, n, &hist, &err) != 0)
    fail_msg("%s", err.msg);
  free(p);
  return hist;
}

static void resume_is_exact_and_seeds_repeat(void **state) {
  preft_dataset ds = {0};
  make_data(&ds, 3);
  preft_error err;
  preft_train_result r;
  char *full = test_tmpdir(), *again = test_tmpdir(), *split = test_tmpdir();
  const char *dirs[2] = {full, again};
  for (int k = 0; k < 2; k++) {
    preft_train_adapter ad;
    init_lora(&ad, PREFT_MODE_PREFILL);
    preft_train_opts o = opts_for(dirs[k], 10);
    o.save_every = 5;
    if (preft_train_run(&tm, &ad, &ds, NULL, &o, &r, &err) != 0) fail_msg("%s", err.msg);
    preft_train_adapter_free(&ad);
  }
  {
    preft_train_adapter ad;
    init_lora(&ad, PREFT_MODE_PREFILL);
    preft_train_opts o = opts_for(split, 10);
    o.save_every = 5;
    o.stop_after = 7; /* "killed" after step 7: the checkpoint is step 5's */
    if (preft_train_run(&tm, &ad, &ds, NULL, &o, &r, &err) != 0) fail_msg("%s", err.msg);
    preft_train_adapter_free(&ad);
    init_lora(&ad, PREFT_MODE_PREFILL); /* fresh process: fresh init, then resume */
    o.stop_after = 0;
    o.resume = true;
    if (preft_train_run(&tm, &ad, &ds, NULL, &o, &r, &err) != 0) fail_msg("%s", err.msg);
    preft_train_adapter_free(&ad);
  }
  preft_ckpt_state s[3];
  float *p[3];
  double *h[3];
  const char *all[3] = {full, again, split};
  for (int k = 0; k < 3; k++) h[k] = read_ckpt_hist(all[k], &s[k], &p[k]);
  for (int k = 1; k < 3; k++) {
    assert_int_equal(s[k].step, 10);
    assert_int_equal(s[k].n_hist, s[0].n_hist);
    for (int64_t i = 0; i < s[0].n_hist; i++)
      if (h[k][i * PREFT_HIST_COLS + PREFT_HIST_TRAIN_LOSS] !=
          h[0][i * PREFT_HIST_COLS + PREFT_HIST_TRAIN_LOSS])
        fail_msg("%s: step %lld loss %.9g, uninterrupted run %.9g", k == 1 ? "same seed" : "resumed",
                 (long long)i + 1, h[k][i * PREFT_HIST_COLS + PREFT_HIST_TRAIN_LOSS],
                 h[0][i * PREFT_HIST_COLS + PREFT_HIST_TRAIN_LOSS]);
    assert_memory_equal(p[k], p[0], sizeof(float) * s[0].n_params * 3);
  }
  for (int k = 0; k < 3; k++) {
    free(p[k]);
    free(h[k]);
    rm_rf(all[k]);
  }
  free(full);
  free(again);
  free(split);
  preft_dataset_free(&ds);
}

static void nan_loss_stops_and_keeps_the_last_checkpoint(void **state) {
  preft_dataset ds = {0};
  make_data(&ds, 4);
  char *out = test_tmpdir();
  preft_train_adapter ad;
  init_lora(&ad, PREFT_MODE_ALL);
  preft_train_opts o = opts_for(out, 4);
  preft_train_result r;
  preft_error err;
  if (preft_train_run(&tm, &ad, &ds, NULL, &o, &r, &err) != 0) fail_msg("%s", err.msg);
  char *ck = preft_path_join(out, "checkpoint.bin");
  size_t size0, size1;
  void *before = test_read_all(ck, &size0);
  /* poison the base model: every later loss is NaN */
  float keep = tm.w.final_norm[0];
  tm.w.final_norm[0] = NAN;
  o.steps = 8;
  o.resume = true;
  int rc = preft_train_run(&tm, &ad, &ds, NULL, &o, &r, &err);
  tm.w.final_norm[0] = keep;
  assert_int_equal(rc, -1);
  if (!strstr(err.msg, "step 5") || !strstr(err.msg, "NaN") || !strstr(err.msg, "step 4"))
    fail_msg("unexpected message: %s", err.msg);
  void *after = test_read_all(ck, &size1);
  assert_int_equal(size0, size1);
  assert_memory_equal(before, after, size0);
  free(before);
  free(after);
  free(ck);
  preft_train_adapter_free(&ad);
  preft_dataset_free(&ds);
  rm_rf(out);
  free(out);
}

static void bad_jsonl_lines_name_file_and_line(void **state) {
  char *dir = test_tmpdir();
  char *path = preft_path_join(dir, "bad.jsonl");
  const char *text =
      "{\"prompt_ids\": [1, 2, 3], \"completion_ids\": [4, 5]}\n"
      "\n"
      "{\"prompt_ids\": [1, 2\n"
      "{\"prompt_ids\": [1, 2], \"completion_ids\": []}\n"
      "{\"prompt_ids\": [1, 2], \"completion_ids\": [999]}\n"
      "{\"prompt\": 3}\n"
      "{\"prompt_ids\": [4.44444e+37], \"completion_ids\": [1]}\n" /* outside int: no UB */
      "{\"prompt_ids\": [-1e30], \"completion_ids\": [1]}\n"
      "{\"prompt_ids\": [1.5], \"completion_ids\": [1]}\n"
      "{\"prompt_ids\": [7, 8, 9], \"completion_ids\": [10]}\n";
  preft_error err;
  assert_int_equal(preft_write_atomic(path, text, strlen(text), &err), 0);
  preft_data_opts o = {NULL, -1, 64, 256, PREFT_BAD_LINE_STOP};
  preft_dataset ds = {0};
  assert_int_equal(preft_dataset_load_jsonl(&ds, path, &o, &err), -1);
  if (!strstr(err.msg, "bad.jsonl:2:") || !strstr(err.msg, "empty line")) fail_msg("message: %s", err.msg);
  preft_dataset_free(&ds);
  o.on_bad_line = PREFT_BAD_LINE_SKIP;
  assert_int_equal(preft_dataset_load_jsonl(&ds, path, &o, &err), 0);
  assert_int_equal(ds.n, 2);
  assert_int_equal(ds.bad_lines, 8);
  preft_dataset_free(&ds);
  rm_rf(dir);
  free(path);
  free(dir);
}

static void truncation_keeps_prompt_tail_and_completion_head(void **state) {
  int ids[40];
  uint8_t loss[40];
  for (int i = 0; i < 40; i++) {
    ids[i] = i;
    loss[i] = i >= 30;
  }
  preft_dataset ds = {0};
  preft_dataset_add(&ds, ids, loss, 40, 30, 16); /* P=30, C=10, T=16: keep_p = max(8, 6) = 8 */
  assert_int_equal(ds.ex[0].n, 16);
  assert_int_equal(ds.ex[0].prompt_len, 8);
  assert_int_equal(ds.ex[0].ids[0], 22);
  assert_int_equal(ds.ex[0].ids[8], 30);
  assert_int_equal(ds.ex[0].ids[15], 37);
  preft_dataset_add(&ds, ids, loss, 34, 30, 16); /* C=4: the prompt keeps T-C = 12 */
  assert_int_equal(ds.ex[1].prompt_len, 12);
  assert_int_equal(ds.ex[1].ids[0], 18);
  assert_int_equal(ds.truncated, 2);
  preft_dataset_free(&ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lora_all_mode_reproduces_completions_greedily),
      cmocka_unit_test(prefill_only_training_lowers_loss_well_below_base),
      cmocka_unit_test(resume_is_exact_and_seeds_repeat),
      cmocka_unit_test(nan_loss_stops_and_keeps_the_last_checkpoint),
      cmocka_unit_test(bad_jsonl_lines_name_file_and_line),
      cmocka_unit_test(truncation_keeps_prompt_tail_and_completion_head),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
