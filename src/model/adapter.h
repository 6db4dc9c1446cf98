/* adapter.h - per-user adapters of a base model: LoRA (from PEFT
 * directories) and ReFT (LoReFT, DiReFT; preft's format, docs/REFT_FORMAT.md),
 * and the per-row flag that says where an adapter applies.
 *
 * Legend: D width, R rank, L layers; "in"/"out" are a module's input and
 * output widths (q: D -> H*Dh, k/v: D -> Hkv*Dh, o: H*Dh -> D,
 * gate/up: D -> F, down: F -> D).
 *
 * One mechanism serves every mode: each token row of a batch carries an
 * adapter and an adapt flag (preft_adapt_flag). LoRA adds its delta to the
 * rows whose flag is on; ReFT edits the residual stream of flagged rows,
 * choosing its weight slot (first / last / shared) from the flag. The flag
 * comes from preft_adapter_row_flag, the single place that knows the modes:
 *   all-token ("all"): LoRA on every row; ReFT at its positions (fA+lB:
 *     prompt positions only; "all": every row, generated ones included);
 *   prefill-only ("prefill"): only prompt rows; generated rows run the base
 *     model and see the adapter only through the prompt's keys and values.
 */
#ifndef PREFT_MODEL_ADAPTER_H
#define PREFT_MODEL_ADAPTER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "preft/adapter.h" /* preft_adapter, kinds, modes, modules; load / free */
#include "tensor/dtype.h"

/* Per-row flag. ON: LoRA applies, ReFT uses its shared slot. FIRST / LAST:
 * ReFT uses that slot (positions fA+lB without shared weights). */
typedef enum {
  PREFT_ADAPT_OFF = 0,
  PREFT_ADAPT_ON = 1,
  PREFT_ADAPT_FIRST = 2,
  PREFT_ADAPT_LAST = 3
} preft_adapt_flag;

const char *preft_module_name(preft_module m); /* "q_proj", ... */
/* "self_attn" or "mlp": the submodule holding m in a decoder layer. */
const char *preft_module_parent(preft_module m);
/* Input and output widths of module m of a model of config c. */
void preft_module_dims(const preft_model_config *c, preft_module m, int *in, int *out);

typedef struct preft_lora_module {
  const void *a;  /* [R, in] lora_A */
  const void *b;  /* [out, R] lora_B, as PEFT stores it (export, training) */
  const void *bt; /* [R, out] lora_B transposed, in b_dtype: what the expand
                   * kernel reads (lora_kernels.h); in the adapter's lora_bt */
  preft_dtype a_dtype, b_dtype;
  int rank;    /* 0: this module is not adapted */
  float scale; /* alpha / R, or alpha / sqrt(R) with rsLoRA */
} preft_lora_module;

/* ReFT slots: 0 first, 1 last, 2 shared. */
enum { PREFT_REFT_FIRST = 0, PREFT_REFT_LAST = 1, PREFT_REFT_SHARED = 2, PREFT_REFT_SLOTS = 3 };

typedef struct preft_reft_slot {
  bool present;
  float *rotate;  /* [R, D] LoReFT R (orthonormal rows) */
  float *weight;  /* [R, D] LoReFT W, or DiReFT W1 (proj_down) */
  float *bias;    /* [R] */
  float *proj_up; /* [R, D] DiReFT W2 */
} preft_reft_slot;

struct preft_adapter {
  char *name, *path;
  preft_adapter_kind kind;
  preft_adapter_mode default_mode;
  int n_layers, dim;
  /* LoRA */
  preft_lora_module *lora; /* [L][PREFT_N_MODULES] */
  void *lora_bt;           /* owns every module's bt */
  size_t lora_bt_bytes;
  int max_rank;
  /* ReFT */
  int reft_rank;
  bool *reft_layer;          /* [L] intervened after this layer */
  preft_reft_slot *reft;     /* [L][PREFT_REFT_SLOTS] */
  int reft_first, reft_last; /* fA+lB; -1,-1 for "all" */
  bool reft_shared;          /* share_weights (or positions "all") */
  preft_st_set st;           /* LoRA: the safetensors files, read into memory (A and B point into them) */
  size_t bytes;              /* memory the weights take, for accounting */
  uint64_t checksum;         /* of the weight files as read (0: not from files) */
  bool check_only;           /* preft_adapter_check: files mapped, only what validation needs is read */
};

/* An adapter with random weights in memory (benchmarks, tests): LoRA on all
 * seven modules of every layer (A and B stored as dtype), or ReFT on every
 * layer at all positions (FP32, as loaded ReFT weights are). */
preft_adapter *preft_adapter_random(preft_adapter_kind kind, const preft_model_config *cfg, int rank,
                                    preft_adapter_mode mode, preft_dtype dtype, uint64_t seed);
/* The same with the weights drawn from U(-range, range) (the above: 0.02,
 * small enough that a model's greedy output rarely changes). */
preft_adapter *preft_adapter_random_range(preft_adapter_kind kind, const preft_model_config *cfg, int rank,
                                          preft_adapter_mode mode, preft_dtype dtype, uint64_t seed,
                                          float range);

/* Fills every adapted module's bt (lora_B transposed) from its b, in one
 * allocation owned by the adapter; called once by the LoRA loader and by
 * preft_adapter_random, after every module's b, rank and dtype are set.
 * Cannot fail (aborts only when out of memory, like every preft_x* alloc). */
void preft_lora_prepare(preft_adapter *a, const preft_model_config *cfg);

/* Holds a LoRA's A and B as dt (PREFT_F16 or PREFT_BF16) from now on: each
 * value rounded to nearest (ties to even) from the type it had, Bᵀ made
 * again, the files' copy released (a->bytes shrinks or stays; the checksum
 * stays, and the prefix cache's identity of the adapter changes with the
 * modules' types). No-op for ReFT and for a LoRA stored as dt. */
void preft_lora_store_as(preft_adapter *a, const preft_model_config *cfg, preft_dtype dt);
/* A --lora-dtype value: -1 for NULL or "auto" (as stored), PREFT_F16 for
 * "float16" or "f16", PREFT_BF16 for "bfloat16" or "bf16", -2 otherwise. */
int preft_lora_dtype_parse(const char *s);

/* The flag of a row at position pos of a sequence whose prompt has
 * prompt_len tokens (pos >= prompt_len: a generated token), in mode, for an
 * adapter that applies at positions first / last (ReFT fA+lB, shared: one
 * slot for both ends) or, with first < 0, at every row (LoRA, ReFT "all"). */
preft_adapt_flag preft_positions_row_flag(int first, int last, bool shared, preft_adapter_mode mode, int pos,
                                          int prompt_len);
/* preft_positions_row_flag with a's positions; PREFT_ADAPT_OFF when a is NULL
 * (the base model). */
preft_adapt_flag preft_adapter_row_flag(const preft_adapter *a, preft_adapter_mode mode, int pos,
                                        int prompt_len);

/* Everything preft_adapter_load checks (configs, safetensors headers,
 * tensor names, shapes and byte ranges against the model), reading only
 * what that needs: a LoRA's files are mapped, not read, and its weights
 * not touched, so checking thousands of adapters costs their headers. */
int preft_adapter_check(const char *dir, const char *name, const preft_model_config *cfg, preft_error *err);

/* An upper bound of the memory preft_adapter_load takes for the adapter in
 * dir: twice the size of its .safetensors files (a LoRA keeps a copy of
 * its files plus B transposed, at most the file again; ReFT converts its
 * weights to FP32, at most twice a 16-bit file). 0 when there are none. */
size_t preft_adapter_memory_bound(const char *dir);

/* Parses ReFT positions "fA+lB", "fA", "lB" or "all" (first/last = -1 for all). */
int preft_reft_positions_parse(const char *s, int *first, int *last);

#endif
