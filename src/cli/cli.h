/* cli.h - the subcommands of the preft command line and their shared
 * argument helpers. Each subcommand lives in its own cli_*.c file, takes
 * argv with argv[0] = the subcommand name, prints --help to stdout, and
 * returns one of the exit codes below. */
#ifndef PREFT_CLI_H
#define PREFT_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "model/adapter.h"
#include "model/llama.h"
#include "preft/generate.h"
#include "tensor/dtype.h"
#include "text/tokenizer.h"
#include "train/data.h"
#include "train/train_dist.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_ERROR = 1, CLI_EXIT_USAGE = 2 };

int cli_generate(int argc, char **argv);
int cli_logits(int argc, char **argv);
int cli_encode(int argc, char **argv); /* cli_encode.c: BERT hidden states / pooled output */
int cli_make_model(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_bench_adapters(int argc, char **argv);
int cli_bench_encoder(int argc, char **argv); /* cli_bench_encoder.c: `preft bench encoder` */
int cli_perplexity(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_detokenize(int argc, char **argv);
int cli_chat_template(int argc, char **argv);
int cli_tokenizer(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_train(int argc, char **argv);     /* cli_train.c: train sft | train pretrain */
int cli_eval_loss(int argc, char **argv); /* cli_eval_loss.c */
struct cli_dist;
/* cli_train_rl.c: `preft train rl` (data-parallel over mpirun's ranks d) */
int cli_train_rl(int argc, char **argv, const struct cli_dist *d);
int cli_eval(int argc, char **argv); /* cli_train_rl.c: `preft eval rl` */
int cli_make_adapter(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_bench_serve(int argc, char **argv); /* `preft bench serve`, from cli_bench.c */
int cli_bench_spec(int argc, char **argv);  /* `preft bench spec`: speculative decoding */
int cli_route(int argc, char **argv);       /* cli_route.c: HAProxy configuration over replicas */
int cli_tasks(int argc, char **argv);       /* cli_tasks.c: tasks run | check | list | reward | base */
int cli_rl_data(int argc, char **argv);     /* cli_rl_data.c: prompts of an RL task */

/* BERT multitask and pretraining (issue 16) */
int cli_train_multitask(int argc, char **argv); /* cli_train_multitask.c: `preft train multitask` */
int cli_eval_multitask(int argc, char **argv);  /* cli_eval_multitask.c: `preft eval multitask` */
int cli_train_mlm(int argc, char **argv);       /* cli_train_mlm.c: `preft train mlm` */
int cli_classify(int argc, char **argv);        /* cli_classify.c: `preft classify` */

/* ---- declarative options ----------------------------------------------------
 * A command lists its options in a table ending with {NULL}; cli_parse walks
 * argv once, checks every value's type and range, and prints
 * "preft CMD: ..." naming the option for anything wrong. */
typedef enum {
  CLI_FLAG,       /* bool *: set true when present */
  CLI_STR,        /* const char **: the argument as given */
  CLI_STRS,       /* cli_strs *: repeatable string option */
  CLI_INT,        /* long *: integer in [lo, hi] */
  CLI_FLOAT,      /* double *: finite number in [lo, hi] */
  CLI_DTYPE,      /* preft_dtype *: f32 | f16 | bf16 */
  CLI_MODE,       /* int *: adapter mode, all | prefill (preft_adapter_mode) */
  CLI_IDS,        /* cli_ids *: comma-separated non-negative integers */
  CLI_MATMUL,     /* dst unused: exact | bf16, sets the process's matmul precision (tensor/gemm.h) */
  CLI_QUANTIZE,   /* dst unused: a quantized type, sets cli_quantize */
  CLI_LORA_DTYPE, /* dst unused: auto | float16 | bfloat16 (checked), sets cli_lora_dtype */
} cli_opt_kind;

/* The --matmul-precision entry of every command that runs a model, and its
 * help line. The environment variable PREFT_MATMUL_PRECISION sets the same
 * default for every command (main.c); the option overrides it. */
#define CLI_MATMUL_OPTION \
  { "--matmul-precision", NULL, CLI_MATMUL, NULL, 0, 0 }
#define CLI_MATMUL_HELP                                                                    \
  "  --matmul-precision P exact (default) or bf16: BF16 weights multiply BF16-rounded\n"   \
  "                       activations with FP32 sums (vdpbf16ps; AVX512_BF16 CPUs only,\n" \
  "                       as llama.cpp does); env PREFT_MATMUL_PRECISION\n"

/* --speculative KIND, --spec-k K and --draft-model DIR of the commands that
 * decode (generate, serve, bench spec): the strings and numbers as parsed,
 * then cli_speculation() checks them into the settings and
 * cli_load_draft() loads the draft model. */
typedef struct cli_spec_args {
  const char *kind;        /* off | ngram | draft; NULL: off, or draft with --draft-model */
  long k;                  /* 0: the default */
  const char *draft_model; /* the draft model's directory */
} cli_spec_args;
#define CLI_SPEC_OPTIONS(a)                                                                        \
  {"--speculative", NULL, CLI_STR, &(a).kind, 0, 0}, {"--spec-k", NULL, CLI_INT, &(a).k, 1, 64}, { \
    "--draft-model", NULL, CLI_STR, &(a).draft_model, 0, 0                                         \
  }
#define CLI_SPEC_HELP                                                                    \
  "  --speculative KIND   speculative decoding (the output is distributed as without;\n" \
  "                       greedy output is the same tokens): ngram drafts by prompt\n"   \
  "                       lookup (the tokens that followed the latest repeat of the\n"   \
  "                       last 2-3 tokens), draft by --draft-model; each step checks\n"  \
  "                       the drafts in one forward; off (default)\n"                    \
  "  --spec-k K           tokens drafted per step at most (default 4)\n"                 \
  "  --draft-model DIR    a small model with the same tokenizer that drafts (implies\n"  \
  "                       --speculative draft; base weights only, shared by every\n"     \
  "                       adapter; e.g. assets/draft-model)\n"
/* Fills *out from a; on a bad kind or a missing draft model prints why
 * (naming cmd) and returns -1. */
int cli_speculation(const char *cmd, const cli_spec_args *a, preft_speculation *out);
/* Loads a's draft model into *owned and points spec at it (nothing without
 * one); the caller frees *owned after the engine or generation using it.
 * Fails, naming both directories and what differs, when the draft does not
 * use the tokenizer of target (loaded from model_dir): its vocabulary size,
 * bos or eos ids, or, when both directories have a tokenizer.json, their
 * vocabularies. */
int cli_load_draft(const cli_spec_args *a, const char *model_dir, const preft_model *target,
                   preft_speculation *spec, preft_model **owned, preft_error *err);

/* --quantize T of the commands that run a decoder: the type -m models are
 * quantized to at load (cli_model_load, bench), -1 for none. */
extern int cli_quantize;
#define CLI_QUANTIZE_OPTION \
  { "--quantize", NULL, CLI_QUANTIZE, NULL, 0, 0 }
#define CLI_QUANTIZE_HELP                                                                      \
  "  --quantize T         quantize the model at load: q8_0 or q4_0 (also q5_0, q4_k, q6_k),\n" \
  "                       as `convert --type T` writes it (int8 kernels; a GGUF's quantized\n" \
  "                       matrices stay as they are)\n"
/* Applies cli_quantize to a loaded model (nothing when unset). */
int cli_apply_quantize(preft_model *m, preft_error *err);

/* --lora-dtype T of the commands that run a decoder with a LoRA, as given
 * (a name preft_lora_dtype_parse takes; NULL: not given): the type its A
 * and B are held as. cli_model_load applies it; serve hands it to the
 * engine (preft_engine_config.lora_dtype). */
extern const char *cli_lora_dtype;
#define CLI_LORA_DTYPE_OPTION \
  { "--lora-dtype", NULL, CLI_LORA_DTYPE, NULL, 0, 0 }
#define CLI_LORA_DTYPE_HELP                                                              \
  "  --lora-dtype T       a LoRA's A and B held as auto (as the files store them, the\n" \
  "                       default), float16 or bfloat16: rounded at load, as\n"          \
  "                       `serve --lora-dtype` holds them\n"

typedef struct cli_strs {
  const char **items; /* caller's array of `max` slots */
  int n, max;
  bool greedy; /* the option also takes the arguments after its value, up to the next starting with '-' */
} cli_strs;

typedef struct cli_ids {
  int *v; /* heap; the caller frees */
  int n;
} cli_ids;

typedef struct cli_opt {
  const char *name;  /* "--top-k" */
  const char *alias; /* "-k" or NULL */
  cli_opt_kind kind;
  void *dst;
  double lo, hi; /* CLI_INT, CLI_FLOAT */
} cli_opt;

/* Returns 0 (parsed), 1 (--help printed: exit 0) or -1 (error printed:
 * exit CLI_EXIT_USAGE). argv[0] is the command; every later argument must
 * be an option of the table. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*usage)(FILE *out));
/* The exit code for a cli_parse result that is not 0. */
static inline int cli_parse_exit(int r) { return r > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE; }

/* Option parsing helpers: each returns 0 or prints "preft CMD: ..." and
 * returns -1 for a value that does not parse. */
bool cli_is_help(const char *arg);
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out);
/* Needs argv[i+1]; prints an error naming the option when missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* Parses f32 | f16 | bf16. */
int cli_parse_dtype(const char *cmd, const char *opt, const char *s, preft_dtype *out);
/* Prints an error and returns -1 unless every value is >= 1. */
int cli_require_positive(const char *cmd, const char *opt, const int *v, int n);
/* A heap copy of a default list (for options left unset). */
void cli_default_list(int **out, int *n, const int *dflt, int count);
/* Parses "1,2,3" into a heap array of token ids. */
int cli_parse_ids(const char *cmd, const char *s, int **ids, int *n);

/* ---- what the commands that run a model share (cli_common.c) ---------------- */

typedef enum {
  CLI_TOK_IF_GIVEN,   /* only an explicit tok_path */
  CLI_TOK_IF_PRESENT, /* tok_path, else the model directory's when it has one (tokenizer.json or vocab.txt) */
  CLI_TOK_REQUIRED,   /* tok_path, else the model directory's; fails without one */
} cli_tok_need;

typedef struct cli_model_args {
  const char *model_dir;
  const char *tok_path; /* NULL: the model directory's, per `tokenizer` */
  cli_tok_need tokenizer;
  const char *adapter_dir; /* NULL: the base model */
  int adapter_mode;        /* --adapter-mode (CLI_MODE), -1: the adapter's configured mode */
} cli_model_args;

/* A model with its tokenizer and adapter, as a command loaded them. */
typedef struct cli_model {
  preft_model *model;
  preft_tokenizer *tok;    /* NULL when not loaded */
  preft_adapter *adapter;  /* NULL: the base model */
  preft_adapter_mode mode; /* the adapter's mode (ALL without an adapter) */
} cli_model;

/* Whether a model path holds a tokenizer: a directory with tokenizer.json
 * or vocab.txt, or a GGUF file with a vocabulary. */
bool cli_has_tokenizer(const char *model_path);

/* Loads the tokenizer, the model and the adapter that args name. On failure
 * frees what it loaded and leaves the message (naming the path) in err. */
int cli_model_load(cli_model *out, const cli_model_args *args, preft_error *err);
void cli_model_free(cli_model *cm);

/* The data options for a model's examples: EOS from the tokenizer (else
 * the model's config), ids below its vocabulary, at most max_tokens. */
preft_data_opts cli_data_opts(const preft_tokenizer *tok, const preft_model_config *cfg, int max_tokens,
                              preft_bad_line_policy on_bad_line);
/* Parses --on-bad-line stop | skip; prints "preft CMD: ..." and returns -1
 * for anything else. */
int cli_parse_bad_line(const char *cmd, const char *s, preft_bad_line_policy *out);

/* ---- the adapter a training command creates (cli_adapter_args.c) -----------
 * `train sft` and `train rl` take the same flags and make the same files. */
typedef struct cli_adapter_args {
  const char *method, *targets, *layers, *positions;
  int mode; /* preft_adapter_mode */
  long rank;
  double alpha; /* <= 0: 2·rank */
  bool share;
} cli_adapter_args;

/* Defaults: mode all, rank 8, positions f7+l7. */
#define CLI_ADAPTER_ARGS_INIT \
  { .positions = "f7+l7", .mode = PREFT_MODE_ALL, .rank = 8, .alpha = -1 }
/* Table entries for cli_adapter_args a (inside a command's cli_opt table). */
#define CLI_ADAPTER_OPTIONS(a)                                                                            \
  {"--method", NULL, CLI_STR, &(a).method}, {"--mode", NULL, CLI_MODE, &(a).mode},                        \
      {"--rank", "-r", CLI_INT, &(a).rank, 1, 4096}, {"--alpha", NULL, CLI_FLOAT, &(a).alpha, 1e-9, 1e9}, \
      {"--targets", NULL, CLI_STR, &(a).targets}, {"--layers", NULL, CLI_STR, &(a).layers},               \
      {"--positions", NULL, CLI_STR, &(a).positions}, {                                                   \
    "--share-weights", NULL, CLI_FLAG, &(a).share                                                         \
  }
#define CLI_ADAPTER_HELP                                                              \
  "  --method M            lora | loreft | direft\n"                                  \
  "  --mode M              all | prefill (default all)\n"                             \
  "  --rank R              rank (default 8)\n"                                        \
  "  --alpha A             LoRA alpha; scale = alpha/R (default 2R)\n"                \
  "  --targets LIST        LoRA modules, from q,k,v,o,gate,up,down (default all 7)\n" \
  "  --layers LIST         adapted layers, e.g. 0,2,5 (default all)\n"                \
  "  --positions P         ReFT positions fA+lB or all (default f7+l7)\n"             \
  "  --share-weights       ReFT fA+lB: one intervention for first and last\n"

/* Checks the flags that need no model (method, positions, targets): 0, or
 * an error printed as "preft CMD: ..." and -1 (a usage error). */
int cli_adapter_check(const char *cmd, const cli_adapter_args *a);
/* The adapter options for a model of config cfg (seed: initialisation);
 * *layers (heap, the caller frees; NULL for all layers) backs o->layers.
 * Prints "preft CMD: ..." and returns -1 on a bad --layers. */
int cli_adapter_opts(const char *cmd, const cli_adapter_args *a, const preft_model_config *cfg, uint64_t seed,
                     preft_train_adapter_opts *o, bool **layers);

/* Writes j (not consumed) as indented JSON to path, atomically. */
struct cJSON;
int cli_write_json(const char *path, const struct cJSON *j, preft_error *err);

/* ---- ranks under mpirun (cli_mpi.c) ---------------------------------------------
 * A command started by an MPI launcher (mpirun, srun) calls cli_dist_open
 * first: with MPI built in it joins the job (MPI_Init); without, it prints
 * that preft was built without MPI and returns CLI_EXIT_USAGE. Not under a
 * launcher: one rank of one, and MPI is never initialised. */
typedef struct cli_dist {
  int rank, size;        /* this rank, ranks in the job */
  int local_size;        /* ranks on this machine */
  bool mpi;              /* MPI_Init was called */
  preft_train_comm comm; /* sums over the ranks (size > 1) */
} cli_dist;

/* 0, or an exit code after printing why. */
int cli_dist_open(cli_dist *d, const char *cmd);
/* Leaves the job and returns rc; a rank that fails (rc != 0) in a job of
 * more than one aborts the whole job, so no rank waits for it forever. */
int cli_dist_close(cli_dist *d, int rc);
/* Waits for every rank; fails on every rank when one passed ok = 0. */
int cli_dist_barrier(const cli_dist *d, int ok, preft_error *err);
/* Worker threads of one rank: `threads` when set, otherwise the cores the
 * launcher bound it to, or the machine's cores shared among its ranks. */
int cli_dist_threads(const cli_dist *d, int threads);
/* "Open MPI v4.1.4" when built with MPI, else NULL. */
const char *cli_mpi_library(void);

#endif
