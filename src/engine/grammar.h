/* grammar.h - constrained decoding: a context-free grammar over bytes, a
 * matcher that follows the text generated so far, and the set of tokens
 * that may come next (docs/SERVING.md, "Structured output").
 *
 * A grammar is written in llama.cpp's GBNF (rules `name ::= ...`, "literals",
 * [character classes], ., groups, | alternatives, * + ? {m} {m,} {m,n},
 * # comments; the start rule is `root`). The front-ends (JSON schema,
 * regular expressions, choices: grammar_json.c, grammar_regex.c) write GBNF.
 *
 * Compiling works on UTF-8 bytes: a literal is its bytes, a character class
 * becomes alternatives of byte-range sequences (one per UTF-8 length), and
 * repetitions become right-recursive helper rules. Left recursion is refused.
 *
 * Matching is llama.cpp's pushdown scheme with the stacks hash-consed: a
 * stack is an interned (position, parent) node, a matcher state is the
 * sorted set of stacks (interned too), and transitions state x byte ->
 * state are computed once and kept (a DFA built lazily). The tokens allowed
 * in a state are found by walking the vocabulary's byte trie
 * (token_trie.h) through those transitions; the mask is cached per state.
 * Stacks, states, transitions and masks belong to an automaton
 * (preft_gauto) that many matchers may share, from any threads: the
 * sequences of a batch, and later requests, with the same grammar walk each
 * state's mask once between them.
 *
 * Ownership: a preft_grammar is immutable and reference counted (automata
 * hold a reference); an automaton is reference counted too (matchers hold
 * one) and locks itself; a matcher belongs to one sequence and one thread
 * at a time. The trie is borrowed and must outlive the automaton.
 */
#ifndef PREFT_ENGINE_GRAMMAR_H
#define PREFT_ENGINE_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/token_trie.h"

typedef enum { GE_END = 0, GE_BYTES, GE_RULE } preft_gelem_type;

typedef struct preft_gelem {
  uint8_t type; /* preft_gelem_type */
  int32_t arg;  /* GE_BYTES: byte set index; GE_RULE: rule index */
} preft_gelem;

typedef struct preft_grammar {
  int refs;           /* atomic */
  preft_gelem *elems; /* every alternative's elements, each ended by GE_END */
  int n_elems;
  int32_t *alt_pos;  /* start of each alternative in elems */
  int32_t *rule_alt; /* [n_rules + 1]: the alternatives of rule r are alt_pos[rule_alt[r] .. rule_alt[r+1]) */
  int n_rules, root;
  uint64_t (*sets)[4]; /* byte sets, 256 bits each */
  int n_sets;
  char **rule_names; /* [n_rules], for errors and dumps */
} preft_grammar;

/* Parses GBNF text. Errors name the line and column (and the rule). */
int preft_grammar_parse(const char *text, preft_grammar **out, preft_error *err);
preft_grammar *preft_grammar_ref(preft_grammar *g);
void preft_grammar_unref(preft_grammar *g);

/* ---- matching ------------------------------------------------------------------ */

typedef struct preft_gmatch preft_gmatch;
typedef struct preft_gauto preft_gauto;

/* The automaton of g over trie's vocabulary (states and masks grow as
 * matchers meet them); trie may be NULL for byte-level use only (then no
 * masks). stop_ids: tokens that end the sequence (EOS), allowed exactly
 * when the grammar may end there; copied. */
preft_gauto *preft_gauto_new(preft_grammar *g, const preft_token_trie *trie, const int *stop_ids, int n_stop);
preft_gauto *preft_gauto_ref(preft_gauto *a);
void preft_gauto_unref(preft_gauto *a);
/* States interned, masks cached, and mask walks done (cached or not) so far. */
void preft_gauto_counts(preft_gauto *a, int *states, int *masks, int *walks);
/* Whether a holds more than max_states states or its mask cache is full:
 * an owner that keeps automata for reuse then starts a fresh one. */
bool preft_gauto_full(preft_gauto *a, int max_states);

/* A matcher at the start of a (which it holds a reference to). */
preft_gmatch *preft_gmatch_new_shared(preft_gauto *a);
/* A matcher with an automaton of its own (nothing shared). */
preft_gmatch *preft_gmatch_new(preft_grammar *g, const preft_token_trie *trie, const int *stop_ids,
                               int n_stop);
void preft_gmatch_free(preft_gmatch *m);
/* Feeds bytes; false (and the matcher unchanged) when the grammar refuses them. */
bool preft_gmatch_accept_bytes(preft_gmatch *m, const void *bytes, size_t n);
/* Feeds a token: a stop id is accepted when the grammar may end (the state
 * does not change), any other token by its bytes. */
bool preft_gmatch_accept_token(preft_gmatch *m, int token);
/* The grammar may end at this point / must end here (nothing may follow). */
bool preft_gmatch_can_end(const preft_gmatch *m);
bool preft_gmatch_must_end(const preft_gmatch *m);
/* The allowed tokens now: bit t of mask[t / 32] (trie->vocab bits). Cached
 * per state in the automaton; valid until the next call on m. */
const uint32_t *preft_gmatch_mask(preft_gmatch *m);
/* Number of states and cached masks of m's automaton (benchmarks, tests). */
void preft_gmatch_counts(const preft_gmatch *m, int *states, int *masks);

/* Samples the next token under the grammar: logits of disallowed tokens
 * count as -inf (greedy: the best allowed one). Returns the token, or -1
 * when nothing is allowed (the grammar has ended and no stop id was given).
 * The matcher is not advanced (preft_gmatch_accept_token does that). The
 * work past the mask is O(allowed tokens), not O(vocab). */
struct preft_sampler;
struct preft_sample_scratch;
int preft_gmatch_sample(preft_gmatch *m, struct preft_sampler *s, struct preft_sample_scratch *w,
                        const float *logits, int vocab);

#endif
