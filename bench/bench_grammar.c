/* bench_grammar.c - the cost of constrained decoding per engine step.
 *
 * Builds the vocabulary trie of a tokenizer (default: Qwen3's, 151,643
 * text tokens in a 151,936 vocabulary), compiles a grammar (a JSON schema
 * of a typical structured reply, or any JSON object with --json-object),
 * and runs B sequences for N steps: each step every sequence gets a row of
 * random logits (normal, standard deviation 3), samples under its grammar
 * (mask, then the sampler) and advances. The same rows are also sampled
 * without a grammar. Prints milliseconds per step (all B rows, one thread)
 * for: unconstrained sampling, constrained sampling, and the difference
 * (the masking), and the slowest step (cold masks: states met for the
 * first time). It runs twice on the same logits and seeds: each row with an
 * automaton of its own, renewed for each reply (the cost before the server
 * shared automata), then every row and reply on one shared automaton (as
 * the server does now), and says whether both drew the same tokens.
 *
 * Usage: bench_grammar [--tokenizer DIR] [--batch B] [--steps N] [--seed S]
 *                      [--temperature X] [--json-object]
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/timer.h"
#include "engine/grammar.h"
#include "engine/grammar_front.h"
#include "engine/sampler.h"
#include "preft/tokenizer.h"

static const char *schema_text =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"maxLength\":24},"
    "\"age\":{\"type\":\"integer\"},"
    "\"email\":{\"type\":\"string\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},\"maxItems\":4},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
    "\"zip\":{\"type\":\"string\",\"maxLength\":8}},\"required\":[\"city\"]},"
    "\"verified\":{\"type\":\"boolean\"}},"
    "\"required\":[\"name\",\"age\",\"tags\",\"address\",\"verified\"],\"additionalProperties\":false}";

static float normal(preft_sampler *r) {
  float u = preft_sampler_uniform(r) + 1e-7f, v = preft_sampler_uniform(r);
  return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

typedef struct {
  const preft_token_trie *g;
  preft_grammar *gr;
  int vocab, batch, steps;
  unsigned seed;
  float temperature;
  const int *stop_ids;
  int n_stop;
} run_cfg;

typedef struct {
  double plain, cons, mask, accept, mask_max; /* ms per step */
  int walks, done;
  uint64_t hash; /* of every token drawn, in order */
} run_result;

/* One pass: B replies for N steps, each row with an automaton of its own
 * (shared = 0, as before the server shared them) or all rows, and the
 * replies that follow, on one automaton (shared = 1). */
static void run(const run_cfg *c, int shared, run_result *r) {
  int vocab = c->vocab, batch = c->batch;
  float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)batch);
  preft_sampler rng, *plain = calloc((size_t)batch, sizeof *plain),
                     *cons = calloc((size_t)batch, sizeof *cons);
  preft_sampling sp = {.temperature = c->temperature, .top_p = 1.0f, .seed = c->seed};
  preft_sampler_init(&rng, &sp);
  preft_gauto *one = preft_gauto_new(c->gr, c->g, c->stop_ids, c->n_stop);
  preft_gauto **autos = calloc((size_t)batch, sizeof *autos);
  preft_gmatch **m = calloc((size_t)batch, sizeof *m);
  for (int b = 0; b < batch; b++) {
    sp.seed = c->seed + 1 + (uint64_t)b;
    preft_sampler_init(&plain[b], &sp);
    preft_sampler_init(&cons[b], &sp);
    autos[b] = shared ? preft_gauto_ref(one) : preft_gauto_new(c->gr, c->g, c->stop_ids, c->n_stop);
    m[b] = preft_gmatch_new_shared(autos[b]);
  }
  memset(r, 0, sizeof *r);
  r->hash = 1469598103934665603ull;
  double t_plain = 0, t_cons = 0, t_mask = 0, t_accept = 0;
  int walks_dropped = 0;
  for (int step = 0; step < c->steps; step++) {
    for (size_t i = 0; i < (size_t)vocab * (size_t)batch; i++) logits[i] = 3.0f * normal(&rng);
    double a = preft_now();
    for (int b = 0; b < batch; b++) preft_sample(&plain[b], logits + (size_t)b * (size_t)vocab, vocab);
    t_plain += preft_now() - a;
    double step_mask = 0;
    for (int b = 0; b < batch; b++) {
      a = preft_now();
      preft_gmatch_mask(m[b]); /* cold: a trie walk; else the cached mask */
      double dm = preft_now() - a;
      step_mask += dm;
      a = preft_now();
      int t =
          preft_gmatch_sample(m[b], &cons[b], &cons[b].scratch, logits + (size_t)b * (size_t)vocab, vocab);
      t_cons += preft_now() - a;
      r->hash = (r->hash ^ (uint64_t)(uint32_t)t) * 1099511628211ull;
      a = preft_now();
      bool end = t < 0 || !preft_gmatch_accept_token(m[b], t) || preft_gmatch_must_end(m[b]);
      t_accept += preft_now() - a;
      for (int k = 0; k < c->n_stop; k++) end |= t == c->stop_ids[k];
      if (end) { /* a finished reply starts a fresh request (cold caches unless shared) */
        preft_gmatch_free(m[b]);
        if (!shared) {
          int st, mk, wk;
          preft_gauto_counts(autos[b], &st, &mk, &wk);
          walks_dropped += wk;
          preft_gauto_unref(autos[b]);
          autos[b] = preft_gauto_new(c->gr, c->g, c->stop_ids, c->n_stop);
        }
        m[b] = preft_gmatch_new_shared(autos[b]);
        r->done++;
      }
    }
    t_mask += step_mask;
    if (step_mask * 1e3 > r->mask_max) r->mask_max = step_mask * 1e3;
  }
  r->walks = walks_dropped;
  for (int b = 0; b < batch; b++) {
    int st, mk, wk;
    if (!shared || b == 0) {
      preft_gauto_counts(autos[b], &st, &mk, &wk);
      r->walks += wk;
    }
    preft_gmatch_free(m[b]);
    preft_gauto_unref(autos[b]);
    preft_sampler_free(&plain[b]);
    preft_sampler_free(&cons[b]);
  }
  r->plain = t_plain / c->steps * 1e3;
  r->cons = t_cons / c->steps * 1e3;
  r->mask = t_mask / c->steps * 1e3;
  r->accept = t_accept / c->steps * 1e3;
  preft_gauto_unref(one);
  preft_sampler_free(&rng);
  free(autos);
  free(m);
  free(plain);
  free(cons);
  free(logits);
}

int main(int argc, char **argv) {
  const char *tok_dir = "tests/data/.cache/qwen3";
  int batch = 1, steps = 64;
  unsigned seed = 1;
  float temperature = 1.0f;
  bool json_object = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json-object")) {
      json_object = true;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "%s needs a value (see the comment at the top of bench/bench_grammar.c)\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--tokenizer"))
      tok_dir = v;
    else if (!strcmp(a, "--batch"))
      batch = atoi(v);
    else if (!strcmp(a, "--steps"))
      steps = atoi(v);
    else if (!strcmp(a, "--seed"))
      seed = (unsigned)atoi(v);
    else if (!strcmp(a, "--temperature"))
      temperature = (float)atof(v);
    else {
      fprintf(stderr, "unknown option %s\n", a);
      return 2;
    }
  }
  if (batch < 1 || steps < 1) return fprintf(stderr, "--batch and --steps must be positive\n"), 2;
  preft_error err;
  preft_tokenizer *tok;
  if (preft_tokenizer_load(&tok, tok_dir, &err) != 0) return fprintf(stderr, "%s\n", err.msg), 1;
  int vocab = preft_tokenizer_vocab_size(tok);
  double t0 = preft_now();
  preft_token_trie trie;
  if (preft_token_trie_from_tokenizer(&trie, tok, vocab, &err) != 0)
    return fprintf(stderr, "%s\n", err.msg), 1;
  double t_trie = preft_now() - t0;
  char *text;
  if (json_object) {
    text = preft_gbnf_json_object();
  } else {
    cJSON *schema = cJSON_Parse(schema_text);
    if (preft_gbnf_from_json_schema(schema, "schema", &text, &err) != 0)
      return fprintf(stderr, "%s\n", err.msg), 1;
    cJSON_Delete(schema);
  }
  t0 = preft_now();
  preft_grammar *g;
  if (preft_grammar_parse(text, &g, &err) != 0) return fprintf(stderr, "%s\n", err.msg), 1;
  double t_compile = preft_now() - t0;
  const int32_t *eos;
  int n_eos = preft_tokenizer_eos_ids(tok, &eos);
  int stop_ids[8], n_stop = 0;
  for (int i = 0; i < n_eos && n_stop < 8; i++) stop_ids[n_stop++] = eos[i];

  printf("grammar: %s, %d rules, compiled in %.2f ms\n",
         json_object ? "any JSON object" : "JSON schema (person)", g->n_rules, t_compile * 1e3);
  printf("trie: %d text tokens of %d, %d nodes, built in %.0f ms (once per server)\n", trie.n_text_tokens,
         vocab, trie.n_nodes, t_trie * 1e3);
  printf("batch %d, %d steps, temperature %.1f, one thread\n", batch, steps, temperature);
  run_cfg c = {.g = &trie,
               .gr = g,
               .vocab = vocab,
               .batch = batch,
               .steps = steps,
               .seed = seed,
               .temperature = temperature,
               .stop_ids = stop_ids,
               .n_stop = n_stop};
  run_result r[2];
  for (int shared = 0; shared < 2; shared++) run(&c, shared, &r[shared]);
  printf("%-44s %12s %12s\n", "ms per step (all rows)", "per matcher", "shared");
  printf("%-44s %12.3f %12.3f\n", "sampling, unconstrained", r[0].plain, r[1].plain);
  printf("%-44s %12.3f %12.3f\n", "grammar: masks (walks and cache hits)", r[0].mask, r[1].mask);
  printf("%-44s %12.3f %12.3f\n", "grammar: advancing the matchers", r[0].accept, r[1].accept);
  printf("%-44s %12.3f %12.3f\n", "sampling among the allowed tokens", r[0].cons, r[1].cons);
  printf("%-44s %12.3f %12.3f\n", "grammar work (masks + advancing)", r[0].mask + r[0].accept,
         r[1].mask + r[1].accept);
  printf("%-44s %12.3f %12.3f\n", "slowest step's masks", r[0].mask_max, r[1].mask_max);
  printf("%-44s %12d %12d\n", "mask walks (trie walks)", r[0].walks, r[1].walks);
  printf("%-44s %12d %12d\n", "replies finished and restarted", r[0].done, r[1].done);
  printf("same tokens with and without sharing: %s\n", r[0].hash == r[1].hash ? "yes" : "NO");
  free(text);
  preft_grammar_unref(g);
  preft_token_trie_free(&trie);
  preft_tokenizer_free(tok);
  return 0;
}
