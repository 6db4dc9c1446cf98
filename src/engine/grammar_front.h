/* grammar_front.h - what compiles to GBNF (grammar.h): JSON schemas, regular
 * expressions, lists of choices, and any JSON object.
 *
 * JSON schema (grammar_json.c): type object / array / string / number /
 * integer / boolean / null (or a list of types), properties (written in
 * their order; required ones always, others optionally), required,
 * additionalProperties (objects are closed: properties not listed are
 * never produced, which validates whatever additionalProperties says;
 * without properties, an additionalProperties schema gives a map of those
 * values), enum, const, items, minItems / maxItems, minLength / maxLength,
 * anyOf / oneOf, allOf of one schema, $ref to "#", "#/$defs/..." or
 * "#/definitions/...", and true / {} (any value). Keywords that would
 * constrain the output in ways the grammar cannot (pattern, format,
 * minimum, maximum, multipleOf, uniqueItems, not, if/then/else,
 * patternProperties, prefixItems, ...) are refused with an error naming the
 * schema path, so output that is produced always validates.
 *
 * Numbers are written with at most 16 integer and 16 fraction digits and a
 * 3-digit exponent, and whitespace between tokens is at most one line
 * break and 20 blanks, so a constrained random model still ends. */
#ifndef PREFT_ENGINE_GRAMMAR_FRONT_H
#define PREFT_ENGINE_GRAMMAR_FRONT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/error.h"

/* A grammar being written: schemas add rules, the caller gives root. */
typedef struct preft_gbnf_gen preft_gbnf_gen;
preft_gbnf_gen *preft_gbnf_gen_new(void);
void preft_gbnf_gen_free(preft_gbnf_gen *g);
/* Adds the rules of schema (what names it in errors: "response_format.json_schema.schema");
 * *rule is the name of its value rule (valid until the gen is freed). */
int preft_gbnf_gen_schema(preft_gbnf_gen *g, const cJSON *schema, const char *what, const char **rule,
                          preft_error *err);
/* The rule of any JSON value / any JSON object, and of optional whitespace ("ws"). */
const char *preft_gbnf_gen_any_value(preft_gbnf_gen *g);
const char *preft_gbnf_gen_any_object(preft_gbnf_gen *g);
/* Appends a GBNF string literal for s[0..n) (quotes included) to out. */
struct preft_buf;
void preft_gbnf_literal(struct preft_buf *out, const char *s, size_t n);
/* Appends raw text to the grammar being written (rule definitions). */
void preft_gbnf_append(preft_gbnf_gen *g, const char *text);
/* The whole grammar: "root ::= " root_body, then every rule; heap string. */
char *preft_gbnf_gen_finish(preft_gbnf_gen *g, const char *root_body);

/* Convenience: whole grammars (heap strings). */
int preft_gbnf_from_json_schema(const cJSON *schema, const char *what, char **out, preft_error *err);
char *preft_gbnf_json_object(void);
/* A regular expression (Python / JavaScript syntax: literals, escapes,
 * classes, \d \w \s and their negations, ., groups incl. (?:...) and named
 * ones, |, * + ? {m} {m,} {m,n} (lazy forms match the same strings), ^ at
 * the start and $ at the end) matched in full. Backreferences, lookaround
 * and anchors elsewhere are refused. */
int preft_gbnf_from_regex(const char *re, char **out, preft_error *err);
/* One of the strings, exactly. */
char *preft_gbnf_from_choices(const char *const *choices, int n);

#endif
