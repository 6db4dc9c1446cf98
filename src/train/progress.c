/* progress.c - a one-line progress bar on stderr: step, bar, loss, tokens/s,
 * ETA. On a terminal it redraws in place; otherwise it prints a line at
 * most every 10 seconds (and when forced), so logs stay readable. */
#include <stdio.h>
#include <unistd.h>

#include "base/timer.h"
#include "train/trainer.h"

void preft_progress_init(preft_progress *p, int64_t total, bool quiet) {
  p->total = total;
  p->t0 = preft_now();
  p->last = 0;
  p->tty = isatty(2);
  p->quiet = quiet;
}

static void fmt_time(char *buf, size_t n, double s) {
  if (s < 0 || s > 1e7)
    snprintf(buf, n, "?");
  else if (s >= 3600)
    snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
  else if (s >= 60)
    snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
  else
    snprintf(buf, n, "%.0fs", s);
}

void preft_progress_update(preft_progress *p, int64_t step, double loss, double tokens_per_s, bool force) {
  if (p->quiet) return;
  double now = preft_now();
  double gap = p->tty ? 0.1 : 10.0;
  if (!force && step < p->total && now - p->last < gap) return;
  p->last = now;
  double el = now - p->t0, eta = step > 0 ? el / (double)step * (double)(p->total - step) : -1;
  char bar[31], e[32];
  int fill = p->total > 0 ? (int)(30 * step / p->total) : 0;
  for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
  bar[30] = 0;
  fmt_time(e, sizeof e, eta);
  fprintf(stderr, "%sstep %lld/%lld [%s] loss %.4f | %.0f tok/s | ETA %s%s", p->tty ? "\r" : "",
          (long long)step, (long long)p->total, bar, loss, tokens_per_s, e, p->tty ? "   " : "\n");
  fflush(stderr);
}

void preft_progress_finish(preft_progress *p) {
  if (!p->quiet && p->tty) fprintf(stderr, "\n");
}
