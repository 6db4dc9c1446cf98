/* penalties.h - the logits processors a request may ask for beyond the
 * sampler's filters: min_tokens, logit_bias and the repetition, frequency
 * and presence penalties, applied to one row of logits before sampling in
 * vLLM's order and with its formulas (vllm/model_executor/layers/utils.py,
 * apply_penalties):
 *
 *   1. min_tokens: while fewer than min_tokens tokens have been generated,
 *      every stop id (end-of-sequence ids included, unless the request
 *      ignores EOS) gets -inf;
 *   2. logit_bias: logit[id] += bias[id];
 *   3. repetition_penalty r (Hugging Face / vLLM): for every token that
 *      occurs in the prompt OR the generated tokens, logit /= r when the
 *      logit is > 0, logit *= r otherwise;
 *   4. frequency_penalty f and presence_penalty p (OpenAI's definition):
 *      logit -= f * count + p * (count > 0), count = occurrences of the
 *      token among the GENERATED tokens only (not the prompt).
 *
 * The counts live in a small open-addressing table per sequence (token ->
 * generated count, in-prompt flag), so the cost of a step is the number of
 * distinct tokens seen, never the vocabulary. The row is changed in place
 * and every changed logit is remembered, so that preft_penalties_restore
 * gives the raw row back: reported logprobs are those of the unmodified
 * distribution (vLLM's default "raw_logprobs").
 */
#ifndef PREFT_ENGINE_PENALTIES_H
#define PREFT_ENGINE_PENALTIES_H

#include <stdbool.h>

#include "preft/engine.h" /* preft_penalty_params */

typedef struct preft_penalty_entry {
  int token; /* -1: empty */
  int count; /* among the generated tokens */
  bool in_prompt;
} preft_penalty_entry;

typedef struct preft_penalties {
  preft_penalty_params p; /* bias arrays owned */
  bool active;            /* some processor is on */
  preft_penalty_entry *table;
  int cap, used; /* cap: a power of two (0 when counts are not needed) */
  /* the logits changed by the last apply: ids and raw values */
  int *saved_ids;
  float *saved;
  int n_saved, cap_saved;
} preft_penalties;

/* Copies params; counts the prompt's tokens when a penalty needs them. */
void preft_penalties_init(preft_penalties *s, const preft_penalty_params *params, const int *prompt,
                          int n_prompt);
void preft_penalties_free(preft_penalties *s);
/* Counts a newly generated token. */
void preft_penalties_add(preft_penalties *s, int token);
/* Applies the processors to logits [vocab] in place, n_generated tokens
 * into the generation; stop_ids [n_stop] are what min_tokens masks.
 * Remembers the raw values of what it changed. */
void preft_penalties_apply(preft_penalties *s, float *logits, int vocab, int n_generated, const int *stop_ids,
                           int n_stop);
/* Puts back the raw values the last apply changed. */
void preft_penalties_restore(preft_penalties *s, float *logits);

#endif
