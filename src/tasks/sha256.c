/* sha256.c - SHA-256 as FIPS 180-4 defines it, and the hash of a folder. */
#include "tasks/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress(preft_sha256 *s, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] =
        (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6],
           h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + S1 + ch + K[i] + w[i];
    uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = S0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->h[0] += a;
  s->h[1] += b;
  s->h[2] += c;
  s->h[3] += d;
  s->h[4] += e;
  s->h[5] += f;
  s->h[6] += g;
  s->h[7] += h;
}

void preft_sha256_init(preft_sha256 *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->bytes = 0;
  s->used = 0;
}

void preft_sha256_update(preft_sha256 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->bytes += n;
  while (n > 0) {
    size_t k = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->block + s->used, p, k);
    s->used += k;
    p += k;
    n -= k;
    if (s->used == 64) {
      compress(s, s->block);
      s->used = 0;
    }
  }
}

void preft_sha256_final(preft_sha256 *s, uint8_t out[32]) {
  uint64_t bits = s->bytes * 8;
  uint8_t pad = 0x80;
  preft_sha256_update(s, &pad, 1);
  uint8_t zero = 0;
  while (s->used != 56) preft_sha256_update(s, &zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
  preft_sha256_update(s, len, 8);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

void preft_sha256_hex(const uint8_t digest[32], char out[65]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = hex[digest[i] >> 4];
    out[2 * i + 1] = hex[digest[i] & 15];
  }
  out[64] = 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* One entry, then (for a folder) its children in sorted order. Each record
 * is length-prefixed so that no two trees hash the same by concatenation. */
static int hash_entry(preft_sha256 *s, const char *path, const char *rel, int depth, preft_error *err) {
  if (depth > 128) return preft_fail(err, "%s: folders nested too deeply", path);
  struct stat st;
  if (lstat(path, &st) != 0) return preft_fail(err, "%s: %s", path, strerror(errno));
  char head[64];
  char type = S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : S_ISREG(st.st_mode) ? 'f' : 'o';
  uint64_t rel_len = strlen(rel);
  int hn = snprintf(head, sizeof head, "%c %o %llu ", type, (unsigned)(st.st_mode & 07777),
                    (unsigned long long)rel_len);
  preft_sha256_update(s, head, (size_t)hn);
  preft_sha256_update(s, rel, rel_len);
  if (type == 'l') {
    char target[4096];
    ssize_t n = readlink(path, target, sizeof target);
    if (n < 0) return preft_fail(err, "%s: %s", path, strerror(errno));
    preft_sha256_update(s, target, (size_t)n);
  } else if (type == 'f') {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return preft_fail(err, "%s: %s", path, strerror(errno));
    uint64_t size = (uint64_t)st.st_size;
    preft_sha256_update(s, &size, sizeof size);
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) preft_sha256_update(s, buf, (size_t)n);
    close(fd);
    if (n < 0) return preft_fail(err, "%s: %s", path, strerror(errno));
  } else if (type == 'd') {
    DIR *d = opendir(path);
    if (!d) return preft_fail(err, "%s: %s", path, strerror(errno));
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      names = preft_xrealloc(names, sizeof *names * (size_t)(n + 1));
      names[n++] = preft_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    int rc = 0;
    for (int i = 0; i < n; i++) {
      if (rc == 0) {
        size_t pl = strlen(path) + strlen(names[i]) + 2, rl = strlen(rel) + strlen(names[i]) + 2;
        char *child = preft_xmalloc(pl), *child_rel = preft_xmalloc(rl);
        snprintf(child, pl, "%s/%s", path, names[i]);
        snprintf(child_rel, rl, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        rc = hash_entry(s, child, child_rel, depth + 1, err);
        free(child);
        free(child_rel);
      }
      free(names[i]);
    }
    free(names);
    preft_sha256_update(s, "end", 3);
    return rc;
  }
  return 0;
}

int preft_sha256_tree(const char *dir, preft_sha256 *s, preft_error *err) {
  return hash_entry(s, dir, "", 0, err);
}
