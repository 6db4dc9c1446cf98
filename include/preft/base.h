/* preft/base.h - what every part of the preft API shares: the export macro,
 * the error message of fallible calls, the thread pool, the log level.
 *
 * Errors: a fallible preft function returns 0 on success and -1 (or another
 * negative code it documents) on failure, and on failure writes one line into
 * a caller-owned preft_error naming what was wrong (file, tensor, field, byte
 * offset). Outputs are left unchanged or freed on failure; bad input never
 * aborts the process.
 *
 *   preft_error err;
 *   preft_model *m;
 *   if (preft_model_load(&m, "models/llama", &err) != 0) {
 *     fprintf(stderr, "%s\n", err.msg);
 *     return 1;
 *   }
 *
 * Threads: the compute kernels run on a preft_pool the caller creates and
 * owns (one per thread of control; a NULL pool runs on the calling thread).
 *
 *   preft_pool *pool = preft_pool_create(0);  // one worker per online CPU
 *   ...
 *   preft_pool_free(pool);
 *
 * Ownership: every object has one owner and a *_create / *_load / *_new call
 * paired with one *_free (or *_stop); strings and arrays a function returns
 * through an out-parameter are heap memory the caller frees with free().
 */
#ifndef PREFT_PUBLIC_BASE_H
#define PREFT_PUBLIC_BASE_H

#include <stddef.h>

/* Marks the functions of the public API: the only symbols libpreft.so
 * exports (the library is built with -fvisibility=hidden). */
#if defined(__GNUC__)
#define PREFT_API __attribute__((visibility("default")))
#else
#define PREFT_API
#endif

typedef struct preft_error {
  char msg[1024];
} preft_error;

/* ---- threads ------------------------------------------------------------------ */

typedef struct preft_pool preft_pool;

/* A fixed pool of worker threads; n_threads <= 0 means one per online CPU.
 * The calling thread works too, as thread 0. */
PREFT_API preft_pool *preft_pool_create(int n_threads);
PREFT_API void preft_pool_free(preft_pool *pool);
/* Threads of the pool (1 for NULL). */
PREFT_API int preft_pool_size(const preft_pool *pool);

/* ---- logging ------------------------------------------------------------------ */

/* Messages go to stderr; the level is process-wide (default: WARN), set once
 * before work starts. */
typedef enum { PREFT_LOG_ERROR = 0, PREFT_LOG_WARN, PREFT_LOG_INFO, PREFT_LOG_DEBUG } preft_log_level;

PREFT_API void preft_log_set_level(preft_log_level level);
PREFT_API preft_log_level preft_log_get_level(void);

#endif
