/* gemm_split.c - see gemm_split.h. */
#include "tensor/gemm_split.h"

#include <stdint.h>
#include <stdlib.h>

#define SPLIT_SLACK 1.05 /* splits within 5% of the best cost count as even */

static int cdiv(int a, int b) { return (a + b - 1) / b; }

double preft_split_cost(int n, int mc, int panels, int ppt, int threads) {
  const int tasks = cdiv(n, mc) * cdiv(panels, ppt);
  return (double)cdiv(tasks, threads) * mc * ppt * threads / ((double)n * panels);
}

/* The search of preft_split_blocks: a first pass finds the best cost, a
 * second the preferred split within SPLIT_SLACK of it. */
typedef struct {
  int n, panels, want, threads, rb0, cc0;
  double best;
  int64_t best_key; /* < 0: none yet */
  int mc, ppt;
} blocks_search;

static void consider(blocks_search *s, int pass, int rb, int mc, int cc, int ppt) {
  const double c = preft_split_cost(s->n, mc, s->panels, ppt, s->threads);
  if (pass == 0) {
    if (c < s->best) s->best = c;
    return;
  }
  if (c > s->best * SPLIT_SLACK) return;
  /* smaller is better: the distance to the first choice, then to want, then -mc */
  const int64_t key = ((int64_t)(abs(rb - s->rb0) + abs(cc - s->cc0)) << 40) +
                      ((int64_t)abs(rb * cc - s->want) << 20) + (INT64_C(1) << 20) - 1 - mc;
  if (s->best_key < 0 || key < s->best_key) {
    s->best_key = key;
    s->mc = mc;
    s->ppt = ppt;
  }
}

void preft_split_blocks(int n, int mr, int mc_max, int panels, int want, int threads, int *mc, int *ppt) {
  if (threads <= 1 || n <= 0 || panels <= 0) return;
  blocks_search s = {.n = n,
                     .panels = panels,
                     .want = want,
                     .threads = threads,
                     .rb0 = cdiv(n, *mc),
                     .cc0 = cdiv(panels, *ppt),
                     .best = preft_split_cost(n, *mc, panels, *ppt, threads),
                     .best_key = -1,
                     .mc = *mc,
                     .ppt = *ppt};
  const int tiles = cdiv(n, mr) * panels;
  const int rb_most = cdiv(n, mr) < 2 * s.rb0 + 2 ? cdiv(n, mr) : 2 * s.rb0 + 2;
  const int cc_most = panels < 4 * want ? panels : 4 * want;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) consider(&s, 1, s.rb0, *mc, s.cc0, *ppt); /* the first choice, if still in the running */
    for (int rb = 1; rb <= rb_most; rb++) {
      const int m_c = cdiv(cdiv(n, rb), mr) * mr;
      if (cdiv(n, m_c) != rb || m_c > mc_max + mc_max / 8) continue;
      for (int cc = 1; cc <= cc_most; cc++) {
        const int p = cdiv(panels, cc);
        if (cdiv(panels, p) != cc || (rb * cc < threads && tiles >= threads)) continue;
        consider(&s, pass, rb, m_c, cc, p);
      }
    }
  }
  *mc = s.mc;
  *ppt = s.ppt;
}

int preft_split_rows(int m, int group, int want, int threads, int rows0) {
  if (threads <= 1 || m <= 0) return rows0;
  double best = preft_split_cost(m, rows0, 1, 1, threads);
  int rows = rows0;
  int64_t best_key = -1;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1 && best * SPLIT_SLACK >= preft_split_cost(m, rows0, 1, 1, threads))
      return rows0; /* the first choice is even enough */
    /* one candidate per task count: the fewest rows (in groups) that make it */
    for (int tasks = threads; tasks <= 4 * want; tasks++) {
      const int r = cdiv(cdiv(m, tasks), group) * group;
      const double c = preft_split_cost(m, r, 1, 1, threads);
      if (pass == 0) {
        if (c < best) best = c;
        continue;
      }
      /* smaller is better: the task count's distance to want, then -rows
       * (each task streams every row of x past its weight rows) */
      const int64_t key = ((int64_t)abs(cdiv(m, r) - want) << 32) + (INT32_MAX - r);
      if (c <= best * SPLIT_SLACK && (best_key < 0 || key < best_key)) {
        best_key = key;
        rows = r;
      }
    }
  }
  return rows;
}
