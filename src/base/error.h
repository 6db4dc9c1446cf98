/* error.h - the error message every fallible preft function fills.
 *
 * Convention (all layers): a function that can fail returns 0 on success and
 * -1 on failure, and on failure writes one line into a caller-owned
 * preft_error naming what was wrong (file, tensor, field, byte offset).
 * On failure the function leaves its outputs unchanged or freed; it never
 * aborts on bad input. abort() is reserved for broken invariants (PREFT_ASSERT).
 */
#ifndef PREFT_BASE_ERROR_H
#define PREFT_BASE_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#include "preft/base.h" /* preft_error */

/* Formats the message into err (if err is non-NULL) and returns -1, so an
 * error path reads `return preft_fail(err, "...", ...);`. */
int preft_fail(preft_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (adds context on the way up). */
int preft_fail_prefix(preft_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Crashes loudly with file and line when an internal invariant is broken. */
#define PREFT_ASSERT(cond)                                                                \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "preft: internal error at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                            \
    }                                                                                     \
  } while (0)

/* malloc/calloc that abort on out-of-memory (an allocation failure for a
 * size we computed ourselves is not recoverable input error). Sizes that
 * come from files must be validated before they reach these. */
void *preft_xmalloc(size_t n);
void *preft_xcalloc(size_t count, size_t size);
void *preft_xrealloc(void *p, size_t n);
char *preft_xstrdup(const char *s);

#endif
