/* fuzz_yaml.c - libFuzzer target: the YAML subset reader of Terminal-Bench
 * 1.0 task files (src/tasks/yaml.c), and the JSON form of what it accepts. */
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "tasks/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  preft_tv *root;
  preft_error err;
  if (preft_yaml_parse((const char *)data, size, "fuzz.yaml", &root, &err) == 0) {
    cJSON_Delete(preft_tv_to_json(root, false));
    preft_tv_free(root);
  }
  return 0;
}
