/* jinja.h - a Jinja2 subset for Hugging Face chat templates.
 *
 * Renders templates the way transformers does (trim_blocks and lstrip_blocks
 * on, one trailing newline dropped, {% generation %} markers ignored).
 * Supported: {{ }}, {% if/elif/else %}, {% for %} (with `if` filter, else,
 * tuple unpacking, loop.index/index0/first/last/length/revindex/revindex0/
 * previtem/nextitem, break/continue), {% set %} (names, ns.attr, block set),
 * {% macro %} and calls, whitespace control (-), comments; expressions with
 * literals, lists, dicts, tuples, attribute/index/slice access, calls,
 * arithmetic, ~, comparisons, in / not in, and/or/not, a if c else b,
 * filters (trim, tojson, length, upper, lower, ...) and tests (defined,
 * none, string, ...), string/dict methods, namespace(), range(),
 * raise_exception(), strftime_now(). Anything else fails with an error
 * naming the construct and its template line.
 */
#ifndef PREFT_TEXT_JINJA_H
#define PREFT_TEXT_JINJA_H

#include <cjson/cJSON.h>

#include "base/error.h"

/* Renders tmpl with context (a JSON object whose members are the template's
 * variables) into *out (caller frees). Fails with -1 and "SOURCE line N:
 * ..." in err, SOURCE being where the template came from (e.g.
 * "dir/tokenizer_config.json: chat_template"; NULL says "chat template"). */
int preft_jinja_render(const char *tmpl, const char *source, const cJSON *context, char **out,
                       preft_error *err);

#endif
