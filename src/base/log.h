/* log.h - leveled logging to stderr. The level is process-wide, set once by
 * the CLI (--verbose / --quiet) before work starts. */
#ifndef PREFT_BASE_LOG_H
#define PREFT_BASE_LOG_H

#include "preft/base.h" /* preft_log_level, preft_log_set_level / _get_level */

void preft_log(preft_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define PREFT_INFO(...) preft_log(PREFT_LOG_INFO, __VA_ARGS__)
#define PREFT_WARN(...) preft_log(PREFT_LOG_WARN, __VA_ARGS__)
#define PREFT_DEBUG(...) preft_log(PREFT_LOG_DEBUG, __VA_ARGS__)

#endif
