/* fuzz_jsonl.c - libFuzzer target: a training JSONL file (prompt /
 * completion, messages rendered with a chat template, token ids) through
 * preft_dataset_load_jsonl with the test BPE tokenizer and a small chat
 * template, truncating to 64 tokens. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "preft/tokenizer.h"
#include "preft/train.h"

static const char config_json[] =
    "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"chat_template\": \"{{ bos_token }}{% for m in "
    "messages "
    "%}<|{{ m.role }}|>{{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}{% "
    "if "
    "add_generation_prompt %}<|assistant|>{% endif %}\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static preft_tokenizer *tok;
  preft_error err;
  if (!tok) {
    fuzz_copy_data("tokenizer/trained/tokenizer.json", "tokenizer.json");
    fuzz_write("tokenizer_config.json", (const uint8_t *)config_json, sizeof config_json - 1);
    if (preft_tokenizer_load(&tok, fuzz_tmpdir(), &err) != 0) {
      fprintf(stderr, "fuzz: %s\n", err.msg);
      abort();
    }
  }
  const char *path = fuzz_write("train.jsonl", data, size);
  preft_data_opts o = {.tok = tok,
                       .eos_id = preft_tokenizer_vocab_size(tok) - 1,
                       .max_tokens = 64,
                       .vocab = preft_tokenizer_vocab_size(tok),
                       .on_bad_line = PREFT_BAD_LINE_STOP};
  preft_dataset ds = {0};
  (void)preft_dataset_load_jsonl(&ds, path, &o, &err);
  preft_dataset_free(&ds);
  return 0;
}
