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
 * (the masking), split into the first step of a request (cold caches: the
 * first masks of a fresh matcher) and the average over all steps.
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

  float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)batch);
  preft_sampler rng, *plain = calloc((size_t)batch, sizeof *plain),
                     *cons = calloc((size_t)batch, sizeof *cons);
  preft_sampling sp = {.temperature = temperature, .top_p = 1.0f, .seed = seed};
  preft_sampler_init(&rng, &sp);
  preft_gmatch **m = calloc((size_t)batch, sizeof *m);
  for (int b = 0; b < batch; b++) {
    sp.seed = seed + 1 + (uint64_t)b;
    preft_sampler_init(&plain[b], &sp);
    preft_sampler_init(&cons[b], &sp);
    m[b] = preft_gmatch_new(g, &trie, stop_ids, n_stop);
  }
  double t_plain = 0, t_cons = 0, t_mask = 0, t_accept = 0, mask_max = 0;
  int done = 0;
  for (int step = 0; step < steps; step++) {
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
      a = preft_now();
      bool end = t < 0 || !preft_gmatch_accept_token(m[b], t) || preft_gmatch_must_end(m[b]);
      t_accept += preft_now() - a;
      for (int k = 0; k < n_stop; k++) end |= t == stop_ids[k];
      if (end) { /* a finished reply starts a fresh request (cold caches again) */
        preft_gmatch_free(m[b]);
        m[b] = preft_gmatch_new(g, &trie, stop_ids, n_stop);
        done++;
      }
    }
    t_mask += step_mask;
    if (step_mask > mask_max) mask_max = step_mask;
  }
  int states = 0, masks = 0;
  preft_gmatch_counts(m[0], &states, &masks);
  printf("grammar: %s, %d rules, compiled in %.2f ms\n",
         json_object ? "any JSON object" : "JSON schema (person)", g->n_rules, t_compile * 1e3);
  printf("trie: %d text tokens of %d, %d nodes, built in %.0f ms (once per server)\n", trie.n_text_tokens,
         vocab, trie.n_nodes, t_trie * 1e3);
  printf("batch %d, %d steps, temperature %.1f, one thread; %d replies finished and restarted\n", batch,
         steps, temperature, done);
  printf("%-44s %10s\n", "ms per step (all rows)", "mean");
  printf("%-44s %10.3f\n", "sampling, unconstrained", t_plain / steps * 1e3);
  printf("%-44s %10.3f\n", "grammar: masks (walks and cache hits)", t_mask / steps * 1e3);
  printf("%-44s %10.3f\n", "grammar: advancing the matchers", t_accept / steps * 1e3);
  printf("%-44s %10.3f\n", "sampling under the mask (-inf copy + draw)", t_cons / steps * 1e3);
  printf("%-44s %10.3f\n", "grammar work (masks + advancing)", (t_mask + t_accept) / steps * 1e3);
  printf("%-44s %10.3f\n", "slowest step's masks", mask_max * 1e3);
  printf("matcher of row 0 now: %d states, %d masks computed\n", states, masks);
  for (int b = 0; b < batch; b++) {
    preft_gmatch_free(m[b]);
    preft_sampler_free(&plain[b]);
    preft_sampler_free(&cons[b]);
  }
  preft_sampler_free(&rng);
  free(m);
  free(plain);
  free(cons);
  free(logits);
  free(text);
  preft_grammar_unref(g);
  preft_token_trie_free(&trie);
  preft_tokenizer_free(tok);
  return 0;
}
