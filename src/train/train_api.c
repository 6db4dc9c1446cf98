/* train_api.c - the public constructors of the trainable model and adapter
 * (preft/train.h): heap-allocated wrappers of the by-value init / free
 * pairs of train_model.h, which the opaque public types need. */
#include "preft/train.h"

#include <stdlib.h>

#include "base/error.h"
#include "train/train_model.h"

preft_train_model *preft_train_model_create(const preft_model *m, bool with_grads) {
  preft_train_model *tm = preft_xcalloc(1, sizeof *tm);
  preft_train_model_from(tm, m, with_grads);
  return tm;
}

void preft_train_model_destroy(preft_train_model *tm) {
  if (!tm) return;
  preft_train_model_free(tm);
  free(tm);
}

int preft_train_adapter_create(preft_train_adapter **out, const preft_model_config *cfg,
                               const preft_train_adapter_opts *o, preft_error *err) {
  preft_train_adapter *ad = preft_xcalloc(1, sizeof *ad);
  if (preft_train_adapter_init(ad, cfg, o, err) != 0) {
    free(ad);
    return -1;
  }
  *out = ad;
  return 0;
}

void preft_train_adapter_destroy(preft_train_adapter *ad) {
  if (!ad) return;
  preft_train_adapter_free(ad);
  free(ad);
}
