/* log.c - leveled logging to stderr with a timestamp. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static preft_log_level g_level = PREFT_LOG_WARN;

void preft_log_set_level(preft_log_level level) { g_level = level; }
preft_log_level preft_log_get_level(void) { return g_level; }

void preft_log(preft_log_level level, const char *fmt, ...) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  if (level > g_level) return;
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%s %s] ", stamp, names[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
