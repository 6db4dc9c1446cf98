/* stop.c - stop-string matching with hold-back for streaming (see stop.h). */
#include "engine/stop.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

void preft_stop_init(preft_stop_matcher *m, const char *const *stops, int n_stops) {
  memset(m, 0, sizeof *m);
  m->stops = stops;
  m->n_stops = n_stops;
  for (int i = 0; i < n_stops; i++) {
    size_t l = strlen(stops[i]);
    m->longest = l > m->longest ? l : m->longest;
  }
}

void preft_stop_free(preft_stop_matcher *m) {
  free(m->text);
  memset(m, 0, sizeof *m);
}

bool preft_stop_feed(preft_stop_matcher *m, const char *piece, size_t n, const char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  if (m->stopped) return true;
  if (m->len + n + 1 > m->cap) {
    m->cap = (m->len + n + 1) * 2;
    m->text = preft_xrealloc(m->text, m->cap);
  }
  memcpy(m->text + m->len, piece, n);
  m->len += n;
  m->text[m->len] = 0;
  /* A new match can only start after emitted (earlier text was checked)
   * and must overlap the new piece. */
  size_t from = m->emitted;
  size_t best = m->len + 1;
  for (int i = 0; i < m->n_stops; i++) {
    size_t sl = strlen(m->stops[i]);
    if (sl == 0) continue;
    char *hit = memmem(m->text + from, m->len - from, m->stops[i], sl);
    if (hit && (size_t)(hit - m->text) < best) best = (size_t)(hit - m->text);
  }
  if (best <= m->len) {
    *out = m->text + m->emitted;
    *out_len = best - m->emitted;
    m->emitted = best;
    m->stopped = true;
    return true;
  }
  /* Hold back the longest suffix that is a proper prefix of a stop string. */
  size_t hold = 0;
  for (int i = 0; i < m->n_stops; i++) {
    size_t sl = strlen(m->stops[i]);
    for (size_t k = sl > 1 ? sl - 1 : 0; k > hold; k--) {
      if (k <= m->len - m->emitted && !memcmp(m->text + m->len - k, m->stops[i], k)) {
        hold = k;
        break;
      }
    }
  }
  size_t safe = m->len - hold;
  *out = m->text + m->emitted;
  *out_len = safe - m->emitted;
  m->emitted = safe;
  return false;
}

void preft_stop_finish(preft_stop_matcher *m, const char **out, size_t *out_len) {
  *out = m->stopped ? NULL : m->text ? m->text + m->emitted : NULL;
  *out_len = m->stopped ? 0 : m->len - m->emitted;
  m->emitted = m->len;
}
