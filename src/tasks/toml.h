/* toml.h - a small strict TOML reader for task files (task.toml), and the
 * value tree it shares with the YAML subset reader (yaml.h).
 *
 * The subset: tables ([a.b]) and arrays of tables ([[a]]), bare, quoted and
 * dotted keys, strings (basic, literal, multi-line basic and literal, with
 * every TOML 1.0 escape), integers (decimal, 0x, 0o, 0b, with _), floats
 * (with exponent, inf, nan), booleans, arrays and inline tables. Dates and
 * times are refused with an error naming FILE:LINE, as is everything else
 * TOML does not allow (a key defined twice, a table reopened, bad UTF-8,
 * a control character, text after a value).
 *
 *   preft_tv *root;
 *   if (preft_toml_parse(text, n, "task.toml", &root, &err) != 0) ...   // "task.toml:7: ..."
 *   const preft_tv *t = preft_tv_get(preft_tv_get(root, "verifier"), "timeout_sec");
 *   preft_tv_free(root);
 */
#ifndef PREFT_TASKS_TOML_H
#define PREFT_TASKS_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "preft/base.h"

typedef enum {
  PREFT_TV_TABLE = 0,
  PREFT_TV_ARRAY,
  PREFT_TV_STRING,
  PREFT_TV_INT,
  PREFT_TV_FLOAT,
  PREFT_TV_BOOL,
  PREFT_TV_NULL, /* YAML only: `key:` with nothing, `~`, `null` */
} preft_tv_kind;

typedef struct preft_tv {
  preft_tv_kind kind;
  int line;                /* 1-based line where the value (or the table) was defined */
  char *str;               /* STRING: NUL-terminated UTF-8 (a NUL inside is refused) */
  int64_t i;               /* INT */
  double f;                /* FLOAT */
  bool b;                  /* BOOL */
  int n, cap;              /* TABLE, ARRAY: entries */
  char **keys;             /* TABLE: keys[n] in the order written */
  struct preft_tv **items; /* TABLE: values of keys; ARRAY: the elements */
  /* how a TABLE came to be (TOML's rules on redefinition) */
  bool is_explicit; /* opened by a [header] */
  bool is_dotted;   /* created by a dotted key a.b = 1 */
  bool is_frozen;   /* an inline table or a static array: cannot be extended */
  bool is_aot;      /* ARRAY: an array of tables made by [[header]] */
} preft_tv;

/* Parses n bytes of TOML. On failure *out is untouched and err holds
 * "FILE:LINE: what". */
int preft_toml_parse(const char *text, size_t n, const char *file, preft_tv **out, preft_error *err);

/* ---- the value tree (toml_value.c) ---- */
preft_tv *preft_tv_new(preft_tv_kind kind, int line);
void preft_tv_free(preft_tv *v);
/* The value of key in table t; NULL when t is NULL, not a table, or has no such key. */
const preft_tv *preft_tv_get(const preft_tv *t, const char *key);
/* Appends to a table (key copied) or an array (key NULL); takes ownership of v. */
void preft_tv_put(preft_tv *t, const char *key, preft_tv *v);
/* "table", "array", "string", "integer", "float", "boolean", "null". */
const char *preft_tv_kind_name(preft_tv_kind kind);
/* Reads a number (INT or FLOAT) as a double; false for anything else. */
bool preft_tv_number(const preft_tv *v, double *out);
/* The tree as JSON. Plain: tables to objects, arrays to arrays, scalars to
 * JSON scalars (inf and nan as strings, null as null). Tagged (as the
 * toml-test suite writes it, for exact comparisons): every scalar as
 * {"type": "string"|"integer"|"float"|"bool"|"null", "value": ...}, integers
 * as decimal strings, floats as numbers (inf/nan as strings). */
struct cJSON;
struct cJSON *preft_tv_to_json(const preft_tv *v, bool tagged);

#endif
