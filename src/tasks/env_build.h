/* env_build.h - a task's environment: its Dockerfile built as an overlay
 * layer over a base root file system, cached by the hash of the folder.
 *
 * The base is the host's root (read-only) or a debootstrapped Debian
 * (`preft tasks base`). FROM picks the base whatever image it names; WORKDIR,
 * ENV, ARG, COPY/ADD of local files and RUN (as root inside bubblewrap on an
 * overlay of the layer below; network only at build time and only when the
 * host has it) are built; any other instruction is an error naming the
 * Dockerfile's line. */
#ifndef PREFT_TASKS_ENV_BUILD_H
#define PREFT_TASKS_ENV_BUILD_H

#include <stdbool.h>

#include "preft/base.h"

typedef struct preft_env_layer {
  char *lower;   /* overlay lowerdir list (top first, ':'-joined) for preft_sandbox_opts.layer_dir */
  char *workdir; /* the last WORKDIR ("/" when none) */
  char **env;    /* NAME=VALUE from ENV (and PATH etc.), NULL-terminated */
  bool cached;   /* found in the cache: nothing was built */
  double build_seconds;
} preft_env_layer;

typedef struct preft_env_build_opts {
  const char *env_dir;   /* the task's environment/ folder (holds the Dockerfile) */
  const char *base_dir;  /* NULL: the host's root; else a root file system, or the folder
                          * `preft tasks base -o DIR` made (DIR/root is used) */
  const char *cache_dir; /* where built layers are kept, keyed by hash */
  double timeout_s;      /* build_timeout_sec (times the multiplier) */
  bool network;          /* allow network for RUN when the host has it */
  const char *log_path;  /* build output appended here; NULL: discarded */
} preft_env_build_opts;

/* Builds the layer (or finds it cached). Two processes building the same
 * environment at once build it once (a lock in the cache). */
int preft_env_build(const preft_env_build_opts *o, preft_env_layer *out, preft_error *err);
void preft_env_layer_clear(preft_env_layer *l);

#endif
