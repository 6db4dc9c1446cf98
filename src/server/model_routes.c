/* model_routes.c - the model list (/v1/models, one model by id, paged) and
 * vLLM's adapter endpoints (/v1/load_lora_adapter, /v1/unload_lora_adapter). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/adapter.h"
#include "server/server_int.h"

/* ---- models ------------------------------------------------------------------------------ */

typedef struct {
  preft_server *s;
  srv_buf *b;
  int count;
  char *first_id, *last_id; /* of the page */
} models_ctx;

/* One model object; an adapter's also says whether it is loaded, the
 * checksum of its files as last loaded and, when its files failed to load,
 * that it is unavailable and why. */
static void model_json(models_ctx *m, const char *id, const char *root, const char *parent,
                       const preft_adapter_info *a) {
  srv_buf *b = m->b;
  if (m->count++) preft_srv_buf_put(b, ",", 1);
  if (!m->first_id) m->first_id = preft_xstrdup(id);
  free(m->last_id);
  m->last_id = preft_xstrdup(id);
  preft_srv_buf_puts(b, "{\"id\":");
  preft_srv_buf_json_str(b, id, strlen(id));
  preft_srv_buf_printf(
      b, ",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"preft\",\"root\":", m->s->created);
  preft_srv_buf_json_str(b, root, strlen(root));
  preft_srv_buf_puts(b, ",\"parent\":");
  if (parent)
    preft_srv_buf_json_str(b, parent, strlen(parent));
  else
    preft_srv_buf_puts(b, "null");
  preft_srv_buf_printf(b, ",\"max_model_len\":%d", m->s->max_context);
  if (a) {
    const char *status = a->loaded    ? "loaded"
                         : a->error   ? "unavailable"
                         : a->loading ? "loading"
                                      : "not_loaded";
    preft_srv_buf_printf(b, ",\"status\":\"%s\",\"loaded\":%s", status, a->loaded ? "true" : "false");
    if (a->checksum) preft_srv_buf_printf(b, ",\"checksum\":\"%016llx\"", (unsigned long long)a->checksum);
    if (a->loaded) preft_srv_buf_printf(b, ",\"bytes\":%zu", a->bytes);
    if (a->error && !a->loaded) {
      preft_srv_buf_puts(b, ",\"error\":");
      preft_srv_buf_json_str(b, a->error, strlen(a->error));
    }
  }
  preft_srv_buf_puts(b, "}");
}

static void each_adapter(void *ctx, const preft_adapter_info *a) {
  models_ctx *m = ctx;
  model_json(m, a->name, a->path, m->s->model_name, a);
}

static void count_adapter(void *ctx, const preft_adapter_info *a) {
  (void)a;
  ++*(int *)ctx;
}

/* GET /v1/models/{one}: a hash lookup, whatever the number of adapters. */
static void route_one_model(preft_server *s, const char *one, srv_reply *r) {
  models_ctx m = {.s = s, .b = &r->body};
  r->content_type = "application/json";
  if (!strcmp(one, s->model_name))
    model_json(&m, s->model_name, s->model_name, NULL, NULL);
  else if (!s->engine || !preft_engine_adapter_info(s->engine, one, each_adapter, &m)) {
    srv_api_error e;
    preft_srv_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                   "The model '%s' does not exist", one);
    preft_srv_reply_error(r, &e);
  }
  if (m.count) r->status = 200;
  free(m.first_id);
  free(m.last_id);
}

void preft_srv_route_models(preft_server *s, const char *one, const char *after, const char *limit_arg,
                            srv_reply *r) {
  if (one) return route_one_model(s, one, r);
  srv_api_error e;
  long limit = 0; /* all */
  if (limit_arg) {
    char *end;
    limit = strtol(limit_arg, &end, 10);
    if (!*limit_arg || *end || limit < 1 || limit > 100000) {
      preft_srv_bad(&e, "limit", "limit must be an integer from 1 to 100000, got '%s'", limit_arg);
      return preft_srv_reply_error(r, &e);
    }
  }
  srv_buf items = {0};
  models_ctx m = {.s = s, .b = &items};
  /* the base model first, then the adapters in registration order */
  const char *adapters_after = after;
  if (!after)
    model_json(&m, s->model_name, s->model_name, NULL, NULL);
  else if (!strcmp(after, s->model_name))
    adapters_after = NULL;
  bool more = false;
  int listed = 0;
  if (!s->engine) /* an encoder: no adapters */
    listed = after && strcmp(after, s->model_name) != 0 ? -1 : 0;
  else if (!limit || m.count < limit)
    listed = preft_engine_list_adapters(s->engine, adapters_after, limit ? (int)limit - m.count : 0,
                                        each_adapter, &m, &more);
  else
    more = preft_engine_list_adapters(s->engine, NULL, 1, count_adapter, &listed, NULL) > 0;
  if (listed < 0) {
    preft_srv_bad(&e, "after", "no model '%s' to list after", after);
    preft_srv_reply_error(r, &e);
  } else {
    r->status = 200;
    r->content_type = "application/json";
    preft_srv_buf_puts(&r->body, "{\"object\":\"list\",\"data\":[");
    if (items.len) preft_srv_buf_put(&r->body, items.p, items.len);
    preft_srv_buf_printf(&r->body, "],\"has_more\":%s", more ? "true" : "false");
    if (m.first_id) {
      preft_srv_buf_puts(&r->body, ",\"first_id\":");
      preft_srv_buf_json_str(&r->body, m.first_id, strlen(m.first_id));
      preft_srv_buf_puts(&r->body, ",\"last_id\":");
      preft_srv_buf_json_str(&r->body, m.last_id, strlen(m.last_id));
    }
    preft_srv_buf_puts(&r->body, "}");
  }
  free(m.first_id);
  free(m.last_id);
  preft_srv_buf_free(&items);
}

/* ---- adapters (vLLM's runtime endpoints) -------------------------------------------- */

static int adapter_name(const cJSON *root, const char **name, srv_api_error *e) {
  if (preft_srv_get_string(root, "lora_name", true, name, e) != 0) return -1;
  size_t n = strlen(*name);
  if (n == 0 || n > 256) return preft_srv_bad(e, "lora_name", "'lora_name' must be 1 to 256 bytes long");
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)(*name)[i] < 0x20 || (*name)[i] == '/')
      return preft_srv_bad(e, "lora_name", "'lora_name' may not hold control characters or '/'");
  return 0;
}

/* What one adapter endpoint does once the body's lora_name is valid:
 * returns 0, or -1 with e saying what was wrong. */
typedef int (*adapter_action)(preft_server *s, const cJSON *root, const char *name, srv_api_error *e);

static int load_adapter(preft_server *s, const cJSON *root, const char *name, srv_api_error *e) {
  const char *path;
  preft_error err;
  if (preft_srv_get_string(root, "lora_path", true, &path, e) != 0) return -1;
  if (!strcmp(name, s->model_name))
    return preft_srv_bad(e, "lora_name", "'%s' is the base model's name", name);
  if (preft_engine_has_adapter(s->engine, name))
    return preft_srv_bad(e, "lora_name", "The lora adapter '%s' has already been loaded.", name);
  char *real = NULL;
  if (preft_srv_adapter_path(s, path, &real, e) != 0) return -1;
  int rc = 0;
  if (preft_engine_load_adapter(s->engine, name, real, &err) != 0) {
    preft_srv_adapter_load_error(s, path, err.msg, e);
    rc = -1;
  }
  free(real);
  return rc;
}

static int unload_adapter(preft_server *s, const cJSON *root, const char *name, srv_api_error *e) {
  preft_error err;
  if (!preft_engine_has_adapter(s->engine, name))
    return preft_srv_fail(e, 404, "invalid_request_error", "model_not_found", "lora_name",
                          "The lora adapter '%s' cannot be found.", name);
  if (preft_engine_remove_adapter(s->engine, name, &err) != 0)
    return preft_srv_bad(e, "lora_name", "%s", err.msg);
  return 0;
}

/* Parses the JSON body and its lora_name, runs act, and replies "Success:
 * LoRA adapter '<name>' <done> successfully." or the error. */
static void adapter_route(preft_server *s, srv_conn *c, srv_reply *r, adapter_action act, const char *done) {
  srv_api_error e;
  cJSON *root = NULL;
  const char *name;
  if (preft_srv_runtime_adapters_allowed(s, &e) != 0 ||
      preft_srv_parse_json_object(c->body.p, c->body.len, &root, &e) != 0 ||
      adapter_name(root, &name, &e) != 0 || act(s, root, name, &e) != 0) {
    preft_srv_reply_error(r, &e);
  } else {
    char msg[600];
    snprintf(msg, sizeof msg, "Success: LoRA adapter '%s' %s successfully.", name, done);
    preft_srv_reply_text(r, 200, msg);
  }
  cJSON_Delete(root);
}

void preft_srv_route_load_adapter(preft_server *s, srv_conn *c, srv_reply *r) {
  adapter_route(s, c, r, load_adapter, "added");
}

void preft_srv_route_unload_adapter(preft_server *s, srv_conn *c, srv_reply *r) {
  adapter_route(s, c, r, unload_adapter, "removed");
}
