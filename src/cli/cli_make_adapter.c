/* cli_make_adapter.c - `preft make-adapter`: writes an adapter directory with
 * random weights for a base model's shape, in the formats preft loads (a
 * PEFT LoRA directory, or a ReFT directory per docs/REFT_FORMAT.md). For
 * serving benchmarks and tests that need many distinct adapters on disk.
 *
 * LoRA: all seven projections of every layer, lora_alpha = 2 r (scale 2).
 * Weights are drawn from U(-scale, scale), --scale (default 0.1: large
 * enough that adapters change greedy output, so a test can tell which one
 * was applied).
 * ReFT: every layer, positions "all", one shared slot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/adapter.h"
#include "model/shapes.h"
#include "server/sse.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft make-adapter (-m DIR | --shape NAME) -o DIR [options]\n\n"
          "Writes an adapter with random weights for the base model's shape.\n\n"
          "  -m, --model DIR     base model directory (its config.json)\n"
          "  --shape NAME        or a known shape: %s\n"
          "  --layers L          override the shape's number of layers\n"
          "  -o DIR              output directory (created; files written atomically)\n"
          "  --kind K            lora (default), loreft or direft\n"
          "  --rank R            rank (default 16)\n"
          "  --mode M            default serving mode: all (default) or prefill\n"
          "  --dtype T           LoRA weight type f32 | f16 | bf16 (default bf16; ReFT is f32)\n"
          "  --seed S            random seed (default 0)\n"
          "  --scale X           weights drawn from U(-X, X) (default 0.1: the greedy output of\n"
          "                      a model differs from the base's within a few tokens; 0.02,\n"
          "                      the default before, often left 16 tokens identical)\n",
          preft_shape_names());
}

/* Writes an adapter directory's two files, tensors_file (safetensors) and
 * config_file (the JSON text in config). */
static int write_adapter_files(const char *dir, const char *tensors_file, const preft_st_write_tensor *t,
                               int n, const char *config_file, const srv_buf *config, preft_error *err) {
  char *path = preft_path_join(dir, tensors_file);
  int rc = preft_st_write(path, t, n, err);
  free(path);
  if (rc != 0) return -1;
  path = preft_path_join(dir, config_file);
  rc = preft_write_atomic(path, config->p, config->len, err);
  free(path);
  return rc;
}

static int write_lora(const preft_adapter *a, const preft_model_config *c, const char *dir, int rank,
                      preft_adapter_mode mode, preft_error *err) {
  int L = c->n_layers, n = L * PREFT_N_MODULES * 2;
  int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  int in[PREFT_N_MODULES] = {c->dim, c->dim, c->dim, qd, c->dim, c->dim, c->ffn};
  int outd[PREFT_N_MODULES] = {qd, kvd, kvd, c->dim, c->ffn, c->ffn, c->dim};
  preft_st_write_tensor *t = preft_xcalloc((size_t)n, sizeof *t);
  char(*names)[128] = preft_xmalloc(sizeof *names * (size_t)n);
  int k = 0;
  for (int l = 0; l < L; l++)
    for (int m = 0; m < PREFT_N_MODULES; m++) {
      const preft_lora_module *lm = &a->lora[l * PREFT_N_MODULES + m];
      const char *part = m <= PREFT_MOD_O ? "self_attn" : "mlp";
      for (int ab = 0; ab < 2; ab++, k++) {
        snprintf(names[k], sizeof names[k], "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l, part,
                 preft_module_name((preft_module)m), ab ? 'B' : 'A');
        t[k].name = names[k];
        t[k].dtype = ab ? lm->b_dtype : lm->a_dtype;
        t[k].ndim = 2;
        t[k].shape[0] = ab ? outd[m] : rank;
        t[k].shape[1] = ab ? rank : in[m];
        t[k].data = ab ? lm->b : lm->a;
      }
    }
  srv_buf j = {0};
  preft_srv_buf_printf(
      &j,
      "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": \"CAUSAL_LM\",\n  \"r\": %d,\n  \"lora_alpha\": %d,\n"
      "  \"lora_dropout\": 0.0,\n  \"bias\": \"none\",\n  \"use_rslora\": false,\n  \"use_dora\": false,\n"
      "  \"target_modules\": [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", "
      "\"down_proj\"],\n  \"preft_mode\": \"%s\"\n}\n",
      rank, 2 * rank, preft_adapter_mode_name(mode));
  int rc = write_adapter_files(dir, "adapter_model.safetensors", t, n, "adapter_config.json", &j, err);
  preft_srv_buf_free(&j);
  free(t);
  free(names);
  return rc;
}

static int write_reft(const preft_adapter *a, const preft_model_config *c, const char *dir, int rank,
                      preft_adapter_mode mode, preft_error *err) {
  int L = c->n_layers, n = L * 3;
  bool lo = a->kind == PREFT_ADAPTER_LOREFT;
  preft_st_write_tensor *t = preft_xcalloc((size_t)n, sizeof *t);
  char(*names)[96] = preft_xmalloc(sizeof *names * (size_t)n);
  int k = 0;
  for (int l = 0; l < L; l++) {
    const preft_reft_slot *s = &a->reft[l * PREFT_REFT_SLOTS + PREFT_REFT_SHARED];
    const char *parts[3] = {lo ? "rotate" : "proj_down", lo ? "weight" : "proj_up", "bias"};
    const float *data[3] = {lo ? s->rotate : s->weight, lo ? s->weight : s->proj_up, s->bias};
    for (int p = 0; p < 3; p++, k++) {
      snprintf(names[k], sizeof names[k], "layers.%d.shared.%s", l, parts[p]);
      t[k].name = names[k];
      t[k].dtype = PREFT_F32;
      t[k].ndim = p == 2 ? 1 : 2;
      t[k].shape[0] = rank;
      t[k].shape[1] = c->dim;
      t[k].data = data[p];
    }
  }
  srv_buf j = {0};
  preft_srv_buf_printf(
      &j, "{\n  \"peft_type\": \"REFT\",\n  \"reft_type\": \"%s\",\n  \"r\": %d,\n  \"layers\": [",
      lo ? "loreft" : "direft", rank);
  for (int l = 0; l < L; l++) preft_srv_buf_printf(&j, l ? ", %d" : "%d", l);
  preft_srv_buf_printf(&j,
                       "],\n  \"positions\": \"all\",\n  \"share_weights\": true,\n  \"mode\": \"%s\"\n}\n",
                       preft_adapter_mode_name(mode));
  int rc = write_adapter_files(dir, "reft_model.safetensors", t, n, "reft_config.json", &j, err);
  preft_srv_buf_free(&j);
  free(t);
  free(names);
  return rc;
}

int cli_make_adapter(int argc, char **argv) {
  const char *model_dir = NULL, *shape = NULL, *out = NULL, *kind_arg = "lora";
  long layers = 0, rank = 16, seed = 0;
  double scale = 0.1;
  int mode = PREFT_MODE_ALL;
  preft_dtype dtype = PREFT_BF16;
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      {"--shape", NULL, CLI_STR, &shape},
      {"--layers", NULL, CLI_INT, &layers, 1, 1024},
      {"--output", "-o", CLI_STR, &out},
      {"--kind", NULL, CLI_STR, &kind_arg},
      {"--rank", NULL, CLI_INT, &rank, 1, 4096},
      {"--mode", NULL, CLI_MODE, &mode},
      {"--dtype", NULL, CLI_DTYPE, &dtype},
      {"--seed", NULL, CLI_INT, &seed, 0, 0x7fffffff},
      {"--scale", NULL, CLI_FLOAT, &scale, 1e-6, 10},
      {NULL},
  };
  int pr = cli_parse("make-adapter", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir == !shape || !out) {
    fprintf(stderr, "preft make-adapter: -o and exactly one of -m and --shape are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_adapter_kind kind;
  if (!strcmp(kind_arg, "lora"))
    kind = PREFT_ADAPTER_LORA;
  else if (!strcmp(kind_arg, "loreft"))
    kind = PREFT_ADAPTER_LOREFT;
  else if (!strcmp(kind_arg, "direft"))
    kind = PREFT_ADAPTER_DIREFT;
  else {
    fprintf(stderr, "preft make-adapter: --kind expects lora, loreft or direft, got '%s'\n", kind_arg);
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  preft_model_config cfg;
  if ((model_dir ? preft_config_load(&cfg, model_dir, &err) : preft_shape_config(shape, &cfg, &err)) != 0) {
    fprintf(stderr, "preft make-adapter: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  if (layers > 0) cfg.n_layers = (int)layers;
  preft_adapter *a = preft_adapter_random_range(kind, &cfg, (int)rank, (preft_adapter_mode)mode, dtype,
                                                (uint64_t)seed, (float)scale);
  int rc = preft_mkdir_p(out, &err);
  if (rc == 0)
    rc = kind == PREFT_ADAPTER_LORA ? write_lora(a, &cfg, out, (int)rank, (preft_adapter_mode)mode, &err)
                                    : write_reft(a, &cfg, out, (int)rank, (preft_adapter_mode)mode, &err);
  preft_adapter_free(a);
  if (rc != 0) {
    fprintf(stderr, "preft make-adapter: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  return CLI_EXIT_OK;
}
