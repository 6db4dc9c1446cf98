/* yaml.h - the YAML subset of Terminal-Bench 1.0 task files (task.yaml),
 * read into the value tree of toml.h.
 *
 * The subset: one document (an optional leading `---`), block mappings,
 * block sequences (of scalars, mappings or sequences), flow sequences of
 * scalars ([a, "b"]), plain, single- and double-quoted scalars (a plain
 * scalar may continue on more-indented lines), block scalars `|` and `>`
 * with chomping (-, +) and an indentation digit, comments. Plain scalars are
 * typed as YAML 1.2's core schema does (null, true/false, integers, floats);
 * quoted ones are strings. Anchors, aliases, tags, flow mappings, multiple
 * documents and tabs in indentation are refused with "FILE:LINE: ...".
 */
#ifndef PREFT_TASKS_YAML_H
#define PREFT_TASKS_YAML_H

#include <stddef.h>

#include "tasks/toml.h"

int preft_yaml_parse(const char *text, size_t n, const char *file, preft_tv **out, preft_error *err);

#endif
