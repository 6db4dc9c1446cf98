/* test_sandbox.c - a trial's sandbox keeps its promises: loopback only
 * without network, writes stay in its overlay, trials cannot see each
 * other, a timeout leaves no process behind, and a fork bomb or a disk fill
 * in one sandbox leaves the run (and the next command) working.
 *
 * Needs root and bubblewrap (skipped otherwise). The base layer is the
 * host's root, as `preft tasks` uses by default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
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

static bool can_sandbox(void) {
  if (geteuid() != 0) return false;
  return system("command -v bwrap >/dev/null 2>&1") == 0;
}

typedef struct {
  char *dir; /* the job folder (a temporary folder) */
  char *out; /* a log file of the last command */
} fixture;

static preft_sandbox *start(fixture *f, const char *trial, preft_sandbox_opts *o) {
  char *tdir = preft_path_join(f->dir, trial);
  o->layer_dir = "/";
  o->trial_dir = tdir;
  preft_sandbox *sb = NULL;
  preft_error err;
  int rc = preft_sandbox_start(o, &sb, &err);
  if (rc != 0) fail_msg("sandbox start: %s", err.msg);
  free(tdir);
  return sb;
}

/* Runs `sh -c script`; returns the exit code, output in *text (heap). */
static int sh(fixture *f, preft_sandbox *sb, const char *script, double timeout, preft_exec_result *res,
              char **text) {
  const char *argv[] = {"/bin/sh", "-c", script, NULL};
  unlink(f->out);
  preft_exec_result r;
  preft_error err;
  if (preft_sandbox_exec(sb, argv, timeout, f->out, &r, &err) != 0) fail_msg("exec: %s", err.msg);
  if (res) *res = r;
  if (text) {
    size_t n;
    char *t = test_read_all(f->out, &n);
    if (!t) t = strdup("");
    *text = t;
  }
  return r.exit_code;
}

static int setup(void **state) {
  if (!can_sandbox()) {
    *state = NULL;
    return 0;
  }
  fixture *f = calloc(1, sizeof *f);
  f->dir = test_tmpdir();
  char *logs = preft_path_join(f->dir, "logs");
  mkdir(logs, 0755);
  f->out = preft_path_join(logs, "out.txt");
  free(logs);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (!f) return 0;
  preft_error err;
  preft_fs_remove(f->dir, &err);
  free(f->dir);
  free(f->out);
  free(f);
  return 0;
}

#define NEED_SANDBOX(f)                       \
  do {                                        \
    if (!(f)) {                               \
      print_message("no root or no bwrap\n"); \
      skip();                                 \
    }                                         \
  } while (0)

/* Names of the network interfaces in /proc/net/dev as text "lo eth0 ". */
static int count_interfaces(const char *text) {
  int n = 0;
  for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (strchr(l, ':') && strchr(l, ':') < strchr(l, '\n')) n++;
  return n;
}

static void network_is_loopback_only_unless_asked(void **state) {
  fixture *f = *state;
  NEED_SANDBOX(f);
  char *host_dev = NULL;
  size_t n;
  host_dev = test_read_all("/proc/net/dev", &n);
  assert_non_null(host_dev);
  int host_ifaces = count_interfaces(host_dev);
  free(host_dev);

  preft_sandbox_opts o = {.network = false};
  preft_sandbox *sb = start(f, "net-off", &o);
  char *text;
  assert_int_equal(sh(f, sb, "cat /proc/net/dev", 10, NULL, &text), 0);
  assert_int_equal(count_interfaces(text), 1);
  assert_non_null(strstr(text, "lo:"));
  free(text);
  /* loopback is up */
  assert_int_equal(sh(f, sb, "cat /sys/class/net/lo/flags", 10, NULL, &text), 0);
  assert_true(strtol(text, NULL, 16) & 1); /* IFF_UP */
  free(text);
  preft_sandbox_stop(sb);

  if (host_ifaces > 1) { /* the same check sees the host's interfaces when network is asked */
    preft_sandbox_opts on = {.network = true};
    sb = start(f, "net-on", &on);
    assert_int_equal(sh(f, sb, "cat /proc/net/dev", 10, NULL, &text), 0);
    assert_int_equal(count_interfaces(text), host_ifaces);
    free(text);
    preft_sandbox_stop(sb);
  }
}

static void writes_stay_in_the_overlay(void **state) {
  fixture *f = *state;
  NEED_SANDBOX(f);
  char probe[128], script[512];
  snprintf(probe, sizeof probe, "/etc/preft-sandbox-probe-%d", (int)getpid());
  preft_sandbox_opts o = {0};
  preft_sandbox *sb = start(f, "t1", &o);
  snprintf(script, sizeof script, "echo escaped > %s && echo more >> /usr/bin/preft-probe-%d && cat %s",
           probe, (int)getpid(), probe);
  char *text;
  assert_int_equal(sh(f, sb, script, 10, NULL, &text), 0);
  assert_string_equal(text, "escaped\n");
  free(text);
  assert_int_not_equal(access(probe, F_OK), 0); /* not on the host */
  /* ... but still there for the next command of the same trial */
  snprintf(script, sizeof script, "cat %s", probe);
  assert_int_equal(sh(f, sb, script, 10, NULL, &text), 0);
  assert_string_equal(text, "escaped\n");
  free(text);
  /* readable from the host through the sandbox's root while it runs */
  char path[256];
  snprintf(path, sizeof path, "%s%s", preft_sandbox_root(sb), probe);
  assert_int_equal(access(path, F_OK), 0);
  /* A symlink planted inside does not lead a copy out to the host: it
   * points at a host folder that the sandbox also sees (through its
   * read-only lower layer), and the copy lands in the overlay. */
  char target[128];
  snprintf(target, sizeof target, "/var/tmp/preft-copy-target-%d", (int)getpid());
  mkdir(target, 0755);
  snprintf(script, sizeof script, "ln -s %s /tests", target);
  assert_int_equal(sh(f, sb, script, 10, NULL, NULL), 0);
  char *src = preft_path_join(f->dir, "payload.txt");
  preft_error err;
  assert_int_equal(preft_write_atomic(src, "payload\n", 8, &err), 0);
  if (preft_sandbox_copy_in(sb, src, "/tests/payload.txt", &err) != 0) fail_msg("copy in: %s", err.msg);
  char *escaped = preft_path_join(target, "payload.txt");
  assert_int_not_equal(access(escaped, F_OK), 0);
  assert_int_equal(sh(f, sb, "cat /tests/payload.txt", 10, NULL, &text), 0);
  assert_string_equal(text, "payload\n");
  free(text);
  /* reading back resolves inside too: /tests/payload.txt is the overlay's */
  size_t n;
  assert_int_equal(preft_sandbox_read_file(sb, "/tests/payload.txt", 100, &text, &n, &err), 0);
  assert_string_equal(text, "payload\n");
  free(text);
  assert_int_equal(preft_sandbox_read_file(sb, "/tests/payload.txt", 4, &text, &n, &err), -1);
  assert_non_null(strstr(err.msg, "longer than 4 bytes"));
  assert_int_equal(preft_sandbox_read_file(sb, "/no/such/file", 100, &text, &n, &err), -1);
  assert_non_null(strstr(err.msg, "/no/such/file"));
  /* a symlink to a host file that exists only on the host reads nothing of it */
  snprintf(script, sizeof script, "ln -s %s/t1/sandbox.log /host-link", f->dir);
  assert_int_equal(sh(f, sb, script, 10, NULL, NULL), 0);
  assert_int_equal(preft_sandbox_read_file(sb, "/host-link", 100000, &text, &n, &err), -1);
  snprintf(path, sizeof path, "%s/host-link", preft_sandbox_root(sb));
  assert_int_equal(access(path, F_OK), 0); /* where a naive read through the root would land on the host */
  free(escaped);
  free(src);
  rmdir(target);
  /* emptying a bound folder keeps the bind: what a command writes after is on the host */
  char *logs = preft_path_join(f->dir, "logs");
  char *planted = preft_path_join(logs, "planted.txt");
  assert_int_equal(preft_write_atomic(planted, "x", 1, &err), 0);
  assert_int_equal(preft_fs_empty(logs, &err), 0);
  assert_int_not_equal(access(planted, F_OK), 0);
  assert_int_equal(access(logs, F_OK), 0);
  free(planted);
  free(logs);
  /* a host folder preft holds open (without close-on-exec) does not reach a command */
  int dir_fd = open("/", O_RDONLY | O_DIRECTORY);
  assert_true(dir_fd >= 0);
  assert_int_equal(dup2(dir_fd, 77), 77);
  assert_int_equal(sh(f, sb, "[ -e /proc/$$/fd/77 ] && echo leaked || echo closed", 10, NULL, &text), 0);
  assert_string_equal(text, "closed\n");
  free(text);
  close(77);
  close(dir_fd);
  preft_sandbox_stop(sb);
  assert_int_not_equal(access(probe, F_OK), 0);
  /* the overlay's state is gone with the sandbox */
  char *state_dir = preft_path_join(f->dir, "t1/.sandbox");
  assert_int_not_equal(access(state_dir, F_OK), 0);
  free(state_dir);
}

/* How many host processes have `needle` in their command line. */
static int count_host_processes(const char *needle) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0) continue;
    for (ssize_t i = 0; i < k; i++)
      if (buf[i] == 0) buf[i] = ' ';
    buf[k] = 0;
    if (strstr(buf, needle)) {
      print_message("found: %s %s\n", e->d_name, buf);
      n++;
    }
  }
  closedir(d);
  return n;
}

/* count_host_processes after the killed ones had up to 2 s to go away
 * (a killed process lingers until it has exited and been reaped). */
static int count_after_kill(const char *needle) {
  int n = count_host_processes(needle);
  for (int i = 0; i < 200 && n > 0; i++) {
    usleep(10000);
    n = count_host_processes(needle);
  }
  return n;
}

/* count_host_processes once a command started in the background had up to
 * 2 s to appear (the shell that started it may return before it runs). */
static int count_after_start(const char *needle) {
  int n = count_host_processes(needle);
  for (int i = 0; i < 200 && n == 0; i++) {
    usleep(10000);
    n = count_host_processes(needle);
  }
  return n;
}

static void trials_cannot_see_each_other(void **state) {
  fixture *f = *state;
  NEED_SANDBOX(f);
  preft_sandbox_opts o = {0};
  preft_sandbox *a = start(f, "a", &o);
  preft_sandbox *b = start(f, "b", &o);
  assert_int_equal(sh(f, a, "echo secret > /root/a-secret; sleep 4242 >/dev/null 2>&1 &", 10, NULL, NULL), 0);
  const char *look =
      "test -e /root/a-secret && echo file; "
      "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done 2>/dev/null | grep -c 'slee[p] 4242'; "
      "true";
  char *text;
  /* a sees its own file and process (so the check can fail) ... */
  assert_int_equal(sh(f, a, look, 10, NULL, &text), 0);
  assert_string_equal(text, "file\n1\n");
  free(text);
  /* ... b sees neither */
  assert_int_equal(sh(f, b, look, 10, NULL, &text), 0);
  assert_string_equal(text, "0\n");
  free(text);
  /* nor a's trial folder or the job folder on the host (masked) */
  char script[512];
  snprintf(script, sizeof script, "ls -A %s | wc -l", f->dir);
  assert_int_equal(sh(f, b, script, 10, NULL, &text), 0);
  assert_string_equal(text, "0\n");
  free(text);
  assert_int_equal(count_after_start("sleep 4242"), 1);
  preft_sandbox_stop(a);
  preft_sandbox_stop(b);
  assert_int_equal(count_host_processes("sleep 4242"), 0);
}

static void timeout_kills_the_whole_tree(void **state) {
  fixture *f = *state;
  NEED_SANDBOX(f);
  preft_sandbox_opts o = {0};
  preft_sandbox *sb = start(f, "slow", &o);
  preft_exec_result r;
  /* a child, an orphan, a new session and the command itself */
  const char *script = "sleep 3131 & (sleep 3132 &) ; setsid sleep 3133 & sleep 3134";
  sh(f, sb, script, 0.5 * test_time_scale(), &r, NULL);
  assert_true(r.timed_out);
  assert_int_equal(r.exit_code, 137);
  assert_true(r.seconds < 5 * test_time_scale());
  assert_int_equal(count_after_kill("sleep 313"), 0);
  /* the sandbox still serves the next command */
  char *text;
  assert_int_equal(sh(f, sb, "echo alive; exit 3", 10, &r, &text), 3);
  assert_false(r.timed_out);
  assert_string_equal(text, "alive\n");
  free(text);
  /* stop kills what commands left running in the background */
  assert_int_equal(sh(f, sb, "sleep 5151 >/dev/null 2>&1 &", 10, NULL, NULL), 0);
  assert_int_equal(count_after_start("sleep 5151"), 1);
  int init = preft_sandbox_init_pid(sb);
  preft_sandbox_stop(sb);
  assert_int_equal(count_host_processes("sleep 5151"), 0);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d", init);
  assert_int_not_equal(access(path, F_OK), 0);
}

static void fork_bomb_and_disk_fill_stay_inside(void **state) {
  fixture *f = *state;
  NEED_SANDBOX(f);
  bool rlimit = getenv("PREFT_SANDBOX_LIMITS") != NULL;
  preft_sandbox_opts o = {.limits = {.max_pids = 48, .storage_mb = 8, .memory_mb = 512}};
  /* a stale folder, as preft killed outright leaves it (pid 999999999 cannot
   * exist), where this test's own pids cgroup is the v1 root */
  size_t cg_n;
  char *cg = test_read_all("/proc/self/cgroup", &cg_n);
  bool v1_root = !rlimit && cg && strstr(cg, ":pids:/\n");
  free(cg);
  const char *stale = "/sys/fs/cgroup/pids/preft-sandbox-999999999-1";
  if (v1_root) (void)mkdir(stale, 0755);
  preft_sandbox *sb = start(f, "bomb", &o);
  const char *limits = preft_sandbox_limits_desc(sb);
  print_message("limits: %s\n", limits);
  /* the folders of a sandbox whose preft died were swept when this one was made */
  if (v1_root && strstr(limits, "cgroup v1") && strstr(limits, "pids"))
    assert_int_not_equal(access(stale, F_OK), 0);
  (void)rmdir(stale);
  assert_true(strncmp(limits, "rlimit", 6) == 0 || !rlimit);
  preft_exec_result r;
  /* A fork bomb where a cgroup holds the number of processes; where only the
   * watchdog does, a bounded flood of 400 (a real bomb could outrun it). */
  bool cgroup_pids = strstr(limits, "cgroup") && strstr(limits, "pids");
  const char *bomb = cgroup_pids ? "b() { b | b & }; b; sleep 3029"
                                 : "i=0; while [ $i -lt 400 ]; do sleep 3029 & i=$((i+1)); done; wait";
  sh(f, sb, bomb, 2.0 * test_time_scale(), &r, NULL);
  assert_true(r.timed_out || r.exit_code != 0);
  assert_int_equal(count_after_kill("sleep 3029"), 0);
  /* the run goes on: this process forks, the sandbox runs the next command */
  assert_int_equal(system("true"), 0);
  char *text;
  assert_int_equal(sh(f, sb, "echo still here", 10, &r, &text), 0);
  assert_string_equal(text, "still here\n");
  free(text);

  /* A disk fill ends at the storage limit: no space left, nothing on the host. */
  int code = sh(
      f, sb,
      "dd if=/dev/zero of=/fill bs=1M count=64 2>&1; echo; dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1",
      30, &r, &text);
  assert_int_not_equal(code, 0);
  assert_non_null(strstr(text, "No space left"));
  free(text);
  char *trial = preft_path_join(f->dir, "bomb");
  assert_true(preft_fs_tree_bytes(trial) < (1 << 20));
  free(trial);
  assert_int_equal(sh(f, sb, "rm /fill /tmp/fill && echo ok > /small && cat /small", 10, &r, &text), 0);
  assert_string_equal(text, "ok\n");
  free(text);
  preft_sandbox_stop(sb);

  /* another sandbox starts and works after all this */
  preft_sandbox_opts o2 = {0};
  sb = start(f, "after", &o2);
  assert_int_equal(sh(f, sb, "echo fine", 10, NULL, &text), 0);
  assert_string_equal(text, "fine\n");
  free(text);
  preft_sandbox_stop(sb);
}

static void bad_layer_and_missing_command_are_clear_errors(void **state) {
  fixture *f = *state;
  NEED_SANDBOX(f);
  preft_sandbox_opts o = {.layer_dir = "/nonexistent-layer", .trial_dir = f->dir};
  preft_sandbox *sb = NULL;
  preft_error err;
  assert_int_equal(preft_sandbox_start(&o, &sb, &err), -1);
  assert_non_null(strstr(err.msg, "/nonexistent-layer"));
  assert_null(sb);
  preft_sandbox_opts ok = {.workdir = "/nonexistent-workdir"};
  sb = start(f, "w", &ok);
  const char *argv[] = {"no-such-program-anywhere", NULL};
  preft_exec_result r;
  assert_int_equal(preft_sandbox_exec(sb, argv, 10, f->out, &r, &err), 0);
  assert_int_equal(r.exit_code, 126); /* the workdir is checked first */
  char *text = test_read_all(f->out, &(size_t){0});
  assert_non_null(strstr(text, "/nonexistent-workdir"));
  free(text);
  preft_sandbox_stop(sb);
}

/* The same with the cgroups skipped: rlimits and the process watchdog. */
static void fork_bomb_and_disk_fill_with_rlimits(void **state) {
  setenv("PREFT_SANDBOX_LIMITS", "rlimit", 1);
  fork_bomb_and_disk_fill_stay_inside(state);
  unsetenv("PREFT_SANDBOX_LIMITS");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(network_is_loopback_only_unless_asked, setup, teardown),
      cmocka_unit_test_setup_teardown(writes_stay_in_the_overlay, setup, teardown),
      cmocka_unit_test_setup_teardown(trials_cannot_see_each_other, setup, teardown),
      cmocka_unit_test_setup_teardown(timeout_kills_the_whole_tree, setup, teardown),
      cmocka_unit_test_setup_teardown(fork_bomb_and_disk_fill_stay_inside, setup, teardown),
      cmocka_unit_test_setup_teardown(fork_bomb_and_disk_fill_with_rlimits, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_layer_and_missing_command_are_clear_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
