/* scratch.h - big temporaries kept for reuse instead of freed.
 *
 * A training pass at BF16 precision makes a few hundred temporaries of
 * 0.1-300 MB (rounded copies of weights, transposed operands, x rounded
 * for the products) and frees each right after its product. Returned to
 * the system (malloc hands big blocks back), every one of their pages is
 * faulted in again by the next: 8,750 faults and 13% system time per pass
 * at width 512 (docs/PERFORMANCE.md). A block handed back with
 * preft_scratch_put stays in its thread's cache and the next
 * preft_scratch_get of about its size takes it, pages already mapped, the
 * way a deep-learning framework's caching allocator keeps device memory.
 *
 * Per thread: at most PREFT_SCRATCH_KEEP blocks and PREFT_SCRATCH_BYTES
 * bytes cached (the least recently returned go first); a block is reused
 * for a request of at least half its size. Blocks are 64-byte aligned and
 * on huge pages when big (huge_alloc.h). The cache of a thread is freed
 * when the thread exits. Not for memory that outlives the function that
 * took it: a cached block is not memory a caller can rely on being
 * returned to the system.
 */
#ifndef PREFT_BASE_SCRATCH_H
#define PREFT_BASE_SCRATCH_H

#include <stddef.h>

#define PREFT_SCRATCH_KEEP 8                    /* blocks cached per thread */
#define PREFT_SCRATCH_BYTES ((size_t)256 << 20) /* bytes cached per thread */

/* bytes (at least 1) of uninitialised memory, 64-byte aligned; exits as
 * preft_xmalloc does when there is none. Release with preft_scratch_put. */
void *preft_scratch_get(size_t bytes);
/* Hands p (from preft_scratch_get, or NULL) back to this thread's cache. */
void preft_scratch_put(void *p);
/* Frees this thread's cached blocks now (tests; thread exit does it). */
void preft_scratch_release(void);
/* Bytes this thread has cached; *blocks (if not NULL) their count. */
size_t preft_scratch_cached(int *blocks);

#endif
