/* dockerfile.h - the Dockerfile subset a task environment is built from.
 *
 * Parsed: comments, line continuations (the escape character, `\` unless a
 * `# escape=` directive at the top says otherwise), and the instructions
 * FROM, WORKDIR, ENV (`ENV A=1 B="x y"` and `ENV A some value`), ARG, COPY
 * and ADD of local files (flags --chown/--chmod accepted and ignored with a
 * note; --from, URLs and archives are errors), RUN in shell form (run by
 * /bin/sh -c) and exec form (a JSON array). CMD, ENTRYPOINT, EXPOSE, LABEL,
 * MAINTAINER, VOLUME, HEALTHCHECK and STOPSIGNAL are accepted and do
 * nothing (a trial runs commands, not an image's entry point), with a note;
 * USER only as root. Anything else is an error naming Dockerfile:LINE.
 *
 * Variables ($NAME, ${NAME}, ${NAME:-word}, ${NAME:+word}) are expanded in
 * WORKDIR, ENV, ARG, COPY/ADD and FROM from the ARG and ENV values seen so
 * far, as Docker does; RUN text is left to the shell. */
#ifndef PREFT_TASKS_DOCKERFILE_H
#define PREFT_TASKS_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "preft/base.h"

typedef enum {
  PREFT_DF_FROM,
  PREFT_DF_WORKDIR,
  PREFT_DF_ENV,
  PREFT_DF_ARG,
  PREFT_DF_COPY, /* COPY and ADD */
  PREFT_DF_RUN,
  PREFT_DF_IGNORED /* CMD, EXPOSE, ...: recorded with a note */
} preft_df_kind;

typedef struct preft_df_instr {
  preft_df_kind kind;
  int line;      /* 1-based line where the instruction starts */
  char *keyword; /* as written, upper-cased ("ADD", "CMD") */
  /* FROM: {image}; WORKDIR: {path}; ENV: {name, value, name, value ...};
   * ARG: {name, default or NULL}; COPY: {src..., dest}; RUN: the argv
   * (shell form: {"/bin/sh", "-c", text}); IGNORED: {the raw text}.
   * Values are unexpanded: preft_df_expand applies the variables. */
  char **args;
  int n_args;
  char *note; /* NULL, or what was ignored ("--chown ignored") */
} preft_df_instr;

typedef struct preft_dockerfile {
  preft_df_instr *v;
  int n;
} preft_dockerfile;

/* Parses text (len bytes, need not end in NUL); `name` goes in errors
 * ("environment/Dockerfile:12: ..."). */
int preft_dockerfile_parse(const char *text, size_t len, const char *name, preft_dockerfile *out,
                           preft_error *err);
int preft_dockerfile_load(const char *path, preft_dockerfile *out, preft_error *err);
void preft_dockerfile_free(preft_dockerfile *df);

/* A set of NAME=VALUE variables for expansion (ARG and ENV seen so far). */
typedef struct preft_df_vars {
  char **names, **values;
  int n;
} preft_df_vars;

void preft_df_vars_set(preft_df_vars *v, const char *name, const char *value);
const char *preft_df_vars_get(const preft_df_vars *v, const char *name);
void preft_df_vars_free(preft_df_vars *v);
/* Expands variables in s (heap); NULL with an error on a malformed ${...}. */
char *preft_df_expand(const char *s, const preft_df_vars *v, preft_error *err);

#endif
