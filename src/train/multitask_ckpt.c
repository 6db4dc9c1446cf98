/* multitask_ckpt.c - saving and restoring the multitask loop (see
 * multitask_ckpt.h). The extra blob, native little-endian:
 *   u64 rng; per task: i32 n, i32 cursor, i32 perm[n];
 *   i32 n_evals; per evaluation: f64 step, f64 metric[3], f64 score,
 *   i32 n[3], f64 seconds; u64 teacher floats, f32 teacher[...]. */
#include "train/multitask_ckpt.h"

#include <stdlib.h>
#include <string.h>

#include "train/checkpoint.h"

typedef struct {
  unsigned char *p;
  size_t n, cap;
} blob;

static void put(blob *b, const void *data, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2;
    b->p = preft_xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
}

/* Reads n bytes; false past the end. */
static bool get(const unsigned char *p, size_t size, size_t *at, void *out, size_t n) {
  if (n > size - *at) return false;
  memcpy(out, p + *at, n);
  *at += n;
  return true;
}

int preft_mt_ckpt_save(const char *path, const preft_mt_loop *s, int64_t step, double elapsed,
                       preft_error *err) {
  blob b = {0};
  put(&b, &s->rng->s, 8);
  int64_t n_train = 0;
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) {
    const preft_mt_order *o = &s->ord[t];
    put(&b, &o->n, 4);
    put(&b, &o->cursor, 4);
    put(&b, o->perm, sizeof(int) * (size_t)o->n);
    n_train += o->n;
  }
  put(&b, &s->h->n_evals, 4);
  for (int e = 0; e < s->h->n_evals; e++) {
    const preft_mt_eval *ev = &s->h->evals[e];
    put(&b, &s->h->eval_step[e], 8);
    put(&b, ev->metric, sizeof ev->metric);
    put(&b, &ev->score, 8);
    put(&b, ev->n, sizeof ev->n);
    put(&b, &ev->seconds, 8);
  }
  uint64_t nt = s->teacher ? s->teacher->ps.n : 0;
  put(&b, &nt, 8);
  if (nt) put(&b, s->teacher->ps.mem, sizeof(float) * nt);
  double *hist = preft_xmalloc(sizeof(double) * 2 * (size_t)(step ? step : 1));
  for (int64_t i = 0; i < step; i++) hist[2 * i] = s->h->step_loss[i], hist[2 * i + 1] = s->h->step_task[i];
  preft_ckpt_state st = {.step = step,
                         .adam_t = s->opt->t,
                         .elapsed = elapsed,
                         .seed = s->seed,
                         .n_params = s->m->ps.n,
                         .n_hist = step,
                         .n_train = n_train,
                         .hist_cols = 2,
                         .extra = b.p,
                         .extra_bytes = b.n};
  int rc = preft_checkpoint_save(path, &st, s->m->ps.mem, s->opt->m, s->opt->v, hist, err);
  free(hist);
  free(b.p);
  return rc;
}

int preft_mt_ckpt_load(const char *path, preft_mt_loop *s, int64_t *step, double *elapsed, preft_error *err) {
  preft_ckpt_state st;
  double *hist = NULL;
  if (preft_checkpoint_load(path, &st, s->m->ps.mem, s->opt->m, s->opt->v, s->m->ps.n, &hist, err) != 0)
    return -1;
  const unsigned char *p = st.extra;
  size_t size = (size_t)st.extra_bytes, at = 0;
  int rc = -1;
  int64_t n_train = 0;
  for (int t = 0; t < PREFT_BT_N_TASKS; t++) n_train += s->ord[t].n;
  if (st.seed != s->seed || st.n_train != n_train || st.step > s->steps || st.hist_cols != 2 ||
      st.n_hist != st.step) {
    preft_fail(err,
               "%s: made for another run (seed %llu, %lld training examples, step %lld; this run: seed %llu, "
               "%lld examples, %d steps)",
               path, (unsigned long long)st.seed, (long long)st.n_train, (long long)st.step,
               (unsigned long long)s->seed, (long long)n_train, s->steps);
    goto done;
  }
  bool ok = get(p, size, &at, &s->rng->s, 8);
  for (int t = 0; t < PREFT_BT_N_TASKS && ok; t++) {
    preft_mt_order *o = &s->ord[t];
    int n = -1, cursor = -1;
    ok = get(p, size, &at, &n, 4) && get(p, size, &at, &cursor, 4) && n == o->n && cursor >= 0 &&
         cursor <= n && get(p, size, &at, o->perm, sizeof(int) * (size_t)n);
    o->cursor = cursor;
    for (int i = 0; i < n && ok; i++) ok = o->perm[i] >= 0 && o->perm[i] < n;
  }
  int n_evals = -1;
  ok = ok && get(p, size, &at, &n_evals, 4) && n_evals >= 0 && n_evals <= s->max_evals;
  for (int e = 0; e < n_evals && ok; e++) {
    preft_mt_eval *ev = &s->h->evals[e];
    ok = get(p, size, &at, &s->h->eval_step[e], 8) && get(p, size, &at, ev->metric, sizeof ev->metric) &&
         get(p, size, &at, &ev->score, 8) && get(p, size, &at, ev->n, sizeof ev->n) &&
         get(p, size, &at, &ev->seconds, 8);
  }
  uint64_t nt = 0;
  ok = ok && get(p, size, &at, &nt, 8) && nt == (s->teacher ? s->teacher->ps.n : 0) &&
       (nt == 0 || get(p, size, &at, s->teacher->ps.mem, sizeof(float) * nt)) && at == size;
  if (!ok) {
    preft_fail(err,
               "%s: the multitask state (RNG, task orders, evaluations, teacher) is damaged or was made "
               "with other options (Bregman teacher, data)",
               path);
    goto done;
  }
  s->h->n_evals = n_evals;
  for (int64_t i = 0; i < st.step; i++) {
    s->h->step_loss[i] = hist[2 * i];
    s->h->step_task[i] = (int)hist[2 * i + 1];
  }
  s->h->n_steps = (int)st.step;
  s->opt->t = st.adam_t;
  *step = st.step;
  *elapsed = st.elapsed;
  rc = 0;
done:
  free(hist);
  free((void *)st.extra);
  return rc;
}
