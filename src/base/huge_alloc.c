/* huge_alloc.c - see huge_alloc.h. */
#include "base/huge_alloc.h"

#include <stdint.h>
#include <stdlib.h>
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
