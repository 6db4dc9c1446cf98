/* adapter_random.c - adapters with random weights held in memory, of any
 * rank and kind, for benchmarks and tests (shapes follow the base config
 * exactly as a loaded adapter's would). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/huge_alloc.h"
#include "model/adapter.h"

static uint64_t next_u64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static float uniform(uint64_t *s, float scale) {
  return ((float)(next_u64(s) >> 40) * 0x1p-24f * 2.0f - 1.0f) * scale;
}

static float *random_floats(size_t n, float scale, uint64_t *rng) {
  float *v = preft_xmalloc(sizeof(float) * n);
  for (size_t i = 0; i < n; i++) v[i] = uniform(rng, scale);
  return v;
}

/* LoRA: all seven modules of every layer, A and B in FP32, one allocation
 * owned through st.owned. ReFT: every layer, positions "all", shared slot. */
preft_adapter *preft_adapter_random(preft_adapter_kind kind, const preft_model_config *c, int rank,
                                    preft_adapter_mode mode, preft_dtype dtype, uint64_t seed) {
  return preft_adapter_random_range(kind, c, rank, mode, dtype, seed, 0.02f);
}

preft_adapter *preft_adapter_random_range(preft_adapter_kind kind, const preft_model_config *c, int rank,
                                          preft_adapter_mode mode, preft_dtype dtype, uint64_t seed,
                                          float range) {
  preft_adapter *a = preft_xcalloc(1, sizeof *a);
  a->name = preft_xstrdup("random");
  a->path = preft_xstrdup("(memory)");
  a->kind = kind;
  a->default_mode = mode;
  a->n_layers = c->n_layers;
  a->dim = c->dim;
  uint64_t rng = seed * 7919 + 17;
  if (kind == PREFT_ADAPTER_LORA) {
    int in[PREFT_N_MODULES], out[PREFT_N_MODULES];
    size_t per_layer = 0;
    for (int m = 0; m < PREFT_N_MODULES; m++) {
      preft_module_dims(c, (preft_module)m, &in[m], &out[m]);
      per_layer += (size_t)rank * (size_t)(in[m] + out[m]);
    }
    size_t total = per_layer * (size_t)c->n_layers, es = preft_dtype_size(dtype);
    uint8_t *mem = preft_xalloc_big(total * es);
    for (size_t i = 0; i < total; i++) {
      float v = uniform(&rng, range);
      if (dtype == PREFT_F32)
        ((float *)mem)[i] = v;
      else if (dtype == PREFT_F16)
        ((uint16_t *)mem)[i] = preft_f32_to_f16(v);
      else
        ((uint16_t *)mem)[i] = preft_f32_to_bf16(v);
    }
    a->st.owned = preft_xmalloc(sizeof(void *));
    a->st.owned[0] = mem;
    a->st.n_owned = 1;
    a->lora = preft_xcalloc((size_t)c->n_layers * PREFT_N_MODULES, sizeof *a->lora);
    for (int l = 0; l < c->n_layers; l++) {
      for (int m = 0; m < PREFT_N_MODULES; m++) {
        preft_lora_module *lm = &a->lora[l * PREFT_N_MODULES + m];
        lm->a = mem;
        mem += (size_t)rank * (size_t)in[m] * es;
        lm->b = mem;
        mem += (size_t)rank * (size_t)out[m] * es;
        lm->a_dtype = lm->b_dtype = dtype;
        lm->rank = rank;
        lm->scale = 2.0f;
      }
    }
    a->max_rank = rank;
    a->bytes = total * es;
    preft_lora_prepare(a, c);
    return a;
  }
  a->reft_rank = rank;
  a->reft_first = a->reft_last = -1;
  a->reft_shared = true;
  a->reft_layer = preft_xcalloc((size_t)c->n_layers, sizeof(bool));
  a->reft = preft_xcalloc((size_t)c->n_layers * PREFT_REFT_SLOTS, sizeof *a->reft);
  size_t rd = (size_t)rank * (size_t)c->dim;
  for (int l = 0; l < c->n_layers; l++) {
    a->reft_layer[l] = true;
    preft_reft_slot *s = &a->reft[l * PREFT_REFT_SLOTS + PREFT_REFT_SHARED];
    s->present = true;
    s->weight = random_floats(rd, range, &rng);
    s->bias = random_floats((size_t)rank, range, &rng);
    if (kind == PREFT_ADAPTER_LOREFT)
      s->rotate = random_floats(rd, range, &rng);
    else
      s->proj_up = random_floats(rd, range, &rng);
    a->bytes += (2 * rd + (size_t)rank) * sizeof(float);
  }
  return a;
}
