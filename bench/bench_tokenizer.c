/* bench_tokenizer.c - encode throughput (MB/s, one core) and load time of a
 * Hugging Face tokenizer on text files; prints a checksum of the ids so the
 * run can be compared with the JavaScript reference on the same input
 * (bench/tokenizer_vs_js.sh).
 *
 * usage: bench_tokenizer TOKENIZER_PATH FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/timer.h"
#include "text/tokenizer.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_tokenizer TOKENIZER_PATH FILE...\n");
    return 2;
  }
  preft_error err;
  preft_tokenizer *t;
  double t0 = preft_now();
  if (preft_tokenizer_load(&t, argv[1], &err)) {
    fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
    return 1;
  }
  double load_ms = 1e3 * (preft_now() - t0);
  int nf = argc - 2;
  char **texts = calloc((size_t)nf, sizeof *texts);
  size_t *lens = calloc((size_t)nf, sizeof *lens), bytes = 0;
  for (int i = 0; i < nf; i++) {
    if (preft_read_file(argv[i + 2], &texts[i], &lens[i], &err)) {
      fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
      return 1;
    }
    bytes += lens[i];
  }
  double best = 1e30, first = 0;
  size_t ntok = 0;
  uint32_t sum = 2166136261u;
  for (int pass = 0; pass < 3; pass++) {
    double s = preft_now();
    size_t nt = 0;
    uint32_t h = 2166136261u;
    for (int i = 0; i < nf; i++) {
      int32_t *ids;
      size_t n;
      if (preft_tokenizer_encode(t, texts[i], lens[i], false, &ids, &n, &err)) {
        fprintf(stderr, "bench_tokenizer: %s: %s\n", argv[i + 2], err.msg);
        return 1;
      }
      for (size_t k = 0; k < n; k++) h = (h ^ (uint32_t)ids[k]) * 16777619u;
      nt += n;
      free(ids);
    }
    double dt = preft_now() - s;
    if (pass == 0) first = dt;
    if (dt < best) best = dt;
    ntok = nt;
    sum = h;
  }
  printf(
      "preft: files=%d bytes=%zu tokens=%zu checksum=%08x load_ms=%.1f first_pass_MBps=%.2f best_MBps=%.2f\n",
      nf, bytes, ntok, sum, load_ms, bytes / 1e6 / first, bytes / 1e6 / best);
  for (int i = 0; i < nf; i++) free(texts[i]);
  free(texts);
  free(lens);
  preft_tokenizer_free(t);
  return 0;
}
