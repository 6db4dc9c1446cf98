/* cli_tokenizer_train.c - `preft tokenizer train`: learns a byte-level BPE
 * (Llama 3 pre-tokenizer regex) from text files and writes tokenizer.json. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "base/timer.h"
#include "cli/cli.h"
#include "text/bpe_trainer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft tokenizer train --vocab-size N [--special TOKEN]... -o tokenizer.json FILES...\n\n"
          "Learns a byte-level BPE vocabulary (Llama 3 pre-tokenizer regex, Hugging Face BpeTrainer\n"
          "algorithm) from the text FILES and writes a tokenizer.json that Hugging Face tokenizers load.\n\n"
          "  --vocab-size N    total vocabulary: special tokens + 256 bytes + merges\n"
          "  --special TOKEN   a special token (ids 0, 1, ... in the order given); repeatable\n"
          "  -o, --output PATH where to write tokenizer.json (written atomically)\n");
}

typedef struct bar {
  double t0;
  bool tty;
  int last_pct;
} bar;

static void progress(void *ctx, size_t done, size_t total) {
  bar *b = ctx;
  int pct = total ? (int)(100 * done / total) : 100;
  if (pct == b->last_pct && done != total) return;
  b->last_pct = pct;
  if (!b->tty && done != total && pct % 10) return;
  char fill[41];
  int k = pct * 40 / 100;
  for (int i = 0; i < 40; i++) fill[i] = i < k ? '#' : '.';
  fill[40] = 0;
  fprintf(stderr, "%s[%s] %3d%% merges %zu/%zu  %.1fs%s", b->tty ? "\r" : "", fill, pct, done, total,
          preft_now() - b->t0, b->tty ? "" : "\n");
  if (b->tty && done == total) fputc('\n', stderr);
}

int cli_tokenizer(int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
  }
  if (strcmp(argv[1], "train")) {
    fprintf(stderr, "preft tokenizer: unknown subcommand '%s' (only 'train')\n", argv[1]);
    return CLI_EXIT_USAGE;
  }
  long vocab = -1;
  const char *out = NULL;
  const char **specials = calloc((size_t)argc, sizeof *specials);
  const char **files = calloc((size_t)argc, sizeof *files);
  int ns = 0, nf = 0, rc = CLI_EXIT_USAGE;
  preft_bpe_trainer *tr = NULL;
  for (int i = 2; i < argc; i++) {
    const char *v;
    if (cli_is_help(argv[i])) {
      usage(stdout);
      rc = CLI_EXIT_OK;
      goto done;
    } else if (!strcmp(argv[i], "--vocab-size")) {
      if (!(v = cli_value("tokenizer train", argc, argv, &i)) ||
          cli_parse_int("tokenizer train", "--vocab-size", v, 1, 1 << 24, &vocab))
        goto done;
    } else if (!strcmp(argv[i], "--special")) {
      if (!(v = cli_value("tokenizer train", argc, argv, &i))) goto done;
      if (!*v) {
        fprintf(stderr, "preft tokenizer train: --special needs a non-empty token\n");
        goto done;
      }
      specials[ns++] = v;
    } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
      if (!(out = cli_value("tokenizer train", argc, argv, &i))) goto done;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      fprintf(stderr, "preft tokenizer train: unknown option '%s' (see --help)\n", argv[i]);
      goto done;
    } else {
      files[nf++] = argv[i];
    }
  }
  if (vocab < 0 || !out || nf == 0) {
    fprintf(stderr,
            "preft tokenizer train: needs --vocab-size, -o and at least one input file (see --help)\n");
    goto done;
  }
  if (vocab < ns + 256) {
    fprintf(stderr, "preft tokenizer train: --vocab-size %ld is smaller than %d specials + 256 byte tokens\n",
            vocab, ns);
    goto done;
  }
  rc = CLI_EXIT_ERROR;
  tr = preft_bpe_trainer_new();
  preft_error err;
  bar b = {.t0 = preft_now(), .tty = isatty(2), .last_pct = -1};
  size_t total = 0;
  for (int i = 0; i < nf; i++) {
    char *data = NULL;
    size_t size;
    if (preft_read_file(files[i], &data, &size, &err) || preft_bpe_trainer_feed(tr, data, size, &err)) {
      fprintf(stderr, "preft tokenizer train: %s\n", err.msg);
      free(data);
      goto done;
    }
    free(data);
    total += size;
  }
  fprintf(stderr, "preft tokenizer train: read %.1f MB from %d file(s) in %.1fs\n", total / 1e6, nf,
          preft_now() - b.t0);
  if (preft_bpe_trainer_train(tr, (int)vocab, specials, ns, progress, &b, &err) ||
      preft_bpe_trainer_write(tr, out, &err)) {
    fprintf(stderr, "preft tokenizer train: %s\n", err.msg);
    goto done;
  }
  fprintf(stderr, "preft tokenizer train: %zu merges, vocabulary %zu, wrote %s (%.1fs)\n",
          preft_bpe_trainer_n_merges(tr), (size_t)ns + 256 + preft_bpe_trainer_n_merges(tr), out,
          preft_now() - b.t0);
  rc = CLI_EXIT_OK;
done:
  preft_bpe_trainer_free(tr);
  free(specials);
  free(files);
  return rc;
}
