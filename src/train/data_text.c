/* data_text.c - pretraining examples from plain text files: documents
 * encoded with special tokens, each followed by EOS, concatenated and cut
 * into windows of T+1 tokens (see data.h). */
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "train/data.h"

int preft_dataset_load_text(preft_dataset *ds, const char *const *paths, int n_paths,
                            const preft_data_opts *o, preft_error *err) {
  if (!o->tok) return preft_fail(err, "pretraining on text needs a tokenizer");
  int T = o->max_tokens;
  int *stream = NULL;
  size_t n = 0, cap = 0;
  for (int f = 0; f < n_paths; f++) {
    char *text;
    size_t size;
    if (preft_read_file(paths[f], &text, &size, err) != 0) {
      free(stream);
      return -1;
    }
    int32_t *ids;
    size_t k;
    int rc = preft_tokenizer_encode(o->tok, text, size, true, &ids, &k, err);
    free(text);
    if (rc != 0) {
      free(stream);
      return preft_fail_prefix(err, "%s", paths[f]);
    }
    if (n + k + 1 > cap) {
      cap = (n + k + 1) * 2;
      stream = preft_xrealloc(stream, sizeof(int) * cap);
    }
    for (size_t i = 0; i < k; i++) {
      if (ids[i] >= o->vocab) {
        free(ids);
        free(stream);
        return preft_fail(err, "%s: token id %d is outside the model's vocabulary of %d", paths[f], ids[i],
                          o->vocab);
      }
      stream[n++] = ids[i];
    }
    free(ids);
    if (o->eos_id >= 0) stream[n++] = o->eos_id;
  }
  uint8_t *ones = preft_xmalloc((size_t)T + 1);
  memset(ones, 1, (size_t)T + 1);
  for (size_t s = 0; s + (size_t)T + 1 <= n; s += (size_t)T)
    preft_dataset_add(ds, stream + s, ones, T + 1, 0, 0);
  free(ones);
  free(stream);
  if (ds->n == 0) return preft_fail(err, "the text holds %zu tokens, fewer than one window of %d", n, T + 1);
  return 0;
}
