#include <stdio.h>
#include <stdlib.h>

#include "io.h"
#include "stats.h"

int main(void) {
  size_t n;
  double *v = read_numbers(stdin, &n);
  if (!v) {
    fprintf(stderr, "stats: out of memory\n");
    return 1;
  }
  if (n == 0) {
    fprintf(stderr, "stats: no numbers\n");
    free(v);
    return 1;
  }
  printf("count %zu\n", n);
  printf("mean %.4f\n", stats_mean(v, n));
  printf("stddev %.4f\n", stats_stddev(v, n));
  printf("median %.4f\n", stats_median(v, n));
  free(v);
  return 0;
}
