/* cli_tokenize.c - `preft tokenize`: text to token ids with a Hugging Face
 * tokenizer (model directory, tokenizer.json or vocab.txt). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft tokenize --tokenizer PATH [--no-special] (--text TEXT | --jsonl FILE)\n\n"
          "Prints the token ids of TEXT as a JSON array. With --jsonl, every line of FILE ('-' = stdin)\n"
          "is one JSON string and every output line is the JSON array of its ids, in order.\n\n"
          "  --tokenizer PATH  model directory, tokenizer.json, vocab.txt or JSON array vocabulary\n"
          "  --no-special      do not add the post-processor's special tokens (BOS, [CLS], ...)\n");
}

static void print_ids(const int32_t *ids, size_t n) {
  putchar('[');
  for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
  puts("]");
}

static int encode_print(preft_tokenizer *tok, const char *text, size_t len, bool special, const char *where) {
  int32_t *ids;
  size_t n;
  preft_error err;
  if (preft_tokenizer_encode(tok, text, len, special, &ids, &n, &err)) {
    fprintf(stderr, "preft tokenize: %s%s\n", where, err.msg);
    return -1;
  }
  print_ids(ids, n);
  free(ids);
  return 0;
}

int cli_tokenize(int argc, char **argv) {
  const char *path = NULL, *text = NULL, *jsonl = NULL;
  bool special = true;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(argv[i], "--tokenizer")) {
      if (!(path = cli_value("tokenize", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--text")) {
      if (!(text = cli_value("tokenize", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--jsonl")) {
      if (!(jsonl = cli_value("tokenize", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--no-special")) {
      special = false;
    } else {
      fprintf(stderr, "preft tokenize: unknown option '%s' (see --help)\n", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (!path || (!text) == (!jsonl)) {
    fprintf(stderr, "preft tokenize: needs --tokenizer and exactly one of --text or --jsonl (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_tokenizer *tok;
  preft_error err;
  if (preft_tokenizer_load(&tok, path, &err)) {
    fprintf(stderr, "preft tokenize: %s\n", err.msg);
    return CLI_EXIT_ERROR;
  }
  int rc = CLI_EXIT_OK;
  if (text) {
    if (encode_print(tok, text, strlen(text), special, "")) rc = CLI_EXIT_ERROR;
  } else {
    FILE *fp = strcmp(jsonl, "-") ? fopen(jsonl, "rb") : stdin;
    if (!fp) {
      fprintf(stderr, "preft tokenize: cannot open %s\n", jsonl);
      preft_tokenizer_free(tok);
      return CLI_EXIT_ERROR;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    while ((len = getline(&line, &cap, fp)) >= 0) {
      lineno++;
      while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
      if (len == 0) continue;
      cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
      if (!cJSON_IsString(j)) {
        fprintf(stderr, "preft tokenize: %s:%ld: expected one JSON string per line\n", jsonl, lineno);
        cJSON_Delete(j);
        rc = CLI_EXIT_ERROR;
        break;
      }
      char where[64];
      snprintf(where, sizeof where, "line %ld: ", lineno);
      int r = encode_print(tok, j->valuestring, strlen(j->valuestring), special, where);
      cJSON_Delete(j);
      if (r) {
        rc = CLI_EXIT_ERROR;
        break;
      }
    }
    free(line);
    if (fp != stdin) fclose(fp);
  }
  preft_tokenizer_free(tok);
  if (fflush(stdout)) rc = CLI_EXIT_ERROR;
  return rc;
}
