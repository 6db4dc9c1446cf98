#include "io.h"

#include <stdlib.h>
#include <string.h>

double *read_numbers(FILE *f, size_t *n) {
  size_t cap = 16, len = 0;
  double *v = malloc(cap * sizeof *v);
  char line[256];
  while (v && fgets(line, sizeof line, f)) {
    if (strspn(line, " \t\r\n") == strlen(line)) continue;
    if (len == cap) {
      cap *= 2;
      double *g = realloc(v, cap * sizeof *v);
      if (!g) {
        free(v);
        return NULL;
      }
      v = g;
    }
    v[len++] = strtod(line, NULL);
  }
  *n = len;
  return v;
}
