/* test_grammar_shared.c - matchers that share one automaton (its cached
 * masks) draw exactly the tokens of matchers with automata of their own,
 * in one thread and from two threads at once; and the draw among the
 * allowed tokens only is the draw over the whole row with -inf for every
 * other token, for greedy, temperature, top-k, top-p and min-p. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"
#include "engine/sampler.h"

/* A vocabulary of 1681 tokens: EOS (0), the 40 characters below and every
 * pair of them, so that the grammar allows many tokens in some states and
 * few in others. */
static const char alphabet[] = "{}[]\":, abcdefghijklmnopqrstu0123456789-.";
#define NA 40
#define NV (1 + NA + NA * NA)

static char vocab_buf[NV][3];

static void build_trie(preft_token_trie *t) {
  const char *strs[NV];
  size_t lens[NV];
  strs[0] = NULL;
  lens[0] = 0;
  for (int i = 0; i < NA; i++) {
    vocab_buf[1 + i][0] = alphabet[i];
    strs[1 + i] = vocab_buf[1 + i];
    lens[1 + i] = 1;
    for (int j = 0; j < NA; j++) {
      int v = 1 + NA + i * NA + j;
      vocab_buf[v][0] = alphabet[i];
      vocab_buf[v][1] = alphabet[j];
      strs[v] = vocab_buf[v];
      lens[v] = 2;
    }
  }
  preft_error err;
  assert_int_equal(preft_token_trie_build(t, NV, strs, lens, &err), 0);
}

static const char *json_gbnf =
    "root   ::= object\n"
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array  ::= \"[\" ws ( value ws (\",\" ws value ws)* )? \"]\"\n"
    "string ::= \"\\\"\" [a-u0-9 ]{0,6} \"\\\"\"\n"
    "number ::= \"-\"? [0-9]+ (\".\" [0-9]+)?\n"
    "ws ::= \" \"?\n";

static preft_grammar *compile(const char *text) {
  preft_grammar *g;
  preft_error err;
  if (preft_grammar_parse(text, &g, &err) != 0) fail_msg("grammar failed: %s", err.msg);
  return g;
}

enum { ROWS = 6, STEPS = 60 };

static preft_sampling params_of(int row) {
  preft_sampling sp = {.temperature = 1.0f, .top_p = 1.0f, .seed = 100 + (uint64_t)row};
  switch (row % 5) {
    case 0:
      sp.temperature = 0.0f;
      break;
    case 1:
      break;
    case 2:
      sp.temperature = 0.7f, sp.top_p = 0.9f;
      break;
    case 3:
      sp.top_k = 5;
      break;
    default:
      sp.min_p = 0.05f, sp.top_p = 0.95f;
      break;
  }
  return sp;
}

/* Row `row`'s replies for STEPS steps on its matcher source: each step
 * logits from the row's own generator, the draw, the advance; a reply that
 * ends starts again on a new matcher (of the same automaton when shared).
 * The tokens go to out[STEPS]. */
typedef struct {
  preft_grammar *g;
  const preft_token_trie *t;
  preft_gauto *shared; /* NULL: an automaton per reply */
  int row;
  int out[STEPS];
} row_job;

static void *run_row(void *arg) {
  row_job *j = arg;
  int eos = 0;
  preft_sampling sp = params_of(j->row);
  preft_sampler s, noise;
  preft_sampler_init(&s, &sp);
  preft_sampling np = {.temperature = 1, .seed = 7 + (uint64_t)j->row};
  preft_sampler_init(&noise, &np);
  preft_gmatch *m = j->shared ? preft_gmatch_new_shared(j->shared) : preft_gmatch_new(j->g, j->t, &eos, 1);
  static float logits_rows[2 * ROWS][NV]; /* one row per job (jobs of both passes never overlap a row) */
  float *logits = logits_rows[j->row + (j->shared ? ROWS : 0)];
  for (int step = 0; step < STEPS; step++) {
    for (int v = 0; v < NV; v++) logits[v] = 6.0f * (preft_sampler_uniform(&noise) - 0.5f);
    logits[eos] += step % 20 / 4.0f;
    int tok = preft_gmatch_sample(m, &s, &s.scratch, logits, NV);
    j->out[step] = tok;
    bool end = tok < 0 || tok == eos || !preft_gmatch_accept_token(m, tok) || preft_gmatch_must_end(m);
    if (end) {
      preft_gmatch_free(m);
      m = j->shared ? preft_gmatch_new_shared(j->shared) : preft_gmatch_new(j->g, j->t, &eos, 1);
    }
  }
  preft_gmatch_free(m);
  preft_sampler_free(&s);
  preft_sampler_free(&noise);
  return NULL;
}

static void shared_automata_draw_the_same_tokens(void **st) {
  (void)st;
  preft_token_trie t;
  build_trie(&t);
  preft_grammar *g = compile(json_gbnf);
  int eos = 0;
  row_job own[ROWS], one[ROWS], two[ROWS];
  for (int r = 0; r < ROWS; r++) {
    own[r] = (row_job){.g = g, .t = &t, .row = r};
    run_row(&own[r]);
  }
  /* one thread, every row on one automaton */
  preft_gauto *a = preft_gauto_new(g, &t, &eos, 1);
  for (int r = 0; r < ROWS; r++) {
    one[r] = (row_job){.g = g, .t = &t, .shared = a, .row = r};
    run_row(&one[r]);
  }
  int states, masks, walks;
  preft_gauto_counts(a, &states, &masks, &walks);
  preft_gauto_unref(a);
  /* two threads at once on a fresh shared automaton */
  a = preft_gauto_new(g, &t, &eos, 1);
  pthread_t th[ROWS];
  for (int r = 0; r < ROWS; r++) {
    two[r] = (row_job){.g = g, .t = &t, .shared = a, .row = r};
    assert_int_equal(pthread_create(&th[r], NULL, run_row, &two[r]), 0);
  }
  for (int r = 0; r < ROWS; r++) pthread_join(th[r], NULL);
  preft_gauto_unref(a);
  int distinct = 0;
  for (int r = 0; r < ROWS; r++)
    for (int k = 0; k < STEPS; k++) {
      if (own[r].out[k] != one[r].out[k] || own[r].out[k] != two[r].out[k])
        fail_msg("row %d step %d: own automaton %d, shared %d, shared from threads %d", r, k, own[r].out[k],
                 one[r].out[k], two[r].out[k]);
      assert_true(own[r].out[k] >= 0);
      distinct += k > 0 && own[r].out[k] != own[r].out[k - 1];
    }
  assert_true(distinct > ROWS * STEPS / 2); /* the rows drew varied tokens, not one over and over */
  /* the rows met states in common, whose masks were walked once */
  assert_true(masks > 0 && walks == masks && masks < states);
  preft_grammar_unref(g);
  preft_token_trie_free(&t);
}

/* The draw among the allowed tokens against the whole row with -inf. */
static void draw_among_allowed_equals_the_masked_row(void **st) {
  (void)st;
  preft_token_trie t;
  build_trie(&t);
  preft_grammar *g = compile(json_gbnf);
  int eos = 0, checked = 0, sparse = 0;
  static float logits[NV], masked[NV];
  preft_sampling variants[] = {
      {.temperature = 0.0f, .top_p = 1.0f},
      {.temperature = 1.0f, .top_p = 1.0f},
      {.temperature = 0.5f, .top_p = 0.8f},
      {.temperature = 1.3f, .top_p = 1.0f, .top_k = 3},
      {.temperature = 1.0f, .top_p = 0.5f, .top_k = 40},
      {.temperature = 1.0f, .top_p = 1.0f, .min_p = 0.1f},
      {.temperature = 0.8f, .top_p = 0.95f, .min_p = 0.02f},
  };
  int nvar = (int)(sizeof variants / sizeof variants[0]);
  for (int trial = 0; trial < 4 * nvar; trial++) {
    preft_sampling sp = variants[trial % nvar];
    sp.seed = 31 + (uint64_t)trial;
    preft_sampler a, b, noise;
    preft_sampler_init(&a, &sp);
    preft_sampler_init(&b, &sp);
    preft_sampling np = {.temperature = 1, .seed = 1000 + (uint64_t)trial};
    preft_sampler_init(&noise, &np);
    preft_gmatch *m = preft_gmatch_new(g, &t, &eos, 1);
    for (int step = 0; step < 40; step++) {
      float scale = trial % 2 ? 8.0f : 2.0f;
      for (int v = 0; v < NV; v++) logits[v] = scale * (preft_sampler_uniform(&noise) - 0.5f);
      const uint32_t *mask = preft_gmatch_mask(m);
      int n_allowed = 0;
      for (int v = 0; v < NV; v++) {
        bool ok = mask[v >> 5] >> (v & 31) & 1;
        masked[v] = ok ? logits[v] : -INFINITY;
        n_allowed += ok;
      }
      int want = n_allowed ? preft_sample_with(&b, &b.scratch, masked, NV) : -1;
      int got = preft_gmatch_sample(m, &a, &a.scratch, logits, NV);
      if (got != want) fail_msg("trial %d step %d: drew %d, the -inf row draws %d", trial, step, got, want);
      checked++;
      sparse += n_allowed < NV / 10;
      if (got < 0 || got == eos || !preft_gmatch_accept_token(m, got) || preft_gmatch_must_end(m)) {
        preft_gmatch_free(m);
        m = preft_gmatch_new(g, &t, &eos, 1);
      }
    }
    preft_gmatch_free(m);
    preft_sampler_free(&a);
    preft_sampler_free(&b);
    preft_sampler_free(&noise);
  }
  assert_true(sparse > 20 && sparse < checked - 20); /* both few and many allowed tokens were drawn from */
  preft_grammar_unref(g);
  preft_token_trie_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(shared_automata_draw_the_same_tokens),
      cmocka_unit_test(draw_among_allowed_equals_the_masked_row),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
