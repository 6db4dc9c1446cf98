/* file.c - memory mapping, whole-file reads and atomic writes. */
#include "base/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/huge_alloc.h"

int preft_map_file(preft_mapped_file *f, const char *path, preft_error *err) {
  memset(f, 0, sizeof *f);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return preft_fail(err, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return preft_fail(err, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return preft_fail(err, "%s: not a regular file", path);
  }
  f->size = (size_t)st.st_size;
  if (f->size > 0) {
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      close(fd);
      return preft_fail(err, "%s: cannot mmap: %s", path, strerror(e));
    }
    f->data = p;
  }
  close(fd);
  f->path = preft_xstrdup(path);
  return 0;
}

int preft_copy_file(preft_mapped_file *f, const char *path, preft_error *err) {
  memset(f, 0, sizeof *f);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return preft_fail(err, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return preft_fail(err, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return preft_fail(err, "%s: not a regular file", path);
  }
  size_t size = (size_t)st.st_size, got = 0;
  uint8_t *buf = preft_alloc_big(size);
  if (!buf) {
    close(fd);
    return preft_fail(err, "%s: cannot allocate %zu bytes to read it into", path, size);
  }
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : 0;
      close(fd);
      free(buf);
      return e ? preft_fail(err, "%s: read error: %s", path, strerror(e))
               : preft_fail(err, "%s: the file shrank from %zu to %zu bytes while it was read", path, size,
                            got);
    }
    got += (size_t)n;
  }
  close(fd);
  f->data = size ? buf : NULL;
  if (!size) free(buf);
  f->size = size;
  f->copied = true;
  f->path = preft_xstrdup(path);
  return 0;
}

void preft_unmap_file(preft_mapped_file *f) {
  if (f->data && f->copied)
    free((void *)f->data);
  else if (f->data)
    munmap((void *)f->data, f->size);
  free(f->path);
  memset(f, 0, sizeof *f);
}

uint64_t preft_checksum64(const void *data, size_t n) {
  /* FNV-1a over 64-bit words (then the tail bytes), with a final mix */
  const uint8_t *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  const uint64_t prime = 0x100000001b3ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * prime;
    h ^= h >> 29;
  }
  for (; i < n; i++) h = (h ^ p[i]) * prime;
  h ^= (uint64_t)n;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

int preft_read_file(const char *path, char **out, size_t *out_size, preft_error *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return preft_fail(err, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = preft_xmalloc(cap);
  for (;;) {
    if (n + 1 >= cap) buf = preft_xrealloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n - 1, fp);
    n += got;
    if (got == 0) break;
  }
  int bad = ferror(fp);
  fclose(fp);
  if (bad) {
    free(buf);
    return preft_fail(err, "%s: read error", path);
  }
  buf[n] = 0;
  *out = buf;
  if (out_size) *out_size = n;
  return 0;
}

int preft_file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

int preft_atomic_open(preft_atomic_writer *w, const char *path, preft_error *err) {
  memset(w, 0, sizeof *w);
  size_t n = strlen(path) + 32;
  w->tmp_path = preft_xmalloc(n);
  snprintf(w->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
  w->fp = fopen(w->tmp_path, "wb");
  if (!w->fp) {
    int e = errno;
    free(w->tmp_path);
    w->tmp_path = NULL;
    return preft_fail(err, "%s: cannot create: %s", path, strerror(e));
  }
  w->path = preft_xstrdup(path);
  return 0;
}

int preft_atomic_write(preft_atomic_writer *w, const void *data, size_t size, preft_error *err) {
  if (size && fwrite(data, 1, size, w->fp) != size)
    return preft_fail(err, "%s: write failed: %s", w->path, strerror(errno));
  return 0;
}

int preft_atomic_commit(preft_atomic_writer *w, preft_error *err) {
  int rc = 0;
  if (fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0)
    rc = preft_fail(err, "%s: flush failed: %s", w->path, strerror(errno));
  if (fclose(w->fp) != 0 && rc == 0) rc = preft_fail(err, "%s: close failed: %s", w->path, strerror(errno));
  w->fp = NULL;
  if (rc == 0 && rename(w->tmp_path, w->path) != 0)
    rc = preft_fail(err, "%s: rename failed: %s", w->path, strerror(errno));
  if (rc != 0) unlink(w->tmp_path);
  free(w->tmp_path);
  free(w->path);
  memset(w, 0, sizeof *w);
  return rc;
}

void preft_atomic_abort(preft_atomic_writer *w) {
  if (w->fp) fclose(w->fp);
  if (w->tmp_path) unlink(w->tmp_path);
  free(w->tmp_path);
  free(w->path);
  memset(w, 0, sizeof *w);
}

int preft_write_atomic(const char *path, const void *data, size_t size, preft_error *err) {
  preft_atomic_writer w;
  if (preft_atomic_open(&w, path, err) != 0) return -1;
  if (preft_atomic_write(&w, data, size, err) != 0) {
    preft_atomic_abort(&w);
    return -1;
  }
  return preft_atomic_commit(&w, err);
}

char *preft_path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = preft_xmalloc(a + b + 2);
  memcpy(p, dir, a);
  size_t k = a;
  if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
  memcpy(p + k, name, b + 1);
  return p;
}

int preft_mkdir_p(const char *path, preft_error *err) {
  char *tmp = preft_xstrdup(path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
      int e = errno;
      free(tmp);
      return preft_fail(err, "%s: cannot create directory: %s", path, strerror(e));
    }
    *p = '/';
  }
  int rc = 0;
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
    rc = preft_fail(err, "%s: cannot create directory: %s", path, strerror(errno));
  free(tmp);
  return rc;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int preft_list_subdirs(const char *dir, char ***names, preft_error *err) {
  DIR *d = opendir(dir);
  if (!d) return preft_fail(err, "%s: cannot open directory: %s", dir, strerror(errno));
  int n = 0, cap = 16;
  char **out = preft_xmalloc(sizeof(char *) * (size_t)cap);
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (ent->d_name[0] == '.') continue;
    char *p = preft_path_join(dir, ent->d_name);
    struct stat st;
    bool is_dir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    if (!is_dir) continue;
    if (n == cap) out = preft_xrealloc(out, sizeof(char *) * (size_t)(cap *= 2));
    out[n++] = preft_xstrdup(ent->d_name);
  }
  closedir(d);
  qsort(out, (size_t)n, sizeof(char *), cmp_names);
  *names = out;
  return n;
}
