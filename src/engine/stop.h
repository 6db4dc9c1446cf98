/* stop.h - stop strings over streamed text, as OpenAI-compatible servers
 * apply them: generation ends at the first occurrence of any stop string,
 * and the text returned ends just before it. While streaming, text that
 * could still be the start of a stop string is held back until it cannot.
 */
#ifndef PREFT_ENGINE_STOP_H
#define PREFT_ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct preft_stop_matcher {
  const char *const *stops; /* borrowed */
  int n_stops;
  size_t longest;
  char *text; /* everything generated so far */
  size_t len, cap;
  size_t emitted; /* bytes of text already released */
  bool stopped;
} preft_stop_matcher;

void preft_stop_init(preft_stop_matcher *m, const char *const *stops, int n_stops);
void preft_stop_free(preft_stop_matcher *m);

/* Appends newly decoded text. Sets *out and *out_len to the text that is now
 * safe to release (a pointer into the matcher, valid until the next call).
 * Returns true when a stop string was found (the released text then ends
 * right before it and nothing more will be released). */
bool preft_stop_feed(preft_stop_matcher *m, const char *piece, size_t n, const char **out, size_t *out_len);

/* At the end of generation: releases whatever was held back. */
void preft_stop_finish(preft_stop_matcher *m, const char **out, size_t *out_len);

#endif
