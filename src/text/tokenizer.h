/* tokenizer.h - Hugging Face compatible tokenizers and chat templates. Every
 * declaration is public: preft/tokenizer.h. The internals shared by the
 * tokenizer's own files are in text/tokenizer_int.h. */
#ifndef PREFT_TEXT_TOKENIZER_H
#define PREFT_TEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>

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

/* The bytes token id stands for inside a text (constrained decoding): a
 * byte-level token's raw bytes, an added token's content, a SentencePiece
 * piece with "\u2581" as a space, a <0xXX> byte-fallback token as that
 * byte, a WordPiece continuation without its "##". Returns false for
 * special tokens, holes and ids outside the vocabulary. out is cleared. */
bool preft_tokenizer_token_bytes(const preft_tokenizer *t, int32_t id, char **bytes, size_t *len);

#endif
