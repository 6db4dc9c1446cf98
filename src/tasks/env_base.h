/* env_base.h - a clean Debian root file system made once with debootstrap
 * (`preft tasks base`), from the mirror and release the host's apt uses:
 * the base for environments whose agents must not see the host. */
#ifndef PREFT_TASKS_ENV_BASE_H
#define PREFT_TASKS_ENV_BASE_H

#include <stdbool.h>

#include "preft/base.h"

#define PREFT_ENV_BASE_PACKAGES "tmux,ca-certificates,procps"

typedef struct preft_env_base_opts {
  const char *mirror;   /* NULL: the host's Debian mirror (apt sources) */
  const char *suite;    /* NULL: the host's release (bookworm, ...) */
  const char *packages; /* extra packages, comma-separated; NULL: PREFT_ENV_BASE_PACKAGES (tmux: terminus) */
  const char *log_path; /* debootstrap's output appended here; NULL: discarded */
  double timeout_s;     /* 0: none */
} preft_env_base_opts;

/* Makes DIR/root (a minbase Debian plus the packages) unless it is there
 * already; DIR/base.json says mirror, suite and packages. Builds into
 * DIR/root.tmp and renames when debootstrap succeeded, under the lock file
 * DIR/base.lock. *root_out: DIR/root (heap); *existed: nothing was made. */
int preft_env_make_base(const char *dir, const preft_env_base_opts *o, char **root_out, bool *existed,
                        preft_error *err);

/* The debootstrap command line for a base (NULL-terminated, heap strings:
 * free with preft_env_base_argv_free). */
char **preft_env_base_argv(const char *target, const char *mirror, const char *suite, const char *packages);
void preft_env_base_argv_free(char **argv);

#endif
