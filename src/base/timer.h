/* timer.h - monotonic wall-clock time in seconds. */
#ifndef PREFT_BASE_TIMER_H
#define PREFT_BASE_TIMER_H
#include <time.h>

static inline double preft_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif
