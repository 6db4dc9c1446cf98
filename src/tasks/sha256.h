/* sha256.h - SHA-256 (FIPS 180-4), and the hash of a folder tree: the cache
 * key of an environment layer. */
#ifndef PREFT_TASKS_SHA256_H
#define PREFT_TASKS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "preft/base.h"

typedef struct preft_sha256 {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t block[64];
  size_t used;
} preft_sha256;

void preft_sha256_init(preft_sha256 *s);
void preft_sha256_update(preft_sha256 *s, const void *data, size_t n);
void preft_sha256_final(preft_sha256 *s, uint8_t out[32]);
/* 64 lowercase hex digits and a NUL. */
void preft_sha256_hex(const uint8_t digest[32], char out[65]);

/* Hashes a folder: every entry's path (relative, in sorted order), type,
 * permission bits, symlink target and file bytes; times and owners are left
 * out, so a copy of the folder hashes the same. */
int preft_sha256_tree(const char *dir, preft_sha256 *s, preft_error *err);

#endif
