/* apt_sources.c - reads apt's source lists (see apt_sources.h). */
#include "tasks/apt_sources.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/file.h"

#define MAX_FIELD 4096 /* a longer line or field is refused rather than truncated */

void preft_apt_sources_free(preft_apt_sources *s) {
  for (int i = 0; i < s->n; i++) {
    preft_apt_source *e = &s->v[i];
    free(e->uri);
    free(e->suite);
    for (int k = 0; k < e->n_components; k++) free(e->components[k]);
    free(e->components);
    free(e->file);
  }
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

static void add_source(preft_apt_sources *s, bool deb_src, const char *uri, size_t uri_len, const char *suite,
                       size_t suite_len, char **components, int n_components, const char *file, int line) {
  s->v = preft_xrealloc(s->v, sizeof *s->v * (size_t)(s->n + 1));
  preft_apt_source *e = &s->v[s->n++];
  memset(e, 0, sizeof *e);
  e->deb_src = deb_src;
  e->uri = preft_xmalloc(uri_len + 1);
  memcpy(e->uri, uri, uri_len);
  e->uri[uri_len] = 0;
  e->suite = preft_xmalloc(suite_len + 1);
  memcpy(e->suite, suite, suite_len);
  e->suite[suite_len] = 0;
  e->components = preft_xcalloc((size_t)n_components + 1, sizeof *e->components);
  for (int i = 0; i < n_components; i++) e->components[i] = preft_xstrdup(components[i]);
  e->n_components = n_components;
  e->file = preft_xstrdup(file);
  e->line = line;
}

/* Splits s (NUL-terminated, modified) on whitespace; at most cap words. */
static int words(char *s, char **w, int cap) {
  int n = 0;
  for (char *p = s; *p;) {
    while (*p && isspace((unsigned char)*p)) p++;
    if (!*p) break;
    if (n == cap) return -1;
    w[n++] = p;
    while (*p && !isspace((unsigned char)*p)) p++;
    if (*p) *p++ = 0;
  }
  return n;
}

/* The next line of text into line (NUL-terminated); false at the end, -1
 * in *too_long when the line does not fit. */
static bool next_line(const char *text, size_t len, size_t *pos, char *line, size_t cap, bool *too_long) {
  *too_long = false;
  if (*pos >= len) return false;
  const char *start = text + *pos;
  const char *nl = memchr(start, '\n', len - *pos);
  size_t n = nl ? (size_t)(nl - start) : len - *pos;
  *pos += n + (nl ? 1 : 0);
  if (n >= cap) {
    *too_long = true;
    n = 0;
  }
  memcpy(line, start, n);
  line[n] = 0;
  if (memchr(line, 0, n)) *too_long = true; /* a NUL inside: not a text line */
  if (n > 0 && line[n - 1] == '\r') line[n - 1] = 0;
  return true;
}

int preft_apt_sources_parse_list(const char *text, size_t len, const char *name, preft_apt_sources *out,
                                 preft_error *err) {
  char line[MAX_FIELD];
  size_t pos = 0;
  int lineno = 0;
  bool too_long;
  while (next_line(text, len, &pos, line, sizeof line, &too_long)) {
    lineno++;
    if (too_long) return preft_fail(err, "%s:%d: line too long or not text", name, lineno);
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    /* options in brackets: [ arch=amd64 signed-by=/x ] or [arch=amd64] */
    char *open = strchr(line, '['), *rest = line;
    char *w[64];
    int n = words(rest, w, 64);
    if (n < 0) return preft_fail(err, "%s:%d: too many words", name, lineno);
    if (n == 0) continue;
    bool deb_src;
    if (strcmp(w[0], "deb") == 0)
      deb_src = false;
    else if (strcmp(w[0], "deb-src") == 0)
      deb_src = true;
    else
      return preft_fail(err, "%s:%d: expected deb or deb-src, found '%s'", name, lineno, w[0]);
    int i = 1;
    if (open && i < n && w[i][0] == '[') {
      /* skip words up to the one that ends with ']' */
      while (i < n && !strchr(w[i], ']')) i++;
      if (i == n) return preft_fail(err, "%s:%d: unclosed [ options", name, lineno);
      i++;
    }
    if (n - i < 2) return preft_fail(err, "%s:%d: expected URI and suite after %s", name, lineno, w[0]);
    const char *uri = w[i], *suite = w[i + 1];
    if (!strstr(uri, ":/") && strncmp(uri, "cdrom:", 6) != 0)
      return preft_fail(err, "%s:%d: '%s' is not a URI", name, lineno, uri);
    bool exact = suite[strlen(suite) - 1] == '/'; /* an exact path takes no components */
    if (!exact && n - i < 3)
      return preft_fail(err, "%s:%d: suite %s needs a component (main)", name, lineno, suite);
    add_source(out, deb_src, uri, strlen(uri), suite, strlen(suite), w + i + 2, n - i - 2, name, lineno);
  }
  return 0;
}

typedef struct {
  char types[MAX_FIELD], uris[MAX_FIELD], suites[MAX_FIELD], components[MAX_FIELD], enabled[64];
  int line; /* where the paragraph starts */
  bool any;
} paragraph;

static int flush_paragraph(paragraph *p, const char *name, preft_apt_sources *out, preft_error *err) {
  if (!p->any) return 0;
  p->any = false;
  if (p->enabled[0] && strcasecmp(p->enabled, "no") == 0) return 0;
  char *t[16], *u[32], *s[32], *c[64];
  int nt = words(p->types, t, 16), nu = words(p->uris, u, 32), ns = words(p->suites, s, 32);
  int nc = words(p->components, c, 64);
  if (nt < 0 || nu < 0 || ns < 0 || nc < 0)
    return preft_fail(err, "%s:%d: too many values in a field", name, p->line);
  if (nt == 0 || nu == 0 || ns == 0)
    return preft_fail(err, "%s:%d: a source needs Types, URIs and Suites", name, p->line);
  for (int i = 0; i < nt; i++)
    if (strcmp(t[i], "deb") != 0 && strcmp(t[i], "deb-src") != 0)
      return preft_fail(err, "%s:%d: Types: expected deb or deb-src, found '%s'", name, p->line, t[i]);
  for (int k = 0; k < ns; k++) {
    bool exact = s[k][strlen(s[k]) - 1] == '/';
    if (exact && nc > 0)
      return preft_fail(err, "%s:%d: suite %s is an exact path and takes no Components", name, p->line, s[k]);
    if (!exact && nc == 0)
      return preft_fail(err, "%s:%d: suite %s needs Components (main)", name, p->line, s[k]);
  }
  for (int i = 0; i < nt; i++)
    for (int j = 0; j < nu; j++)
      for (int k = 0; k < ns; k++)
        add_source(out, strcmp(t[i], "deb-src") == 0, u[j], strlen(u[j]), s[k], strlen(s[k]), c, nc, name,
                   p->line);
  return 0;
}

int preft_apt_sources_parse_deb822(const char *text, size_t len, const char *name, preft_apt_sources *out,
                                   preft_error *err) {
  char line[MAX_FIELD];
  size_t pos = 0;
  int lineno = 0;
  bool too_long;
  paragraph *p = preft_xcalloc(1, sizeof *p);
  char *field = NULL; /* the field a continuation line extends (NULL: one we skip) */
  size_t field_cap = 0;
  bool in_field = false;
  int rc = 0;
  while (rc == 0 && next_line(text, len, &pos, line, sizeof line, &too_long)) {
    lineno++;
    if (too_long) {
      rc = preft_fail(err, "%s:%d: line too long or not text", name, lineno);
      break;
    }
    if (line[0] == '#') continue;
    size_t n = strlen(line);
    bool blank = true;
    for (size_t i = 0; i < n; i++) blank &= isspace((unsigned char)line[i]) != 0;
    if (blank) {
      rc = flush_paragraph(p, name, out, err);
      in_field = false;
      continue;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      if (!in_field) {
        rc = preft_fail(err, "%s:%d: a continuation line outside a field", name, lineno);
        break;
      }
      if (field) {
        size_t have = strlen(field);
        if (have + n + 2 > field_cap) {
          rc = preft_fail(err, "%s:%d: field too long", name, lineno);
          break;
        }
        field[have] = ' ';
        memcpy(field + have + 1, line, n + 1);
      }
      continue;
    }
    char *colon = strchr(line, ':');
    if (!colon || colon == line) {
      rc = preft_fail(err, "%s:%d: expected 'Field: value', found '%.60s'", name, lineno, line);
      break;
    }
    *colon = 0;
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t') value++;
    if (!p->any) {
      memset(p, 0, sizeof *p);
      p->line = lineno;
      p->any = true;
    }
    field = NULL;
    if (strcasecmp(line, "Types") == 0)
      field = p->types;
    else if (strcasecmp(line, "URIs") == 0)
      field = p->uris;
    else if (strcasecmp(line, "Suites") == 0)
      field = p->suites;
    else if (strcasecmp(line, "Components") == 0)
      field = p->components;
    else if (strcasecmp(line, "Enabled") == 0)
      field = p->enabled;
    in_field = true;
    if (field) {
      field_cap = field == p->enabled ? sizeof p->enabled : MAX_FIELD;
      if (strlen(value) >= field_cap) {
        rc = preft_fail(err, "%s:%d: field %s too long", name, lineno, line);
        break;
      }
      memcpy(field, value, strlen(value) + 1);
    }
  }
  if (rc == 0) rc = flush_paragraph(p, name, out, err);
  free(p);
  return rc;
}

static int load_file(const char *path, bool deb822, preft_apt_sources *out, preft_error *err) {
  char *text = NULL;
  size_t size = 0;
  if (preft_read_file(path, &text, &size, err) != 0) return -1;
  int rc = deb822 ? preft_apt_sources_parse_deb822(text, size, path, out, err)
                  : preft_apt_sources_parse_list(text, size, path, out, err);
  free(text);
  return rc;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

int preft_apt_sources_load(const char *root, preft_apt_sources *out, preft_error *err) {
  memset(out, 0, sizeof *out);
  char path[4096];
  snprintf(path, sizeof path, "%s/etc/apt/sources.list", strcmp(root, "/") == 0 ? "" : root);
  if (preft_file_exists(path) && load_file(path, false, out, err) != 0) goto fail;
  snprintf(path, sizeof path, "%s/etc/apt/sources.list.d", strcmp(root, "/") == 0 ? "" : root);
  DIR *d = opendir(path);
  if (d) {
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      /* apt reads only these names (letters, digits, _ - .) with these endings */
      if (!ends_with(e->d_name, ".list") && !ends_with(e->d_name, ".sources")) continue;
      bool ok = true;
      for (const char *c = e->d_name; *c; c++) ok &= isalnum((unsigned char)*c) || strchr("_-.", *c) != NULL;
      if (!ok) continue;
      names = preft_xrealloc(names, sizeof *names * (size_t)(n + 1));
      names[n++] = preft_xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    int rc = 0;
    for (int i = 0; i < n; i++) {
      if (rc == 0) {
        char file[4096 + 256];
        snprintf(file, sizeof file, "%s/%s", path, names[i]);
        rc = load_file(file, ends_with(names[i], ".sources"), out, err);
      }
      free(names[i]);
    }
    free(names);
    if (rc != 0) goto fail;
  }
  return 0;
fail:
  preft_apt_sources_free(out);
  return -1;
}

int preft_apt_sources_debian_mirror(const preft_apt_sources *s, char **uri, char **suite, preft_error *err) {
  for (int i = 0; i < s->n; i++) {
    const preft_apt_source *e = &s->v[i];
    if (e->deb_src) continue;
    if (strchr(e->suite, '-') || strchr(e->suite, '/')) continue; /* -updates, -security, ./ */
    size_t n = strlen(e->uri);
    while (n > 0 && e->uri[n - 1] == '/') n--;
    if (n < 7 || strncmp(e->uri + n - 7, "/debian", 7) != 0) continue;
    bool main_ = false;
    for (int k = 0; k < e->n_components; k++) main_ |= strcmp(e->components[k], "main") == 0;
    if (!main_) continue;
    *uri = preft_xmalloc(n + 1);
    memcpy(*uri, e->uri, n);
    (*uri)[n] = 0;
    *suite = preft_xstrdup(e->suite);
    return 0;
  }
  return preft_fail(
      err,
      "no Debian release source (URI ending in /debian, suite such as bookworm, component main) "
      "in the host's apt sources");
}
