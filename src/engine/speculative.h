/* speculative.h - drafting and verification for speculative decoding
 * (preft/generate.h has the public settings).
 *
 * A decode step of a sequence whose last token t_n is not yet computed
 * normally runs one row (t_n at position n) and samples t_{n+1}. With a
 * draft d_1..d_k it runs k+1 rows (t_n, d_1, .., d_k at positions n..n+k)
 * with logits for every row, then verifies row 0 against d_1; while the
 * draft is accepted it verifies row i (whose keys and values saw d_1..d_i,
 * which are now the true tokens) against d_{i+1}, and it stops at the first
 * rejection (the token verification emits instead is kept: it is a draw of
 * the model's) or after row k (a bonus token, drawn from row k as without
 * speculation). Rows past the first rejection are discarded: the sequence's
 * computed length is set back and the KV blocks beyond it freed (engine.c);
 * their keys and values are overwritten before anything reads them. Drafts
 * are never prompt tokens, so the prefix cache, which keys prompt blocks
 * only, never holds a rejected token.
 *
 * Verification (preft_spec_verify) is the standard rule (Leviathan et al.
 * 2023; Chen et al. 2023): with p the target's distribution at the row (the
 * sampler's, after temperature, top-k, top-p, min-p) and q the one the
 * drafted token d was drawn from, keep d with probability min(1, p(d)/q(d)),
 * else emit a draw from norm(max(0, p - q)); the emitted token is then
 * distributed as p whatever q is. A drafter that guesses deterministically
 * (prompt lookup) has q = one-hot(d): keep d with probability p(d), else draw
 * from p without d, which is exactly "draw x from p, keep d iff x == d"
 * (one RNG draw per emitted token, so a seeded request draws the very same
 * tokens as without speculation). Greedy settings make p one-hot at the
 * argmax: the draft is kept iff it is the argmax, and the argmax is emitted
 * either way, so greedy output is the same with and without speculation for
 * every drafter.
 *
 * Drafters (preft_drafter) are two implementations of one interface: prompt
 * lookup (preft_drafter_ngram) and a small draft model sharing the target's
 * vocabulary (draft_model.c), which runs base weights only: one drafter
 * serves every request, whatever adapter it runs.
 */
#ifndef PREFT_ENGINE_SPECULATIVE_H
#define PREFT_ENGINE_SPECULATIVE_H

#include <stdbool.h>

#include "engine/sampler.h"
#include "preft/generate.h"

/* The settings with defaults filled in (k, n-gram lengths). */
preft_speculation preft_spec_defaults(const preft_speculation *s);

/* Prompt lookup: for n from ngram_max down to ngram_min, finds the latest
 * earlier occurrence of tokens[n_tokens-n, n_tokens) and copies up to k
 * tokens that followed it into draft. Returns how many were drafted (0: no
 * occurrence, or k <= 0). Cost: O(n_tokens * ngram_max). */
int preft_ngram_draft(const int *tokens, int n_tokens, int ngram_max, int ngram_min, int k, int *draft);

/* Verifies drafted token `draft` at a row of target logits [vocab] under s's
 * settings (the rule above). q [vocab]: the distribution draft was drawn
 * from; NULL for a deterministic guess (point mass). Returns the token to
 * emit; *accepted says whether it is the draft. w's memory holds p. */
int preft_spec_verify(preft_sampler *s, preft_sample_scratch *w, const float *logits, int vocab, int draft,
                      const float *q, bool *accepted);

/* ---- drafters ------------------------------------------------------------------- */

/* What a drafter is asked for one sequence in a step. */
typedef struct preft_draft_req {
  const int *tokens; /* the sequence so far [n_tokens]; the target has not computed the last one */
  int n_tokens;
  int slot;               /* the sequence's state in the drafter: 0 .. n_slots-1 */
  int k;                  /* tokens wanted at most (>= 1) */
  preft_sampler *sampler; /* a model drafter's draws (the target's settings, a separate RNG) */
  float *q;               /* [k, vocab]: filled with each draft's distribution by drafters that
                           * give_q when the sampler is not greedy; NULL otherwise */
  int *out;               /* [k] the drafted tokens */
  int n_out;              /* set by draft: how many (0..k) */
} preft_draft_req;

typedef struct preft_drafter preft_drafter;
typedef struct preft_drafter_ops {
  /* Drafts for n sequences at once (a model drafter batches them). Fails
   * only on a forward error. */
  int (*draft)(preft_drafter *d, preft_draft_req *reqs, int n, preft_error *err);
  /* After verification: the first n_valid tokens of slot's sequence are the
   * ones the drafter saw or drafted; state past them is dropped. */
  void (*keep)(preft_drafter *d, int slot, int n_valid);
  /* The slot's sequence is gone (finished, preempted): forget it. */
  void (*release)(preft_drafter *d, int slot);
  void (*destroy)(preft_drafter *d);
} preft_drafter_ops;

struct preft_drafter {
  const preft_drafter_ops *ops;
  bool gives_q; /* drafts are draws from q (fill preft_draft_req.q), not deterministic guesses */
};

/* Where a drafter works: n_slots sequence slots of at most max_ctx
 * positions; a model drafter's KV cache has n_blocks blocks of 16
 * positions (memory of its own, beside the target's cache), and the first
 * forward of a step (the draft catching up on what it has not seen: a
 * whole prompt, or everything after a preemption) runs at most max_batch
 * rows (<= 0: no bound), the rest waiting for the next steps. */
typedef struct preft_drafter_shape {
  int n_slots, max_ctx, n_blocks, max_batch;
} preft_drafter_shape;

/* The drafter of settings s for a target model (NULL when s is off),
 * running on pool. Fails when the draft model does not fit the target
 * (preft_draft_model_fits). */
int preft_drafter_create(preft_drafter **out, const preft_speculation *s, const preft_model *target,
                         preft_pool *pool, const preft_drafter_shape *shape, preft_error *err);
void preft_drafter_free(preft_drafter *d);

/* Whether draft can draft for target: the same vocabulary size and the
 * same bos and eos ids (what the model files tell of the tokenizer; the
 * command line compares the tokenizers' vocabularies too). Fails saying
 * what differs. */
int preft_draft_model_fits(const preft_model *draft, const preft_model *target, preft_error *err);

/* The two implementations (speculative.c, draft_model.c). */
preft_drafter *preft_drafter_ngram(int ngram_max, int ngram_min);
int preft_drafter_model(preft_drafter **out, const preft_model *draft, const preft_model *target,
                        preft_pool *pool, const preft_drafter_shape *shape, preft_error *err);

#endif
