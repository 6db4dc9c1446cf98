/* preft/generate.h - single-sequence generation and scoring on a loaded
 * model: prefill the prompt in chunks, then decode token by token. (Serving
 * many sequences at once is preft/engine.h.)
 *
 *   static bool on_token(void *ctx, int token) {
 *     printf("%d ", token);
 *     return true;  // false stops generating
 *   }
 *   ...
 *   preft_generate_opts o = {.max_new_tokens = 16};  // zeroed sampling: greedy
 *   int n_out;
 *   if (preft_generate(m, pool, prompt_ids, n_prompt, &o, on_token, NULL, &n_out, &err) != 0) ...
 *
 * Sampling applies, in Hugging Face's order: temperature, top-k, top-p
 * (nucleus), min-p, then a draw from the renormalised distribution;
 * temperature 0 is greedy (argmax, lowest id on ties). The RNG is seeded per
 * sequence, so a seeded request gives the same tokens whatever runs beside it.
 *
 * Ownership: everything is borrowed for the duration of the call (model,
 * pool, adapter, prompt, stop ids); the pool may be NULL (one thread). The
 * callback runs on the calling thread.
 */
#ifndef PREFT_PUBLIC_GENERATE_H
#define PREFT_PUBLIC_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/adapter.h"
#include "preft/base.h"
#include "preft/model.h"

typedef struct preft_sampling {
  float temperature; /* 0: greedy */
  int top_k;         /* 0: off */
  float top_p;       /* 1: off */
  float min_p;       /* 0: off */
  uint64_t seed;
} preft_sampling;

/* Speculative decoding (src/engine/speculative.h): each decode step drafts
 * up to k further tokens and checks them with ONE forward of the model over
 * the k+1 rows; the drafts verification accepts are kept, and the KV cache
 * is rolled back past the first one it rejects. Verification is the
 * standard accept/reject rule, so the output is distributed as without
 * speculation: greedy output is identical, and with prompt lookup (a
 * deterministic draft) a seeded sampled request draws the very same tokens
 * (one RNG draw per emitted token either way). */
typedef enum {
  PREFT_SPEC_OFF = 0,
  PREFT_SPEC_NGRAM = 1, /* prompt lookup: the tokens that followed the last earlier occurrence of the
                         * sequence's latest n-gram (prompt and generated tokens) */
  PREFT_SPEC_DRAFT = 2, /* a small draft model with the target's vocabulary drafts autoregressively
                         * (base weights only: one draft model serves every adapter) */
} preft_spec_kind;

typedef struct preft_speculation {
  preft_spec_kind kind;
  int k;                          /* tokens drafted per step at most; 0: 4 */
  int ngram_max;                  /* longest suffix looked up; 0: 3 */
  int ngram_min;                  /* shortest; 0: 2 */
  const preft_model *draft_model; /* PREFT_SPEC_DRAFT: the draft model (borrowed: outlives the user) */
} preft_speculation;

/* What speculation did: decode steps that carried a draft, tokens drafted,
 * drafted tokens accepted (acceptance rate = accepted / drafted). */
typedef struct preft_spec_stats {
  long steps, drafted, accepted;
} preft_spec_stats;

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
  preft_speculation speculation; /* zeros: off */
  preft_spec_stats *spec_stats;  /* filled when not NULL */
} preft_generate_opts;

/* Generates from the prompt; *n_generated counts emitted tokens. Fails on an
 * empty prompt, a token outside the vocabulary or a prompt longer than the
 * model's context. */
PREFT_API int preft_generate(const preft_model *m, preft_pool *pool, const int *prompt, int n_prompt,
                             const preft_generate_opts *opts, preft_token_cb cb, void *cb_ctx,
                             int *n_generated, preft_error *err);

/* Logits of every position of ids: out [n, V], teacher-forced. With an
 * adapter, positions >= prompt_len count as generated tokens for the
 * adapter's mode (prompt_len = n: all of ids is the prompt). */
PREFT_API int preft_all_logits(const preft_model *m, preft_pool *pool, const int *ids, int n, float *out,
                               preft_error *err);
PREFT_API int preft_all_logits_adapted(const preft_model *m, preft_pool *pool, const int *ids, int n,
                                       const preft_adapter *adapter, preft_adapter_mode mode, int prompt_len,
                                       float *out, preft_error *err);

/* Scores a sequence teacher-forced: adds -log p(ids[t] | ids[<t]) over
 * t in [score_from, n) (score_from >= 1) to *nll_sum (natural log) and the
 * count of scored tokens to *count. Runs the prompt in chunks, so memory is
 * bounded by the chunk's logits, not by n. */
PREFT_API int preft_score_tokens(const preft_model *m, preft_pool *pool, const int *ids, int n,
                                 int score_from, const preft_adapter *adapter, preft_adapter_mode mode,
                                 double *nll_sum, long *count, preft_error *err);

#endif
