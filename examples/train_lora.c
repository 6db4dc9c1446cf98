/* train_lora.c - training a LoRA adapter through libpreft's public API only
 * (include/preft, linked against libpreft.so): loads a Hugging Face model
 * directory and a JSONL training set, trains a rank-R LoRA on q_proj and
 * v_proj for a number of optimizer steps, and writes the PEFT adapter
 * directory (plus checkpoint.bin, train_log.csv, loss.svg) to OUT_DIR.
 * The same run as
 *   preft train sft -m MODEL_DIR --method lora --rank R --targets q,v
 *                   --data DATA --steps STEPS --threads 2 -o OUT_DIR
 * (the other settings are that command's defaults), and bit-identical to it.
 *
 *   usage: train_lora MODEL_DIR DATA.jsonl OUT_DIR STEPS RANK
 *
 * JSONL lines: {"prompt": "...", "completion": "..."} or {"messages": [...]}
 * (with the model directory's tokenizer), or {"prompt_ids": [...],
 * "completion_ids": [...]} (docs/TRAINING.md).
 */
#include <preft/preft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when dir holds a tokenizer.json (the model then encodes text lines). */
static bool has_tokenizer(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "rb");
  if (f) fclose(f);
  return f != NULL;
}

int main(int argc, char **argv) {
  if (argc != 6 || atoi(argv[4]) < 1 || atoi(argv[5]) < 1) {
    fprintf(stderr, "usage: train_lora MODEL_DIR DATA.jsonl OUT_DIR STEPS RANK   (libpreft %s)\n",
            preft_version());
    return 2;
  }
  const char *model_dir = argv[1], *data = argv[2], *out = argv[3];
  int steps = atoi(argv[4]), rank = atoi(argv[5]);

  preft_error err;
  preft_model *model = NULL;
  preft_tokenizer *tok = NULL;
  preft_train_model *tm = NULL;
  preft_train_adapter *ad = NULL;
  preft_dataset train = {0};
  int rc = 1;
  if (preft_model_load(&model, model_dir, &err) != 0) goto fail;
  if (has_tokenizer(model_dir) && preft_tokenizer_load(&tok, model_dir, &err) != 0) goto fail;
  const preft_model_config *cfg = preft_model_get_config(model);

  /* Examples of at most min(context, 1024) tokens; EOS after text completions. */
  const int32_t *eos;
  int n_eos = tok ? preft_tokenizer_eos_ids(tok, &eos) : 0;
  preft_data_opts dopt = {.tok = tok,
                          .eos_id = n_eos        ? eos[0]
                                    : cfg->n_eos ? cfg->eos_ids[0]
                                                 : -1,
                          .max_tokens = cfg->max_pos < 1024 ? cfg->max_pos : 1024,
                          .vocab = cfg->vocab,
                          .on_bad_line = PREFT_BAD_LINE_STOP};
  if (preft_dataset_load_jsonl(&train, data, &dopt, &err) != 0) goto fail;

  tm = preft_train_model_create(model, false); /* frozen FP32 copy of the base */
  preft_train_adapter_opts ao = {.kind = PREFT_ADAPTER_LORA,
                                 .mode = PREFT_MODE_ALL,
                                 .rank = rank,
                                 .alpha = 2.0 * rank,
                                 .modules = {[PREFT_MOD_Q] = true, [PREFT_MOD_V] = true}};
  if (preft_train_adapter_create(&ad, cfg, &ao, &err) != 0) goto fail;

  preft_train_opts o;
  preft_train_opts_default(&o);
  o.steps = steps;
  o.max_tokens = dopt.max_tokens;
  o.lr = 2e-4;
  o.threads = 2;
  o.quiet = true;
  o.out_dir = out;
  const char *slash = strrchr(model_dir, '/');
  o.base_name = slash && slash[1] ? slash + 1 : model_dir;
  preft_train_result res;
  if (preft_train_run(tm, ad, &train, NULL, &o, &res, &err) != 0) goto fail;
  printf("%lld steps, last loss %.6f, adapter written to %s\n", (long long)res.steps, res.train_loss, out);
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "train_lora: %s\n", err.msg);
done:
  preft_train_adapter_destroy(ad);
  preft_train_model_destroy(tm);
  preft_dataset_free(&train);
  preft_tokenizer_free(tok);
  preft_model_free(model);
  return rc;
}
