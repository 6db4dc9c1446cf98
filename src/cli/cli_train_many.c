/* cli_train_many.c - many independent adapters as one job (see
 * cli_train_many.h; docs/TRAINING.md, "Many adapters in one job").
 *
 *   DIR/<name>/train.jsonl   each user's training data (required)
 *   DIR/<name>/eval.jsonl    each user's evaluation data (optional; else
 *                            --eval-frac of train.jsonl is held out)
 *   OUT/<name>/              the adapter, checkpoint.bin, train_log.csv, loss.svg
 *
 * Every adapter is trained exactly as `preft train sft --data
 * DIR/<name>/train.jsonl -o OUT/<name>` with the same options would train
 * it alone (same seed, same initialisation, same data order). The frozen
 * base is loaded once per rank and shared by its adapters; the ranks never
 * talk until the end, when the per-adapter results are summed into one
 * table (each rank fills its own rows) for rank 0's summary and --json. */
#include "cli/cli_train_many.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "train/train_model.h"
#include "train/trainer.h"

/* One row of the results table per adapter. */
enum { RES_DONE, RES_TRAIN_LOSS, RES_EVAL_LOSS, RES_HAS_EVAL, RES_STEPS, RES_TOKENS, RES_SECONDS, RES_COLS };

/* Trains DIR/name into OUT/name; fills row. */
static int train_one(const cli_train_many_args *a, const preft_train_model *tm, const char *name, double *row,
                     preft_error *err) {
  char *src = preft_path_join(a->dir, name), *out = preft_path_join(a->out, name);
  char *train_path = preft_path_join(src, "train.jsonl"), *eval_path = preft_path_join(src, "eval.jsonl");
  preft_dataset train = {0}, eval = {0};
  preft_train_adapter ad = {0};
  int rc = -1;
  if (!preft_file_exists(train_path)) {
    preft_fail(err, "%s: no train.jsonl (each folder of --adapters-from holds one user's data)", src);
    goto done;
  }
  if (preft_dataset_load_jsonl(&train, train_path, a->dopt, err) != 0) goto done;
  if (preft_file_exists(eval_path)) {
    if (preft_dataset_load_jsonl(&eval, eval_path, a->dopt, err) != 0) goto done;
  } else if (preft_dataset_hold_out(&train, &eval, a->eval_frac, PREFT_HOLD_OUT_RANDOM, a->seed, err) != 0) {
    goto done;
  }
  if (preft_train_adapter_init(&ad, &tm->cfg, a->ao, err) != 0) goto done;
  preft_train_opts to = *a->to;
  to.out_dir = out;
  to.quiet = true;
  preft_train_result res;
  /* the trainer never writes the frozen base: one copy serves every adapter */
  if (preft_train_run((preft_train_model *)tm, &ad, &train, eval.n ? &eval : NULL, &to, &res, err) != 0) {
    preft_error e = *err;
    preft_fail(err, "%s: %s", name, e.msg);
    goto done;
  }
  row[RES_DONE] = 1;
  row[RES_TRAIN_LOSS] = res.train_loss;
  row[RES_HAS_EVAL] = isfinite(res.eval_loss);
  row[RES_EVAL_LOSS] = isfinite(res.eval_loss) ? res.eval_loss : 0;
  row[RES_STEPS] = (double)res.steps;
  row[RES_TOKENS] = (double)res.tokens;
  row[RES_SECONDS] = res.seconds;
  rc = 0;
done:
  preft_train_adapter_free(&ad);
  preft_dataset_free(&train);
  preft_dataset_free(&eval);
  free(train_path);
  free(eval_path);
  free(src);
  free(out);
  return rc;
}

static int write_summary(const cli_train_many_args *a, const cli_dist *d, char **names, int n,
                         const double *tab, double seconds, preft_error *err) {
  cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "adapters");
  cJSON_AddNumberToObject(j, "world_size", d->size);
  cJSON_AddNumberToObject(j, "seconds", seconds);
  cJSON_AddStringToObject(j, "mode", a->mode_name);
  cJSON_AddStringToObject(j, "loss", "mean cross-entropy per counted token, natural log");
  for (int i = 0; i < n; i++) {
    const double *r = tab + (size_t)i * RES_COLS;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", names[i]);
    cJSON_AddNumberToObject(o, "rank", i % d->size);
    cJSON_AddNumberToObject(o, "train_loss", r[RES_TRAIN_LOSS]);
    if (r[RES_HAS_EVAL] != 0)
      cJSON_AddNumberToObject(o, "eval_loss", r[RES_EVAL_LOSS]);
    else
      cJSON_AddNullToObject(o, "eval_loss");
    cJSON_AddNumberToObject(o, "steps", r[RES_STEPS]);
    cJSON_AddNumberToObject(o, "train_tokens", r[RES_TOKENS]);
    cJSON_AddNumberToObject(o, "seconds", r[RES_SECONDS]);
    cJSON_AddItemToArray(arr, o);
  }
  int rc = cli_write_json(a->json, j, err);
  cJSON_Delete(j);
  return rc;
}

int cli_train_many(const cli_train_many_args *a, const cli_dist *d, preft_error *err) {
  char **names = NULL;
  int n = preft_list_subdirs(a->dir, &names, err);
  if (n < 0) return -1;
  int rc = -1;
  double *tab = preft_xcalloc((size_t)(n > 0 ? n : 1) * RES_COLS, sizeof(double));
  preft_train_model tm;
  preft_train_model_from(&tm, a->model, false);
  if (n == 0) {
    preft_fail(err, "%s: no sub-folders (--adapters-from wants one folder of data per adapter)", a->dir);
    goto done;
  }
  if (d->rank == 0 && preft_mkdir_p(a->out, err) != 0) goto done;
  double sync = 0; /* every rank waits until OUT exists */
  if (d->size > 1 && d->comm.sum_f64(d->comm.ctx, &sync, 1, err) != 0) goto done;
  double t0 = preft_now();
  for (int i = d->rank; i < n; i += d->size) {
    if (train_one(a, &tm, names[i], tab + (size_t)i * RES_COLS, err) != 0) goto done;
    const double *r = tab + (size_t)i * RES_COLS;
    if (!a->to->quiet) {
      fprintf(stderr, "preft train sft: [rank %d] %s: %.0f steps, train loss %.6f", d->rank, names[i],
              r[RES_STEPS], r[RES_TRAIN_LOSS]);
      if (r[RES_HAS_EVAL] != 0) fprintf(stderr, ", eval loss %.6f", r[RES_EVAL_LOSS]);
      fprintf(stderr, "\n");
    }
  }
  if (d->size > 1 && d->comm.sum_f64(d->comm.ctx, tab, (size_t)n * RES_COLS, err) != 0) goto done;
  double seconds = preft_now() - t0;
  if (d->rank == 0) {
    printf("trained %d adapters over %d rank%s in %.1f s\nsaved to %s/<name>\n", n, d->size,
           d->size > 1 ? "s" : "", seconds, a->out);
    if (a->json && write_summary(a, d, names, n, tab, seconds, err) != 0) goto done;
  }
  rc = 0;
done:
  preft_train_model_free(&tm);
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  free(tab);
  return rc;
}
