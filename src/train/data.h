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
#include "preft/train.h" /* preft_example, preft_dataset, preft_data_opts; loading, splitting, freeing */
#include "text/tokenizer.h"

/* A permutation of [0, n) from (seed, epoch): Fisher-Yates with splitmix64. */
void preft_shuffle_indices(int *idx, int n, uint64_t seed, int64_t epoch);

#endif
