/* cli_detokenize.c - `preft detokenize`: token ids back to text. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft detokenize --tokenizer PATH --ids 1,2,3 [--skip-special] [--no-cleanup]\n\n"
          "Prints the text of the ids (as the Hugging Face decode does) followed by a newline.\n\n"
          "  --tokenizer PATH  model directory, tokenizer.json, vocab.txt or JSON array vocabulary\n"
          "  --skip-special    drop special tokens (skip_special_tokens=True)\n"
          "  --no-cleanup      ignore clean_up_tokenization_spaces from tokenizer_config.json\n");
}

int cli_detokenize(int argc, char **argv) {
  const char *path = NULL, *ids_arg = NULL;
  unsigned flags = 0;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(argv[i], "--tokenizer")) {
      if (!(path = cli_value("detokenize", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--ids")) {
      if (!(ids_arg = cli_value("detokenize", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--skip-special")) {
      flags |= PREFT_DECODE_SKIP_SPECIAL;
    } else if (!strcmp(argv[i], "--no-cleanup")) {
      flags |= PREFT_DECODE_NO_CLEANUP;
    } else {
      fprintf(stderr, "preft detokenize: unknown option '%s' (see --help)\n", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (!path || !ids_arg) {
    fprintf(stderr, "preft detokenize: needs --tokenizer and --ids (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  int *ids;
  int n;
  if (cli_parse_ids("detokenize", ids_arg, &ids, &n)) return CLI_EXIT_USAGE;
  int32_t *ids32 = preft_xmalloc(sizeof *ids32 * (size_t)n);
  for (int i = 0; i < n; i++) ids32[i] = ids[i];
  free(ids);
  preft_tokenizer *tok;
  preft_error err;
  if (preft_tokenizer_load(&tok, path, &err)) {
    fprintf(stderr, "preft detokenize: %s\n", err.msg);
    free(ids32);
    return CLI_EXIT_ERROR;
  }
  char *text;
  size_t len;
  int rc = CLI_EXIT_OK;
  if (preft_tokenizer_decode(tok, ids32, (size_t)n, flags, &text, &len, &err)) {
    fprintf(stderr, "preft detokenize: %s\n", err.msg);
    rc = CLI_EXIT_ERROR;
  } else {
    fwrite(text, 1, len, stdout);
    putchar('\n');
    free(text);
  }
  free(ids32);
  preft_tokenizer_free(tok);
  return rc;
}
