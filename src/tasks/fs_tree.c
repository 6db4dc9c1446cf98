/* fs_tree.c - recursive copy and removal of folder trees (see fs_tree.h). */
#include "tasks/fs_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/error.h"

/* Copies the bytes of an open file. */
static int copy_bytes(int in, int out) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return -1;
      }
      off += w;
    }
  }
}

/* Owners, modes and times are best effort: a copy as non-root keeps the
 * bytes. Files and folders are set through their open descriptors, so a
 * name that someone changes into a symlink meanwhile is never followed. */
static void copy_meta_fd(int fd, const struct stat *st) {
  if (fchown(fd, st->st_uid, st->st_gid) != 0) (void)0;
  (void)fchmod(fd, st->st_mode & 07777); /* after chown, which clears set-id bits */
  struct timespec ts[2] = {st->st_atim, st->st_mtim};
  (void)futimens(fd, ts);
}

static void copy_link_meta(int dst_dirfd, const char *dst_name, const struct stat *st) {
  if (fchownat(dst_dirfd, dst_name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) != 0) (void)0;
  struct timespec ts[2] = {st->st_atim, st->st_mtim};
  (void)utimensat(dst_dirfd, dst_name, ts, AT_SYMLINK_NOFOLLOW);
}

static int copy_entry(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name, int depth,
                      preft_error *err) {
  if (depth > 256) return preft_fail(err, "%s: folders nested too deeply to copy", src_name);
  struct stat st;
  if (fstatat(src_dirfd, src_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return preft_fail(err, "%s: %s", src_name, strerror(errno));
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlinkat(src_dirfd, src_name, target, sizeof target - 1);
    if (n < 0) return preft_fail(err, "%s: %s", src_name, strerror(errno));
    target[n] = 0;
    (void)unlinkat(dst_dirfd, dst_name, 0);
    if (symlinkat(target, dst_dirfd, dst_name) != 0)
      return preft_fail(err, "%s: cannot create symlink: %s", dst_name, strerror(errno));
    copy_link_meta(dst_dirfd, dst_name, &st);
    return 0;
  }
  if (S_ISDIR(st.st_mode)) {
    struct stat dst_st;
    if (fstatat(dst_dirfd, dst_name, &dst_st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(dst_st.st_mode))
      (void)unlinkat(dst_dirfd, dst_name, 0);
    if (mkdirat(dst_dirfd, dst_name, 0700) != 0 && errno != EEXIST)
      return preft_fail(err, "%s: cannot create folder: %s", dst_name, strerror(errno));
    int sfd = openat(src_dirfd, src_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0) return preft_fail(err, "%s: %s", src_name, strerror(errno));
    int dfd = openat(dst_dirfd, dst_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
      close(sfd);
      return preft_fail(err, "%s: %s", dst_name, strerror(errno));
    }
    DIR *d = fdopendir(sfd);
    if (!d) {
      close(sfd);
      close(dfd);
      return preft_fail(err, "%s: %s", src_name, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      rc = copy_entry(dirfd(d), e->d_name, dfd, e->d_name, depth + 1, err);
      if (rc != 0) preft_fail_prefix(err, "%s", src_name);
    }
    closedir(d);
    if (rc == 0) copy_meta_fd(dfd, &st);
    close(dfd);
    return rc;
  }
  if (!S_ISREG(st.st_mode)) return 0; /* sockets, fifos, devices: not copied */
  int in = openat(src_dirfd, src_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) return preft_fail(err, "%s: %s", src_name, strerror(errno));
  (void)unlinkat(dst_dirfd, dst_name, 0);
  int out = openat(dst_dirfd, dst_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0) {
    close(in);
    return preft_fail(err, "%s: cannot create: %s", dst_name, strerror(errno));
  }
  int rc = copy_bytes(in, out);
  int saved = errno;
  if (rc == 0) copy_meta_fd(out, &st);
  close(in);
  if (close(out) != 0 && rc == 0) {
    rc = -1;
    saved = errno;
  }
  if (rc != 0) return preft_fail(err, "%s: cannot copy: %s", dst_name, strerror(saved));
  return 0;
}

int preft_fs_copy_at(int src_dirfd, const char *src_name, int dst_dirfd, const char *dst_name,
                     preft_error *err) {
  return copy_entry(src_dirfd, src_name, dst_dirfd, dst_name, 0, err);
}

int preft_fs_copy(const char *src, const char *dst, preft_error *err) {
  return copy_entry(AT_FDCWD, src, AT_FDCWD, dst, 0, err);
}

static _Thread_local preft_error *g_remove_err; /* nftw has no user pointer */
static _Thread_local int g_remove_rc;

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  int rc = (type == FTW_DP || type == FTW_D) ? rmdir(path) : unlink(path);
  if (rc != 0 && errno != ENOENT) {
    g_remove_rc = preft_fail(g_remove_err, "cannot remove %s: %s", path, strerror(errno));
    return 1;
  }
  return 0;
}

int preft_fs_remove(const char *path, preft_error *err) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : preft_fail(err, "%s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path) != 0 && errno != ENOENT)
      return preft_fail(err, "cannot remove %s: %s", path, strerror(errno));
    return 0;
  }
  g_remove_err = err;
  g_remove_rc = 0;
  int rc = nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  if (rc != 0 && g_remove_rc == 0) return preft_fail(err, "cannot remove %s: %s", path, strerror(errno));
  return g_remove_rc;
}

int preft_fs_empty(const char *path, preft_error *err) {
  DIR *d = opendir(path);
  if (!d) return preft_fail(err, "%s: %s", path, strerror(errno));
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t n = strlen(path) + strlen(e->d_name) + 2;
    char *child = malloc(n);
    if (!child) {
      rc = preft_fail(err, "out of memory");
      break;
    }
    snprintf(child, n, "%s/%s", path, e->d_name);
    rc = preft_fs_remove(child, err);
    free(child);
  }
  closedir(d);
  return rc;
}

int preft_fs_mkdirs(const char *path, int mode, preft_error *err) {
  char buf[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return preft_fail(err, "path too long or empty: %s", path);
  memcpy(buf, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != 0) continue;
    char c = buf[i];
    buf[i] = 0;
    if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
      return preft_fail(err, "cannot create %s: %s", buf, strerror(errno));
    buf[i] = c;
  }
  return 0;
}

static _Thread_local int64_t g_tree_bytes;
static int add_bytes(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)path;
  (void)ftw;
  if (type == FTW_F && S_ISREG(st->st_mode)) g_tree_bytes += st->st_size;
  return 0;
}

int64_t preft_fs_tree_bytes(const char *path) {
  g_tree_bytes = 0;
  (void)nftw(path, add_bytes, 32, FTW_PHYS | FTW_MOUNT);
  return g_tree_bytes;
}
