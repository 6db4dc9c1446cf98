/* generate.h - single-sequence generation on top of the batched forward
 * pass: prefill the prompt in chunks, then decode token by token. The
 * serving engine batches many sequences; this is the plain path used by
 * `preft generate` and `preft logits`, and the reference the engine's
 * outputs are compared with. */
#ifndef PREFT_ENGINE_GENERATE_H
#define PREFT_ENGINE_GENERATE_H

#include <stdbool.h>

#include "engine/sampler.h"
#include "model/llama.h"

/* Called with each new token; return false to stop generating. */
typedef bool (*preft_token_cb)(void *ctx, int token);

typedef struct preft_generate_opts {
  int max_new_tokens;
  preft_sampling sampling;
  const int *stop_ids; /* generation ends after emitting one of these */
  int n_stop_ids;
  int prefill_chunk;            /* rows per prefill forward; 0: 256 */
  const preft_adapter *adapter; /* NULL: the base model */
  preft_adapter_mode adapter_mode;
} preft_generate_opts;

/* Generates from the prompt; *n_generated counts emitted tokens. */
int preft_generate(const preft_model *m, preft_pool *pool, const int *prompt, int n_prompt,
                   const preft_generate_opts *opts, preft_token_cb cb, void *cb_ctx, int *n_generated,
                   preft_error *err);

/* Logits of every position of ids: out [n, V], teacher-forced. With an
 * adapter, positions >= prompt_len count as generated tokens for the
 * adapter's mode (prompt_len = n: all of ids is the prompt). */
int preft_all_logits(const preft_model *m, preft_pool *pool, const int *ids, int n, float *out,
                     preft_error *err);
int preft_all_logits_adapted(const preft_model *m, preft_pool *pool, const int *ids, int n,
                             const preft_adapter *adapter, preft_adapter_mode mode, int prompt_len,
                             float *out, preft_error *err);

/* Scores a sequence teacher-forced: adds -log p(ids[t] | ids[<t]) over
 * t in [score_from, n) (score_from >= 1) to *nll_sum (natural log) and the
 * count of scored tokens to *count. Runs the prompt in chunks, so memory is
 * bounded by the chunk's logits, not by n. */
int preft_score_tokens(const preft_model *m, preft_pool *pool, const int *ids, int n, int score_from,
                       const preft_adapter *adapter, preft_adapter_mode mode, double *nll_sum, long *count,
                       preft_error *err);

#endif
