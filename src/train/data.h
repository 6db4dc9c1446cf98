/* data.h - training and evaluation examples: SFT JSONL and packed text.
 *
 * An example is a token sequence ids[n] with a loss mask: row t (t < n−1)
 * reads ids[t] and predicts ids[t+1]; the prediction counts in the loss iff
 * loss[t+1]. prompt_len tokens at the start are the prompt: the rows the
 * adapter's flags treat as prompt (prefill-only mode adapts exactly these).
 *
 * JSONL, one object per line (blank lines are bad lines too):
 *   {"prompt": "...", "completion": "..."}
 *       prompt encoded with the tokenizer's special tokens (e.g. BOS),
 *       completion without them, then the EOS token. Loss on the completion
 *       and its EOS.
 *   {"messages": [{"role", "content"}, ...]}
 *       rendered with the tokenizer's chat template; loss on every assistant
 *       turn's tokens (as the template renders them, end-of-turn included);
 *       the prompt is everything before the last assistant turn.
 *   {"prompt_ids": [...], "completion_ids": [...]}
 *       already tokenised (no EOS added); needs no tokenizer.
 * Truncation to at most T tokens (T = --seq): the prompt keeps its last
 * keep_p = min(P, max(T/2, T−C)) tokens and the completion its first T−keep_p
 * (P, C the prompt and completion lengths); for chats, P is everything
 * before the last assistant turn.
 *
 * Text (pretraining): each file is one document, encoded with special
 * tokens, followed by EOS; the documents are concatenated and cut into
 * examples of T+1 tokens (T rows, every prediction counts; a window may
 * span two documents, as in GPT-2/llm.c pretraining); the tail shorter than
 * T+1 is dropped.
 */
#ifndef PREFT_TRAIN_DATA_H
#define PREFT_TRAIN_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "text/tokenizer.h"

typedef struct preft_example {
  int *ids;
  uint8_t *loss; /* [n] 1: predicting this token counts */
  int n, prompt_len;
} preft_example;

typedef struct preft_dataset {
  preft_example *ex;
  int n, cap;
  int64_t tokens;  /* sum of n */
  int64_t targets; /* predictions that count */
  int bad_lines, truncated;
} preft_dataset;

typedef enum { PREFT_BAD_LINE_STOP = 0, PREFT_BAD_LINE_SKIP = 1 } preft_bad_line_policy;

typedef struct preft_data_opts {
  const preft_tokenizer *tok; /* NULL: only *_ids lines are accepted */
  int eos_id;                 /* appended to text completions and documents; -1 none */
  int max_tokens;             /* T */
  int vocab;                  /* ids must be < vocab */
  preft_bad_line_policy on_bad_line;
} preft_data_opts;

/* Reads a JSONL file. A bad line (empty, malformed JSON, missing or
 * mistyped fields, a completion that tokenises to nothing, an id outside
 * the vocabulary, a chat without an assistant turn) fails with
 * "FILE:LINE: reason" under STOP, or is reported on stderr and skipped
 * under SKIP. */
int preft_dataset_load_jsonl(preft_dataset *ds, const char *path, const preft_data_opts *o, preft_error *err);
/* Appends packed examples of T+1 tokens from text files. */
int preft_dataset_load_text(preft_dataset *ds, const char *const *paths, int n_paths,
                            const preft_data_opts *o, preft_error *err);
/* Appends an example (copies ids and loss), truncating per the rule above. */
void preft_dataset_add(preft_dataset *ds, const int *ids, const uint8_t *loss, int n, int prompt_len,
                       int max_tokens);
/* Moves the last `count` examples of src (after shuffling it by seed) into dst. */
void preft_dataset_split(preft_dataset *src, preft_dataset *dst, int count, uint64_t seed);
/* How examples are held out for evaluation: a seeded random choice (SFT
 * examples are independent), or the last ones in order (packed text: a
 * window continues the one before it, so the held-out windows are a
 * contiguous stretch of text the training windows do not overlap). */
typedef enum { PREFT_HOLD_OUT_RANDOM = 0, PREFT_HOLD_OUT_TAIL = 1 } preft_hold_out_order;
/* Moves round(frac x n) examples of src (at least one; none when frac <= 0)
 * into dst (RANDOM: as preft_dataset_split, which also leaves src
 * shuffled; TAIL: src's last ones, in order). Fails, changing nothing, when that would leave src
 * without an example. */
int preft_dataset_hold_out(preft_dataset *src, preft_dataset *dst, double frac, preft_hold_out_order order,
                           uint64_t seed, preft_error *err);
void preft_dataset_free(preft_dataset *ds);

/* A permutation of [0, n) from (seed, epoch): Fisher-Yates with splitmix64. */
void preft_shuffle_indices(int *idx, int n, uint64_t seed, int64_t epoch);

#endif
