/* attention.c - grouped-query attention of one token over a paged KV cache
 * (attention.h): the dispatcher, the portable kernel and the plain
 * reference. The AVX+FMA kernel is in ops_avx.c. */
#include "tensor/attention.h"

#include <string.h>

#include "tensor/cpu.h"
#include "tensor/ops.h"
#include "tensor/ops_kern.h"

/* Where position t's key (or value) row is: base + its block + its offset. */
static const float *kv_row(const preft_kv_view *kv, const float *base, int t) {
  return base + (size_t)kv->table[t / kv->block_size] * kv->block_stride +
         (size_t)(t % kv->block_size) * kv->pos_stride;
}

/* Positions [t, end] that lie in t's block: its row pointer and the count. */
static int kv_run(const preft_kv_view *kv, const float *base, int t, int end, const float **row) {
  int off = t % kv->block_size, len = kv->block_size - off;
  *row = kv_row(kv, base, t);
  return len < end - t + 1 ? len : end - t + 1;
}

/* The portable kernel: the same walk as the AVX one (a run of a block at a
 * time, all G heads per run) in scalar code, with preft_softmax (libm's
 * expf: scalar preft_expf_fast is slower than glibc's, bench/bench_attention.c). */
static void attention_portable(float *out, const float *q, int g, int dh, const preft_kv_view *kv, int start,
                               int end, float scale, float *s) {
  int n = end - start + 1;
  size_t ps = kv->pos_stride;
  for (int t = start; t <= end;) {
    const float *k;
    int len = kv_run(kv, kv->k, t, end, &k);
    for (int h = 0; h < g; h++) {
      float *sh = s + (size_t)h * (size_t)n + (size_t)(t - start);
      for (int i = 0; i < len; i++)
        sh[i] = preft_dot(q + (size_t)h * (size_t)dh, k + (size_t)i * ps, dh) * scale;
    }
    t += len;
  }
  for (int h = 0; h < g; h++) preft_softmax(s + (size_t)h * (size_t)n, n);
  memset(out, 0, sizeof(float) * (size_t)g * (size_t)dh);
  for (int t = start; t <= end;) {
    const float *v;
    int len = kv_run(kv, kv->v, t, end, &v);
    for (int h = 0; h < g; h++) {
      const float *p = s + (size_t)h * (size_t)n + (size_t)(t - start);
      for (int i = 0; i < len; i++) preft_axpy(out + (size_t)h * (size_t)dh, p[i], v + (size_t)i * ps, dh);
    }
    t += len;
  }
}

void preft_attention(float *out, const float *q, int g, int dh, const preft_kv_view *kv, int start, int end,
                     float scale, float *scratch) {
#ifdef PREFT_HAVE_OPS_AVX
  if (dh % 8 == 0 && preft_cpu_path() >= PREFT_CPU_AVX_FMA) {
    preft_attention_avx(out, q, g, dh, kv, start, end, scale, scratch);
    return;
  }
#endif
  attention_portable(out, q, g, dh, kv, start, end, scale, scratch);
}

void preft_attention_ref(float *out, const float *q, int g, int dh, const preft_kv_view *kv, int start,
                         int end, float scale, float *scratch) {
  int n = end - start + 1;
  for (int h = 0; h < g; h++) {
    const float *qh = q + (size_t)h * (size_t)dh;
    float *oh = out + (size_t)h * (size_t)dh;
    for (int t = start; t <= end; t++) scratch[t - start] = preft_dot(qh, kv_row(kv, kv->k, t), dh) * scale;
    preft_softmax(scratch, n);
    memset(oh, 0, sizeof(float) * (size_t)dh);
    for (int t = start; t <= end; t++) preft_axpy(oh, scratch[t - start], kv_row(kv, kv->v, t), dh);
  }
}
