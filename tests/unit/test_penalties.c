/* test_penalties.c - the serving logits processors (engine/penalties.c:
 * min_tokens, logit_bias, repetition / frequency / presence penalties)
 * against the dense PyTorch reference of tools/make_reference_penalties.py
 * (tests/data/penalties/golden.json): every processed logit within 1e-5
 * (relative), -inf where the reference has it; the row is given back bit for
 * bit by restore; a sequence with nothing asked for leaves the row alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/penalties.h"
#include "testutil.h"

static int *int_array(const cJSON *a, int *n) {
  *n = cJSON_GetArraySize(a);
  int *v = malloc(sizeof *v * (size_t)(*n ? *n : 1));
  int i = 0;
  for (const cJSON *x = a->child; x; x = x->next) v[i++] = x->valueint;
  return v;
}

static void test_golden_cases(void **state) {
  (void)state;
  char *dir = test_data_path("penalties");
  cJSON *g = test_load_golden(dir, "tools/make_reference_penalties.py");
  int n_cases = 0;
  for (const cJSON *c = cJSON_GetObjectItem(g, "cases")->child; c; c = c->next, n_cases++) {
    int vocab = cJSON_GetObjectItem(c, "vocab")->valueint, n_prompt, n_gen, n_stop;
    int *prompt = int_array(cJSON_GetObjectItem(c, "prompt"), &n_prompt);
    int *gen = int_array(cJSON_GetObjectItem(c, "generated"), &n_gen);
    int *stop = int_array(cJSON_GetObjectItem(c, "stop_ids"), &n_stop);
    const cJSON *lb = cJSON_GetObjectItem(c, "logit_bias");
    int n_bias = cJSON_GetArraySize(lb);
    int *bias_ids = malloc(sizeof(int) * (size_t)(n_bias + 1));
    float *bias = malloc(sizeof(float) * (size_t)(n_bias + 1));
    int k = 0;
    for (const cJSON *x = lb->child; x; x = x->next, k++) {
      bias_ids[k] = cJSON_GetArrayItem(x, 0)->valueint;
      bias[k] = (float)cJSON_GetArrayItem(x, 1)->valuedouble;
    }
    preft_penalty_params p = {.presence = (float)cJSON_GetObjectItem(c, "presence")->valuedouble,
                              .frequency = (float)cJSON_GetObjectItem(c, "frequency")->valuedouble,
                              .repetition = (float)cJSON_GetObjectItem(c, "repetition")->valuedouble,
                              .bias_ids = bias_ids,
                              .bias = bias,
                              .n_bias = n_bias,
                              .min_tokens = cJSON_GetObjectItem(c, "min_tokens")->valueint};
    float *raw = malloc(sizeof(float) * (size_t)vocab), *row = malloc(sizeof(float) * (size_t)vocab);
    k = 0;
    for (const cJSON *x = cJSON_GetObjectItem(c, "logits")->child; x; x = x->next)
      raw[k++] = (float)x->valuedouble;
    assert_int_equal(k, vocab);
    preft_penalties s;
    preft_penalties_init(&s, &p, prompt, n_prompt);
    for (int i = 0; i < n_gen; i++) preft_penalties_add(&s, gen[i]);
    for (int round = 0; round < 2; round++) { /* a second apply after restore gives the same row */
      memcpy(row, raw, sizeof(float) * (size_t)vocab);
      preft_penalties_apply(&s, row, vocab, n_gen, stop, n_stop);
      k = 0;
      int bad = 0;
      for (const cJSON *x = cJSON_GetObjectItem(c, "want")->child; x; x = x->next, k++) {
        if (cJSON_IsNull(x)) {
          if (!(isinf(row[k]) && row[k] < 0)) bad++;
        } else if (fabs(row[k] - x->valuedouble) > 1e-5 * (1 + fabs(x->valuedouble))) {
          if (bad++ < 3)
            print_error("case %d token %d: got %.7g, want %.7g\n", n_cases, k, row[k], x->valuedouble);
        }
      }
      assert_int_equal(bad, 0);
      preft_penalties_restore(&s, row);
      assert_memory_equal(row, raw, sizeof(float) * (size_t)vocab);
    }
    preft_penalties_free(&s);
    free(raw), free(row), free(prompt), free(gen), free(stop), free(bias_ids), free(bias);
  }
  assert_int_equal(n_cases, 8);
  cJSON_Delete(g);
  free(dir);
}

/* Nothing asked for: no table, the row untouched, nothing to restore. */
static void test_off_is_a_no_op(void **state) {
  (void)state;
  preft_penalty_params p = {.repetition = 1.0f};
  int prompt[] = {1, 2, 2, 3};
  preft_penalties s;
  preft_penalties_init(&s, &p, prompt, 4);
  assert_false(s.active);
  preft_penalties_add(&s, 2);
  float row[5] = {1, -2, 3, -4, 5}, want[5] = {1, -2, 3, -4, 5};
  int stop[] = {4};
  preft_penalties_apply(&s, row, 5, 0, stop, 1);
  assert_memory_equal(row, want, sizeof row);
  assert_int_equal(s.n_saved, 0);
  preft_penalties_free(&s);
}

/* min_tokens: the stop ids are masked before the min, free after it; a
 * repetition penalty over many distinct tokens grows the table. */
static void test_min_tokens_and_growth(void **state) {
  (void)state;
  preft_penalty_params p = {.min_tokens = 3, .repetition = 2.0f};
  int prompt[300];
  for (int i = 0; i < 300; i++) prompt[i] = i;
  preft_penalties s;
  preft_penalties_init(&s, &p, prompt, 300);
  float row[400];
  for (int i = 0; i < 400; i++) row[i] = (float)(i % 7) - 3.0f;
  int stop[] = {350};
  preft_penalties_apply(&s, row, 400, 2, stop, 1);
  assert_true(isinf(row[350]) && row[350] < 0);
  assert_float_equal(row[3], 0.0f, 0);   /* 3 % 7 - 3 = 0: 0 * 2 */
  assert_float_equal(row[4], 0.5f, 0);   /* 1 / 2 */
  assert_float_equal(row[1], -4.0f, 0);  /* (1 - 3) * 2 */
  assert_float_equal(row[305], 1.0f, 0); /* not seen: 305 % 7 - 3 */
  preft_penalties_restore(&s, row);
  assert_float_equal(row[350], -3.0f, 0); /* raw: 350 % 7 - 3 */
  preft_penalties_apply(&s, row, 400, 3, stop, 1);
  assert_float_equal(row[350], -3.0f, 0); /* unseen, and the min is reached */
  preft_penalties_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_cases),
      cmocka_unit_test(test_off_is_a_no_op),
      cmocka_unit_test(test_min_tokens_and_growth),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
