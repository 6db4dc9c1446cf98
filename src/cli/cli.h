/* cli.h - the subcommands of the preft command line and their shared
 * argument helpers. Each subcommand lives in its own cli_*.c file, takes
 * argv with argv[0] = the subcommand name, prints --help to stdout, and
 * returns one of the exit codes below. */
#ifndef PREFT_CLI_H
#define PREFT_CLI_H

#include <stdbool.h>

#include "tensor/dtype.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_ERROR = 1, CLI_EXIT_USAGE = 2 };

int cli_generate(int argc, char **argv);
int cli_logits(int argc, char **argv);
int cli_make_model(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_bench_adapters(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_detokenize(int argc, char **argv);
int cli_chat_template(int argc, char **argv);
int cli_tokenizer(int argc, char **argv);

/* Option parsing helpers: each returns 0 or prints "preft CMD: ..." and
 * returns -1 for a value that does not parse. */
bool cli_is_help(const char *arg);
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_float(const char *cmd, const char *opt, const char *s, double *out);
/* Needs argv[i+1]; prints an error naming the option when missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* Parses f32 | f16 | bf16. */
int cli_parse_dtype(const char *cmd, const char *s, preft_dtype *out);
/* Parses "1,2,3" into a heap array of token ids. */
int cli_parse_ids(const char *cmd, const char *s, int **ids, int *n);

#endif
