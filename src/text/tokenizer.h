/* tokenizer.h - Hugging Face compatible tokenizers and chat templates. Every
 * declaration is public: preft/tokenizer.h. The internals shared by the
 * tokenizer's own files are in text/tokenizer_int.h. */
#ifndef PREFT_TEXT_TOKENIZER_H
#define PREFT_TEXT_TOKENIZER_H

#include "base/error.h"
#include "preft/tokenizer.h"

#endif
