/* file.h - read-only memory-mapped files, whole-file reads, atomic writes.
 *
 * Nothing a user saved is lost: preft_write_atomic writes to a temporary file
 * in the same directory, fsyncs it and renames it over the target, so a crash
 * leaves either the old file or the new one, never a torn one.
 */
#ifndef PREFT_BASE_FILE_H
#define PREFT_BASE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct preft_mapped_file {
  char *path;          /* owned copy, for error messages */
  const uint8_t *data; /* NULL for an empty file */
  size_t size;
  bool copied; /* data is a heap copy (preft_copy_file), not a mapping */
} preft_mapped_file;

int preft_map_file(preft_mapped_file *f, const char *path, preft_error *err);
/* Like preft_map_file, but reads the file into memory (2 MiB pages from
 * 2 MiB on): the data cannot change, and no fault can come from the file
 * being truncated or rewritten later (a mapping would raise SIGBUS past a
 * new end). A file that shrinks while it is read is an error naming it. */
int preft_copy_file(preft_mapped_file *f, const char *path, preft_error *err);
/* Unmaps or frees, whichever preft_map_file / preft_copy_file did. */
void preft_unmap_file(preft_mapped_file *f);
/* A 64-bit checksum of n bytes (not cryptographic: it tells files apart). */
uint64_t preft_checksum64(const void *data, size_t n);

/* Reads a whole (small) file into a NUL-terminated heap buffer. */
int preft_read_file(const char *path, char **out, size_t *out_size, preft_error *err);
int preft_file_exists(const char *path);

/* Writes `size` bytes atomically (temp file + fsync + rename). */
int preft_write_atomic(const char *path, const void *data, size_t size, preft_error *err);

/* An atomic writer for larger files streamed in pieces. */
typedef struct preft_atomic_writer {
  char *path, *tmp_path;
  FILE *fp;
} preft_atomic_writer;
int preft_atomic_open(preft_atomic_writer *w, const char *path, preft_error *err);
int preft_atomic_write(preft_atomic_writer *w, const void *data, size_t size, preft_error *err);
int preft_atomic_commit(preft_atomic_writer *w, preft_error *err); /* closes, renames */
void preft_atomic_abort(preft_atomic_writer *w);                   /* closes, removes temp */

/* Joins a directory and a file name into a heap string. */
char *preft_path_join(const char *dir, const char *name);
int preft_mkdir_p(const char *path, preft_error *err);
/* Names of the subdirectories of dir, sorted; returns the count or -1. The
 * caller frees each name and the array. */
int preft_list_subdirs(const char *dir, char ***names, preft_error *err);

#endif
