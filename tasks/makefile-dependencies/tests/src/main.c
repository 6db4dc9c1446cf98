#include <stdio.h>
#include <string.h>

#include "util.h"
#include "version.h"

extern const int table[];
extern const int table_len;

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("app %s\n", APP_VERSION);
    return 0;
  }
  int s = 0;
  for (int i = 0; i < table_len; i++) s = add(s, table[i]);
  printf("%s %d\n", GREETING, s);
  return 0;
}
