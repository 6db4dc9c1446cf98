/* cli_train.c - `preft train sft` (a LoRA / LoReFT / DiReFT adapter on a
 * frozen base model, all-token or prefill-only) and `preft train pretrain`
 * (a model from scratch on packed text). The loop, checkpoints and logs are
 * src/train/trainer.c; the data rules src/train/data.h. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "cli/cli_train_many.h"
#include "io/hf_config.h"
#include "model/adapter.h"
#include "model/llama.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "text/tokenizer.h"
#include "train/data.h"
#include "train/trainer.h"

#define MAX_FILES 256

static const char TRUNCATION_HELP[] =
    "Data (JSONL, one object per line):\n"
    "  {\"prompt\": P, \"completion\": C}   P encoded with the tokenizer's special tokens\n"
    "                                   (e.g. BOS), C without, then EOS; loss on C + EOS\n"
    "  {\"messages\": [{\"role\", \"content\"}, ...]}   the tokenizer's chat template; loss\n"
    "                                   on every assistant turn; the prompt (for the\n"
    "                                   adapter's flags) is all before the last one\n"
    "  {\"prompt_ids\": [...], \"completion_ids\": [...]}   pre-tokenised, no EOS added\n"
    "Truncation to --seq T tokens: the prompt keeps its last min(P, max(T/2, T-C))\n"
    "tokens and the completion its first T minus that (P, C their lengths).\n"
    "Bad lines (empty, malformed, missing fields, a completion that tokenises to\n"
    "nothing, ids outside the vocabulary) stop with FILE:LINE, or are skipped\n"
    "with --on-bad-line skip.\n";

static void sft_usage(FILE *out) {
  fprintf(out,
          "usage: preft train sft -m BASE_DIR --method lora|loreft|direft --data TRAIN.jsonl -o OUT_DIR\n"
          "                       [--mode all|prefill] [--rank R] [options]\n"
          "       preft train sft -m BASE_DIR --method ... --adapters-from DIR -o OUT_DIR [options]\n"
          "       mpirun -np N preft train sft ...   (data-parallel over N ranks)\n\n"
          "Trains an adapter on a frozen base model with the loss on completion tokens\n"
          "only, applying it with the serving engine's per-token flags: --mode all on\n"
          "every token; --mode prefill on prompt tokens only (completion tokens run the\n"
          "base weights and attend to the adapted prompt). ReFT edits its --positions.\n"
          "OUT_DIR receives a PEFT directory (LoRA; \"preft_mode\" records the mode) or a\n"
          "ReFT directory (reft_config.json \"mode\"), plus checkpoint.bin, train_log.csv\n"
          "and loss.svg.\n\n"
          "BASE_DIR may be a GGUF file; with a quantized one, or --quantize T, the adapter\n"
          "trains on the quantized base (QLoRA: the frozen weights are the dequantized\n"
          "quantized ones, adapters and gradients FP32).\n" CLI_QUANTIZE_HELP
          "\n"
          "  -m, --model DIR       base model (Hugging Face directory; its tokenizer.json\n"
          "                        encodes text data)\n" CLI_ADAPTER_HELP
          "  --data FILE           training JSONL\n"
          "  --eval FILE           evaluation JSONL\n"
          "  --eval-frac F         hold out this fraction of --data for evaluation\n"
          "  --adapters-from DIR   many adapters in one job: DIR/<name>/train.jsonl (and\n"
          "                        optional eval.jsonl) trains OUT_DIR/<name>, each as if\n"
          "                        alone; under mpirun the folders are shared out over\n"
          "                        the ranks (folder i, in name order, on rank i mod N)\n"
          "  -o, --out DIR         output directory\n"
          "  --steps N             optimizer steps (default: --epochs over the data)\n"
          "  --epochs E            passes over the training data (default 1)\n"
          "  --batch B             examples per micro-batch (default 4); under mpirun the\n"
          "                        global batch, split over the ranks (the first B mod N\n"
          "                        ranks take one example more)\n"
          "  --grad-accum G        micro-batches per step (default 1)\n"
          "  --seq T               longest example in tokens (default min(1024, context))\n"
          "  --lr X                peak learning rate (default 2e-4 LoRA, 2e-3 ReFT)\n"
          "  --min-lr-frac F       cosine decays to F x lr (default 0.1)\n"
          "  --warmup N            linear warmup steps (default 0)\n"
          "  --weight-decay W      AdamW decoupled decay on matrices (default 0)\n"
          "  --clip C              global gradient-norm clip, 0 = off (default 1)\n"
          "  --seed S              initialisation and shuffling seed (default 0)\n"
          "  --eval-every K        evaluate every K steps (default: at the end)\n"
          "  --save-every K        checkpoint every K steps (default: at the end)\n"
          "  --resume              continue from OUT_DIR/checkpoint.bin if present\n"
          "  --recompute           recompute activations in backward (less memory)\n"
          "  --matmul-precision P  f32 (default) or bf16: the products with FP32 weights take\n"
          "                        BF16-rounded operands with FP32 sums (vdpbf16ps on AVX512_BF16\n"
          "                        CPUs, emulated and slower elsewhere); master weights, gradients\n"
          "                        and AdamW state stay FP32, evaluation uses FP32 products\n"
          "  --on-bad-line A       stop | skip (default stop)\n"
          "  --json FILE           write final train/eval loss, tokens/s and world_size as JSON\n"
          "  --threads N           worker threads (default: all cores)\n"
          "  -q, --quiet           no progress bar\n\n%s",
          TRUNCATION_HELP);
}

static void pretrain_usage(FILE *out) {
  fprintf(out,
          "usage: preft train pretrain --config config.json --tokenizer PATH --data FILES... -o DIR\n"
          "                            [--steps N] [--batch B] [--seq T] [--lr X] [options]\n\n"
          "Trains every weight of a new Llama-family model (the architecture of a Hugging\n"
          "Face config.json) with the causal-LM loss on packed text: each file is one\n"
          "document (encoded with the tokenizer's special tokens, then EOS), documents are\n"
          "concatenated and cut into windows of T+1 tokens (the tail is dropped). OUT_DIR\n"
          "becomes a Hugging Face model directory (config.json, model.safetensors,\n"
          "tokenizer.json, tokenizer_config.json) that preft and transformers load, plus\n"
          "checkpoint.bin, train_log.csv and loss.svg.\n\n"
          "  --config FILE         model config.json (vocab_size >= the tokenizer's)\n"
          "  --tokenizer PATH      tokenizer.json or a directory holding one\n"
          "  --data FILE...        text files (the option may repeat)\n"
          "  -o, --out DIR         output directory\n"
          "  --steps N             optimizer steps (default: --epochs over the data)\n"
          "  --epochs E            passes over the data (default 1)\n"
          "  --batch B             sequences per micro-batch (default 8)\n"
          "  --grad-accum G        micro-batches per step (default 1)\n"
          "  --seq T               tokens per sequence (default 256)\n"
          "  --lr X                peak learning rate (default 1e-3)\n"
          "  --min-lr-frac F       (default 0.1)   --warmup N (default 0)\n"
          "  --weight-decay W      (default 0.1)   --clip C (default 1)\n"
          "  --eval-frac F         windows held out for evaluation (default 0.05)\n"
          "  --init DIR            start from this model's weights instead of random ones\n"
          "                        (its shape must be --config's; a second stage of training)\n"
          "  --seed S, --eval-every K, --save-every K, --resume, --recompute,\n"
          "  --matmul-precision f32|bf16,\n"
          "  --json FILE, --threads N, -q   as for `preft train sft`\n");
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft train sft ...        train an adapter (LoRA, LoReFT, DiReFT)\n"
          "       preft train rl ...         train an adapter with GRPO on verifiable rewards\n"
          "       preft train pretrain ...   train a model from scratch on text\n"
          "       preft train multitask ...  fine-tune a BERT encoder on SST, Quora, STS-B\n"
          "       preft train mlm ...        pretrain a BERT encoder (masked language model)\n"
          "(preft train sft --help, preft train rl --help, preft train pretrain --help)\n");
}

static int write_metrics(const char *path, const preft_train_result *r, int world_size, const char *extra_key,
                         const char *extra, preft_error *err) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "world_size", world_size);
  if (isfinite(r->train_loss))
    cJSON_AddNumberToObject(j, "train_loss", r->train_loss);
  else
    cJSON_AddNullToObject(j, "train_loss");
  if (isfinite(r->eval_loss))
    cJSON_AddNumberToObject(j, "eval_loss", r->eval_loss);
  else
    cJSON_AddNullToObject(j, "eval_loss");
  cJSON_AddNumberToObject(j, "tokens_per_s", r->tokens_per_s);
  cJSON_AddNumberToObject(j, "steps", (double)r->steps);
  cJSON_AddNumberToObject(j, "train_tokens", (double)r->tokens);
  cJSON_AddNumberToObject(j, "seconds", r->seconds);
  cJSON_AddNumberToObject(j, "activation_bytes", (double)r->peak_act_bytes);
  cJSON_AddStringToObject(j, "loss", "mean cross-entropy per counted token, natural log");
  if (extra_key) cJSON_AddStringToObject(j, extra_key, extra);
  int rc = cli_write_json(path, j, err);
  cJSON_Delete(j);
  return rc;
}

static void report(const preft_train_result *r, const char *out_dir) {
  printf("trained %lld steps, %lld tokens in %.1f s (%.0f tokens/s)\n", (long long)r->steps,
         (long long)r->tokens, r->seconds, r->tokens_per_s);
  printf("final train loss %.6f", r->train_loss);
  if (isfinite(r->eval_loss)) printf(", eval loss %.6f", r->eval_loss);
  printf("\nsaved to %s\n", out_dir);
}

/* ---- the options both commands share: loop, optimizer, checkpoints ------- */

typedef struct {
  long steps, epochs, batch, accum, seq, seed, warmup, eval_every, save_every, threads;
  double lr, min_lr, wd, clip, eval_frac;
  bool resume, recompute, quiet;
  const char *json;
  const char *matmul;          /* --matmul-precision as given */
  preft_matmul_precision prec; /* its value (loop_check) */
} loop_args;

/* Table entries for loop_args a (used inside a command's cli_opt table). */
#define LOOP_OPTIONS(a)                                                                                      \
  {"--steps", NULL, CLI_INT, &(a).steps, 1, 1L << 40}, {"--epochs", NULL, CLI_INT, &(a).epochs, 1, 1 << 20}, \
      {"--batch", NULL, CLI_INT, &(a).batch, 1, 1 << 16},                                                    \
      {"--grad-accum", NULL, CLI_INT, &(a).accum, 1, 1 << 16},                                               \
      {"--seq", NULL, CLI_INT, &(a).seq, 2, 1 << 20}, {"--lr", NULL, CLI_FLOAT, &(a).lr, 0, 10},             \
      {"--min-lr-frac", NULL, CLI_FLOAT, &(a).min_lr, 0, 1},                                                 \
      {"--warmup", NULL, CLI_INT, &(a).warmup, 0, 1L << 40},                                                 \
      {"--weight-decay", NULL, CLI_FLOAT, &(a).wd, 0, 10}, {"--clip", NULL, CLI_FLOAT, &(a).clip, 0, 1e9},   \
      {"--eval-frac", NULL, CLI_FLOAT, &(a).eval_frac, 0, 0.9},                                              \
      {"--seed", NULL, CLI_INT, &(a).seed, 0, 0x7fffffffffffL},                                              \
      {"--eval-every", NULL, CLI_INT, &(a).eval_every, 0, 1L << 40},                                         \
      {"--save-every", NULL, CLI_INT, &(a).save_every, 0, 1L << 40},                                         \
      {"--resume", NULL, CLI_FLAG, &(a).resume}, {"--recompute", NULL, CLI_FLAG, &(a).recompute},            \
      {"--json", NULL, CLI_STR, &(a).json}, {"--threads", NULL, CLI_INT, &(a).threads, 1, 1024},             \
      {"--matmul-precision", NULL, CLI_STR, &(a).matmul}, {                                                  \
    "--quiet", "-q", CLI_FLAG, &(a).quiet                                                                    \
  }

/* --matmul-precision f32|bf16 ("exact" is f32's other name, as in the
 * serving commands) into a->prec. Without AVX512_BF16 the BF16 products
 * run emulated (the same numbers, slower than f32): allowed, with a note. */
static int loop_check(const char *cmd, loop_args *a) {
  a->prec = PREFT_MATMUL_EXACT;
  if (!a->matmul || !strcmp(a->matmul, "f32") || !strcmp(a->matmul, "exact")) return 0;
  if (strcmp(a->matmul, "bf16") != 0) {
    fprintf(stderr, "preft %s: --matmul-precision expects f32 or bf16, got '%s'\n", cmd, a->matmul);
    return -1;
  }
  a->prec = PREFT_MATMUL_BF16;
  if (!preft_gemm_bf16_native())
    fprintf(stderr,
            "preft %s: this CPU (path %s) has no AVX512_BF16: the BF16 products run emulated, with the\n"
            "  same rounding as vdpbf16ps but slower than f32 (for checking BF16 numerics only)\n",
            cmd, preft_cpu_path_name(preft_cpu_path()));
  return 0;
}

/* The trainer options of loop_args, with the longest example and the output directory. */
static void loop_train_opts(const loop_args *a, int max_tokens, const char *out_dir, preft_train_opts *to) {
  preft_train_opts_default(to);
  to->max_tokens = max_tokens;
  to->out_dir = out_dir;
  to->steps = a->steps;
  to->epochs = (int)a->epochs;
  to->batch = (int)a->batch;
  to->grad_accum = (int)a->accum;
  to->lr = a->lr;
  to->min_lr_frac = a->min_lr;
  to->warmup = a->warmup;
  to->weight_decay = a->wd;
  to->clip = a->clip;
  to->seed = (uint64_t)a->seed;
  to->eval_every = a->eval_every;
  to->save_every = a->save_every;
  to->threads = (int)a->threads;
  to->recompute = a->recompute;
  to->resume = a->resume;
  to->quiet = a->quiet;
  to->matmul = a->prec;
}

/* What a training command loads: sft the base model and its tokenizer,
 * pretrain only the tokenizer (in cm); the datasets; the trained model. */
typedef struct {
  cli_model cm;
  preft_dataset train, eval;
  preft_train_model tm;
} train_inputs;

static void train_inputs_free(train_inputs *in) {
  preft_train_model_free(&in->tm);
  preft_dataset_free(&in->train);
  preft_dataset_free(&in->eval);
  cli_model_free(&in->cm);
}

/* Runs the trainer (ad NULL: the whole model) over the ranks of d, and on
 * rank 0 prints the summary and writes the --json metrics, adding
 * extra_key: extra when extra_key is set. */
static int train_and_report(train_inputs *in, preft_train_adapter *ad, const loop_args *la,
                            const preft_train_opts *to, const cli_dist *d, const char *extra_key,
                            const char *extra, preft_error *err) {
  preft_train_result res;
  if (preft_train_run_dist(&in->tm, ad, &in->train, in->eval.n ? &in->eval : NULL, to,
                           d->size > 1 ? &d->comm : NULL, &res, err) != 0)
    return -1;
  if (d->rank != 0) return 0;
  report(&res, to->out_dir);
  return la->json ? write_metrics(la->json, &res, d->size, extra_key, extra, err) : 0;
}

/* ---- sft ------------------------------------------------------------------ */

static int train_sft(int argc, char **argv, const cli_dist *d) {
  const char *model_dir = NULL, *data = NULL, *eval_path = NULL, *out = NULL, *bad = "stop", *many = NULL;
  cli_adapter_args aa = CLI_ADAPTER_ARGS_INIT;
  loop_args la = {.epochs = 1, .batch = 4, .accum = 1, .lr = -1, .min_lr = 0.1, .clip = 1.0};
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model_dir},
      CLI_ADAPTER_OPTIONS(aa),
      {"--data", NULL, CLI_STR, &data},
      {"--eval", NULL, CLI_STR, &eval_path},
      {"--adapters-from", NULL, CLI_STR, &many},
      {"--out", "-o", CLI_STR, &out},
      {"--on-bad-line", NULL, CLI_STR, &bad},
      LOOP_OPTIONS(la),
      CLI_QUANTIZE_OPTION,
      {NULL},
  };
  int pr = cli_parse("train sft", argc, argv, opts, sft_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!model_dir || !aa.method || !(data || many) || !out) {
    fprintf(stderr,
            "preft train sft: -m, --method, --data (or --adapters-from) and -o are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (many && (data || eval_path || la.resume)) {
    fprintf(stderr,
            "preft train sft: --adapters-from takes each adapter's data from its folder; "
            "it cannot be combined with --data, --eval or --resume\n");
    return CLI_EXIT_USAGE;
  }
  if (cli_adapter_check("train sft", &aa) != 0 || loop_check("train sft", &la) != 0) return CLI_EXIT_USAGE;
  preft_bad_line_policy on_bad;
  if (cli_parse_bad_line("train sft", bad, &on_bad) != 0) return CLI_EXIT_USAGE;
  if (la.lr < 0) la.lr = !strcmp(aa.method, "lora") ? 2e-4 : 2e-3;
  la.threads = cli_dist_threads(d, (int)la.threads);

  preft_error err;
  train_inputs in = {0};
  preft_train_adapter ad = {0};
  bool *layer_on = NULL;
  int rc = CLI_EXIT_ERROR;
  cli_model_args ma = {.model_dir = model_dir, .tokenizer = CLI_TOK_IF_PRESENT};
  if (cli_model_load(&in.cm, &ma, &err) != 0) goto fail;
  const preft_model *m = in.cm.model;
  preft_train_adapter_opts ao;
  if (cli_adapter_opts("train sft", &aa, &m->cfg, (uint64_t)la.seed, &ao, &layer_on) != 0) {
    rc = CLI_EXIT_USAGE;
    goto done;
  }
  if (la.seq == 0) la.seq = m->cfg.max_pos < 1024 ? m->cfg.max_pos : 1024;
  if (la.seq > m->cfg.max_pos) {
    preft_fail(&err, "--seq %ld exceeds the model's context of %d", la.seq, m->cfg.max_pos);
    goto fail;
  }
  preft_data_opts dopt = cli_data_opts(in.cm.tok, &m->cfg, (int)la.seq, on_bad);
  const char *slash = strrchr(model_dir, '/');
  preft_train_opts to;
  loop_train_opts(&la, (int)la.seq, out, &to);
  to.base_name = slash && slash[1] ? slash + 1 : model_dir;
  if (many) {
    cli_train_many_args ma2 = {.dir = many,
                               .out = out,
                               .model = m,
                               .ao = &ao,
                               .dopt = &dopt,
                               .to = &to,
                               .eval_frac = la.eval_frac,
                               .seed = (uint64_t)la.seed,
                               .json = la.json,
                               .mode_name = preft_adapter_mode_name(ao.mode)};
    if (cli_train_many(&ma2, d, &err) != 0) goto fail;
    rc = CLI_EXIT_OK;
    goto done;
  }
  if (preft_dataset_load_jsonl(&in.train, data, &dopt, &err) != 0) goto fail;
  if (eval_path && preft_dataset_load_jsonl(&in.eval, eval_path, &dopt, &err) != 0) goto fail;
  if (!eval_path && preft_dataset_hold_out(&in.train, &in.eval, la.eval_frac, PREFT_HOLD_OUT_RANDOM,
                                           (uint64_t)la.seed, &err) != 0)
    goto fail;
  if (!la.quiet && d->rank == 0)
    fprintf(stderr,
            "preft train sft: %d training examples (%lld tokens, %lld in the loss)%s%d eval; %d truncated\n",
            in.train.n, (long long)in.train.tokens, (long long)in.train.targets,
            in.eval.n ? ", " : ", no eval; ", in.eval.n, in.train.truncated + in.eval.truncated);
  preft_train_model_from(&in.tm, in.cm.model, false);
  if (preft_train_adapter_init(&ad, &m->cfg, &ao, &err) != 0) goto fail;
  if (train_and_report(&in, &ad, &la, &to, d, "mode", preft_adapter_mode_name(ad.mode), &err) != 0) goto fail;
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft train sft: %s\n", err.msg);
  rc = CLI_EXIT_ERROR;
done:
  free(layer_on);
  preft_train_adapter_free(&ad);
  train_inputs_free(&in);
  return rc;
}

/* ---- pretrain -------------------------------------------------------------- */

/* --init DIR: the weights of the model in DIR, trained further (its shape
 * must be that of the config, so the run's config.json describes it). */
static int init_from(preft_train_model *tm, const char *dir, const preft_model_config *cfg,
                     const char *config_path, preft_error *err) {
  cli_model cm = {0};
  cli_model_args ma = {.model_dir = dir, .tokenizer = CLI_TOK_IF_GIVEN};
  if (cli_model_load(&cm, &ma, err) != 0) return -1;
  const preft_model_config *m = &cm.model->cfg;
  int rc = 0;
  if (m->vocab != cfg->vocab || m->dim != cfg->dim || m->ffn != cfg->ffn || m->n_layers != cfg->n_layers ||
      m->n_heads != cfg->n_heads || m->n_kv_heads != cfg->n_kv_heads || m->head_dim != cfg->head_dim ||
      m->tie_embeddings != cfg->tie_embeddings)
    rc = preft_fail(err, "--init %s: the model's shape is not that of %s", dir, config_path);
  else
    preft_train_model_from(tm, cm.model, true);
  cli_model_free(&cm);
  return rc;
}

static int train_pretrain(int argc, char **argv, const cli_dist *d) {
  const char *config = NULL, *tok_path = NULL, *out = NULL, *init = NULL, *files[MAX_FILES];
  cli_strs data = {.items = files, .max = MAX_FILES, .greedy = true}; /* --data a b c */
  loop_args la = {.epochs = 1,
                  .batch = 8,
                  .accum = 1,
                  .seq = 256,
                  .lr = 1e-3,
                  .min_lr = 0.1,
                  .wd = 0.1,
                  .clip = 1.0,
                  .eval_frac = 0.05};
  const cli_opt opts[] = {
      {"--config", NULL, CLI_STR, &config},
      {"--tokenizer", NULL, CLI_STR, &tok_path},
      {"--data", NULL, CLI_STRS, &data},
      {"--out", "-o", CLI_STR, &out},
      {"--init", NULL, CLI_STR, &init},
      LOOP_OPTIONS(la),
      {NULL},
  };
  int pr = cli_parse("train pretrain", argc, argv, opts, pretrain_usage);
  if (pr != 0) return cli_parse_exit(pr);
  if (!config || !tok_path || data.n == 0 || !out) {
    fprintf(stderr, "preft train pretrain: --config, --tokenizer, --data and -o are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (loop_check("train pretrain", &la) != 0) return CLI_EXIT_USAGE;
  la.threads = cli_dist_threads(d, (int)la.threads);
  preft_error err;
  preft_model_config cfg;
  train_inputs in = {0};
  char *cfg_text = NULL;
  int rc = CLI_EXIT_ERROR;
  size_t cfg_len;
  if (preft_read_file(config, &cfg_text, &cfg_len, &err) != 0 ||
      preft_config_parse(&cfg, cfg_text, config, &err) != 0)
    goto fail;
  if (preft_tokenizer_load(&in.cm.tok, tok_path, &err) != 0) goto fail;
  const preft_tokenizer *tok = in.cm.tok;
  if (preft_tokenizer_vocab_size(tok) > cfg.vocab) {
    preft_fail(&err, "%s: vocab_size %d is smaller than the tokenizer's %d", config, cfg.vocab,
               preft_tokenizer_vocab_size(tok));
    goto fail;
  }
  if (la.seq > cfg.max_pos) {
    preft_fail(&err, "--seq %ld exceeds max_position_embeddings %d", la.seq, cfg.max_pos);
    goto fail;
  }
  const int32_t *eos;
  if (cfg.n_eos == 0 && preft_tokenizer_eos_ids(tok, &eos) > 0) {
    cfg.eos_ids[0] = eos[0];
    cfg.n_eos = 1;
  }
  if (cfg.bos_id < 0 && preft_tokenizer_bos_id(tok) >= 0) cfg.bos_id = preft_tokenizer_bos_id(tok);
  preft_data_opts dopt = cli_data_opts(tok, &cfg, (int)la.seq, PREFT_BAD_LINE_STOP);
  if (preft_dataset_load_text(&in.train, data.items, data.n, &dopt, &err) != 0) goto fail;
  /* the last windows (not shuffled in) are the evaluation set */
  if (in.train.n >= 2 &&
      preft_dataset_hold_out(&in.train, &in.eval, la.eval_frac, PREFT_HOLD_OUT_TAIL, 0, &err) != 0)
    goto fail;
  if (!la.quiet && d->rank == 0)
    fprintf(stderr, "preft train pretrain: %d training windows of %ld tokens, %d eval windows\n", in.train.n,
            la.seq, in.eval.n);
  /* the tokenizer first: a run is not lost to a tokenizer that cannot be copied */
  if (d->rank == 0 &&
      (preft_mkdir_p(out, &err) != 0 || preft_tokenizer_save_files(tok, tok_path, out, &err) != 0))
    goto fail;
  if (init) {
    if (init_from(&in.tm, init, &cfg, config, &err) != 0) goto fail;
  } else if (preft_train_model_init(&in.tm, &cfg, (uint64_t)la.seed, &err) != 0) {
    goto fail;
  }
  preft_train_opts to;
  loop_train_opts(&la, (int)la.seq + 1, out, &to);
  if (train_and_report(&in, NULL, &la, &to, d, NULL, NULL, &err) != 0) goto fail;
  rc = CLI_EXIT_OK;
  goto done;
fail:
  fprintf(stderr, "preft train pretrain: %s\n", err.msg);
  rc = CLI_EXIT_ERROR;
done:
  free(cfg_text);
  train_inputs_free(&in);
  return rc;
}

int cli_train(int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  if (!strcmp(argv[1], "multitask")) return cli_train_multitask(argc - 1, argv + 1);
  if (!strcmp(argv[1], "mlm")) return cli_train_mlm(argc - 1, argv + 1);
  bool sft = !strcmp(argv[1], "sft"), pretrain = !strcmp(argv[1], "pretrain"), rl = !strcmp(argv[1], "rl");
  if (!sft && !pretrain && !rl) {
    fprintf(stderr, "preft train: unknown subcommand '%s' (sft, pretrain, rl, multitask or mlm)\n", argv[1]);
    return CLI_EXIT_USAGE;
  }
  /* under mpirun: one rank of a data-parallel job (cli_mpi.c) */
  cli_dist d;
  int rc = cli_dist_open(&d, sft ? "train sft" : pretrain ? "train pretrain" : "train rl");
  if (rc != 0) return rc;
  rc = sft        ? train_sft(argc - 1, argv + 1, &d)
       : pretrain ? train_pretrain(argc - 1, argv + 1, &d)
                  : cli_train_rl(argc - 1, argv + 1, &d);
  return cli_dist_close(&d, rc);
}
