/* safetensors.h - reading and writing the safetensors format, as Hugging Face
 * writes it: an 8-byte little-endian header length, a JSON header mapping
 * tensor names to {dtype, shape, data_offsets}, then the raw data.
 *
 * Reading memory-maps each file and points tensors into the mapping; nothing
 * is copied unless a tensor's data is misaligned for its element type (then
 * it is copied once into an aligned buffer the set owns). A set can hold one
 * file or every shard of a sharded checkpoint (model.safetensors.index.json).
 *
 * Every header is validated before use: header length within the file, JSON
 * well formed, known dtype, shape consistent with the byte range, offsets
 * within the data section and not overlapping. Errors name the file and the
 * tensor. Tensors of the other safetensors dtypes (integers, BOOL, F64, F8)
 * are validated the same way and then skipped (preft_st_skipped): a file may
 * carry them beside the weights; a lookup of one fails naming its dtype.
 */
#ifndef PREFT_IO_SAFETENSORS_H
#define PREFT_IO_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/file.h"
#include "tensor/dtype.h"

#define PREFT_ST_MAX_DIMS 8

typedef struct preft_st_tensor {
  char *name;
  preft_dtype dtype;
  int ndim;
  int64_t shape[PREFT_ST_MAX_DIMS];
  const void *data;
  size_t nbytes;
  int file; /* index into the set's files */
} preft_st_tensor;

/* A tensor of a type no weight can have (I64, I32, BOOL, F64, ...), e.g.
 * the position_ids buffer older transformers saved with BERT: validated
 * like the others, then only remembered by name. */
typedef struct preft_st_skipped {
  char *name;
  char dtype[16];
} preft_st_skipped;

typedef struct preft_st_set {
  preft_mapped_file *files;
  int n_files;
  preft_st_tensor *tensors;
  int n_tensors;
  preft_st_skipped *skipped;
  int n_skipped;
  void **owned; /* aligned copies of misaligned tensors */
  int n_owned;
  bool copy;         /* files are read into memory (preft_copy_file) instead of mapped */
  bool sum;          /* checksum is kept */
  uint64_t checksum; /* of every file's bytes, in the order added (preft_st_open_dir_copied) */
  size_t file_bytes; /* total size of the files */
} preft_st_set;

/* Adds every tensor of one .safetensors file to the set. A name already in
 * the set is an error (shards must not repeat tensors). */
int preft_st_add_file(preft_st_set *set, const char *path, preft_error *err);

/* Opens a model directory: model.safetensors, or the shards listed in
 * model.safetensors.index.json (whose weight_map must agree with the shards).
 * `stem` is "model" for models, "adapter_model" for PEFT adapters. */
int preft_st_open_dir(preft_st_set *set, const char *dir, const char *stem, preft_error *err);
/* The same, with every file read into memory and checksummed (adapters:
 * small, and immune to their files changing once loaded). */
int preft_st_open_dir_copied(preft_st_set *set, const char *dir, const char *stem, preft_error *err);
/* Read into memory, not checksummed (model weights: preft_weights_get_mmap). */
int preft_st_open_dir_read(preft_st_set *set, const char *dir, const char *stem, preft_error *err);

void preft_st_close(preft_st_set *set);

/* NULL when absent. */
const preft_st_tensor *preft_st_find(const preft_st_set *set, const char *name);
/* The dtype ("I64", ...) of a skipped tensor, NULL when no such tensor was
 * skipped. */
const char *preft_st_skipped_dtype(const preft_st_set *set, const char *name);
/* The set's file for messages about a tensor it lacks: its one file's path,
 * or the first file's path and how many more. buf: at least PATH_MAX + 32. */
const char *preft_st_files_desc(const preft_st_set *set, char *buf, size_t n);
const char *preft_st_file_of(const preft_st_set *set, const preft_st_tensor *t);
size_t preft_st_numel(const preft_st_tensor *t);

/* Writing: tensors are described by name, dtype, shape and a data pointer;
 * the file is written atomically with names sorted, the header padded with
 * spaces to a multiple of 8 bytes. */
typedef struct preft_st_write_tensor {
  const char *name;
  preft_dtype dtype;
  int ndim;
  int64_t shape[PREFT_ST_MAX_DIMS];
  const void *data;
} preft_st_write_tensor;

int preft_st_write(const char *path, const preft_st_write_tensor *tensors, int n, preft_error *err);

#endif
