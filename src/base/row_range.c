/* row_range.c - preft_row_range (row_range.h). */
#include "base/row_range.h"

#include "base/threadpool.h"

static uint64_t pack(int front, int back) { return (uint64_t)(uint32_t)back << 32 | (uint32_t)front; }

static int round_down(int v, int align) { return v / align * align; }

static int round_up(int v, int align) { return (v + align - 1) / align * align; }

/* Whole groups of v rows, at least one group. */
static int whole_groups(int v, int align) {
  return round_down(v, align) > align ? round_down(v, align) : align;
}

void preft_row_range_init(preft_row_range *r, int start, int end, int align) {
  const int n = end - start;
  r->start = start;
  r->align = align;
  /* the owner's pieces are rounded up to whole groups, a helper's cut
   * up too (so at most steal rows) */
  r->first_piece = n - n / 4;
  r->piece = whole_groups(n / 8, align);
  r->steal = whole_groups(n / 16, align);
  atomic_init(&r->left, pack(start, end));
}

/* Takes the owner's next piece (from_back 0) or a helper's (1) off what is
 * left, [front, back), by moving one end to a multiple of align (or to the
 * other end). */
static int take(preft_row_range *r, int from_back, int *r0, int *r1) {
  uint64_t v = atomic_load_explicit(&r->left, memory_order_acquire);
  for (;;) {
    const int front = (int)(uint32_t)v, back = (int)(v >> 32);
    if (front >= back) return 0;
    int cut;
    if (from_back) {
      cut = round_up(back - r->steal, r->align);
      if (cut >= back) cut = round_down(back - 1, r->align); /* back is inside a group: its part */
      if (cut < front) cut = front;
    } else {
      cut = round_up(front + (front == r->start ? r->first_piece : r->piece), r->align);
      if (cut > back) cut = back;
    }
    const uint64_t next = from_back ? pack(front, cut) : pack(cut, back);
    if (atomic_compare_exchange_weak_explicit(&r->left, &v, next, memory_order_acq_rel,
                                              memory_order_acquire)) {
      *r0 = from_back ? cut : front;
      *r1 = from_back ? back : cut;
      return 1;
    }
  }
}

int preft_row_range_take_front(preft_row_range *r, int *r0, int *r1) { return take(r, 0, r0, r1); }

int preft_row_range_take_back(preft_row_range *r, int *r0, int *r1) { return take(r, 1, r0, r1); }

typedef struct {
  preft_row_range *ranges; /* NULL: unbalanced, task t is rows [t span, (t + 1) span) */
  int n, n_tasks, span;
  preft_range_fn fn;
  void *ctx;
} balanced_run;

static void balanced_task(void *p, int task, int thread) {
  (void)thread;
  const balanced_run *b = p;
  int r0, r1;
  if (!b->ranges) {
    r0 = task * b->span;
    r1 = r0 + b->span < b->n ? r0 + b->span : b->n;
    b->fn(b->ctx, r0, r1);
    return;
  }
  while (preft_row_range_take_front(&b->ranges[task], &r0, &r1)) b->fn(b->ctx, r0, r1);
  for (int d = 1; d < b->n_tasks; d++)
    while (preft_row_range_take_back(&b->ranges[(task + d) % b->n_tasks], &r0, &r1)) b->fn(b->ctx, r0, r1);
}

void preft_pool_run_balanced(preft_pool *pool, int n, int n_tasks, int align, preft_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (n_tasks <= 1 || preft_pool_size(pool) <= 1) {
    fn(ctx, 0, n);
    return;
  }
  const int span = ((n + n_tasks - 1) / n_tasks + align - 1) / align * align;
  balanced_run b = {NULL, n, (n + span - 1) / span, span, fn, ctx};
  preft_row_range ranges[PREFT_ROW_RANGES_MAX];
  if (b.n_tasks <= PREFT_ROW_RANGES_MAX) {
    for (int t = 0; t < b.n_tasks; t++)
      preft_row_range_init(&ranges[t], t * span, (t + 1) * span < n ? (t + 1) * span : n, align);
    b.ranges = ranges;
  }
  preft_pool_run(pool, b.n_tasks, balanced_task, &b);
}
