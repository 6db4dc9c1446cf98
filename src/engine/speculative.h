/* speculative.h - drafting for speculative decoding (preft/generate.h has
 * the public settings and the rule that keeps the output exact).
 *
 * A decode step of a sequence whose last token t_n is not yet computed
 * normally runs one row (t_n at position n) and samples t_{n+1}. With a
 * draft d_1..d_k it runs k+1 rows (t_n, d_1, .., d_k at positions n..n+k)
 * with logits for every row, then samples row 0; while the token drawn
 * equals d_i it samples row i (whose keys and values saw d_1..d_i, which are
 * now the true tokens), and it stops at the first draw that differs from the
 * draft (that draw is kept: it is the token the model chose) or after row k
 * (a bonus token). Rows past the first disagreement are discarded: the
 * sequence's computed length is set back and the KV blocks beyond it freed
 * (engine.c); their keys and values are overwritten before anything reads
 * them. Drafts are never prompt tokens, so the prefix cache, which keys
 * prompt blocks only, never holds a rejected token.
 */
#ifndef PREFT_ENGINE_SPECULATIVE_H
#define PREFT_ENGINE_SPECULATIVE_H

#include "preft/generate.h"

/* The settings with defaults filled in (k, n-gram lengths). */
preft_speculation preft_spec_defaults(const preft_speculation *s);

/* Prompt lookup: for n from ngram_max down to ngram_min, finds the latest
 * earlier occurrence of tokens[n_tokens-n, n_tokens) and copies up to k
 * tokens that followed it into draft. Returns how many were drafted (0: no
 * occurrence, or k <= 0). Cost: O(n_tokens * ngram_max). */
int preft_ngram_draft(const int *tokens, int n_tokens, int ngram_max, int ngram_min, int k, int *draft);

#endif
