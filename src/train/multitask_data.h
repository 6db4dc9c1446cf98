/* multitask_data.h - the multitask data sets (data/multitask/README.md):
 * SST sentences with a 0-4 sentiment, Quora question pairs with 0/1, STS-B
 * pairs with a 0-5 similarity, tokenized for the encoder, and padded
 * batches of them.
 *
 * Files are tab-separated with a header naming the columns (sst: sentence,
 * sentiment; para: sentence1, sentence2, is_duplicate; sts: sentence1,
 * sentence2, similarity). A field wrapped in double quotes is unquoted as
 * CSV does ("" inside is one quote). Errors name the file and the line.
 */
#ifndef PREFT_TRAIN_MULTITASK_DATA_H
#define PREFT_TRAIN_MULTITASK_DATA_H

#include "base/error.h"
#include "model/bert.h"
#include "text/tokenizer.h"
#include "train/bert_train.h"

typedef struct preft_mt_example {
  int *ids, *types, n; /* cross-encoder input: [CLS] a [SEP] (b [SEP]) */
  int *ids_a, *ids_b;  /* bi-encoder inputs: [CLS] a [SEP], [CLS] b [SEP] (pair tasks) */
  int n_a, n_b;
  float label;
} preft_mt_example;

typedef struct preft_mt_set {
  preft_bt_task task;
  preft_mt_example *ex;
  int n;
} preft_mt_set;

/* Reads and tokenizes one file; each input is cut to max_len tokens
 * (keeping its final [SEP]). limit > 0 keeps the first `limit` rows. */
int preft_mt_load(preft_mt_set *s, const char *path, preft_bt_task task, const preft_tokenizer *tok,
                  int max_len, int limit, preft_error *err);
void preft_mt_free(preft_mt_set *s);
/* The standard file names of a data directory: "ids-sst-train.csv",
 * "quora-train.csv", "sts-train.csv" (split "train") or the dev ones. */
const char *preft_mt_file_name(preft_bt_task task, const char *split);

/* A padded batch of examples idx[0..n) of s: the cross-encoder input, or
 * for the bi-encoder pair tasks sequences a of every example then b. */
typedef struct preft_mt_batch {
  preft_bert_batch b;
  int *ids, *types, *lengths;
  float *labels;
  int n; /* examples */
  int cap_rows, cap_seqs;
} preft_mt_batch;

void preft_mt_batch_make(preft_mt_batch *mb, const preft_mt_set *s, const int *idx, int n, bool siamese);
void preft_mt_batch_free(preft_mt_batch *mb);

/* Metrics: accuracy of argmax (sst) or logit > 0 (para), Pearson
 * correlation (sts); the overall score (sst + para + (sts + 1)/2) / 3. */
double preft_mt_metric(preft_bt_task t, const float *out, const float *labels, int n);
double preft_mt_score(double sst, double para, double sts);
/* The prediction of one output row: class (sst), 0/1 (para), score (sts). */
double preft_mt_prediction(preft_bt_task t, const float *out);

#endif
