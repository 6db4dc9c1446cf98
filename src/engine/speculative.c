/* speculative.c - prompt-lookup drafting (see speculative.h). */
#include "engine/speculative.h"

#include <string.h>

preft_speculation preft_spec_defaults(const preft_speculation *s) {
  preft_speculation d = *s;
  if (d.k <= 0) d.k = 4;
  if (d.ngram_max <= 0) d.ngram_max = 3;
  if (d.ngram_min <= 0) d.ngram_min = 2;
  if (d.ngram_min > d.ngram_max) d.ngram_min = d.ngram_max;
  return d;
}

int preft_ngram_draft(const int *tokens, int n_tokens, int ngram_max, int ngram_min, int k, int *draft) {
  if (k <= 0) return 0;
  for (int n = ngram_max; n >= ngram_min && n >= 1; n--) {
    if (n >= n_tokens) continue;
    const int *suffix = tokens + n_tokens - n;
    /* latest start i < n_tokens - n whose n tokens equal the suffix and
     * that something follows */
    for (int i = n_tokens - n - 1; i >= 0; i--) {
      if (tokens[i] != suffix[0] || memcmp(tokens + i, suffix, sizeof(int) * (size_t)n) != 0) continue;
      int from = i + n, got = n_tokens - from < k ? n_tokens - from : k;
      memcpy(draft, tokens + from, sizeof(int) * (size_t)got);
      return got;
    }
  }
  return 0;
}
