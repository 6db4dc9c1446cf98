/* tokenize_routes.c - vLLM's POST /tokenize and POST /detokenize, and
 * GET /version.
 *
 *   /tokenize    {"prompt": str, "add_special_tokens": true}
 *             or {"messages": [...], "add_generation_prompt": true,
 *                 "add_special_tokens": false, "tools", "chat_template_kwargs"}
 *             (+ optional "model", "return_token_strs")
 *             -> {"count", "max_model_len", "tokens": [...], "token_strs": [...] | null}
 *   /detokenize  {"tokens": [ids]} (+ optional "model") -> {"prompt": text}
 *   /version     -> {"version": "0.1.0"}
 *
 * Messages are rendered through the chat template exactly as
 * /v1/chat/completions renders them (the same parser), so /tokenize shows
 * the prompt a chat request would get. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "preft/preft.h"
#include "server/server_int.h"

static void reply_json(srv_reply *r, srv_buf *b) {
  r->status = 200;
  r->content_type = "application/json";
  preft_srv_buf_free(&r->body);
  r->body = *b;
  memset(b, 0, sizeof *b);
}

/* "model", when given, must be the base model or an adapter (they share the tokenizer). */
static int check_model(preft_server *s, const cJSON *root, srv_api_error *e) {
  const char *model;
  if (preft_srv_get_string(root, "model", false, &model, e) != 0) return -1;
  if (model && strcmp(model, s->model_name) != 0 &&
      (!s->engine || !preft_engine_resolve_adapter(s->engine, model)))
    return preft_srv_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                          "The model '%s' does not exist", model);
  return 0;
}

static int get_flag(const cJSON *root, const char *name, bool dflt, bool *out, srv_api_error *e) {
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
  *out = dflt;
  if (!f || cJSON_IsNull(f)) return 0;
  if (!cJSON_IsBool(f)) return preft_srv_bad(e, name, "'%s' must be a boolean", name);
  *out = cJSON_IsTrue(f);
  return 0;
}

/* The text /tokenize encodes: the prompt, or the rendered chat (heap). */
static int tokenize_text(preft_server *s, srv_conn *c, const cJSON *root, char **text, bool *add_special,
                         const char **param, srv_api_error *e) {
  bool chat = cJSON_GetObjectItemCaseSensitive(root, "messages") != NULL;
  *param = chat ? "messages" : "prompt";
  if (get_flag(root, "add_special_tokens", !chat, add_special, e) != 0) return -1;
  if (!chat) {
    const char *prompt;
    if (preft_srv_get_string(root, "prompt", true, &prompt, e) != 0) return -1;
    *text = preft_xstrdup(prompt);
    return 0;
  }
  if (!preft_tokenizer_chat_template(s->tok))
    return preft_srv_bad(e, "messages", "this model's tokenizer has no chat template");
  srv_gen_request q;
  if (preft_srv_parse_gen_request(c->body.p, c->body.len, SRV_CHAT, &q, e) != 0) return -1;
  preft_error err;
  int rc = 0;
  if (preft_chat_template_render(s->tok, q.chat_json, q.add_generation_prompt, text, &err) != 0)
    rc = preft_srv_bad(e, "messages", "the chat template failed on these messages: %s", err.msg);
  preft_srv_gen_request_free(&q);
  return rc;
}

void preft_srv_route_tokenize(preft_server *s, srv_conn *c, srv_reply *r) {
  srv_api_error e;
  cJSON *root = NULL;
  char *text = NULL;
  int32_t *ids = NULL;
  size_t n = 0;
  bool add_special, strs;
  const char *param;
  preft_error err;
  if (preft_srv_parse_json_object(c->body.p, c->body.len, &root, &e) != 0 || check_model(s, root, &e) != 0 ||
      get_flag(root, "return_token_strs", false, &strs, &e) != 0)
    goto fail;
  if (!s->tok) {
    preft_srv_bad(&e, NULL, "this model has no tokenizer");
    goto fail;
  }
  if (tokenize_text(s, c, root, &text, &add_special, &param, &e) != 0) goto fail;
  if (preft_tokenizer_encode(s->tok, text, strlen(text), add_special, &ids, &n, &err) != 0) {
    preft_srv_bad(&e, param, "the text cannot be tokenized: %s", err.msg);
    goto fail;
  }
  srv_buf b = {0};
  preft_srv_buf_printf(&b, "{\"count\":%zu,\"max_model_len\":%d,\"tokens\":[", n, s->max_context);
  for (size_t i = 0; i < n; i++) preft_srv_buf_printf(&b, i ? ",%d" : "%d", (int)ids[i]);
  preft_srv_buf_puts(&b, "],\"token_strs\":");
  if (strs) {
    preft_srv_buf_put(&b, "[", 1);
    for (size_t i = 0; i < n; i++) {
      const char *t = preft_tokenizer_id_to_token(s->tok, ids[i]);
      if (i) preft_srv_buf_put(&b, ",", 1);
      preft_srv_buf_json_str(&b, t ? t : "", t ? strlen(t) : 0);
    }
    preft_srv_buf_put(&b, "]", 1);
  } else {
    preft_srv_buf_puts(&b, "null");
  }
  preft_srv_buf_put(&b, "}", 1);
  reply_json(r, &b);
  goto done;
fail:
  preft_srv_reply_error(r, &e);
done:
  free(ids);
  free(text);
  cJSON_Delete(root);
}

void preft_srv_route_detokenize(preft_server *s, srv_conn *c, srv_reply *r) {
  srv_api_error e;
  cJSON *root = NULL;
  int32_t *ids = NULL;
  char *text = NULL;
  size_t len;
  preft_error err;
  if (preft_srv_parse_json_object(c->body.p, c->body.len, &root, &e) != 0 || check_model(s, root, &e) != 0)
    goto fail;
  if (!s->tok) {
    preft_srv_bad(&e, NULL, "this model has no tokenizer");
    goto fail;
  }
  const cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, "tokens");
  if (!cJSON_IsArray(toks)) {
    preft_srv_bad(&e, "tokens", "'tokens' must be an array of token ids");
    goto fail;
  }
  int n = cJSON_GetArraySize(toks), k = 0;
  ids = preft_xmalloc(sizeof *ids * (size_t)(n ? n : 1));
  for (const cJSON *x = toks->child; x; x = x->next, k++) {
    if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int32_t)x->valuedouble || x->valuedouble < 0 ||
        x->valuedouble >= s->vocab) {
      preft_srv_bad(&e, "tokens", "'tokens[%d]' must be a token id in [0, %d)", k, s->vocab);
      goto fail;
    }
    ids[k] = (int32_t)x->valuedouble;
  }
  if (preft_tokenizer_decode(s->tok, ids, (size_t)n, 0, &text, &len, &err) != 0) {
    preft_srv_bad(&e, "tokens", "%s", err.msg);
    goto fail;
  }
  srv_buf b = {0};
  preft_srv_buf_puts(&b, "{\"prompt\":");
  preft_srv_buf_json_str(&b, text, len);
  preft_srv_buf_put(&b, "}", 1);
  reply_json(r, &b);
  goto done;
fail:
  preft_srv_reply_error(r, &e);
done:
  free(text);
  free(ids);
  cJSON_Delete(root);
}

void preft_srv_route_version(preft_server *s, srv_reply *r) {
  (void)s;
  srv_buf b = {0};
  preft_srv_buf_printf(&b, "{\"version\":\"%s\"}", preft_version());
  reply_json(r, &b);
}
