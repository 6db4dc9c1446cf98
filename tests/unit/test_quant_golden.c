/* test_quant_golden.c - the quantizers and dequantizers of tensor/quant.h
 * against golden files written by tools/make_reference_quant.py with
 * llama.cpp's gguf-py (tests/data/quant/golden.bin):
 *  - dequantization of random blocks of every type, and of the quantized
 *    input rows, bit-exact with gguf-py's numpy dequantizers;
 *  - quantization of the input rows, byte-exact with gguf-py's quantizers
 *    (Q8_0, Q4_0, Q5_0) and with the tool's float32 port of ggml's K-quant
 *    reference quantizers (Q4_K, Q6_K; gguf-py has none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/quant.h"
#include "testutil.h"

typedef struct {
  unsigned char *buf;
  size_t size;
} golden;

static golden g;
static void *copies[64]; /* aligned copies of the records handed out */
static int n_copies;

/* The record `name`: its elements and count (fails when missing). */
static const void *record(const char *name, int kind, size_t *count) {
  size_t off = 8, len = strlen(name);
  while (off + 6 <= g.size) {
    size_t nl = g.buf[off];
    const char *nm = (const char *)g.buf + off + 1;
    int k = g.buf[off + 1 + nl];
    uint32_t n;
    memcpy(&n, g.buf + off + 2 + nl, 4);
    const unsigned char *data = g.buf + off + 6 + nl;
    size_t bytes = (size_t)n * (k == 0 ? 4 : 1);
    if (data + bytes > g.buf + g.size) fail_msg("golden.bin: record %.*s runs past the end", (int)nl, nm);
    if (nl == len && memcmp(nm, name, len) == 0) {
      assert_int_equal(k, kind);
      assert_true(n_copies < 64);
      *count = n;
      /* records sit at any byte offset: copy to aligned memory */
      void *c = copies[n_copies++] = malloc(bytes > 0 ? bytes : 1);
      memcpy(c, data, bytes);
      return c;
    }
    off += 6 + nl + bytes;
  }
  fail_msg("golden.bin: no record %s (rerun tools/make_reference_quant.py)", name);
  return NULL;
}

static int setup(void **state) {
  (void)state;
  char *path = test_data_path("quant/golden.bin");
  g.buf = test_read_all(path, &g.size);
  if (!g.buf || g.size < 8 || memcmp(g.buf, "PFTQGLD1", 8) != 0) {
    fprintf(stderr, "%s missing or not a golden file: run tools/make_reference_quant.py\n", path);
    free(path);
    return -1;
  }
  free(path);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(g.buf);
  for (int i = 0; i < n_copies; i++) free(copies[i]);
  return 0;
}

static const struct {
  const char *name;
  preft_dtype t;
} TYPES[] = {{"q8_0", PREFT_Q8_0},
             {"q4_0", PREFT_Q4_0},
             {"q5_0", PREFT_Q5_0},
             {"q4_k", PREFT_Q4_K},
             {"q6_k", PREFT_Q6_K}};

static void check_dequant(preft_dtype t, const char *what, const unsigned char *bytes, size_t nbytes,
                          const float *want, size_t n) {
  assert_int_equal(preft_dtype_row_bytes(t, n), nbytes);
  float *got = malloc(n * sizeof *got);
  preft_dequantize_row(t, bytes, got, n);
  for (size_t i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], 4) != 0)
      fail_msg("%s %s: value %zu is %.9g, gguf-py %.9g", preft_dtype_name(t), what, i, got[i], want[i]);
  free(got);
}

static void test_dequantize_random_blocks(void **state) {
  (void)state;
  char name[64];
  for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
    size_t nb, nv;
    snprintf(name, sizeof name, "%s.rand_bytes", TYPES[ti].name);
    const unsigned char *b = record(name, 1, &nb);
    snprintf(name, sizeof name, "%s.rand_dequant", TYPES[ti].name);
    const float *v = record(name, 0, &nv);
    check_dequant(TYPES[ti].t, "random blocks", b, nb, v, nv);
  }
}

static void test_quantize_rows(void **state) {
  (void)state;
  char name[64];
  size_t nx;
  const float *x = record("input", 0, &nx);
  const size_t rows = 4, k = nx / rows;
  assert_int_equal(rows * k, nx);
  for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
    preft_dtype t = TYPES[ti].t;
    size_t nb, nv;
    snprintf(name, sizeof name, "%s.bytes", TYPES[ti].name);
    const unsigned char *want = record(name, 1, &nb);
    snprintf(name, sizeof name, "%s.dequant", TYPES[ti].name);
    const float *v = record(name, 0, &nv);
    check_dequant(t, "quantized input", want, nb, v, nv);
    size_t row = preft_dtype_row_bytes(t, k);
    assert_int_equal(row * rows, nb);
    unsigned char *got = malloc(nb);
    for (size_t r = 0; r < rows; r++) preft_quantize_row(t, x + r * k, got + r * row, k);
    for (size_t i = 0; i < nb; i++)
      if (got[i] != want[i]) {
        size_t bb = preft_dtype_block_bytes(t);
        fail_msg("%s: byte %zu (row %zu, block %zu, offset %zu) is 0x%02x, reference 0x%02x",
                 preft_dtype_name(t), i, i / row, (i % row) / bb, i % bb, got[i], want[i]);
      }
    free(got);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dequantize_random_blocks),
      cmocka_unit_test(test_quantize_rows),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
