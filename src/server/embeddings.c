/* embeddings.c - POST /v1/embeddings: the mean over the input's positions
 * of the served model's last hidden state (after the final RMSNorm, what
 * Hugging Face calls last_hidden_state), L2-normalised as OpenAI's and
 * vLLM's embeddings are (vLLM's extra "normalize": false gives the raw
 * mean). Base model only: adapters are not applied, so naming one is a 400.
 * A server of a BERT encoder (`preft serve -m BERT_DIR`) gives its pooled
 * output instead (the mean of its last hidden state when the checkpoint has
 * no pooler), also L2-normalised unless "normalize": false.
 *
 *   {"input": "text" | ["text", ...] | [ids] | [[ids], ...],
 *    "model"?, "encoding_format"?: "float" | "base64", "dimensions"?: D,
 *    "normalize"?: true, "user"?}
 *   -> {"object": "list", "data": [{"object": "embedding", "index": i,
 *       "embedding": [D floats] | "base64 of D little-endian float32"}],
 *       "model", "usage": {"prompt_tokens", "total_tokens"}}
 *
 * The forward runs on the connection thread, on its own KV cache and
 * workspace, one thread, beside the engine (the weights are read-only),
 * in chunks of EMB_CHUNK positions without the vocabulary projection. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "model/batch.h"
#include "model/bert.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "server/server_int.h"
#include "tensor/ops.h"

#define EMB_CHUNK 128
#define EMB_BLOCK 16
#define EMB_MAX_INPUTS 64

/* out [D] = mean over positions of rmsnorm_final(h_L(ids)) */
static int mean_hidden(const preft_model *m, const int *ids, int n, float *out, preft_error *err) {
  const preft_model_config *c = &m->cfg;
  int D = c->dim;
  preft_kv_cache kv;
  if (preft_kv_init(&kv, c->n_layers, c->n_kv_heads * c->head_dim, EMB_BLOCK, (n + EMB_BLOCK - 1) / EMB_BLOCK,
                    1, n, err) != 0)
    return -1;
  int rc = preft_kv_reserve(&kv, 0, n, err);
  preft_workspace ws = {0};
  preft_batch_buf bb;
  preft_batch_buf_init(&bb);
  double *sum = preft_xcalloc((size_t)D, sizeof *sum);
  float *row = preft_xmalloc(sizeof *row * (size_t)D);
  for (int start = 0; rc == 0 && start < n; start += EMB_CHUNK) {
    int k = n - start < EMB_CHUNK ? n - start : EMB_CHUNK;
    preft_batch_buf_clear(&bb);
    for (int pos = start; pos < start + k; pos++)
      preft_batch_buf_add(&bb, ids[pos], pos, 0, NULL, PREFT_ADAPT_OFF, false);
    preft_batch b = preft_batch_buf_view(&bb);
    rc = preft_model_forward(m, NULL, &kv, &b, &ws, NULL, err);
    for (int i = 0; rc == 0 && i < k; i++) {
      preft_rmsnorm_fast(row, ws.x + (size_t)i * (size_t)D, m->final_norm, D, c->norm_eps);
      for (int d = 0; d < D; d++) sum[d] += row[d];
    }
  }
  for (int d = 0; d < D; d++) out[d] = (float)(sum[d] / n);
  free(sum);
  free(row);
  preft_batch_buf_free(&bb);
  preft_workspace_free(&ws);
  preft_kv_free(&kv);
  return rc;
}

/* An encoder's embedding: the pooler output (tanh of the [CLS] row's dense
 * layer) when the checkpoint has a pooler, else the mean of the last hidden
 * state over the input's tokens; token types all 0. */
static int encoder_embedding(const preft_bert *m, const int *ids, int n, float *out, preft_error *err) {
  int D = m->cfg.dim;
  float *hidden = preft_xmalloc(sizeof *hidden * (size_t)n * (size_t)D);
  preft_bert_workspace ws = {0};
  preft_bert_batch b = {.n_seqs = 1, .seq_len = n, .ids = ids};
  int rc = preft_bert_forward(m, NULL, &b, &ws, hidden, m->has_pooler ? out : NULL, err);
  if (rc == 0 && !m->has_pooler)
    for (int d = 0; d < D; d++) {
      double sum = 0;
      for (int t = 0; t < n; t++) sum += hidden[(size_t)t * (size_t)D + (size_t)d];
      out[d] = (float)(sum / n);
    }
  preft_bert_workspace_free(&ws);
  free(hidden);
  return rc;
}

typedef struct {
  int *ids;
  int n;
} emb_input;

static int ids_from_array(const preft_server *s, const cJSON *a, int index, emb_input *in, srv_api_error *e) {
  int n = cJSON_GetArraySize(a), k = 0;
  if (n == 0) return preft_srv_bad(e, "input", "'input[%d]' is empty", index);
  in->ids = preft_xmalloc(sizeof(int) * (size_t)n);
  for (const cJSON *x = a->child; x; x = x->next, k++) {
    if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 ||
        x->valuedouble >= s->vocab)
      return preft_srv_bad(e, "input", "'input' token ids must be integers in [0, %d)", s->vocab);
    in->ids[k] = (int)x->valuedouble;
  }
  in->n = n;
  return 0;
}

static int ids_from_text(const preft_server *s, const char *text, int index, emb_input *in,
                         srv_api_error *e) {
  if (!s->tok) return preft_srv_bad(e, "input", "this model has no tokenizer; send token ids");
  if (!*text) return preft_srv_bad(e, "input", "'input[%d]' is an empty string", index);
  int32_t *ids;
  size_t n;
  preft_error err;
  if (preft_tokenizer_encode_max(s->tok, text, strlen(text), true, (size_t)s->max_context + 1, &ids, &n,
                                 &err) != 0)
    return preft_srv_bad(e, "input", "'input[%d]' cannot be tokenized: %s", index, err.msg);
  in->ids = preft_xmalloc(sizeof(int) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) in->ids[i] = ids[i];
  in->n = (int)n;
  free(ids);
  return n ? 0 : preft_srv_bad(e, "input", "'input[%d]' has no tokens", index);
}

/* The inputs, in OpenAI's four forms. */
static int parse_inputs(const preft_server *s, const cJSON *root, emb_input **out, int *n_out,
                        srv_api_error *e) {
  const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
  *out = NULL;
  *n_out = 0;
  if (!in || cJSON_IsNull(in)) return preft_srv_bad(e, "input", "'input' is a required field");
  const char *form =
      "'input' must be a string, an array of strings, an array of token ids or an array of "
      "token-id arrays";
  if (cJSON_IsString(in)) {
    *out = preft_xcalloc(1, sizeof **out);
    *n_out = 1;
    return ids_from_text(s, in->valuestring, 0, &(*out)[0], e);
  }
  if (!cJSON_IsArray(in) || !in->child) return preft_srv_bad(e, "input", "%s", form);
  if (cJSON_IsNumber(in->child)) {
    *out = preft_xcalloc(1, sizeof **out);
    *n_out = 1;
    return ids_from_array(s, in, 0, &(*out)[0], e);
  }
  int n = cJSON_GetArraySize(in);
  if (n > EMB_MAX_INPUTS)
    return preft_srv_bad(e, "input", "'input' holds %d inputs; at most %d", n, EMB_MAX_INPUTS);
  *out = preft_xcalloc((size_t)n, sizeof **out);
  bool strings = cJSON_IsString(in->child);
  for (const cJSON *x = in->child; x; x = x->next) {
    int i = (*n_out)++;
    if (strings && cJSON_IsString(x)) {
      if (ids_from_text(s, x->valuestring, i, &(*out)[i], e) != 0) return -1;
    } else if (!strings && cJSON_IsArray(x)) {
      if (ids_from_array(s, x, i, &(*out)[i], e) != 0) return -1;
    } else {
      return preft_srv_bad(e, "input", "%s (not a mix)", form);
    }
  }
  return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void put_base64(srv_buf *b, const unsigned char *p, size_t n) {
  preft_srv_buf_put(b, "\"", 1);
  for (size_t i = 0; i < n; i += 3) {
    unsigned v =
        (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    char q[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], i + 1 < n ? b64[v >> 6 & 63] : '=',
                 i + 2 < n ? b64[v & 63] : '='};
    preft_srv_buf_put(b, q, 4);
  }
  preft_srv_buf_put(b, "\"", 1);
}

static int parse_options(preft_server *s, const cJSON *root, bool *base64, bool *normalize,
                         srv_api_error *e) {
  const char *model, *fmt;
  if (preft_srv_get_string(root, "model", false, &model, e) != 0) return -1;
  if (model && strcmp(model, s->model_name) != 0) {
    if (s->engine && preft_engine_resolve_adapter(s->engine, model))
      return preft_srv_bad(e, "model",
                           "embeddings are of the base model '%s' only; adapters are not applied to them",
                           s->model_name);
    return preft_srv_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                          "The model '%s' does not exist", model);
  }
  if (preft_srv_get_string(root, "encoding_format", false, &fmt, e) != 0) return -1;
  if (fmt && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0)
    return preft_srv_bad(e, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
  *base64 = fmt && !strcmp(fmt, "base64");
  const cJSON *dim = cJSON_GetObjectItemCaseSensitive(root, "dimensions");
  int D = s->encoder ? s->encoder->cfg.dim : preft_engine_model(s->engine)->cfg.dim;
  if (dim && !cJSON_IsNull(dim) && (!cJSON_IsNumber(dim) || dim->valuedouble != D))
    return preft_srv_bad(e, "dimensions", "'dimensions' can only be %d (the model's hidden size)", D);
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalize");
  *normalize = true;
  if (norm && !cJSON_IsNull(norm)) {
    if (!cJSON_IsBool(norm)) return preft_srv_bad(e, "normalize", "'normalize' must be a boolean");
    *normalize = cJSON_IsTrue(norm);
  }
  const char *user;
  return preft_srv_get_string(root, "user", false, &user, e);
}

void preft_srv_route_embeddings(preft_server *s, srv_conn *c, srv_reply *r) {
  srv_api_error e;
  cJSON *root = NULL;
  emb_input *in = NULL;
  int n_in = 0;
  bool base64 = false, normalize = true;
  const preft_model *m = s->engine ? preft_engine_model(s->engine) : NULL;
  int D = m ? m->cfg.dim : s->encoder->cfg.dim;
  float *vec = preft_xmalloc(sizeof *vec * (size_t)D);
  srv_buf b = {0};
  if (preft_srv_parse_json_object(c->body.p, c->body.len, &root, &e) != 0 ||
      parse_options(s, root, &base64, &normalize, &e) != 0 || parse_inputs(s, root, &in, &n_in, &e) != 0)
    goto fail;
  long tokens = 0;
  for (int i = 0; i < n_in; i++) {
    if (in[i].n > s->max_context) {
      preft_srv_fail(&e, 400, "invalid_request_error", "context_length_exceeded", "input",
                     "'input[%d]' has %s%d tokens; this model's maximum context length is %d", i,
                     in[i].n > s->max_context ? "at least " : "", in[i].n, s->max_context);
      goto fail;
    }
    tokens += in[i].n;
  }
  preft_srv_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
  for (int i = 0; i < n_in; i++) {
    preft_error err;
    if ((m ? mean_hidden(m, in[i].ids, in[i].n, vec, &err)
           : encoder_embedding(s->encoder, in[i].ids, in[i].n, vec, &err)) != 0) {
      preft_srv_fail(&e, 500, "server_error", NULL, NULL, "embedding input %d failed: %s", i, err.msg);
      goto fail;
    }
    if (normalize) {
      double ss = 0;
      for (int d = 0; d < D; d++) ss += (double)vec[d] * vec[d];
      double inv = ss > 0 ? 1.0 / sqrt(ss) : 0;
      for (int d = 0; d < D; d++) vec[d] = (float)(vec[d] * inv);
    }
    preft_srv_buf_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
    if (base64) {
      put_base64(&b, (const unsigned char *)vec, sizeof *vec * (size_t)D); /* little-endian hosts */
    } else {
      preft_srv_buf_put(&b, "[", 1);
      for (int d = 0; d < D; d++) preft_srv_buf_printf(&b, d ? ",%.9g" : "%.9g", vec[d]);
      preft_srv_buf_put(&b, "]", 1);
    }
    preft_srv_buf_put(&b, "}", 1);
  }
  preft_srv_buf_puts(&b, "],\"model\":");
  preft_srv_buf_json_str(&b, s->model_name, strlen(s->model_name));
  preft_srv_buf_printf(&b, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", tokens, tokens);
  r->status = 200;
  r->content_type = "application/json";
  preft_srv_buf_free(&r->body);
  r->body = b;
  memset(&b, 0, sizeof b);
  goto done;
fail:
  preft_srv_reply_error(r, &e);
done:
  preft_srv_buf_free(&b);
  for (int i = 0; i < n_in; i++) free(in[i].ids);
  free(in);
  free(vec);
  cJSON_Delete(root);
}
