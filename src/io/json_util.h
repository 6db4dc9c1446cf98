/* json_util.h - typed field access on cJSON objects with errors that name the
 * file and the field ("config.json: field num_attention_heads must be a
 * positive integer"). */
#ifndef PREFT_IO_JSON_UTIL_H
#define PREFT_IO_JSON_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "base/error.h"

/* Parses a whole JSON file; the error names the file and the byte offset. */
int preft_json_load(const char *path, cJSON **out, preft_error *err);
/* Writes j pretty-printed, with a final newline, atomically (temp + rename). */
int preft_json_save(const char *path, const cJSON *j, preft_error *err);

/* Each getter: absent (or JSON null) field -> *out = dflt and 0, unless
 * required, which fails. Present but of the wrong type or range -> error. */
int preft_json_int(const cJSON *obj, const char *file, const char *field, bool required, long lo, long hi,
                   long dflt, long *out, preft_error *err);
int preft_json_num(const cJSON *obj, const char *file, const char *field, bool required, double dflt,
                   double *out, preft_error *err);
int preft_json_bool(const cJSON *obj, const char *file, const char *field, bool dflt, bool *out,
                    preft_error *err);
/* Borrowed pointer into obj, or NULL when absent and not required. */
int preft_json_str(const cJSON *obj, const char *file, const char *field, bool required, const char **out,
                   preft_error *err);

#endif
