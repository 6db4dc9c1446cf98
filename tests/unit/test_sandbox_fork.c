/* test_sandbox_fork.c - no forked child of a sandbox allocates memory or
 * calls another function that may take a lock.
 *
 * A child forked from a threaded process (`preft tasks run --n-concurrent
 * 2` runs trials on worker threads) may only make async-signal-safe calls:
 * when another thread held the allocator's lock at the fork (under
 * AddressSanitizer, whose allocator glibc's fork does not lock), a malloc
 * in the child waits forever. That hang is a race; this test makes the
 * fault deterministic instead. It is linked with --wrap for the allocator,
 * opendir/fdopendir (which allocate) and strerror (which translates): each
 * wrapper passes the call through, except in a forked child (marked by a
 * pthread_atfork handler), where it says which function was called and
 * exits 99. So every sandbox operation that forks (start, exec, a command
 * that cannot run, copy in of a folder tree, read back, and their errors)
 * must succeed with the right answer here, which it cannot do if its
 * child calls one of them.
 *
 * Needs root and bubblewrap (skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "tasks/fs_tree.h"
#include "tasks/sandbox.h"
#include "testutil.h"

static volatile sig_atomic_t g_forked; /* set in a child of fork() */

static void mark_forked(void) { g_forked = 1; }

static void refuse_in_child(const char *what) {
  if (!g_forked) return;
  static const char head[] = "test_sandbox_fork: ", tail[] = " called in a forked child\n";
  ssize_t w = write(2, head, sizeof head - 1);
  w = write(2, what, strlen(what));
  w = write(2, tail, sizeof tail - 1);
  (void)w;
  _exit(99);
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
DIR *__real_opendir(const char *path);
DIR *__real_fdopendir(int fd);
char *__real_strerror(int e);

void *__wrap_malloc(size_t n) {
  refuse_in_child("malloc");
  return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
  refuse_in_child("calloc");
  return __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
  refuse_in_child("realloc");
  return __real_realloc(p, n);
}
void __wrap_free(void *p) {
  if (p) refuse_in_child("free");
  __real_free(p);
}
char *__wrap_strdup(const char *s) {
  refuse_in_child("strdup");
  return __real_strdup(s);
}
DIR *__wrap_opendir(const char *path) {
  refuse_in_child("opendir");
  return __real_opendir(path);
}
DIR *__wrap_fdopendir(int fd) {
  refuse_in_child("fdopendir");
  return __real_fdopendir(fd);
}
char *__wrap_strerror(int e) {
  refuse_in_child("strerror");
  return __real_strerror(e);
}

static bool can_sandbox(void) {
  if (geteuid() != 0) return false;
  return system("command -v bwrap >/dev/null 2>&1") == 0;
}

static void write_file(const char *dir, const char *name, const char *text, int mode) {
  char *path = preft_path_join(dir, name);
  preft_error err;
  if (preft_write_atomic(path, text, strlen(text), &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(chmod(path, (mode_t)mode), 0);
  free(path);
}

/* Runs `sh -c script` in sb; returns its exit code, output in *text (heap). */
static int sh(preft_sandbox *sb, const char *script, const char *log, char **text) {
  const char *argv[] = {"/bin/sh", "-c", script, NULL};
  unlink(log);
  preft_exec_result r;
  preft_error err;
  if (preft_sandbox_exec(sb, argv, 20, log, &r, &err) != 0) fail_msg("exec: %s", err.msg);
  size_t n;
  *text = test_read_all(log, &n);
  if (!*text) *text = strdup("");
  return r.exit_code;
}

static void forked_children_do_not_allocate(void **state) {
  (void)state;
  if (!can_sandbox()) {
    print_message("no root or no bwrap\n");
    skip();
  }
  assert_int_equal(pthread_atfork(NULL, NULL, mark_forked), 0);
  char *dir = test_tmpdir();
  char *log = preft_path_join(dir, "out.txt");
  /* a folder tree to copy in: a file, a subfolder, a symlink */
  char *tree = preft_path_join(dir, "tree");
  char *sub = preft_path_join(tree, "sub");
  assert_int_equal(mkdir(tree, 0755), 0);
  assert_int_equal(mkdir(sub, 0700), 0);
  write_file(tree, "a.txt", "alpha\n", 0640);
  write_file(sub, "b.sh", "echo beta\n", 0750);
  char *link = preft_path_join(tree, "to-a");
  assert_int_equal(symlink("a.txt", link), 0);

  char *trial = preft_path_join(dir, "trial");
  preft_sandbox_opts o = {.layer_dir = "/", .trial_dir = trial};
  preft_sandbox *sb = NULL;
  preft_error err;
  if (preft_sandbox_start(&o, &sb, &err) != 0) fail_msg("sandbox start: %s", err.msg);

  char *text;
  assert_int_equal(sh(sb, "echo hello", log, &text), 0);
  assert_string_equal(text, "hello\n");
  free(text);

  /* a command that cannot run: exit 127 with the reason */
  const char *missing[] = {"/no/such/program", NULL};
  preft_exec_result r;
  assert_int_equal(preft_sandbox_exec(sb, missing, 20, log, &r, &err), 0);
  assert_int_equal(r.exit_code, 127);
  size_t n;
  text = test_read_all(log, &n);
  assert_non_null(text);
  assert_non_null(strstr(text, "cannot run /no/such/program: No such file or directory"));
  free(text);

  /* a folder tree, into a folder that does not exist yet */
  if (preft_sandbox_copy_in(sb, tree, "/opt/preft-fork/tree", &err) != 0) fail_msg("copy in: %s", err.msg);
  assert_int_equal(sh(sb,
                      "cd /opt/preft-fork/tree && cat a.txt to-a && sh sub/b.sh && readlink to-a && "
                      "stat -c '%a %n' a.txt sub sub/b.sh",
                      log, &text),
                   0);
  assert_string_equal(text, "alpha\nalpha\nbeta\na.txt\n640 a.txt\n700 sub\n750 sub/b.sh\n");
  free(text);
  /* a copy whose folder is a file: the child's reason comes back */
  assert_int_equal(preft_sandbox_copy_in(sb, tree, "/etc/passwd/tree", &err), -1);
  assert_non_null(strstr(err.msg, "cannot open /etc/passwd: Not a directory"));

  /* read back, and a file that is not there */
  assert_int_equal(preft_sandbox_read_file(sb, "/opt/preft-fork/tree/sub/b.sh", 100, &text, &n, &err), 0);
  assert_string_equal(text, "echo beta\n");
  free(text);
  assert_int_equal(preft_sandbox_read_file(sb, "/opt/preft-fork/none", 100, &text, &n, &err), -1);
  assert_non_null(strstr(err.msg, "No such file or directory"));

  preft_sandbox_stop(sb);
  assert_int_equal(preft_fs_remove(dir, &err), 0);
  free(trial);
  free(link);
  free(sub);
  free(tree);
  free(log);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(forked_children_do_not_allocate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
