/* huge_alloc.c - see huge_alloc.h. */
#include "base/huge_alloc.h"

#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *preft_alloc_huge(size_t bytes) {
  size_t size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
  if (size < bytes) return NULL; /* overflow */
  void *p = NULL;
  if (posix_memalign(&p, HUGE_PAGE, size ? size : HUGE_PAGE) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  (void)madvise(p, size, MADV_HUGEPAGE); /* advice only: without THP, 4 KiB pages */
#endif
  return p;
}
