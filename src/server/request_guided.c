/* request_guided.c - the request fields that constrain the output
 * (request_parse.h): OpenAI's response_format, vLLM's guided_json,
 * guided_regex, guided_choice and guided_grammar, llama.cpp's grammar, and
 * the chat tools with tool_choice. Each is turned into GBNF here and
 * compiled once to check it, so that a bad schema or grammar is a 400
 * naming the field, never a failure in the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar.h"
#include "engine/grammar_front.h"
#include "server/request_parse.h"

#define SRV_MAX_CHOICE_STRINGS 1024

static const cJSON *present(const cJSON *o, const char *name) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
  return f && !cJSON_IsNull(f) ? f : NULL;
}

/* Sets the request's grammar; a second constraining field is refused. */
static int set_grammar(srv_gen_request *r, const char *param, char *text, srv_api_error *e) {
  if (r->grammar_text) {
    free(text);
    return preft_srv_bad(e, param, "'%s' and '%s' both constrain the output; give only one", r->grammar_param,
                         param);
  }
  r->grammar_text = text;
  snprintf(r->grammar_param, sizeof r->grammar_param, "%s", param);
  return 0;
}

static int schema_grammar(srv_gen_request *r, const cJSON *schema, const char *param, srv_api_error *e) {
  char *text;
  preft_error err;
  if (preft_gbnf_from_json_schema(schema, param, &text, &err) != 0)
    return preft_srv_bad(e, param, "%s", err.msg);
  return set_grammar(r, param, text, e);
}

static int parse_response_format(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  const cJSON *rf = present(root, "response_format");
  if (!rf) return 0;
  const cJSON *t = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
  if (!cJSON_IsString(t))
    return preft_srv_bad(
        e, "response_format",
        "'response_format' must be {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}");
  if (!strcmp(t->valuestring, "text")) return 0;
  if (!strcmp(t->valuestring, "json_object"))
    return set_grammar(r, "response_format", preft_gbnf_json_object(), e);
  if (strcmp(t->valuestring, "json_schema") != 0)
    return preft_srv_bad(
        e, "response_format.type",
        "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\", got \"%s\"",
        t->valuestring);
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
  if (!cJSON_IsObject(js))
    return preft_srv_bad(
        e, "response_format.json_schema",
        "'response_format.json_schema' must be an object {\"name\", \"schema\", \"strict\"}");
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
  if (name && !cJSON_IsString(name))
    return preft_srv_bad(e, "response_format.json_schema.name",
                         "'response_format.json_schema.name' must be a string");
  const cJSON *strict = cJSON_GetObjectItemCaseSensitive(js, "strict");
  if (strict && !cJSON_IsBool(strict) && !cJSON_IsNull(strict))
    return preft_srv_bad(e, "response_format.json_schema.strict",
                         "'response_format.json_schema.strict' must be a boolean");
  const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
  if (!schema || cJSON_IsNull(schema)) /* no schema: any JSON object, as OpenAI's json_object */
    return set_grammar(r, "response_format", preft_gbnf_json_object(), e);
  return schema_grammar(r, schema, "response_format.json_schema.schema", e);
}

static int parse_vllm_fields(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  const cJSON *f;
  if ((f = present(root, "guided_json"))) {
    if (cJSON_IsString(f)) { /* a schema given as JSON text */
      cJSON *j = cJSON_Parse(f->valuestring);
      if (!j) return preft_srv_bad(e, "guided_json", "'guided_json' is a string that does not parse as JSON");
      int rc = schema_grammar(r, j, "guided_json", e);
      cJSON_Delete(j);
      if (rc != 0) return -1;
    } else if (cJSON_IsObject(f) || cJSON_IsBool(f)) {
      if (schema_grammar(r, f, "guided_json", e) != 0) return -1;
    } else {
      return preft_srv_bad(e, "guided_json",
                           "'guided_json' must be a JSON schema (an object or its JSON text)");
    }
  }
  if ((f = present(root, "guided_regex"))) {
    if (!cJSON_IsString(f)) return preft_srv_bad(e, "guided_regex", "'guided_regex' must be a string");
    char *text;
    preft_error err;
    if (preft_gbnf_from_regex(f->valuestring, &text, &err) != 0)
      return preft_srv_bad(e, "guided_regex", "'guided_regex': %s", err.msg);
    if (set_grammar(r, "guided_regex", text, e) != 0) return -1;
  }
  if ((f = present(root, "guided_choice"))) {
    int n = cJSON_IsArray(f) ? cJSON_GetArraySize(f) : 0;
    if (n < 1 || n > SRV_MAX_CHOICE_STRINGS)
      return preft_srv_bad(e, "guided_choice", "'guided_choice' must be an array of 1 to %d strings",
                           SRV_MAX_CHOICE_STRINGS);
    const char **c = preft_xmalloc(sizeof *c * (size_t)n);
    int k = 0;
    for (const cJSON *x = f->child; x; x = x->next) {
      if (!cJSON_IsString(x)) {
        free(c);
        return preft_srv_bad(e, "guided_choice", "'guided_choice' must be an array of strings");
      }
      c[k++] = x->valuestring;
    }
    char *text = preft_gbnf_from_choices(c, n);
    free(c);
    if (set_grammar(r, "guided_choice", text, e) != 0) return -1;
  }
  static const char *gbnf_fields[] = {"guided_grammar", "grammar"};
  for (int i = 0; i < 2; i++)
    if ((f = present(root, gbnf_fields[i]))) {
      if (!cJSON_IsString(f))
        return preft_srv_bad(e, gbnf_fields[i], "'%s' must be a GBNF string", gbnf_fields[i]);
      if (set_grammar(r, gbnf_fields[i], preft_xstrdup(f->valuestring), e) != 0) return -1;
    }
  if ((f = present(root, "guided_decoding_backend")) && !cJSON_IsString(f))
    return preft_srv_bad(e, "guided_decoding_backend", "'guided_decoding_backend' must be a string");
  if (present(root, "guided_whitespace_pattern"))
    return preft_srv_bad(e, "guided_whitespace_pattern", "'guided_whitespace_pattern' is not supported");
  return 0;
}

/* tools: [{"type": "function", "function": {"name", "description"?, "parameters"?}}];
 * tool_choice: "auto" | "none" | "required" | {"type": "function", "function": {"name"}}. */
static int parse_tools(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  const cJSON *tools = present(root, "tools"), *choice = present(root, "tool_choice");
  if (tools) {
    if (!cJSON_IsArray(tools)) return preft_srv_bad(e, "tools", "'tools' must be an array");
    int i = 0;
    for (const cJSON *t = tools->child; t; t = t->next, i++) {
      char param[48];
      snprintf(param, sizeof param, "tools[%d]", i);
      const cJSON *type = cJSON_IsObject(t) ? cJSON_GetObjectItemCaseSensitive(t, "type") : NULL;
      const cJSON *fn = cJSON_IsObject(t) ? cJSON_GetObjectItemCaseSensitive(t, "function") : NULL;
      const cJSON *name = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
      if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0 || !cJSON_IsString(name) ||
          !name->valuestring[0])
        return preft_srv_bad(
            e, param, "'%s' must be {\"type\": \"function\", \"function\": {\"name\": string, ...}}", param);
      const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
      if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
        return preft_srv_bad(e, param, "'%s.function.parameters' must be a JSON schema object", param);
      for (const cJSON *u = tools->child; u != t; u = u->next)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(u, "function"), "name")
                        ->valuestring,
                    name->valuestring))
          return preft_srv_bad(e, param, "two tools are named '%s'", name->valuestring);
    }
    if (r->kind == SRV_CHAT && tools->child) r->tools = cJSON_Duplicate(tools, true);
  }
  r->tool_choice = r->tools ? SRV_TOOLS_AUTO : SRV_TOOLS_NONE;
  if (!choice) return 0;
  if (cJSON_IsString(choice)) {
    const char *c = choice->valuestring;
    if (!strcmp(c, "none")) {
      r->tool_choice = SRV_TOOLS_NONE;
      return 0;
    }
    if (strcmp(c, "auto") != 0 && strcmp(c, "required") != 0)
      return preft_srv_bad(
          e, "tool_choice",
          "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
          "\"function\": {\"name\": ...}}, got \"%s\"",
          c);
    if (!r->tools)
      return preft_srv_bad(e, "tool_choice", "'tool_choice' \"%s\" needs a non-empty 'tools'", c);
    r->tool_choice = !strcmp(c, "auto") ? SRV_TOOLS_AUTO : SRV_TOOLS_REQUIRED;
    return 0;
  }
  const cJSON *fn = cJSON_IsObject(choice) ? cJSON_GetObjectItemCaseSensitive(choice, "function") : NULL;
  const cJSON *name = cJSON_IsObject(fn) ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;
  if (!cJSON_IsString(name))
    return preft_srv_bad(e, "tool_choice",
                         "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                         "\"function\": {\"name\": ...}}");
  if (!r->tools)
    return preft_srv_bad(e, "tool_choice", "'tool_choice' names a function but 'tools' is empty");
  bool found = false;
  for (const cJSON *t = r->tools->child; t; t = t->next)
    found |= !strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "name")
                         ->valuestring,
                     name->valuestring);
  if (!found)
    return preft_srv_bad(e, "tool_choice", "'tool_choice' names the function '%s', which is not in 'tools'",
                         name->valuestring);
  r->tool_choice = SRV_TOOLS_NAMED;
  r->tool_name = preft_xstrdup(name->valuestring);
  return 0;
}

int preft_srv_parse_guided(const cJSON *root, srv_gen_request *r, srv_api_error *e) {
  if (parse_response_format(root, r, e) != 0 || parse_vllm_fields(root, r, e) != 0) return -1;
  if (parse_tools(root, r, e) != 0) return -1;
  if (r->grammar_text && (r->tool_choice == SRV_TOOLS_REQUIRED || r->tool_choice == SRV_TOOLS_NAMED))
    return preft_srv_bad(e, "tool_choice",
                         "'tool_choice' \"%s\" and '%s' both constrain the output; give only one",
                         r->tool_choice == SRV_TOOLS_REQUIRED ? "required" : "named", r->grammar_param);
  if (r->grammar_text) { /* compile once here so that a bad grammar is the client's 400 */
    preft_error err;
    if (preft_grammar_parse(r->grammar_text, &r->grammar, &err) != 0)
      return preft_srv_bad(e, r->grammar_param, "'%s': %s", r->grammar_param, err.msg);
  }
  return 0;
}
