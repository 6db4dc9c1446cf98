/* token_trie.h - the vocabulary as a byte trie, for constrained decoding.
 *
 * Every token that stands for text (not a special token, not a hole) is
 * inserted by the bytes it decodes to inside a text (byte-level tokens by
 * their raw bytes, SentencePiece "▁" as a space, <0xXX> byte tokens as the
 * byte; preft_tokenizer_token_bytes). Nodes are laid out so that the
 * children of a node are contiguous: a walk reads first_child .. +n_child.
 * Built once per tokenizer and shared read-only by every matcher.
 */
#ifndef PREFT_ENGINE_TOKEN_TRIE_H
#define PREFT_ENGINE_TOKEN_TRIE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "preft/tokenizer.h"

typedef struct preft_token_trie {
  int vocab;            /* mask width in tokens: the model's vocabulary (>= the tokenizer's) */
  int n_nodes;          /* node 0 is the root (the empty string) */
  uint8_t *byte;        /* [n_nodes] the byte that leads into the node */
  int32_t *first_child; /* [n_nodes] */
  int32_t *n_child;     /* [n_nodes] */
  int32_t *tok_off;     /* [n_nodes + 1] tokens ending at node i: toks[tok_off[i] .. tok_off[i+1]) */
  int32_t *toks;
  int32_t *parent;   /* [n_nodes] (-1 for the root) */
  int32_t *tok_node; /* [vocab] the node where token t ends, -1 when t is not in the trie */
  int n_text_tokens; /* tokens in the trie */
  int max_len;       /* longest token in bytes */
} preft_token_trie;

/* From explicit token byte strings (tests): tokens[i] of lens[i] bytes is
 * token i; a NULL entry or length 0 leaves token i out. */
int preft_token_trie_build(preft_token_trie *t, int vocab, const char *const *tokens, const size_t *lens,
                           preft_error *err);
/* From a tokenizer; vocab is the model's (ids past the tokenizer's are never allowed). */
int preft_token_trie_from_tokenizer(preft_token_trie *t, const preft_tokenizer *tok, int vocab,
                                    preft_error *err);
void preft_token_trie_free(preft_token_trie *t);

#endif
