/* gguf.h - the GGUF container (version 3) that llama.cpp and the ggml
 * ecosystem read: writing (gguf.c) and reading with full validation
 * (gguf_read.c).
 *
 * Layout of a file, all integers little-endian:
 *   "GGUF" u32 version=3  i64 n_tensors  i64 n_kv
 *   n_kv x { string key, u32 value type, value }
 *   n_tensors x { string name, u32 n_dims, i64 ne[n_dims], u32 ggml type, u64 offset }
 *   zero padding to `alignment` (key general.alignment, default 32)
 *   tensor data: each tensor at data_start + offset, offsets contiguous in
 *   tensor-info order, each tensor zero-padded to a multiple of alignment.
 * A string is u64 length + bytes (no NUL). An array value is u32 element
 * type, u64 count, then the elements.
 *
 * Dimension order: GGUF lists ne[0] first, the fastest-varying dimension.
 * That is PyTorch's shape reversed: a row-major [rows, cols] matrix has
 * ne = {cols, rows}. The writer and reader here take and give shapes in
 * PyTorch order (`shape`) and keep the GGUF order in `ne` for reference.
 */
#ifndef PREFT_IO_GGUF_H
#define PREFT_IO_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/file.h"

#define PREFT_GGUF_VERSION 3
#define PREFT_GGUF_DEFAULT_ALIGNMENT 32
#define PREFT_GGUF_MAX_DIMS 4
#define PREFT_GGUF_MAX_NAME 63 /* ggml keeps tensor names in char[64] */

/* Metadata value types. */
typedef enum {
  PREFT_GGUF_U8 = 0,
  PREFT_GGUF_I8 = 1,
  PREFT_GGUF_U16 = 2,
  PREFT_GGUF_I16 = 3,
  PREFT_GGUF_U32 = 4,
  PREFT_GGUF_I32 = 5,
  PREFT_GGUF_F32 = 6,
  PREFT_GGUF_BOOL = 7,
  PREFT_GGUF_STRING = 8,
  PREFT_GGUF_ARRAY = 9,
  PREFT_GGUF_U64 = 10,
  PREFT_GGUF_I64 = 11,
  PREFT_GGUF_F64 = 12,
  PREFT_GGUF_N_TYPES
} preft_gguf_type;

/* ggml_type values preft names (the container knows the block sizes of
 * all of ggml's types, so any GGUF can be read; what a model may hold is the
 * model loader's business). */
typedef enum {
  PREFT_GGML_F32 = 0,
  PREFT_GGML_F16 = 1,
  PREFT_GGML_Q4_0 = 2,
  PREFT_GGML_Q5_0 = 6,
  PREFT_GGML_Q8_0 = 8,
  PREFT_GGML_Q4_K = 12,
  PREFT_GGML_Q6_K = 14,
  PREFT_GGML_BF16 = 30
} preft_ggml_type;

const char *preft_ggml_type_name(uint32_t t); /* "F32", "Q4_K", ...; "unknown" */
size_t preft_ggml_type_size(uint32_t t);      /* bytes per element of an unblocked type; else 0 */
size_t preft_ggml_type_block(uint32_t t);     /* elements per block (1 unblocked); 0 when unknown */
/* Bytes of a row of n elements (along ne[0]); 0 when the type is unknown
 * or n is not a whole number of blocks. */
size_t preft_ggml_row_size(uint32_t t, int64_t n);

/* ---- writing ----------------------------------------------------------------
 *
 * Metadata and tensor descriptions are collected in memory, then
 * preft_gguf_write streams the file atomically (temporary file, fsync,
 * rename). A tensor's bytes come either from a pointer the caller keeps
 * valid until the write (e.g. into a memory-mapped safetensors file), or
 * from a fill callback that produces them into a scratch buffer at write
 * time (converted dtypes, permuted rows), so a large model is never held
 * twice in memory. */

/* Writes exactly nbytes into dst; returns 0, or -1 with err filled. */
typedef int (*preft_gguf_fill_fn)(void *ctx, void *dst, size_t nbytes, preft_error *err);

typedef struct preft_gguf_wtensor {
  char *name;
  uint32_t type;
  int ndim;
  int64_t shape[PREFT_GGUF_MAX_DIMS]; /* PyTorch order */
  size_t nbytes;
  const void *data;
  preft_gguf_fill_fn fill;
  void *fill_ctx;
} preft_gguf_wtensor;

typedef struct preft_gguf_writer {
  uint8_t *kv; /* serialized key/value pairs */
  size_t kv_len, kv_cap;
  char **keys; /* for duplicate detection */
  int64_t n_kv;
  preft_gguf_wtensor *tensors;
  int64_t n_tensors, cap_tensors;
  uint32_t alignment;
  bool failed; /* a key was added twice or was invalid: write refuses */
  char fail_msg[256];
} preft_gguf_writer;

void preft_gguf_writer_init(preft_gguf_writer *w);
void preft_gguf_writer_free(preft_gguf_writer *w);

/* Metadata setters copy their arguments. Adding a key twice marks the
 * writer failed (the error surfaces at preft_gguf_write). Setting
 * "general.alignment" (u32, a power of two) changes the data alignment. */
void preft_gguf_set_str(preft_gguf_writer *w, const char *key, const char *v);
void preft_gguf_set_u32(preft_gguf_writer *w, const char *key, uint32_t v);
void preft_gguf_set_i32(preft_gguf_writer *w, const char *key, int32_t v);
void preft_gguf_set_f32(preft_gguf_writer *w, const char *key, float v);
void preft_gguf_set_bool(preft_gguf_writer *w, const char *key, bool v);
void preft_gguf_set_arr_str(preft_gguf_writer *w, const char *key, const char *const *v, size_t n);
void preft_gguf_set_arr_i32(preft_gguf_writer *w, const char *key, const int32_t *v, size_t n);
void preft_gguf_set_arr_f32(preft_gguf_writer *w, const char *key, const float *v, size_t n);

/* Adds a tensor of `type` and PyTorch-order shape (1..4 dims, each >= 1).
 * Exactly one of data / fill is given. Fails on a name that is empty, too
 * long for ggml or already present, or a bad shape or type. */
int preft_gguf_add_tensor(preft_gguf_writer *w, const char *name, preft_ggml_type type, int ndim,
                          const int64_t *shape, const void *data, preft_gguf_fill_fn fill, void *fill_ctx,
                          preft_error *err);

/* Writes the file atomically. On failure nothing is left at path (an
 * existing file there is untouched). */
int preft_gguf_write(const preft_gguf_writer *w, const char *path, preft_error *err);

/* ---- reading ----------------------------------------------------------------
 *
 * preft_gguf_open maps the file and validates all of it before returning:
 * magic and version (2 or 3), counts against the file size, every string
 * and array length, value types, tensor names (unique, < 64 bytes), dims,
 * types, the alignment, and that every tensor's data lies inside the file at
 * the offset its predecessors imply. Errors name the file, the key or
 * tensor, and the byte offset. */

typedef struct preft_gguf_kv {
  char *key;
  uint32_t type;     /* preft_gguf_type */
  uint32_t arr_type; /* element type when type == ARRAY */
  uint64_t n;        /* array length (1 for scalars) */
  union {
    uint64_t u;
    int64_t i;
    double f;
    bool b;
  } v;             /* scalar value (integers widened, floats to double) */
  char *str;       /* STRING value (NUL-terminated copy) */
  char **strs;     /* array of STRING: n NUL-terminated copies */
  const void *arr; /* array of numbers: points into the mapping, little-endian */
} preft_gguf_kv;

typedef struct preft_gguf_tensor {
  char *name;
  int ndim;
  int64_t ne[PREFT_GGUF_MAX_DIMS];    /* GGUF order (ne[0] fastest) */
  int64_t shape[PREFT_GGUF_MAX_DIMS]; /* PyTorch order */
  uint32_t type;
  uint64_t offset; /* from the start of the data section */
  const void *data;
  size_t nbytes;
} preft_gguf_tensor;

typedef struct preft_gguf_file {
  preft_mapped_file map;
  uint32_t version;
  preft_gguf_kv *kv;
  int64_t n_kv;
  preft_gguf_tensor *tensors;
  int64_t n_tensors;
  size_t alignment, data_offset;
} preft_gguf_file;

int preft_gguf_open(preft_gguf_file *f, const char *path, preft_error *err);
/* The same with the file read into memory (preft_copy_file) instead of
 * mapped: model weights, see preft_weights_get_mmap. */
int preft_gguf_open_read(preft_gguf_file *f, const char *path, preft_error *err);
/* Whether path is a regular file that starts with the magic "GGUF" (what
 * the model and tokenizer loaders check to tell a GGUF from a directory or
 * a tokenizer.json). */
bool preft_gguf_is_file(const char *path);
void preft_gguf_close(preft_gguf_file *f);

/* NULL when absent. */
const preft_gguf_kv *preft_gguf_find_kv(const preft_gguf_file *f, const char *key);
const preft_gguf_tensor *preft_gguf_find_tensor(const preft_gguf_file *f, const char *name);

/* Typed lookups: 0 on success; -1 with err naming the key when it is
 * absent or of another type. */
int preft_gguf_get_str(const preft_gguf_file *f, const char *key, const char **out, preft_error *err);
int preft_gguf_get_u32(const preft_gguf_file *f, const char *key, uint32_t *out, preft_error *err);
int preft_gguf_get_f32(const preft_gguf_file *f, const char *key, float *out, preft_error *err);
int preft_gguf_get_bool(const preft_gguf_file *f, const char *key, bool *out, preft_error *err);
/* An integer of any integer type (u8..i64) or a float of either type;
 * -1 with err naming the key when absent, of another type or (integers)
 * outside [0, INT32_MAX]. */
/* The value of an integer-typed kv (unsigned values above INT64_MAX read
 * as INT64_MAX); false for any other type. */
bool preft_gguf_kv_integer(const preft_gguf_kv *kv, int64_t *v);
int preft_gguf_get_int(const preft_gguf_file *f, const char *key, int32_t *out, preft_error *err);
int preft_gguf_get_real(const preft_gguf_file *f, const char *key, double *out, preft_error *err);

/* Element i of a tensor converted to float (F32, F16 or BF16 only); i
 * counts in row-major PyTorch order. */
float preft_gguf_tensor_get(const preft_gguf_tensor *t, size_t i);

#endif
