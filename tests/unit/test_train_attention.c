/* test_train_attention.c - the training attention (blocked matrix products,
 * attention_fwd_bwd.c) against a plain double-precision reference written
 * here from the definitions: outputs, log-sum-exp and the three input
 * gradients, with GQA, sequences longer than one query block (several
 * blocks, a partial last block), a sliding window narrower than a block and
 * wider than one, on 1 and 3 threads; at FP32 and, within BF16's bounds,
 * at BF16 matmul precision on every CPU path. The gradient goldens of
 * test_train_grads (PyTorch) have sequences shorter than one block, so the
 * multi-block and window paths are checked here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/threadpool.h"
#include "tensor/cpu.h"
#include "testutil.h"
#include "train/layers.h"

enum { H = 4, HKV = 2, DH = 24, NSEQ = 3 };
static const int LEN[NSEQ] = {150, 1, 70};

static float *rnd(size_t n) {
  float *p = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) p[i] = test_frand();
  return p;
}

static double max_rel(const float *got, const double *want, size_t n) {
  double mw = 0, md = 0;
  for (size_t i = 0; i < n; i++) {
    mw = fabs(want[i]) > mw ? fabs(want[i]) : mw;
    md = fabs(got[i] - want[i]) > md ? fabs(got[i] - want[i]) : md;
  }
  return md / (mw > 0 ? mw : 1);
}

/* The reference: per (sequence, head, query) the softmax over the allowed
 * keys, in double; gradients by the chain rule on the same loops. */
static void reference(const float *q, const float *k, const float *v, const float *datt, const int *start,
                      int window, double *att, double *lse, double *dq, double *dk, double *dv) {
  size_t qs = H * DH, ks = HKV * DH;
  double scale = 1.0 / sqrt((double)DH), p[256];
  for (int s = 0; s < NSEQ; s++)
    for (int h = 0; h < H; h++) {
      int g = h / (H / HKV);
      for (int i = 0; i < LEN[s]; i++) {
        size_t ri = (size_t)(start[s] + i);
        int lo = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
        double mx = -INFINITY, sum = 0;
        for (int t = lo; t <= i; t++) {
          double d = 0;
          for (int c = 0; c < DH; c++)
            d += (double)q[ri * qs + h * DH + c] * k[(start[s] + t) * ks + g * DH + c];
          p[t] = d * scale;
          mx = p[t] > mx ? p[t] : mx;
        }
        for (int t = lo; t <= i; t++) sum += exp(p[t] - mx);
        for (int t = lo; t <= i; t++) p[t] = exp(p[t] - mx) / sum;
        lse[ri * H + h] = mx + log(sum);
        double dsum = 0;
        for (int c = 0; c < DH; c++) {
          double o = 0;
          for (int t = lo; t <= i; t++) o += p[t] * v[(start[s] + t) * ks + g * DH + c];
          att[ri * qs + h * DH + c] = o;
          dsum += o * datt[ri * qs + h * DH + c];
        }
        for (int t = lo; t <= i; t++) {
          size_t rt = (size_t)(start[s] + t);
          double dp = 0;
          for (int c = 0; c < DH; c++) dp += (double)datt[ri * qs + h * DH + c] * v[rt * ks + g * DH + c];
          double ds = p[t] * (dp - dsum) * scale;
          for (int c = 0; c < DH; c++) {
            dv[rt * ks + g * DH + c] += p[t] * datt[ri * qs + h * DH + c];
            dq[ri * qs + h * DH + c] += ds * k[rt * ks + g * DH + c];
            dk[rt * ks + g * DH + c] += ds * q[ri * qs + h * DH + c];
          }
        }
      }
    }
}

static void blocked_attention_matches_reference(void **state) {
  int start[NSEQ], n = 0;
  for (int s = 0; s < NSEQ; s++) {
    start[s] = n;
    n += LEN[s];
  }
  size_t nq = (size_t)n * H * DH, nk = (size_t)n * HKV * DH;
  float *q = rnd(nq), *k = rnd(nk), *v = rnd(nk), *datt = rnd(nq);
  for (size_t i = 0; i < nq; i++) q[i] *= 3.0f; /* peaked softmaxes too */
  float *att = malloc(sizeof(float) * nq), *lse = malloc(sizeof(float) * (size_t)n * H);
  float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk), *dv = malloc(sizeof(float) * nk);
  double *ratt = malloc(sizeof(double) * nq), *rlse = malloc(sizeof(double) * (size_t)n * H);
  double *rdq = malloc(sizeof(double) * nq), *rdk = malloc(sizeof(double) * nk),
         *rdv = malloc(sizeof(double) * nk);
  const int windows[] = {0, 20, 100};
  for (int th = 1; th <= 3; th += 2) {
    preft_pool *pool = preft_pool_create(th);
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
      memset(rdq, 0, sizeof(double) * nq);
      memset(rdk, 0, sizeof(double) * nk);
      memset(rdv, 0, sizeof(double) * nk);
      reference(q, k, v, datt, start, windows[w], ratt, rlse, rdq, rdk, rdv);
      /* FP32, then BF16 on every CPU path (vdpbf16ps where there is
       * AVX512_BF16, the emulation below it) */
      for (int pp = -1; pp <= (int)preft_cpu_detected(); pp++) {
        const int prec = pp >= 0;
        const preft_matmul_precision mp = prec ? PREFT_MATMUL_BF16 : PREFT_MATMUL_EXACT;
        preft_cpu_limit(prec ? (preft_cpu_path_kind)pp : PREFT_CPU_N_PATHS - 1);
        memset(dk, 0x7f, sizeof(float) * nk); /* overwritten, not accumulated */
        preft_attention_forward(pool, att, lse, q, k, v, start, LEN, NSEQ, H, HKV, DH, windows[w], mp);
        preft_attention_backward(pool, dq, dk, dv, datt, att, lse, q, k, v, start, LEN, NSEQ, H, HKV, DH,
                                 windows[w], mp);
        double e[5] = {max_rel(att, ratt, nq), max_rel(lse, rlse, (size_t)n * H), max_rel(dq, rdq, nq),
                       max_rel(dk, rdk, nk), max_rel(dv, rdv, nk)};
        const char *what[5] = {"att", "lse", "dq", "dk", "dv"};
        /* BF16: operands rounded with relative error 2^-9 (2^-8 at most),
         * two or three products deep: within 2^-5 of the largest value, and
         * away from the exact result (BF16 engaged) */
        for (int i = 0; i < 5; i++)
          if (prec ? !(e[i] < 0x1p-5 && e[i] > 1e-4) : !(e[i] < 2e-5))
            fail_msg("threads %d window %d %s (path %s): %s off by %.3g of its largest value", th, windows[w],
                     prec ? "bf16" : "fp32", preft_cpu_path_name(preft_cpu_path()), what[i], e[i]);
      }
      preft_cpu_limit(PREFT_CPU_N_PATHS - 1);
    }
    preft_pool_free(pool);
  }
  free(q);
  free(k);
  free(v);
  free(datt);
  free(att);
  free(lse);
  free(dq);
  free(dk);
  free(dv);
  free(ratt);
  free(rlse);
  free(rdq);
  free(rdk);
  free(rdv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(blocked_attention_matches_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
