/* terminus_tmux.c - the terminus agent's terminal: a detached tmux session
 * inside the sandbox running `bash --login` in a 160x40 pane, driven only
 * through preft_sandbox_exec (`tmux send-keys`, `tmux capture-pane`), as a
 * person at a keyboard would. The server's socket lives in the sandbox's
 * /tmp; the pane's raw output is streamed (`pipe-pane`) to a file next to it,
 * which becomes the asciicast recording: read from the host through the
 * sandbox's root while waiting, or through `tail` inside when the root is
 * not visible. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "base/timer.h"
#include "server/sse.h" /* srv_buf */
#include "tasks/terminus_int.h"

#define SOCK "/tmp/.preft-terminus.sock"
#define RAW "/tmp/.preft-terminus.raw"
#define SESSION "preft"
#define EXEC_TIMEOUT 15.0

/* Runs argv inside the sandbox with its output in t->capture_path (emptied
 * first). Returns the exit code, or -1 when it could not run. */
static int run(preft_term_tmux *t, const char *const *argv, preft_error *err) {
  int fd = open(t->capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return preft_fail(err, "%s: cannot create", t->capture_path);
  close(fd);
  preft_exec_result r;
  if (preft_sandbox_exec(t->sb, argv, EXEC_TIMEOUT, t->capture_path, &r, err) != 0) return -1;
  if (r.timed_out)
    return preft_fail(err, "%s: timed out after %.0f s inside the sandbox", argv[0], EXEC_TIMEOUT);
  return r.exit_code;
}

/* What the last run printed (heap). */
static char *run_output(preft_term_tmux *t) {
  char *text = NULL;
  size_t n;
  preft_error e;
  if (preft_read_file(t->capture_path, &text, &n, &e) != 0) return preft_xstrdup("");
  return text;
}

/* run() that must exit 0; the error carries the command's own output. */
static int run_ok(preft_term_tmux *t, const char *const *argv, const char *what, preft_error *err) {
  int rc = run(t, argv, err);
  if (rc < 0) return -1;
  if (rc == 0) return 0;
  char *out = run_output(t);
  preft_term_pane_trim(out);
  preft_fail(err, "tmux %s failed inside the sandbox (exit %d): %.300s", what, rc, out);
  free(out);
  return -1;
}

int preft_term_tmux_start(preft_term_tmux *t, preft_sandbox *sb, const char *log_dir, preft_term_cast *cast,
                          preft_error *err) {
  memset(t, 0, sizeof *t);
  t->sb = sb;
  t->cast = cast;
  t->capture_path = preft_path_join(log_dir, ".tmux-output");
  const char *version[] = {"tmux", "-V", NULL};
  int rc = run(t, version, err);
  if (rc < 0) return -1;
  if (rc != 0) {
    char *out = run_output(t);
    preft_term_pane_trim(out);
    preft_fail(err,
               "tmux is not available inside the sandbox (`tmux -V`: exit %d%s%.200s); install it in the "
               "task's environment (apt-get install tmux)",
               rc, out[0] ? ": " : "", out);
    free(out);
    return -1;
  }
  char size_x[16], size_y[16];
  snprintf(size_x, sizeof size_x, "%d", PREFT_TERM_WIDTH);
  snprintf(size_y, sizeof size_y, "%d", PREFT_TERM_HEIGHT);
  /* no user config; a long history for the incremental output; no status
   * line (the pane gets all 40 rows); the raw output streamed to RAW */
  const char *start[] = {"tmux",
                         "-u",
                         "-f",
                         "/dev/null",
                         "-S",
                         SOCK,
                         "start-server",
                         ";",
                         "set-option",
                         "-g",
                         "history-limit",
                         "100000",
                         ";",
                         "set-option",
                         "-g",
                         "status",
                         "off",
                         ";",
                         "new-session",
                         "-d",
                         "-s",
                         SESSION,
                         "-x",
                         size_x,
                         "-y",
                         size_y,
                         "bash --login",
                         ";",
                         "pipe-pane",
                         "-t",
                         SESSION,
                         "-o",
                         "cat > " RAW,
                         NULL};
  if (run_ok(t, start, "new-session", err) != 0) return -1;
  const char *root = preft_sandbox_root(sb);
  if (root) {
    char *p = preft_path_join(root, &RAW[1]); /* RAW without its leading / */
    /* the stream is visible from here only if the sandbox's /tmp is the root's */
    for (int i = 0; i < 100 && !preft_file_exists(p); i++) nanosleep(&(struct timespec){0, 10000000}, NULL);
    if (preft_file_exists(p))
      t->raw_host = p;
    else
      free(p);
  }
  return 0;
}

/* A tmux key name sent as a key rather than typed: C-x, M-x, C-M-x, and
 * the named keys. */
static bool is_key_name(const char *s) {
  static const char *const names[] = {
      "Enter", "Escape", "Tab",    "BTab",     "BSpace", "Space", "Up", "Down", "Left", "Right",
      "Home",  "End",    "PageUp", "PageDown", "PPage",  "NPage", "DC", "IC",   "F1",   "F2",
      "F3",    "F4",     "F5",     "F6",       "F7",     "F8",    "F9", "F10",  "F11",  "F12"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(s, names[i])) return true;
  const char *p = s;
  while ((p[0] == 'C' || p[0] == 'M' || p[0] == 'S') && p[1] == '-') p += 2;
  return p != s && p[0] && (!p[1] || is_key_name(p));
}

int preft_term_tmux_send(preft_term_tmux *t, const char *keystrokes, preft_error *err) {
  if (!keystrokes[0]) return 0;
  /* tmux -S SOCK send-keys -t S -l SEG ; send-keys -t S Enter ; ...: one exec */
  size_t cap = 8 + 7 * (strlen(keystrokes) + 2);
  const char **argv = preft_xcalloc(cap, sizeof *argv);
  size_t n = 0;
  argv[n++] = "tmux";
  argv[n++] = "-u";
  argv[n++] = "-S";
  argv[n++] = SOCK;
  char *copy = preft_xstrdup(keystrokes);
  bool first = true;
#define CMD(...)                                                                           \
  do {                                                                                     \
    if (!first) argv[n++] = ";";                                                           \
    first = false;                                                                         \
    const char *parts_[] = {__VA_ARGS__};                                                  \
    for (size_t i_ = 0; i_ < sizeof parts_ / sizeof *parts_; i_++) argv[n++] = parts_[i_]; \
  } while (0)
  if (is_key_name(copy)) {
    CMD("send-keys", "-t", SESSION, copy);
  } else {
    for (char *seg = copy;;) {
      char *nl = strchr(seg, '\n');
      if (nl) *nl = 0;
      if (nl && nl > seg && nl[-1] == '\r') nl[-1] = 0; /* "\r\n" is one Enter */
      /* tmux reads an argument ending in ';' as a command separator (and
       * "\\;" as ';'), so trailing semicolons go as hex key codes */
      size_t len = strlen(seg), semis = 0;
      while (semis < len && seg[len - 1 - semis] == ';') semis++;
      seg[len - semis] = 0;
      if (seg[0]) CMD("send-keys", "-t", SESSION, "-l", "--", seg);
      for (size_t k = 0; k < semis; k++) CMD("send-keys", "-t", SESSION, "-H", "3b");
      if (!nl) break;
      CMD("send-keys", "-t", SESSION, "Enter");
      seg = nl + 1;
    }
  }
#undef CMD
  argv[n] = NULL;
  PREFT_ASSERT(n < cap);
  int rc = run_ok(t, argv, "send-keys", err);
  preft_term_cast_event(t->cast, 'i', keystrokes, strlen(keystrokes));
  free(copy);
  free(argv);
  return rc;
}

void preft_term_tmux_record(preft_term_tmux *t) {
  if (!t->cast) return;
  char *data = NULL;
  size_t n = 0;
  if (t->raw_host) {
    /* Read from the host through the sandbox's root: the agent may have
     * put a symlink there (absolute targets would resolve on the HOST) or
     * a FIFO (an open would block): only a plain file is read. */
    int fd = open(t->raw_host, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
      close(fd);
      return;
    }
    srv_buf b = {0};
    if (fseek(f, t->raw_offset, SEEK_SET) == 0) {
      char buf[65536];
      size_t k;
      while ((k = fread(buf, 1, sizeof buf, f)) > 0) preft_srv_buf_put(&b, buf, k);
    }
    fclose(f);
    data = b.p;
    n = b.len;
  } else {
    char off[32];
    snprintf(off, sizeof off, "+%ld", t->raw_offset + 1);
    const char *argv[] = {"tail", "-c", off, RAW, NULL};
    preft_error e;
    if (run(t, argv, &e) != 0) return;
    size_t size;
    if (preft_read_file(t->capture_path, &data, &size, &e) != 0) return;
    n = size;
  }
  if (n) preft_term_cast_event(t->cast, 'o', data, n);
  t->raw_offset += (long)n;
  free(data);
}

void preft_term_tmux_wait(preft_term_tmux *t, double seconds) {
  double end = preft_now() + seconds;
  for (;;) {
    double left = end - preft_now();
    if (left <= 0) break;
    double step = t->raw_host && left > 0.1 ? 0.1 : left;
    struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
    nanosleep(&ts, NULL);
    if (t->raw_host) preft_term_tmux_record(t);
  }
  preft_term_tmux_record(t);
}

int preft_term_tmux_capture(preft_term_tmux *t, bool history, char **out, preft_error *err) {
  *out = NULL;
  const char *with_history[] = {"tmux",  "-u", "-S", SOCK, "capture-pane", "-p", "-t",
                                SESSION, "-S", "-",  NULL};
  const char *screen[] = {"tmux", "-u", "-S", SOCK, "capture-pane", "-p", "-t", SESSION, NULL};
  if (run_ok(t, history ? with_history : screen, "capture-pane", err) != 0) return -1;
  *out = run_output(t);
  preft_term_pane_trim(*out);
  return 0;
}

void preft_term_tmux_stop(preft_term_tmux *t) {
  if (t->sb && t->capture_path) {
    preft_term_tmux_record(t);
    const char *kill[] = {"tmux", "-u", "-S", SOCK, "kill-server", NULL};
    preft_error e;
    run(t, kill, &e);
    unlink(t->capture_path);
  }
  free(t->capture_path);
  free(t->raw_host);
  memset(t, 0, sizeof *t);
}
