#ifndef STATS_H
#define STATS_H
#include <stddef.h>

double stats_mean(const double *v, size_t n);
double stats_stddev(const double *v, size_t n);
double stats_median(double *v, size_t n);

/* qsort comparator for doubles */
int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
#endif
