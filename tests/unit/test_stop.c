/* test_stop.c - stop strings over streamed pieces: the released text is
 * exactly the generated text cut before the first stop string, however the
 * text is split into pieces, and nothing that could begin a stop string is
 * released early. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "engine/stop.h"

/* Feeds text in pieces of `step` bytes; returns what was released. */
static char *run(const char *text, size_t step, const char *const *stops, int n, bool *stopped) {
  preft_stop_matcher m;
  preft_stop_init(&m, stops, n);
  size_t len = strlen(text), out_len = 0;
  char *out = calloc(1, len + 1);
  *stopped = false;
  for (size_t i = 0; i < len && !*stopped; i += step) {
    size_t k = len - i < step ? len - i : step;
    const char *piece;
    size_t plen;
    *stopped = preft_stop_feed(&m, text + i, k, &piece, &plen);
    if (plen) memcpy(out + out_len, piece, plen);
    out_len += plen;
  }
  const char *tail;
  size_t tlen;
  preft_stop_finish(&m, &tail, &tlen);
  if (tlen) memcpy(out + out_len, tail, tlen);
  out[out_len + tlen] = 0;
  preft_stop_free(&m);
  return out;
}

static void stop_string_cuts_text_whatever_the_piece_size(void **s) {
  const char *stops[] = {"</s>", "\n\nUser:"};
  for (size_t step = 1; step <= 9; step++) {
    bool stopped;
    char *out = run("Hello there.\n\nUser: more", step, stops, 2, &stopped);
    assert_true(stopped);
    assert_string_equal(out, "Hello there.");
    free(out);
    out = run("a</b></s>tail", step, stops, 2, &stopped);
    assert_true(stopped);
    assert_string_equal(out, "a</b>");
    free(out);
  }
}

static void text_without_stop_is_released_whole(void **s) {
  const char *stops[] = {"STOP"};
  for (size_t step = 1; step <= 5; step++) {
    bool stopped;
    char *out = run("no ST here, ST-OP neither, ends in STO", step, stops, 1, &stopped);
    assert_false(stopped);
    assert_string_equal(out, "no ST here, ST-OP neither, ends in STO");
    free(out);
  }
}

static void possible_prefix_is_held_back(void **s) {
  const char *stops[] = {"END"};
  preft_stop_matcher m;
  preft_stop_init(&m, stops, 1);
  const char *piece;
  size_t n;
  assert_false(preft_stop_feed(&m, "abcE", 4, &piece, &n));
  assert_int_equal(n, 3); /* "E" held: it may start "END" */
  assert_memory_equal(piece, "abc", 3);
  assert_false(preft_stop_feed(&m, "Nx", 2, &piece, &n));
  assert_int_equal(n, 3); /* "ENx" cannot be "END" */
  assert_memory_equal(piece, "ENx", 3);
  assert_true(preft_stop_feed(&m, "EN", 2, &piece, &n) == false);
  assert_true(preft_stop_feed(&m, "D!", 2, &piece, &n));
  assert_int_equal(n, 0);
  preft_stop_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stop_string_cuts_text_whatever_the_piece_size),
      cmocka_unit_test(text_without_stop_is_released_whole),
      cmocka_unit_test(possible_prefix_is_held_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
