/* main.c - the preft command line: dispatches to one file per subcommand. */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "cli/cli.h"
#include "preft/preft.h"
#include "tensor/gemm.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"generate", cli_generate, "generate text from a model (streams to stdout)"},
    {"logits", cli_logits, "write the logits of every position as float32 [T, vocab]"},
    {"encode", cli_encode, "BERT encoder: last hidden state [T, hidden] or pooled output as float32"},
    {"classify", cli_classify, "BERT multitask model: sentiment, paraphrase or similarity (early exit)"},
    {"perplexity", cli_perplexity, "per-token log-likelihood and perplexity of a text file"},
    {"serve", cli_serve, "OpenAI-compatible HTTP server with per-request adapters"},
    {"route", cli_route, "HAProxy configuration routing requests to serve replicas by adapter"},
    {"train", cli_train,
     "train an adapter (sft, rl), a model from scratch (pretrain), BERT (mlm, multitask)"},
    {"eval", cli_eval, "evaluate on a task: eval rl (greedy accuracy), eval multitask (BERT dev metrics)"},
    {"eval-loss", cli_eval_loss, "mean cross-entropy per completion token of a JSONL set (optional adapter)"},
    {"bench", cli_bench, "benchmarks: rooflines, prefill and decode throughput"},
    {"convert", cli_convert, "export a model or LoRA adapter as GGUF for llama.cpp"},
    {"make-model", cli_make_model, "write a random-weight model in Hugging Face layout"},
    {"make-adapter", cli_make_adapter, "write a random-weight LoRA or ReFT adapter for a model's shape"},
    {"tokenize", cli_tokenize, "text to token ids with a Hugging Face tokenizer"},
    {"detokenize", cli_detokenize, "token ids to text"},
    {"chat-template", cli_chat_template, "render a tokenizer's chat template with a conversation"},
    {"rl-data", cli_rl_data, "prompts of an RL task as text or a JSONL task file (pretraining, eval sets)"},
    {"tasks", cli_tasks, "terminal tasks in sandboxes: run agents, check tasks, rewards for RL"},
    {"tokenizer", cli_tokenizer, "tokenizer tools: train a byte-level BPE (tokenizer train)"},
};

static void usage(FILE *out) {
  fprintf(out,
          "preft - serve, train and evaluate per-user adapters on transformer LMs (CPU, C11)\n\n"
          "usage: preft COMMAND [options]   (preft COMMAND --help for each; preft --version)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\nexit codes: 0 ok, 1 bad input or runtime error, 2 bad command line\n");
  fprintf(out,
          "environment: PREFT_CPU=portable|avx|avx2|avx512 caps the SIMD kernels;\n"
          "             PREFT_MATMUL_PRECISION=exact|bf16 (see --matmul-precision);\n"
          "             PREFT_MMAP=1 maps model weights instead of reading them into memory;\n"
          "             PREFT_REPACK=0 keeps Q4_0/Q5_0/Q4_K weights in ggml's block layout in memory\n");
}

/* An environment switch NAME=0|1 handed to set when present; -1 (said on
 * stderr) when it is neither. */
static int env_switch(const char *name, void (*set)(bool on)) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
    fprintf(stderr, "preft: %s=%s is neither 0 nor 1\n", name, v);
    return -1;
  }
  set(v[0] == '1');
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("preft %s\n", preft_version());
    const char *mpi = cli_mpi_library(); /* data-parallel training, sharded task runs */
    printf("mpi: %s\n", mpi ? mpi : "no (built without MPI: mpirun runs are refused)");
    return 0;
  }
  const char *prec = getenv("PREFT_MATMUL_PRECISION");
  if (prec && *prec) {
    int p = preft_matmul_precision_parse(prec);
    if (p < 0) {
      fprintf(stderr, "preft: PREFT_MATMUL_PRECISION=%s is neither exact nor bf16\n", prec);
      return CLI_EXIT_USAGE;
    }
    preft_matmul_set_precision((preft_matmul_precision)p);
  }
  if (env_switch("PREFT_MMAP", preft_weights_set_mmap) != 0 ||
      env_switch("PREFT_REPACK", preft_weights_set_repack) != 0)
    return CLI_EXIT_USAGE;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "preft: unknown command '%s' (see preft --help)\n", argv[1]);
  return CLI_EXIT_USAGE;
}
