/* bert_exit.h - inference of a multitask BERT (a model directory written
 * by `preft train multitask`) on the serving forward pass (bert.h): the
 * task heads of the cross-encoder with early exit, and the bi-encoder's
 * sentence embeddings with a cache.
 *
 * Tasks, in this order everywhere: 0 sst (5 logits), 1 para (1 logit),
 * 2 sts (1 score 0-5).
 *
 * Early exit (cross-encoder with exit heads): after layer l every sequence
 * still running gets its exit head's output (layer L-1: the main head);
 * the rule decides per sequence whether it stops there, and the ones that
 * stop leave the batch, so the next layer runs on fewer rows:
 *   entropy:T     DeeBERT: stop when the entropy (nats) of the prediction's
 *                 distribution (softmax of 5 logits, Bernoulli of the
 *                 paraphrase logit) is below T; sts has none: it runs all
 *                 layers under this rule.
 *   patience:P[:TOL] PABEE: stop when the prediction (class; sts: score
 *                 within TOL, default 0.1) has not changed for P layers in
 *                 a row (layer l's agrees with l-1, ..., l-P).
 */
#ifndef PREFT_MODEL_BERT_EXIT_H
#define PREFT_MODEL_BERT_EXIT_H

#include <stdbool.h>

#include "model/bert.h"

enum { PREFT_BERT_N_TASKS = 3 };

typedef enum { PREFT_EXIT_NONE, PREFT_EXIT_ENTROPY, PREFT_EXIT_PATIENCE } preft_bert_exit_kind;

typedef struct preft_bert_exit_rule {
  preft_bert_exit_kind kind;
  double threshold; /* entropy */
  int patience;
  double tolerance; /* patience on sts */
} preft_bert_exit_rule;

/* "entropy:0.3", "patience:2", "patience:2:0.2", "none" */
int preft_bert_exit_rule_parse(const char *s, preft_bert_exit_rule *r, preft_error *err);

typedef struct preft_bert_classifier {
  preft_bert *bert;
  bool siamese, mean_pool, has_exits;
  float **pool_w,
      **pool_b; /* [L] FP32 poolers [D, D], [D]: exits.<l> for l < L-1, bert.pooler last (NULL: absent) */
  float **head_w, **head_b; /* [L * 3] task heads of each layer's exit (NULL: absent) */
  int head_in[PREFT_BERT_N_TASKS];
  preft_bert_workspace ws;
  float *hidden;
  int cap_rows;
  long n_encoded; /* sequences encoded so far (the cache's test) */
} preft_bert_classifier;

/* Loads a model directory (config.json, model.safetensors with the heads,
 * preft_heads.json), or with adapter (not NULL, or MODEL being a PEFT
 * directory: preft_bert_source_resolve) the base MODEL with the adapter's
 * LoRA merged and the heads of its preft_heads.{json,safetensors}. */
int preft_bert_classifier_load(preft_bert_classifier **out, const char *model, const char *adapter,
                               preft_error *err);
void preft_bert_classifier_free(preft_bert_classifier *c);

/* Cross-encoder: outputs [n, width] for the n sequences of b under the rule;
 * layers_used [n] (may be NULL) receives how many layers each ran. */
int preft_bert_classify(preft_bert_classifier *c, preft_pool *pool, const preft_bert_batch *b, int task,
                        const preft_bert_exit_rule *rule, float *out, int *layers_used, preft_error *err);

/* Bi-encoder: the sentence vectors [B, D] of b's sequences (pooler or mean
 * as trained). */
int preft_bert_embed_sentences(preft_bert_classifier *c, preft_pool *pool, const preft_bert_batch *b,
                               float *vecs, preft_error *err);
/* Bi-encoder pair output from two sentence vectors: the paraphrase logit
 * or the similarity 2.5·(cos + 1). */
float preft_bert_pair_output(const preft_bert_classifier *c, int task, const float *u, const float *v);

/* Sentence vectors by token ids, each sequence encoded once: a lookup
 * table from ids to vector. */
typedef struct preft_bert_emb_cache {
  struct emb_entry *e;
  int n, cap;
} preft_bert_emb_cache;

/* The vector of one tokenized sentence (encoding it when not cached). The
 * pointer stays valid until the cache is freed. */
const float *preft_bert_emb_cache_get(preft_bert_emb_cache *cache, preft_bert_classifier *c, preft_pool *pool,
                                      const int *ids, int n, preft_error *err);
void preft_bert_emb_cache_free(preft_bert_emb_cache *cache);

#endif
