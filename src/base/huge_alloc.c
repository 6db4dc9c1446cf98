/* huge_alloc.c - see huge_alloc.h. */
#include "base/huge_alloc.h"

#include "base/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *preft_alloc_huge(size_t bytes) {
  if (bytes > SIZE_MAX - HUGE_PAGE) return NULL;
  size_t size = bytes ? (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE : HUGE_PAGE;
  void *p = NULL;
  if (posix_memalign(&p, HUGE_PAGE, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  (void)madvise(p, size, MADV_HUGEPAGE); /* advice only: without THP, 4 KiB pages */
#endif
  return p;
}

/* Huge pages when the buffer is big and rounding it up to whole 2 MiB
 * pages adds at most an eighth (a 2.1 MB buffer would take 4 MB). */
static int worth_huge(size_t bytes) {
  if (bytes < PREFT_HUGE_MIN || bytes > SIZE_MAX - HUGE_PAGE) return 0;
  size_t rounded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
  return rounded - bytes <= bytes / 8;
}

void *preft_alloc_big(size_t bytes) {
  return worth_huge(bytes) ? preft_alloc_huge(bytes) : malloc(bytes ? bytes : 1);
}

void *preft_xalloc_big(size_t bytes) {
  if (!worth_huge(bytes)) return preft_xmalloc(bytes);
  void *p = preft_alloc_huge(bytes);
  return p ? p : preft_xmalloc(bytes); /* exits with preft_xmalloc's message if the memory is not there */
}

void *preft_xcalloc_big(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return preft_xcalloc(count, size); /* exits: no such memory */
  size_t bytes = count * size;
  void *p = worth_huge(bytes) ? preft_alloc_huge(bytes) : NULL;
  if (!p) return preft_xcalloc(count, size);
  memset(p, 0, bytes);
  return p;
}
