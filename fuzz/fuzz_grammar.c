/* fuzz_grammar.c - libFuzzer target: the constrained-decoding front-ends.
 * The first byte picks what the rest is: GBNF (0), a regular expression
 * (1), a JSON schema (2), each compiled and then fed its own text as bytes
 * through a matcher; or a model reply (3, the second byte picks the
 * tool-call family) parsed for tool calls whole and byte by byte. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"
#include "engine/grammar_front.h"
#include "fuzz_util.h"
#include "server/tool_calls.h"

static void run_gbnf(const char *text, const char *feed, size_t n) {
  preft_grammar *g;
  preft_error err;
  if (preft_grammar_parse(text, &g, &err) != 0) return;
  preft_gmatch *m = preft_gmatch_new(g, NULL, NULL, 0);
  for (size_t i = 0; i < n && preft_gmatch_accept_bytes(m, feed + i, 1); i++) preft_gmatch_can_end(m);
  preft_gmatch_free(m);
  preft_grammar_unref(g);
}

static void run_tools(srv_tool_family fam, const char *s, size_t n) {
  for (size_t step = 1; step <= n + 1; step += n + 1 > 1 ? n : 1) {
    srv_tool_stream t;
    preft_srv_tool_stream_init(&t, fam);
    srv_buf content = {0};
    for (size_t i = 0; i < n; i += step)
      preft_srv_tool_stream_feed(&t, s + i, n - i < step ? n - i : step, &content);
    preft_srv_tool_stream_finish(&t, &content);
    preft_srv_buf_free(&content);
    preft_srv_tool_stream_free(&t);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 1 << 16) return 0;
  char *s = malloc(size);
  memcpy(s, data + 1, size - 1);
  s[size - 1] = 0;
  size_t n = strlen(s); /* up to the first NUL */
  preft_error err;
  char *text = NULL;
  switch (data[0] % 4) {
    case 0:
      run_gbnf(s, s, n);
      break;
    case 1:
      if (preft_gbnf_from_regex(s, &text, &err) == 0) run_gbnf(text, s, n);
      break;
    case 2: {
      cJSON *j = cJSON_ParseWithLength(s, n);
      if (j && preft_gbnf_from_json_schema(j, "schema", &text, &err) == 0) run_gbnf(text, s, n);
      cJSON_Delete(j);
      break;
    }
    default:
      if (size >= 2) run_tools((srv_tool_family)(data[1] % 3), s + 1, size - 2);
      break;
  }
  free(text);
  free(s);
  return 0;
}
