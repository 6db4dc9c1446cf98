/* bpe_trainer.h - learns a byte-level BPE vocabulary (GPT-2 / Llama 3 style)
 * from text and writes it as a Hugging Face tokenizer.json.
 *
 * Pre-tokenization is the Llama 3 regex (Split, Isolated) followed by
 * ByteLevel; training is the Hugging Face BpeTrainer algorithm: count
 * pre-token "words", then repeatedly merge the most frequent adjacent pair
 * (ties: smallest pair of ids) with incremental pair counts, until the
 * vocabulary has vocab_size entries (specials + 256 bytes + merges). The
 * result is deterministic for a given input.
 *
 *   preft_bpe_trainer *tr = preft_bpe_trainer_new();
 *   preft_bpe_trainer_feed(tr, text, len, &err);     (any number of times)
 *   preft_bpe_trainer_train(tr, 32000, specials, n_specials, progress, ctx, &err);
 *   preft_bpe_trainer_write(tr, "tokenizer.json", &err);
 *   preft_bpe_trainer_free(tr);
 */
#ifndef PREFT_TEXT_BPE_TRAINER_H
#define PREFT_TEXT_BPE_TRAINER_H

#include <stddef.h>

#include "base/error.h"

typedef struct preft_bpe_trainer preft_bpe_trainer;
typedef void (*preft_train_progress)(void *ctx, size_t done, size_t total);

/* The Llama 3 pre-tokenizer regex the trainer uses. */
extern const char *const preft_llama3_regex;

preft_bpe_trainer *preft_bpe_trainer_new(void);
void preft_bpe_trainer_free(preft_bpe_trainer *tr);
/* Pre-tokenizes text and adds its words to the counts. */
int preft_bpe_trainer_feed(preft_bpe_trainer *tr, const char *text, size_t len, preft_error *err);
/* vocab_size counts the specials and the 256 byte tokens; fails when it is
 * smaller than those. Stops early when no adjacent pair is left. */
int preft_bpe_trainer_train(preft_bpe_trainer *tr, int vocab_size, const char *const *specials,
                            int n_specials, preft_train_progress progress, void *ctx, preft_error *err);
/* Number of merges learned. */
size_t preft_bpe_trainer_n_merges(const preft_bpe_trainer *tr);
int preft_bpe_trainer_write(const preft_bpe_trainer *tr, const char *path, preft_error *err);

#endif
