/* dockerfile.c - parses the Dockerfile subset of a task environment (see
 * dockerfile.h): logical lines, instructions, JSON forms, heredocs for RUN,
 * and Docker's word processing (quotes, escapes, variables). */
#include "tasks/dockerfile.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/file.h"

/* ---- a growable string ------------------------------------------------------------ */

typedef struct {
  char *s;
  size_t n, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->s = preft_xrealloc(b->s, b->cap);
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}

static void buf_addc(buf *b, char c) { buf_add(b, &c, 1); }

static char *buf_take(buf *b) {
  if (!b->s) return preft_xstrdup("");
  return b->s;
}

/* ---- variables and word processing ------------------------------------------------ */

void preft_df_vars_set(preft_df_vars *v, const char *name, const char *value) {
  for (int i = 0; i < v->n; i++)
    if (strcmp(v->names[i], name) == 0) {
      free(v->values[i]);
      v->values[i] = preft_xstrdup(value ? value : "");
      return;
    }
  v->names = preft_xrealloc(v->names, sizeof *v->names * (size_t)(v->n + 1));
  v->values = preft_xrealloc(v->values, sizeof *v->values * (size_t)(v->n + 1));
  v->names[v->n] = preft_xstrdup(name);
  v->values[v->n] = preft_xstrdup(value ? value : "");
  v->n++;
}

const char *preft_df_vars_get(const preft_df_vars *v, const char *name) {
  for (int i = v->n - 1; i >= 0; i--)
    if (strcmp(v->names[i], name) == 0) return v->values[i];
  return NULL;
}

void preft_df_vars_free(preft_df_vars *v) {
  for (int i = 0; i < v->n; i++) {
    free(v->names[i]);
    free(v->values[i]);
  }
  free(v->names);
  free(v->values);
  memset(v, 0, sizeof *v);
}

static bool name_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

static int expand_into(buf *out, const char *s, const preft_df_vars *v, int depth, preft_error *err);

/* s points at '$'; appends the expansion and returns the characters used
 * (or -1 on a malformed ${...}). */
static int expand_dollar(buf *out, const char *s, const preft_df_vars *v, int depth, preft_error *err) {
  if (name_start(s[1])) {
    int n = 1;
    while (name_char(s[n])) n++;
    char name[256];
    snprintf(name, sizeof name, "%.*s", n - 1 > 255 ? 255 : n - 1, s + 1);
    const char *val = preft_df_vars_get(v, name);
    if (val) buf_add(out, val, strlen(val));
    return n;
  }
  if (s[1] != '{') {
    buf_addc(out, '$');
    return 1;
  }
  const char *p = s + 2;
  if (!name_start(*p)) return preft_fail(err, "bad variable reference %.20s", s);
  const char *name_end = p;
  while (name_char(*name_end)) name_end++;
  char name[256];
  snprintf(name, sizeof name, "%.*s", (int)(name_end - p > 255 ? 255 : name_end - p), p);
  const char *val = preft_df_vars_get(v, name);
  if (*name_end == '}') {
    if (val) buf_add(out, val, strlen(val));
    return (int)(name_end + 1 - s);
  }
  char op = 0;
  if (name_end[0] == ':' && (name_end[1] == '-' || name_end[1] == '+')) op = name_end[1];
  if (!op) return preft_fail(err, "unsupported variable form %.30s (use ${NAME}, ${NAME:-x}, ${NAME:+x})", s);
  /* the word runs to the matching brace */
  const char *w = name_end + 2, *e = w;
  int nest = 1;
  for (; *e; e++) {
    if (*e == '{') nest++;
    if (*e == '}' && --nest == 0) break;
  }
  if (!*e) return preft_fail(err, "unterminated ${ in %.30s", s);
  char *word = preft_xmalloc((size_t)(e - w) + 1);
  memcpy(word, w, (size_t)(e - w));
  word[e - w] = 0;
  bool set = val && *val;
  int rc = 0;
  if (op == '-') {
    if (set)
      buf_add(out, val, strlen(val));
    else
      rc = expand_into(out, word, v, depth + 1, err);
  } else if (set) {
    rc = expand_into(out, word, v, depth + 1, err);
  }
  free(word);
  return rc < 0 ? -1 : (int)(e + 1 - s);
}

static int expand_into(buf *out, const char *s, const preft_df_vars *v, int depth, preft_error *err) {
  if (depth > 16) return preft_fail(err, "variables nested too deeply");
  char quote = 0;
  for (const char *p = s; *p;) {
    if (quote == '\'') {
      if (*p == '\'')
        quote = 0;
      else
        buf_addc(out, *p);
      p++;
    } else if (*p == '\\' && p[1]) {
      /* Outside quotes the escape keeps any character; inside double
       * quotes only $, ", \ are escaped (others keep the backslash). */
      if (quote == '"' && !strchr("$\"\\", p[1])) buf_addc(out, '\\');
      buf_addc(out, p[1]);
      p += 2;
    } else if (*p == '$') {
      int n = expand_dollar(out, p, v, depth, err);
      if (n < 0) return -1;
      p += n;
    } else if (*p == '"' || (*p == '\'' && !quote)) {
      if (quote == *p)
        quote = 0;
      else if (!quote)
        quote = *p;
      else
        buf_addc(out, *p);
      p++;
    } else {
      buf_addc(out, *p++);
    }
  }
  if (quote) return preft_fail(err, "unterminated %c quote in %.40s", quote, s);
  return 0;
}

char *preft_df_expand(const char *s, const preft_df_vars *v, preft_error *err) {
  buf out = {0};
  if (expand_into(&out, s, v, 0, err) != 0) {
    free(out.s);
    return NULL;
  }
  return buf_take(&out);
}

/* ---- splitting ------------------------------------------------------------------ */

/* Splits on unquoted whitespace, keeping quotes and escapes in the words
 * (preft_df_expand removes them). Returns -1 on an unterminated quote. */
static int split_words(const char *s, char ***words, int *n) {
  *words = NULL;
  *n = 0;
  const char *p = s;
  for (;;) {
    while (*p == ' ' || *p == '\t') p++;
    if (!*p) return 0;
    const char *start = p;
    char quote = 0;
    for (; *p; p++) {
      if (quote) {
        if (*p == '\\' && quote == '"' && p[1]) {
          p++;
          continue;
        }
        if (*p == quote) quote = 0;
        continue;
      }
      if (*p == '\\' && p[1]) {
        p++;
        continue;
      }
      if (*p == '"' || *p == '\'') {
        quote = *p;
        continue;
      }
      if (*p == ' ' || *p == '\t') break;
    }
    if (quote) {
      for (int i = 0; i < *n; i++) free((*words)[i]);
      free(*words);
      *words = NULL;
      *n = 0;
      return -1;
    }
    *words = preft_xrealloc(*words, sizeof **words * (size_t)(*n + 1));
    char *w = preft_xmalloc((size_t)(p - start) + 1);
    memcpy(w, start, (size_t)(p - start));
    w[p - start] = 0;
    (*words)[(*n)++] = w;
  }
}

static void free_words(char **w, int n) {
  for (int i = 0; i < n; i++) free(w[i]);
  free(w);
}

/* A JSON array of strings ("exec form"); NULL when text is not one. */
static char **json_strings(const char *text, int *n) {
  cJSON *j = cJSON_Parse(text);
  if (!j || !cJSON_IsArray(j) || cJSON_GetArraySize(j) == 0) {
    cJSON_Delete(j);
    return NULL;
  }
  int count = cJSON_GetArraySize(j);
  char **v = preft_xcalloc((size_t)count + 1, sizeof *v);
  int i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, j) {
    if (!cJSON_IsString(e)) {
      free_words(v, i);
      cJSON_Delete(j);
      return NULL;
    }
    v[i++] = preft_xstrdup(e->valuestring);
  }
  cJSON_Delete(j);
  *n = count;
  return v;
}

/* ---- logical lines ---------------------------------------------------------------- */

typedef struct {
  const char *text;
  size_t len, pos;
  int line; /* line number of the next physical line */
} reader;

/* The next physical line, without its newline, into s and n; false at the end. */
static bool next_line(reader *r, const char **s, size_t *n) {
  if (r->pos >= r->len) return false;
  const char *start = r->text + r->pos;
  const char *nl = memchr(start, '\n', r->len - r->pos);
  size_t k = nl ? (size_t)(nl - start) : r->len - r->pos;
  r->pos += k + (nl ? 1 : 0);
  r->line++;
  *s = start;
  *n = k;
  if (k > 0 && start[k - 1] == '\r') *n = k - 1;
  return true;
}

static bool blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t') return false;
  return true;
}

static bool comment(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  return i < n && s[i] == '#';
}

/* ---- instructions ------------------------------------------------------------------ */

static void add_arg(preft_df_instr *in, const char *s) {
  in->args = preft_xrealloc(in->args, sizeof *in->args * (size_t)(in->n_args + 2));
  in->args[in->n_args++] = s ? preft_xstrdup(s) : NULL;
  in->args[in->n_args] = NULL;
}

static void add_note(preft_df_instr *in, const char *note) {
  if (!in->note) {
    in->note = preft_xstrdup(note);
    return;
  }
  size_t n = strlen(in->note) + strlen(note) + 3;
  char *s = preft_xmalloc(n);
  snprintf(s, n, "%s; %s", in->note, note);
  free(in->note);
  in->note = s;
}

static void instr_free(preft_df_instr *in) {
  for (int i = 0; i < in->n_args; i++) free(in->args[i]);
  free(in->args);
  free(in->keyword);
  free(in->note);
}

void preft_dockerfile_free(preft_dockerfile *df) {
  for (int i = 0; i < df->n; i++) instr_free(&df->v[i]);
  free(df->v);
  df->v = NULL;
  df->n = 0;
}

typedef struct {
  const char *name;
  int line;
  preft_error *err;
  char **shell; /* SHELL's argv (NULL: /bin/sh -c) */
  int n_shell;
} parse_ctx;

#define FAIL(c, ...) fail_at(c, __VA_ARGS__)
static int fail_at(parse_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_at(parse_ctx *c, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return preft_fail(c->err, "%s:%d: %s", c->name, c->line, msg);
}

/* Leading --flag=value words of COPY/ADD/RUN/FROM: returns the rest. */
static const char *take_flags(parse_ctx *c, preft_df_instr *in, const char *rest, int *rc) {
  *rc = 0;
  while (rest[0] == '-' && rest[1] == '-') {
    const char *end = rest;
    while (*end && *end != ' ' && *end != '\t') end++;
    char flag[128];
    snprintf(flag, sizeof flag, "%.*s", (int)(end - rest > 127 ? 127 : end - rest), rest);
    char *eq = strchr(flag, '=');
    char key[128];
    snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - flag) : (int)strlen(flag), flag);
    bool copy = in->kind == PREFT_DF_COPY, from = in->kind == PREFT_DF_FROM;
    if (copy && (strcmp(key, "--chown") == 0 || strcmp(key, "--chmod") == 0 || strcmp(key, "--link") == 0)) {
      char note[256];
      snprintf(note, sizeof note, "%s ignored (files are copied as root, keeping their modes)", key);
      add_note(in, note);
    } else if (from && strcmp(key, "--platform") == 0) {
      add_note(in, "--platform ignored");
    } else if (copy && strcmp(key, "--from") == 0) {
      *rc = FAIL(c, "%s --from (multi-stage builds) is not supported", in->keyword);
      return rest;
    } else {
      *rc = FAIL(c, "%s: unsupported flag %s", in->keyword, flag);
      return rest;
    }
    rest = end;
    while (*rest == ' ' || *rest == '\t') rest++;
  }
  return rest;
}

static bool is_archive(const char *s) {
  const char *exts[] = {".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst"};
  size_t n = strlen(s);
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
    size_t k = strlen(exts[i]);
    if (n >= k && strcasecmp(s + n - k, exts[i]) == 0) return true;
  }
  return false;
}

static int parse_copy(parse_ctx *c, preft_df_instr *in, const char *rest) {
  int rc;
  rest = take_flags(c, in, rest, &rc);
  if (rc) return rc;
  if (strncmp(rest, "<<", 2) == 0) return FAIL(c, "%s with a heredoc is not supported", in->keyword);
  int n = 0;
  char **words = rest[0] == '[' ? json_strings(rest, &n) : NULL;
  if (!words && split_words(rest, &words, &n) != 0) return FAIL(c, "%s: unterminated quote", in->keyword);
  if (n < 2) {
    free_words(words, n);
    return FAIL(c, "%s needs at least a source and a destination", in->keyword);
  }
  bool add = strcmp(in->keyword, "ADD") == 0;
  for (int i = 0; i < n; i++) {
    if (i < n - 1 && (strstr(words[i], "://") || strncmp(words[i], "git@", 4) == 0)) {
      rc = FAIL(c, "%s of a URL (%s) is not supported: only files of the environment folder", in->keyword,
                words[i]);
      break;
    }
    if (add && i < n - 1 && is_archive(words[i])) {
      rc = FAIL(c, "ADD of an archive (%s) is not supported: COPY it and unpack it with RUN tar", words[i]);
      break;
    }
    add_arg(in, words[i]);
  }
  free_words(words, n);
  return rc;
}

/* RUN <<WORD heredocs: the body lines follow the instruction up to WORD. */
static int read_heredoc(parse_ctx *c, reader *r, const char *text, buf *body, bool *found) {
  *found = false;
  const char *h = strstr(text, "<<");
  if (!h) return 0;
  const char *p = h + 2;
  bool strip_tabs = false;
  if (*p == '-') {
    strip_tabs = true;
    p++;
  }
  char q = 0;
  if (*p == '\'' || *p == '"') q = *p++;
  if (!name_start(*p)) return 0; /* `<<` of something else (an arithmetic shift, say) */
  const char *w = p;
  while (name_char(*p)) p++;
  if (q && *p != q) return 0;
  char word[128];
  snprintf(word, sizeof word, "%.*s", (int)(p - w > 127 ? 127 : p - w), w);
  const char *s;
  size_t n;
  while (next_line(r, &s, &n)) {
    size_t off = 0;
    if (strip_tabs)
      while (off < n && s[off] == '\t') off++;
    if (n - off == strlen(word) && memcmp(s + off, word, n - off) == 0) {
      *found = true;
      return 0;
    }
    buf_add(body, s + off, n - off);
    buf_addc(body, '\n');
  }
  return FAIL(c, "heredoc <<%s is not closed by a line %s", word, word);
}

static int parse_run(parse_ctx *c, reader *r, preft_df_instr *in, const char *rest) {
  int rc;
  rest = take_flags(c, in, rest, &rc);
  if (rc) return rc;
  if (!*rest) return FAIL(c, "RUN needs a command");
  int n = 0;
  char **argv = rest[0] == '[' ? json_strings(rest, &n) : NULL;
  if (argv) {
    for (int i = 0; i < n; i++) add_arg(in, argv[i]);
    free_words(argv, n);
    return 0;
  }
  buf script = {0}, body = {0};
  bool heredoc;
  rc = read_heredoc(c, r, rest, &body, &heredoc);
  if (rc == 0) {
    if (heredoc && strncmp(rest, "<<", 2) == 0) {
      /* `RUN <<EOF` alone: the body is the script */
      buf_add(&script, body.s ? body.s : "", body.n);
    } else {
      buf_add(&script, rest, strlen(rest));
      if (heredoc) {
        /* the shell reads the heredoc itself: hand it the lines as written */
        buf_addc(&script, '\n');
        buf_add(&script, body.s ? body.s : "", body.n);
        const char *w = strstr(rest, "<<") + 2;
        while (*w == '-' || *w == '\'' || *w == '"') w++;
        const char *e = w;
        while (name_char(*e)) e++;
        buf_add(&script, w, (size_t)(e - w));
      }
    }
    if (c->shell)
      for (int i = 0; i < c->n_shell; i++) add_arg(in, c->shell[i]);
    else {
      add_arg(in, "/bin/sh");
      add_arg(in, "-c");
    }
    add_arg(in, script.s ? script.s : "");
  }
  free(script.s);
  free(body.s);
  return rc;
}

static int parse_env(parse_ctx *c, preft_df_instr *in, const char *rest) {
  if (!*rest) return FAIL(c, "ENV needs NAME=VALUE");
  const char *sp = rest;
  while (*sp && *sp != ' ' && *sp != '\t' && *sp != '=') sp++;
  if (*sp != '=') {
    /* ENV NAME value with spaces */
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(sp - rest > 255 ? 255 : sp - rest), rest);
    while (*sp == ' ' || *sp == '\t') sp++;
    if (!*sp) return FAIL(c, "ENV %s has no value (write ENV %s=VALUE)", name, name);
    if (!name_start(name[0])) return FAIL(c, "ENV: bad variable name %s", name);
    add_arg(in, name);
    add_arg(in, sp);
    return 0;
  }
  char **words;
  int n;
  if (split_words(rest, &words, &n) != 0) return FAIL(c, "ENV: unterminated quote");
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    char *eq = strchr(words[i], '=');
    if (!eq || eq == words[i]) {
      rc = FAIL(c, "ENV: %s is not NAME=VALUE", words[i]);
      break;
    }
    *eq = 0;
    for (const char *p = words[i]; *p; p++)
      if (!name_char(*p) || (p == words[i] && !name_start(*p)))
        rc = FAIL(c, "ENV: bad variable name %s", words[i]);
    add_arg(in, words[i]);
    add_arg(in, eq + 1);
  }
  free_words(words, n);
  return rc;
}

static int parse_arg(parse_ctx *c, preft_df_instr *in, const char *rest) {
  char **words;
  int n;
  if (split_words(rest, &words, &n) != 0) return FAIL(c, "ARG: unterminated quote");
  if (n == 0) {
    free(words);
    return FAIL(c, "ARG needs a name");
  }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char *eq = strchr(words[i], '=');
    if (eq) *eq = 0;
    if (!name_start(words[i][0])) {
      rc = FAIL(c, "ARG: bad name %s", words[i]);
      break;
    }
    add_arg(in, words[i]);
    add_arg(in, eq ? eq + 1 : NULL);
  }
  free_words(words, n);
  return rc;
}

static int parse_instruction(parse_ctx *c, reader *r, const char *line, preft_dockerfile *df) {
  while (*line == ' ' || *line == '\t') line++;
  const char *kw_end = line;
  while (*kw_end && *kw_end != ' ' && *kw_end != '\t') kw_end++;
  char kw[32];
  if (kw_end - line >= (long)sizeof kw) return FAIL(c, "unknown instruction %.40s", line);
  for (long i = 0; i < kw_end - line; i++) kw[i] = (char)toupper((unsigned char)line[i]);
  kw[kw_end - line] = 0;
  const char *rest = kw_end;
  while (*rest == ' ' || *rest == '\t') rest++;
  /* trailing whitespace off */
  char *rest_copy = preft_xstrdup(rest);
  size_t rl = strlen(rest_copy);
  while (rl > 0 && (rest_copy[rl - 1] == ' ' || rest_copy[rl - 1] == '\t')) rest_copy[--rl] = 0;

  preft_df_instr in = {0};
  in.line = c->line;
  in.keyword = preft_xstrdup(kw);
  int rc = 0;
  static const char *const ignored[] = {"CMD",        "ENTRYPOINT", "EXPOSE",      "LABEL",
                                        "MAINTAINER", "VOLUME",     "HEALTHCHECK", "STOPSIGNAL"};
  bool is_ignored = false;
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) is_ignored |= strcmp(kw, ignored[i]) == 0;
  if (strcmp(kw, "FROM") == 0) {
    in.kind = PREFT_DF_FROM;
    const char *r2 = take_flags(c, &in, rest_copy, &rc);
    if (rc == 0) {
      char **words;
      int n;
      if (split_words(r2, &words, &n) != 0 || n == 0)
        rc = FAIL(c, "FROM needs an image name");
      else if (!(n == 1 || (n == 3 && strcasecmp(words[1], "AS") == 0)))
        rc = FAIL(c, "FROM: expected IMAGE [AS NAME], got %s", r2);
      else
        add_arg(&in, words[0]);
      if (n) free_words(words, n);
    }
  } else if (strcmp(kw, "WORKDIR") == 0) {
    in.kind = PREFT_DF_WORKDIR;
    if (!*rest_copy)
      rc = FAIL(c, "WORKDIR needs a path");
    else
      add_arg(&in, rest_copy);
  } else if (strcmp(kw, "ENV") == 0) {
    in.kind = PREFT_DF_ENV;
    rc = parse_env(c, &in, rest_copy);
  } else if (strcmp(kw, "ARG") == 0) {
    in.kind = PREFT_DF_ARG;
    rc = parse_arg(c, &in, rest_copy);
  } else if (strcmp(kw, "COPY") == 0 || strcmp(kw, "ADD") == 0) {
    in.kind = PREFT_DF_COPY;
    rc = parse_copy(c, &in, rest_copy);
  } else if (strcmp(kw, "RUN") == 0) {
    in.kind = PREFT_DF_RUN;
    rc = parse_run(c, r, &in, rest_copy);
  } else if (strcmp(kw, "SHELL") == 0) {
    int n = 0;
    char **sh = json_strings(rest_copy, &n);
    if (!sh) {
      rc = FAIL(c, "SHELL needs a JSON array such as [\"/bin/bash\", \"-c\"]");
    } else {
      free_words(c->shell, c->n_shell);
      c->shell = sh;
      c->n_shell = n;
      in.kind = PREFT_DF_IGNORED;
      add_arg(&in, rest_copy);
      add_note(&in, "SHELL applies to the RUN lines after it");
    }
  } else if (strcmp(kw, "USER") == 0) {
    in.kind = PREFT_DF_IGNORED;
    if (strcmp(rest_copy, "root") && strcmp(rest_copy, "0") && strcmp(rest_copy, "root:root") &&
        strcmp(rest_copy, "0:0"))
      rc = FAIL(c, "USER %s is not supported: commands run as root", rest_copy);
    else
      add_arg(&in, rest_copy);
  } else if (is_ignored) {
    in.kind = PREFT_DF_IGNORED;
    add_arg(&in, rest_copy);
    add_note(&in, "ignored: a trial runs commands, not the image's entry point or metadata");
  } else {
    rc = FAIL(c, "unknown instruction %s", kw);
  }
  free(rest_copy);
  if (rc != 0) {
    instr_free(&in);
    return rc;
  }
  df->v = preft_xrealloc(df->v, sizeof *df->v * (size_t)(df->n + 1));
  df->v[df->n++] = in;
  return 0;
}

int preft_dockerfile_parse(const char *text, size_t len, const char *name, preft_dockerfile *out,
                           preft_error *err) {
  memset(out, 0, sizeof *out);
  reader r = {text, len, 0, 0};
  parse_ctx c = {name, 0, err, NULL, 0};
  char esc = '\\';
  bool directives = true, any_from = false;
  const char *s;
  size_t n;
  int rc = 0;
  while (rc == 0 && next_line(&r, &s, &n)) {
    if (memchr(s, 0, n)) {
      c.line = r.line;
      rc = FAIL(&c, "NUL byte in the file");
      break;
    }
    if (directives && comment(s, n)) {
      /* parser directives: `# escape=X`, `# syntax=...`, `# check=...` */
      char d[64];
      snprintf(d, sizeof d, "%.*s", (int)(n > 63 ? 63 : n), s);
      char *p = d + 1;
      while (*p == ' ') p++;
      if (strncasecmp(p, "escape=", 7) == 0) {
        char e = p[7];
        if (e != '\\' && e != '`') {
          c.line = r.line;
          rc = FAIL(&c, "escape must be \\ or `");
        }
        esc = e;
        continue;
      }
      if (strncasecmp(p, "syntax=", 7) == 0 || strncasecmp(p, "check=", 6) == 0) continue;
      directives = false;
      continue;
    }
    directives = false;
    if (blank(s, n) || comment(s, n)) continue;
    c.line = r.line;
    buf logical = {0};
    for (;;) {
      size_t k = n;
      while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t')) k--;
      bool cont = k > 0 && s[k - 1] == esc;
      buf_add(&logical, s, cont ? k - 1 : n);
      if (!cont) break;
      /* the next line that is not a comment or blank continues this one */
      bool more = false;
      while (next_line(&r, &s, &n)) {
        if (memchr(s, 0, n)) break;
        if (comment(s, n) || blank(s, n)) continue;
        more = true;
        break;
      }
      if (!more) break;
    }
    rc = parse_instruction(&c, &r, logical.s ? logical.s : "", out);
    free(logical.s);
    if (rc == 0) {
      preft_df_instr *in = &out->v[out->n - 1];
      if (in->kind == PREFT_DF_FROM) {
        if (any_from) rc = FAIL(&c, "a second FROM: multi-stage builds are not supported");
        any_from = true;
      } else if (in->kind != PREFT_DF_ARG && !any_from) {
        rc = FAIL(&c, "%s before FROM", in->keyword);
      }
    }
  }
  free_words(c.shell, c.n_shell);
  if (rc == 0 && !any_from) {
    c.line = r.line > 0 ? r.line : 1;
    rc = FAIL(&c, "no FROM instruction");
  }
  if (rc != 0) preft_dockerfile_free(out);
  return rc;
}

int preft_dockerfile_load(const char *path, preft_dockerfile *out, preft_error *err) {
  char *text = NULL;
  size_t size = 0;
  if (preft_read_file(path, &text, &size, err) != 0) return -1;
  int rc = preft_dockerfile_parse(text, size, path, out, err);
  free(text);
  return rc;
}
