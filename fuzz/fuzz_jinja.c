/* fuzz_jinja.c - libFuzzer target: a chat template (lexer, parser,
 * evaluator, filters, methods) rendered by preft_jinja_render with a fixed
 * conversation like the ones the server passes. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "text/jinja.h"

static const char context_json[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"Hi 🙂 there\"},"
    " {\"role\": \"assistant\", \"content\": \"Hello!\", \"tool_calls\": [{\"type\": \"function\","
    " \"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1.5, \"y\": [true, null]}}}]},"
    " {\"role\": \"tool\", \"content\": \"42\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\","
    " \"text\": \"part\"}]}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"n\": "
    "9007199254740993}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static cJSON *ctx;
  if (!ctx && !(ctx = cJSON_Parse(context_json))) abort();
  char *tmpl = fuzz_cstr(data, size), *out = NULL;
  preft_error err;
  if (preft_jinja_render(tmpl, "fuzz.jinja", ctx, &out, &err) == 0) free(out);
  free(tmpl);
  return 0;
}
