/* reward.c - reads reward.txt / reward.json of a verifier (reward.h). */
#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/error.h"
#include "base/file.h"
#include "tasks/reward.h"

static void zero(preft_reward *out, const char *source, const char *reason) {
  out->reward = 0;
  out->ok = false;
  snprintf(out->source, sizeof out->source, "%s", source);
  snprintf(out->reason, sizeof out->reason, "%s", reason);
}

void preft_reward_from_txt(const char *text, preft_reward *out) {
  memset(out, 0, sizeof *out);
  const char *s = text;
  while (isspace((unsigned char)*s)) s++;
  if (!*s) return zero(out, "reward.txt", "reward.txt is empty");
  char *end;
  double x = strtod(s, &end);
  const char *e = end;
  while (isspace((unsigned char)*e)) e++;
  if (end == s || *e) {
    char reason[200];
    snprintf(reason, sizeof reason, "reward.txt is not one number: '%.60s'", s);
    for (char *p = reason; *p; p++)
      if (*p == '\n' || *p == '\r') *p = ' ';
    return zero(out, "reward.txt", reason);
  }
  if (!isfinite(x)) return zero(out, "reward.txt", "reward.txt is not a finite number");
  out->reward = x;
  out->ok = true;
  snprintf(out->source, sizeof out->source, "reward.txt");
}

void preft_reward_from_json(const char *text, preft_reward *out) {
  memset(out, 0, sizeof *out);
  cJSON *j = cJSON_Parse(text);
  if (!j) return zero(out, "reward.json", "reward.json is not valid JSON");
  if (!cJSON_IsObject(j) || !j->child) {
    cJSON_Delete(j);
    return zero(out, "reward.json", "reward.json is not a non-empty object of numbers");
  }
  double sum = 0;
  int n = 0;
  const cJSON *reward = NULL;
  for (const cJSON *c = j->child; c; c = c->next) {
    if (!cJSON_IsNumber(c) || !isfinite(c->valuedouble)) {
      char reason[200];
      snprintf(reason, sizeof reason, "reward.json: '%.60s' is not a finite number", c->string);
      cJSON_Delete(j);
      return zero(out, "reward.json", reason);
    }
    if (!strcmp(c->string, "reward")) reward = c;
    sum += c->valuedouble;
    n++;
  }
  out->reward = reward ? reward->valuedouble : sum / n;
  out->ok = true;
  out->values = j;
  snprintf(out->source, sizeof out->source, "reward.json");
}

/* Reads a reward file of the verifier folder, which the sandbox can write:
 * only a plain file (not a symlink, which would be followed on the host,
 * nor a FIFO, whose open would block), at most 1 MiB. */
static int read_reward_file(const char *path, char **out, size_t *n) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
    close(fd);
    return -1;
  }
  char *buf = preft_xmalloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fd);
  buf[got] = 0;
  *out = buf;
  *n = got;
  return 0;
}

void preft_reward_read(const char *verifier_dir, preft_reward *out) {
  char *txt = preft_path_join(verifier_dir, "reward.txt"),
       *json = preft_path_join(verifier_dir, "reward.json");
  char *text = NULL;
  size_t n;
  struct stat st;
  if (lstat(txt, &st) == 0) { /* whatever it is: a symlink or a FIFO is read as no reward */
    if (read_reward_file(txt, &text, &n) != 0) {
      memset(out, 0, sizeof *out);
      zero(out, "reward.txt", "reward.txt could not be read (not a plain file of at most 1 MiB)");
    } else if (strlen(text) != n) {
      memset(out, 0, sizeof *out);
      zero(out, "reward.txt", "reward.txt contains a NUL byte");
    } else {
      preft_reward_from_txt(text, out);
    }
  } else if (lstat(json, &st) == 0) {
    if (read_reward_file(json, &text, &n) != 0) {
      memset(out, 0, sizeof *out);
      zero(out, "reward.json", "reward.json could not be read (not a plain file of at most 1 MiB)");
    } else {
      preft_reward_from_json(text, out);
    }
  } else {
    memset(out, 0, sizeof *out);
    zero(out, "", "the verifier wrote neither reward.txt nor reward.json");
  }
  free(text);
  free(txt);
  free(json);
}

void preft_reward_clear(preft_reward *r) {
  cJSON_Delete(r->values);
  r->values = NULL;
}
