/* terminus_cast.c - an asciicast v2 recording (the format asciinema plays):
 * a header line {"version": 2, "width", "height", "timestamp"}, then one
 * line per event [seconds, "o" | "i", "text"]. Output arrives in arbitrary
 * chunks, so a UTF-8 sequence cut at the end of a chunk is held back and
 * completed by the next one; the file is appended and flushed per event so
 * that a run that dies still leaves its recording. */
#include <string.h>
#include <time.h>

#include "base/timer.h"
#include "server/sse.h" /* srv_buf */
#include "tasks/terminus_int.h"

int preft_term_cast_open(preft_term_cast *c, const char *path, int width, int height, preft_error *err) {
  memset(c, 0, sizeof *c);
  c->f = fopen(path, "w");
  if (!c->f) return preft_fail(err, "%s: cannot create the recording", path);
  c->t0 = preft_now();
  fprintf(c->f,
          "{\"version\": 2, \"width\": %d, \"height\": %d, \"timestamp\": %lld, \"env\": {\"TERM\": "
          "\"tmux-256color\", \"SHELL\": \"/bin/bash\"}}\n",
          width, height, (long long)time(NULL));
  fflush(c->f);
  return 0;
}

/* Bytes at the end of s[0..n) that start a UTF-8 sequence not yet complete. */
static int cut_tail(const char *s, size_t n) {
  for (int back = 1; back <= 3 && (size_t)back <= n; back++) {
    unsigned char b = (unsigned char)s[n - (size_t)back];
    if ((b & 0xC0) == 0x80) continue; /* continuation: look further back */
    int need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

void preft_term_cast_event(preft_term_cast *c, char kind, const char *data, size_t n) {
  if (!c || !c->f || (!n && !c->n_pending)) return;
  srv_buf text = {0};
  if (kind == 'o') {
    preft_srv_buf_put(&text, c->pending, (size_t)c->n_pending);
    c->n_pending = 0;
  }
  preft_srv_buf_put(&text, data, n);
  if (kind == 'o') {
    int hold = cut_tail(text.p, text.len);
    memcpy(c->pending, text.p + text.len - hold, (size_t)hold);
    c->n_pending = hold;
    text.len -= (size_t)hold;
  }
  if (text.len) {
    srv_buf line = {0};
    preft_srv_buf_printf(&line, "[%.6f, \"%c\", ", preft_now() - c->t0, kind);
    preft_srv_buf_json_str(&line, text.p, text.len);
    preft_srv_buf_puts(&line, "]\n");
    fwrite(line.p, 1, line.len, c->f);
    fflush(c->f);
    preft_srv_buf_free(&line);
  }
  preft_srv_buf_free(&text);
}

void preft_term_cast_close(preft_term_cast *c) {
  if (c->f) fclose(c->f);
  c->f = NULL;
}
