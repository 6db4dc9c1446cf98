/* adapter_store.h - adapters on disk beyond those named at start-up: the
 * resolver that finds an unknown adapter name as a subdirectory of the
 * adapters directory (so new users' adapters need no registration step, as
 * vLLM's filesystem resolver), and the registry file that keeps adapters
 * loaded at run time (vLLM's load_lora_adapter) across restarts.
 *
 * The file is text, one adapter a line: NAME, a tab, its directory. Lines
 * starting with '#' and empty lines are skipped. It is rewritten atomically
 * (temp + rename) on every change.
 */
#ifndef PREFT_ENGINE_ADAPTER_STORE_H
#define PREFT_ENGINE_ADAPTER_STORE_H

#include "base/error.h"

typedef struct preft_store_entry {
  char *name, *path;
} preft_store_entry;

/* dir_real (a realpath) joined with name when name is one plain path
 * component (not empty, no '/', not "." or "..", no control characters, at
 * most 255 bytes) naming a directory that holds adapter_config.json or
 * reft_config.json and whose real path (links resolved) is inside dir_real;
 * else NULL. Heap string. */
char *preft_store_resolve(const char *dir_real, const char *name);

/* Reads the registry file; a file that does not exist is an empty list.
 * A malformed line is an error naming the file and line. */
int preft_store_read(const char *path, preft_store_entry **out, int *n, preft_error *err);
/* Writes the entries atomically; entries whose name or path holds a tab or
 * a line break cannot be written and are left out (with a warning). */
int preft_store_write(const char *path, const preft_store_entry *entries, int n, preft_error *err);
void preft_store_free(preft_store_entry *entries, int n);

#endif
