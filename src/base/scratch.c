/* scratch.c - see scratch.h. */
#include "base/scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/huge_alloc.h"

/* What precedes every block's user pointer (in the 64 bytes before it). */
typedef struct {
  void *raw;  /* what preft_xalloc_big returned */
  size_t cap; /* usable bytes from the user pointer */
} block_head;

#define HEAD_ROOM 64 /* the user pointer is 64-byte aligned, the head in the 64 bytes before it */

typedef struct {
  void *blk[PREFT_SCRATCH_KEEP]; /* user pointers, or NULL */
  unsigned long age[PREFT_SCRATCH_KEEP];
  size_t bytes; /* caps of the cached blocks together */
  unsigned long clock;
  int registered; /* the exit destructor knows this thread */
} scratch_cache;

static _Thread_local scratch_cache cache;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static block_head *head_of(void *p) { return (block_head *)((char *)p - sizeof(block_head)); }

static void free_block(void *p) { free(head_of(p)->raw); }

void preft_scratch_release(void) {
  for (int i = 0; i < PREFT_SCRATCH_KEEP; i++)
    if (cache.blk[i]) {
      free_block(cache.blk[i]);
      cache.blk[i] = NULL;
    }
  cache.bytes = 0;
}

size_t preft_scratch_cached(int *blocks) {
  if (blocks) {
    *blocks = 0;
    for (int i = 0; i < PREFT_SCRATCH_KEEP; i++) *blocks += cache.blk[i] != NULL;
  }
  return cache.bytes;
}

static void on_thread_exit(void *unused) {
  (void)unused;
  preft_scratch_release();
}

static void make_exit_key(void) { (void)pthread_key_create(&exit_key, on_thread_exit); }

void *preft_scratch_get(size_t bytes) {
  if (bytes == 0) bytes = 1;
  int best = -1;
  for (int i = 0; i < PREFT_SCRATCH_KEEP; i++) { /* the smallest cached block that fits, not twice too big */
    if (!cache.blk[i]) continue;
    size_t cap = head_of(cache.blk[i])->cap;
    if (cap >= bytes && cap / 2 <= bytes && (best < 0 || cap < head_of(cache.blk[best])->cap)) best = i;
  }
  if (best >= 0) {
    void *p = cache.blk[best];
    cache.blk[best] = NULL;
    cache.bytes -= head_of(p)->cap;
    return p;
  }
  char *raw = preft_xalloc_big(bytes + 2 * HEAD_ROOM);
  char *p = (char *)(((uintptr_t)raw + 2 * HEAD_ROOM - 1) / HEAD_ROOM * HEAD_ROOM);
  *head_of(p) = (block_head){.raw = raw, .cap = bytes};
  return p;
}

void preft_scratch_put(void *p) {
  if (!p) return;
  size_t cap = head_of(p)->cap;
  if (cap > PREFT_SCRATCH_BYTES) {
    free_block(p);
    return;
  }
  if (!cache.registered) { /* free this thread's blocks when it exits */
    (void)pthread_once(&exit_once, make_exit_key);
    (void)pthread_setspecific(exit_key, &cache);
    cache.registered = 1;
  }
  /* make room: the least recently returned blocks go first */
  for (;;) {
    int n = 0, oldest = -1, empty = -1;
    for (int i = 0; i < PREFT_SCRATCH_KEEP; i++) {
      if (!cache.blk[i]) {
        empty = i;
        continue;
      }
      n++;
      if (oldest < 0 || cache.age[i] < cache.age[oldest]) oldest = i;
    }
    if (empty >= 0 && cache.bytes + cap <= PREFT_SCRATCH_BYTES) {
      cache.blk[empty] = p;
      cache.age[empty] = ++cache.clock;
      cache.bytes += cap;
      return;
    }
    if (n == 0) break; /* cannot happen: cap <= PREFT_SCRATCH_BYTES */
    cache.bytes -= head_of(cache.blk[oldest])->cap;
    free_block(cache.blk[oldest]);
    cache.blk[oldest] = NULL;
  }
  free_block(p);
}
