/* fork_child.h - what a forked child of a threaded process may use to say
 * why it failed.
 *
 * Between fork() and exec (or _exit) such a child may call only
 * async-signal-safe functions: another thread may have held a lock at the
 * fork (the allocator's, AddressSanitizer's, stdio's, gettext's), and the
 * child's copy of that lock is never released, so the child hangs. No
 * malloc (nor opendir, which allocates), no stdio, no strerror (it
 * translates through gettext). These helpers use write(2) and stack buffers
 * only. */
#ifndef PREFT_BASE_FORK_CHILD_H
#define PREFT_BASE_FORK_CHILD_H

#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* errno as English text: strerrordesc_np is a table lookup (glibc 2.32+). */
static inline const char *fork_child_errno_text(int e) {
  const char *s = strerrordesc_np(e);
  return s ? s : "unknown error";
}

/* Joins the n strings of parts into buf (truncated to cap - 1 bytes, always
 * terminated); returns the length. */
static inline size_t fork_child_join(char *buf, size_t cap, const char *const *parts, int n) {
  size_t len = 0;
  for (int i = 0; i < n && parts[i]; i++)
    for (const char *c = parts[i]; *c && len + 1 < cap; c++) buf[len++] = *c;
  buf[len] = 0;
  return len;
}

/* Writes the n strings of parts to fd as one write (at most 1 KiB). */
static inline void fork_child_say(int fd, const char *const *parts, int n) {
  char buf[1024];
  size_t len = fork_child_join(buf, sizeof buf, parts, n);
  ssize_t w = write(fd, buf, len);
  (void)w;
}

#endif
