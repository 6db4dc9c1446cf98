/* chat_template.c - renders a tokenizer's chat template with a conversation:
 * the Hugging Face apply_chat_template(messages, add_generation_prompt,
 * tokenize=False) with bos_token / eos_token from tokenizer_config.json. */
#include <cjson/cJSON.h>
#include <string.h>

#include "text/jinja.h"
#include "text/tokenizer_int.h"

int preft_chat_template_render(const preft_tokenizer *t, const char *messages_json,
                               bool add_generation_prompt, char **out, preft_error *err) {
  *out = NULL;
  if (!t->chat_template) return preft_fail(err, "%s: the tokenizer has no chat_template", t->path);
  const char *end = NULL;
  cJSON *in = cJSON_ParseWithOpts(messages_json, &end, false);
  if (!in)
    return preft_fail(err, "messages: malformed JSON near byte offset %zu",
                      end ? (size_t)(end - messages_json) : 0);
  cJSON *ctx;
  if (cJSON_IsArray(in)) {
    ctx = cJSON_CreateObject();
    cJSON_AddItemToObject(ctx, "messages", in);
  } else if (cJSON_IsObject(in) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(in, "messages"))) {
    ctx = in;
  } else {
    cJSON_Delete(in);
    return preft_fail(
        err, "messages: expected a JSON array of {\"role\", \"content\"} objects or {\"messages\": [...]}");
  }
  const cJSON *m;
  int i = 0;
  cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(ctx, "messages")) {
    if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role"))) {
      cJSON_Delete(ctx);
      return preft_fail(err, "messages[%d]: expected an object with a string 'role'", i);
    }
    i++;
  }
  if (!cJSON_GetObjectItemCaseSensitive(ctx, "add_generation_prompt"))
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_generation_prompt);
  if (!cJSON_GetObjectItemCaseSensitive(ctx, "bos_token"))
    cJSON_AddStringToObject(ctx, "bos_token", t->bos_token ? t->bos_token : "");
  if (!cJSON_GetObjectItemCaseSensitive(ctx, "eos_token"))
    cJSON_AddStringToObject(ctx, "eos_token", t->eos_token ? t->eos_token : "");
  int rc = preft_jinja_render(t->chat_template, t->chat_template_source, ctx, out, err);
  cJSON_Delete(ctx);
  return rc;
}
