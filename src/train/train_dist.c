/* train_dist.c - how work is split over ranks (see train_dist.h). */
#include "train/train_dist.h"

void preft_dist_share(int n, int rank, int size, int *lo, int *hi) {
  int base = n / size, extra = n % size;
  *lo = rank * base + (rank < extra ? rank : extra);
  *hi = *lo + base + (rank < extra ? 1 : 0);
}
