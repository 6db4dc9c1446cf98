#include "stats.h"

#include <math.h>
#include <stdlib.h>

double stats_mean(const double *v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += v[i];
  return s / n;
}

double stats_stddev(const double *v, size_t n) {
  double m = stats_mean(v, n), s = 0;
  for (size_t i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
  return sqrt(s / (n - 1));
}

double stats_median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2] + v[n / 2 + 1]) / 2;
}
