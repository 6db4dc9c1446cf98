/* cli_train_many.h - `preft train sft --adapters-from DIR`: many independent
 * adapters, one per sub-folder (one per user), trained as one job and
 * sharded over the ranks of mpirun (cli_train_many.c). */
#ifndef PREFT_CLI_TRAIN_MANY_H
#define PREFT_CLI_TRAIN_MANY_H

#include "cli/cli.h"
#include "preft/train.h"

typedef struct cli_train_many_args {
  const char *dir, *out;              /* DIR/<name>/train.jsonl in, OUT/<name>/ out */
  const preft_model *model;           /* the frozen base */
  const preft_train_adapter_opts *ao; /* every adapter's (the same seed: as if trained alone) */
  const preft_data_opts *dopt;
  const preft_train_opts *to; /* out_dir is replaced per adapter */
  double eval_frac;           /* hold-out of train.jsonl when DIR/<name>/eval.jsonl is absent */
  uint64_t seed;
  const char *json;      /* --json: the job's summary (rank 0) */
  const char *mode_name; /* recorded in the summary */
} cli_train_many_args;

/* Trains every adapter of DIR; rank r of N trains the folders i (in name
 * order) with i mod N = r. 0, or -1 with err (the first failure). */
int cli_train_many(const cli_train_many_args *a, const cli_dist *d, preft_error *err);

#endif
