/* lora_store.c - a LoRA's A and B held in memory as a 16-bit type (the
 * engine's lora_dtype, as vLLM's --lora-dtype): every value rounded to the
 * type as PyTorch's Tensor.to rounds (to nearest, ties to even), B
 * transposed again for the kernels, and the copy of the files that A and B
 * pointed into released. What the adapter computes is then what the same
 * adapter saved in that type computes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/huge_alloc.h"
#include "model/adapter.h"

/* dst[n] (dt, 16-bit) = src[n] (st) rounded */
static void convert(uint16_t *dst, preft_dtype dt, const void *src, preft_dtype st, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float v = preft_load_elem(src, st, i);
    dst[i] = dt == PREFT_BF16 ? preft_f32_to_bf16(v) : preft_f32_to_f16(v);
  }
}

int preft_lora_dtype_parse(const char *s) {
  if (!s || !strcmp(s, "auto")) return -1;
  if (!strcmp(s, "float16") || !strcmp(s, "f16")) return PREFT_F16;
  if (!strcmp(s, "bfloat16") || !strcmp(s, "bf16")) return PREFT_BF16;
  return -2;
}

void preft_lora_store_as(preft_adapter *a, const preft_model_config *c, preft_dtype dt) {
  PREFT_ASSERT(dt == PREFT_F16 || dt == PREFT_BF16);
  if (a->kind != PREFT_ADAPTER_LORA || !a->lora) return;
  const int n = a->n_layers * PREFT_N_MODULES;
  size_t total = 0;
  bool as_asked = true;
  for (int i = 0; i < n; i++) {
    const preft_lora_module *lm = &a->lora[i];
    if (lm->rank == 0) continue;
    int in, out;
    preft_module_dims(c, (preft_module)(i % PREFT_N_MODULES), &in, &out);
    total += (size_t)lm->rank * (size_t)(in + out);
    as_asked = as_asked && lm->a_dtype == dt && lm->b_dtype == dt;
  }
  if (as_asked) return;
  /* Bᵀ goes first, so that the files' copy and the new A and B (at most
   * its size) are the most this takes at once: within
   * preft_adapter_memory_bound */
  free(a->lora_bt);
  a->lora_bt = NULL;
  uint16_t *mem = preft_xalloc_big(total ? total * sizeof *mem : 1), *p = mem;
  for (int i = 0; i < n; i++) {
    preft_lora_module *lm = &a->lora[i];
    if (lm->rank == 0) continue;
    int in, out;
    preft_module_dims(c, (preft_module)(i % PREFT_N_MODULES), &in, &out);
    const size_t na = (size_t)lm->rank * (size_t)in, nb = (size_t)lm->rank * (size_t)out;
    convert(p, dt, lm->a, lm->a_dtype, na);
    lm->a = p;
    p += na;
    convert(p, dt, lm->b, lm->b_dtype, nb);
    lm->b = p;
    p += nb;
    lm->a_dtype = lm->b_dtype = dt;
  }
  preft_st_close(&a->st); /* the files' copy; the checksum stays in a->checksum */
  a->st.owned = preft_xmalloc(sizeof(void *));
  a->st.owned[0] = mem;
  a->st.n_owned = 1;
  preft_lora_prepare(a, c);
  a->bytes = total * sizeof *mem + a->lora_bt_bytes;
}
