/* fuzz_toml.c - libFuzzer target: the strict TOML reader of task files
 * (src/tasks/toml.c), and the JSON form of whatever it accepts. */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "tasks/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  preft_tv *root;
  preft_error err;
  if (preft_toml_parse((const char *)data, size, "fuzz.toml", &root, &err) == 0) {
    cJSON_Delete(preft_tv_to_json(root, true));
    preft_tv_free(root);
  }
  return 0;
}
