/* cli_multitask.h - what `preft train multitask`, `preft eval multitask`
 * and `preft classify` share: the task list option, loading the data
 * sets, copying the tokenizer files beside a model, metrics as JSON. */
#ifndef PREFT_CLI_MULTITASK_H
#define PREFT_CLI_MULTITASK_H

#include <stdbool.h>

#include "train/multitask_train.h"

struct cJSON;

/* "sst,para,sts" (any subset) into want[3]; -1 on anything else. */
int cli_mt_parse_tasks(const char *list, bool *want);
/* The train and dev files of the wanted tasks under dir (a NULL train
 * array: dev only); limits > 0 keep the first rows. */
int cli_mt_load_sets(const char *dir, const preft_tokenizer *tok, int max_len, const bool *want,
                     int train_limit, int dev_limit, preft_mt_set *train, preft_mt_set *dev,
                     preft_error *err);
/* Copies vocab.txt, tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json (those present) from one directory to another. */
int cli_mt_copy_tokenizer(const char *from, const char *to, preft_error *err);
/* Adds {"<key>": {"sst_accuracy", "para_accuracy", "sts_pearson", "score",
 * "examples": {...}}} to obj (null for a task without data). */
void cli_mt_eval_json(struct cJSON *obj, const char *key, const preft_mt_eval *ev);

#endif
