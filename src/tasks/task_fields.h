/* task_fields.h - typed fields of a task file's tables, each failing with
 * "FILE:LINE: [TABLE] KEY: what" (task_load.c). An absent or null key
 * leaves *out as it is (the default). */
#ifndef PREFT_TASKS_TASK_FIELDS_H
#define PREFT_TASKS_TASK_FIELDS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "tasks/toml.h"

typedef struct task_fields {
  const char *file;
  const char *table; /* NULL: top level */
  preft_error *err;
} task_fields;

int task_field_fail(const task_fields *f, const preft_tv *v, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int task_field_num(const task_fields *f, const preft_tv *tbl, const char *key, double lo, double *out);
int task_field_str(const task_fields *f, const preft_tv *tbl, const char *key, char **out);
int task_field_bool(const task_fields *f, const preft_tv *tbl, const char *key, bool *out);
/* megabytes from key_mb (an integer) or key (a size string such as "2G") */
int task_field_size(const task_fields *f, const preft_tv *tbl, const char *key_mb, const char *key,
                    int64_t *out);
/* appends NAME=VALUE for each entry of the table at key to the NULL-terminated *out */
int task_field_env(const task_fields *f, const preft_tv *tbl, const char *key, char ***out);

#endif
