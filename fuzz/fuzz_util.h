/* fuzz_util.h - helpers shared by the libFuzzer targets: a private temporary
 * directory per process for parsers that read files, and paths into the
 * repository's test data (PREFT_FUZZ_DATA, set by fuzz/CMakeLists.txt). */
#ifndef PREFT_FUZZ_UTIL_H
#define PREFT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The process's temporary directory (created on first use, removed at exit). */
const char *fuzz_tmpdir(void);
/* Writes n bytes to fuzz_tmpdir()/name; returns that path (static, reused). Aborts on I/O errors. */
const char *fuzz_write(const char *name, const uint8_t *data, size_t n);
/* Copies PREFT_FUZZ_DATA/rel to fuzz_tmpdir()/name. Aborts when missing. */
void fuzz_copy_data(const char *rel, const char *name);
/* A NUL-terminated heap copy of data (caller frees). */
char *fuzz_cstr(const uint8_t *data, size_t n);

#endif
