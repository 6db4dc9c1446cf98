/* tokenizer.h - Hugging Face compatible tokenizers and chat templates. Every
 * declaration is public: preft/tokenizer.h. The internals shared by the
 * tokenizer's own files are in text/tokenizer_int.h. */
#ifndef PREFT_TEXT_TOKENIZER_H
#define PREFT_TEXT_TOKENIZER_H

#include "base/error.h"
#include "preft/tokenizer.h"

/* Writes tokenizer.json and tokenizer_config.json into out_dir (which must
 * exist), each atomically: copies of the files at tok_path (a tokenizer.json
 * file, or a directory holding one, as preft_tokenizer_load took it), or a
 * minimal tokenizer_config.json (class, t's BOS and EOS tokens) when the
 * source has none. Fails naming the file that could not be read or written;
 * a file already written stays. */
int preft_tokenizer_save_files(const preft_tokenizer *t, const char *tok_path, const char *out_dir,
                               preft_error *err);

#endif
