/* huge_alloc.h - large, long-lived buffers on transparent huge pages.
 *
 * A buffer of hundreds of MB that is touched block by block (the paged KV
 * cache) costs one page fault per 4 KiB page on first touch, and each one
 * is a trap into the kernel (on a virtual machine, through the
 * hypervisor): restoring 89 MB of KV blocks from the prefix cache's disk
 * tier took ~350 ms, most of it faults. Aligned to 2 MiB and advised
 * MADV_HUGEPAGE, the kernel backs it with 2 MiB pages where it can (THP
 * "always" or "madvise"): 512 times fewer faults and TLB entries. Pages
 * are still only committed when touched. Where THP is off the advice is
 * ignored and the buffer behaves as a malloc'd one.
 */
#ifndef PREFT_BASE_HUGE_ALLOC_H
#define PREFT_BASE_HUGE_ALLOC_H

#include <stddef.h>

/* bytes (rounded up to 2 MiB) aligned to 2 MiB, advised for huge pages;
 * NULL when the memory is not there. Release with free(). */
void *preft_alloc_huge(size_t bytes);

/* Buffers at least this big go on huge pages (preft_alloc_big), when
 * rounding them up to whole 2 MiB pages adds at most an eighth: a smaller
 * one would take a whole 2 MiB page once touched (thousands of small
 * adapters). */
#define PREFT_HUGE_MIN ((size_t)2 << 20)

/* A buffer read in long streams (model weights, an adapter's A and Bᵀ,
 * which a decode step with one adapter per sequence reads for every
 * sequence: on 4 KiB pages each page costs a TLB miss, and on a virtual
 * machine a nested page walk): preft_alloc_huge from PREFT_HUGE_MIN bytes
 * (within the rounding bound above), malloc otherwise. preft_alloc_big returns NULL when the memory is not
 * there, preft_xalloc_big exits as preft_xmalloc does. Release with free(). */
void *preft_alloc_big(size_t bytes);
void *preft_xalloc_big(size_t bytes);

/* count × size bytes zeroed, as preft_xcalloc, on huge pages where
 * preft_alloc_big would put them: the training pass's parameters,
 * gradients, optimizer state and activations (on 4 KiB pages a product's
 * rows of x and y, and a transpose's rows, each sit in another page: the
 * width-512 training pass ran 7-18% faster on huge pages,
 * docs/PERFORMANCE.md). Release with free(). */
void *preft_xcalloc_big(size_t count, size_t size);

#endif
