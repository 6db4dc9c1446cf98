/* gemm_portable.c - the plain-C kernels of preft_gemm (see gemm_kern.h),
 * for CPUs without AVX+FMA+F16C and as a second implementation the tests
 * check. Written as simple fixed-length loops the compiler can vectorise
 * with whatever the baseline instruction set offers (SSE2 on x86-64).
 */
#include "tensor/gemm_kern.h"

/* out[0:n] = w[i:i+n] as FP32, one loop per type (the type switch hoisted
 * out of the element loop). Scalar conversion costs ~1 ns per element, so
 * this path is conversion bound for half weights. */
static void convert_run(float *out, const void *w, preft_dtype wdt, size_t i, int n) {
  if (wdt == PREFT_F16) {
    const uint16_t *h = (const uint16_t *)w + i;
    for (int t = 0; t < n; t++) out[t] = preft_f16_to_f32(h[t]);
  } else if (wdt == PREFT_BF16) {
    const uint16_t *h = (const uint16_t *)w + i;
    for (int t = 0; t < n; t++) {
      uint32_t u = (uint32_t)h[t] << 16;
      memcpy(out + t, &u, 4);
    }
  } else {
    memcpy(out, (const float *)w + i, (size_t)n * sizeof(float));
  }
}

static void portable_pack(void *panelv, const void *w, preft_dtype wdt, size_t k, int j0, int nr, int k0,
                          int kc, int prefetch_next) {
  float *panel = panelv;
  for (int jj = 0; jj < PREFT_GEMM_NR; jj++) {
    if (jj >= nr) {
      for (int kk = 0; kk < kc; kk++) panel[(size_t)kk * PREFT_GEMM_NR + jj] = 0.f;
      continue;
    }
    float run[256];
    size_t row = (size_t)(j0 + jj) * k + (size_t)k0;
    for (int k1 = 0; k1 < kc; k1 += 256) {
      int len = kc - k1 < 256 ? kc - k1 : 256;
      convert_run(run, w, wdt, row + (size_t)k1, len);
      for (int kk = 0; kk < len; kk++) panel[(size_t)(k1 + kk) * PREFT_GEMM_NR + jj] = run[kk];
    }
  }
}

static void portable_tile(int kc, const void *xv, size_t xs, const void *panelv, float *y, size_t ys, int mr,
                          int nr, int accumulate) {
  const float *x = xv, *panel = panelv;
  float acc[PREFT_GEMM_MR][PREFT_GEMM_NR];
  for (int r = 0; r < mr; r++)
    for (int c = 0; c < PREFT_GEMM_NR; c++)
      acc[r][c] = accumulate && c < nr ? y[(size_t)r * ys + (size_t)c] : 0.f;
  for (int kk = 0; kk < kc; kk++) {
    const float *p = panel + (size_t)kk * PREFT_GEMM_NR;
    for (int r = 0; r < mr; r++) {
      float a = x[(size_t)r * xs + (size_t)kk];
      for (int c = 0; c < PREFT_GEMM_NR; c++) acc[r][c] += a * p[c];
    }
  }
  for (int r = 0; r < mr; r++)
    for (int c = 0; c < nr; c++) y[(size_t)r * ys + (size_t)c] = acc[r][c];
}

/* Weight rows are converted in blocks of KB elements (never the whole
 * matrix) and each block is dotted with every row of x. */
#define KB 512
static void portable_rows(float *y, size_t ys, const void *xv, size_t xs, const void *w, preft_dtype wdt,
                          int n, int k, int j0, int j1, int accumulate) {
  const float *x = xv;
  float buf[KB];
  for (int j = j0; j < j1; j++) {
    size_t row = (size_t)j * (size_t)k;
    for (int i = 0; i < n; i++) {
      float *yy = y + (size_t)i * ys + (size_t)j;
      if (!accumulate) *yy = 0.f;
    }
    for (int k0 = 0; k0 < k; k0 += KB) {
      int kb = k - k0 < KB ? k - k0 : KB;
      const float *wb = buf;
      if (wdt == PREFT_F32)
        wb = (const float *)w + row + (size_t)k0;
      else
        convert_run(buf, w, wdt, row + (size_t)k0, kb);
      for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * xs + (size_t)k0;
        float s[8] = {0};
        int kk = 0;
        for (; kk + 8 <= kb; kk += 8)
          for (int l = 0; l < 8; l++) s[l] += xi[kk + l] * wb[kk + l];
        float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        for (; kk < kb; kk++) t += xi[kk] * wb[kk];
        y[(size_t)i * ys + (size_t)j] += t;
      }
    }
  }
}

/* Rows-kernel limits (F32, F16, BF16) as on the AVX path: the crossover
 * matters little here, where everything is conversion or scalar bound. */
const preft_gemm_kernels preft_gemm_portable = {.pack = portable_pack,
                                                .tile = portable_tile,
                                                .rows = portable_rows,
                                                .mr = PREFT_GEMM_MR,
                                                .nr = PREFT_GEMM_NR,
                                                .rows_max_n = {48, 64, 16},
                                                .name = "portable"};
