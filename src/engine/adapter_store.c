/* adapter_store.c - the adapter name resolver and the registry file (see
 * adapter_store.h). */
#include "engine/adapter_store.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"

static bool plain_component(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 255 || !strcmp(name, ".") || !strcmp(name, "..")) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)name[i] < 0x20 || name[i] == '/' || name[i] == 0x7f) return false;
  return true;
}

char *preft_store_resolve(const char *dir_real, const char *name) {
  if (!plain_component(name)) return NULL;
  char *path = preft_path_join(dir_real, name);
  char *lora = preft_path_join(path, "adapter_config.json"),
       *reft = preft_path_join(path, "reft_config.json");
  bool has_config = preft_file_exists(lora) || preft_file_exists(reft);
  free(lora);
  free(reft);
  char real[PATH_MAX];
  size_t dn = strlen(dir_real);
  bool inside = has_config && realpath(path, real) && !strncmp(real, dir_real, dn) && real[dn] == '/';
  if (!inside) {
    free(path);
    return NULL;
  }
  return path;
}

int preft_store_read(const char *path, preft_store_entry **out, int *n, preft_error *err) {
  *out = NULL;
  *n = 0;
  if (!preft_file_exists(path)) return 0;
  char *text;
  if (preft_read_file(path, &text, NULL, err) != 0) return -1;
  int cap = 0, line_no = 0;
  for (char *line = text, *next; line && *line; line = next) {
    line_no++;
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[--len] = 0;
    if (!len || line[0] == '#') continue;
    char *tab = strchr(line, '\t');
    if (!tab || tab == line || !tab[1] || strchr(tab + 1, '\t')) {
      preft_store_free(*out, *n);
      *out = NULL;
      *n = 0;
      free(text);
      return preft_fail(err, "%s: line %d: expected NAME<tab>DIRECTORY", path, line_no);
    }
    *tab = 0;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      *out = preft_xrealloc(*out, sizeof **out * (size_t)cap);
    }
    (*out)[(*n)++] = (preft_store_entry){.name = preft_xstrdup(line), .path = preft_xstrdup(tab + 1)};
  }
  free(text);
  return 0;
}

static bool writable(const char *s) { return !strpbrk(s, "\t\r\n"); }

int preft_store_write(const char *path, const preft_store_entry *entries, int n, preft_error *err) {
  size_t cap = 128, len = 0;
  for (int i = 0; i < n; i++) cap += strlen(entries[i].name) + strlen(entries[i].path) + 2;
  char *buf = preft_xmalloc(cap);
  len += (size_t)snprintf(buf, cap, "# adapters loaded at run time by preft serve: NAME<tab>DIRECTORY\n");
  for (int i = 0; i < n; i++) {
    if (!writable(entries[i].name) || !writable(entries[i].path)) {
      PREFT_WARN("%s: adapter '%s' is not kept: its name or path holds a tab or line break", path,
                 entries[i].name);
      continue;
    }
    len += (size_t)snprintf(buf + len, cap - len, "%s\t%s\n", entries[i].name, entries[i].path);
  }
  int rc = preft_write_atomic(path, buf, len, err);
  free(buf);
  return rc;
}

void preft_store_free(preft_store_entry *entries, int n) {
  for (int i = 0; i < n; i++) {
    free(entries[i].name);
    free(entries[i].path);
  }
  free(entries);
}
