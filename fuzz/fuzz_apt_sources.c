/* fuzz_apt_sources.c - libFuzzer target: apt's source lists
 * (src/tasks/apt_sources.c). The first byte picks the format (even: the
 * one-line .list format, odd: deb822 .sources); the mirror is then picked
 * from whatever was accepted. */
#include <stdlib.h>

#include "fuzz_util.h"
#include "tasks/apt_sources.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  bool deb822 = data[0] & 1;
  preft_apt_sources a = {0};
  preft_error err;
  const char *text = (const char *)data + 1;
  int rc = deb822 ? preft_apt_sources_parse_deb822(text, size - 1, "fuzz.sources", &a, &err)
                  : preft_apt_sources_parse_list(text, size - 1, "fuzz.list", &a, &err);
  if (rc == 0) {
    char *uri, *suite;
    if (preft_apt_sources_debian_mirror(&a, &uri, &suite, &err) == 0) {
      free(uri);
      free(suite);
    }
  }
  preft_apt_sources_free(&a);
  return 0;
}
