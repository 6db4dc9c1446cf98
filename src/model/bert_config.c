/* bert_config.c - a BERT config.json (see bert.h): the fields transformers'
 * BertConfig reads, with its defaults; settings preft does not implement are
 * refused naming the field. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/json_util.h"
#include "tensor/dtype.h"
#include "model/bert.h"

static bool starts_with(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

/* model_type "bert", or (when absent) a first architecture named Bert*. */
static int check_model(const cJSON *root, const char *path, preft_error *err) {
  const char *type = NULL;
  if (preft_json_str(root, path, "model_type", false, &type, err) != 0) return -1;
  if (type) {
    if (strcmp(type, "bert") != 0)
      return preft_fail(err, "%s: field \"model_type\" is \"%s\"; the encoder loads \"bert\"", path, type);
    return 0;
  }
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  const cJSON *a = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
  if (cJSON_IsString(a) && starts_with(a->valuestring, "Bert")) return 0;
  return preft_fail(err, "%s: neither \"model_type\": \"bert\" nor a Bert* entry in \"architectures\"", path);
}

int preft_bert_config_parse(preft_bert_config *cfg, const char *json, const char *path, preft_error *err) {
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return preft_fail(err, "%s: malformed JSON (expected an object)", path);
  }
  preft_bert_config c;
  memset(&c, 0, sizeof c);
  int rc = -1;
  long v[9];
  double eps;
  const char *act = NULL, *pos_type = NULL, *dt = NULL;
  if (check_model(root, path, err) != 0) goto done;
  if (preft_json_int(root, path, "vocab_size", true, 1, 1 << 24, 0, &v[0], err) != 0 ||
      preft_json_int(root, path, "hidden_size", true, 1, 1 << 16, 0, &v[1], err) != 0 ||
      preft_json_int(root, path, "num_attention_heads", true, 1, 1024, 0, &v[2], err) != 0 ||
      preft_json_int(root, path, "intermediate_size", true, 1, 1 << 18, 0, &v[3], err) != 0 ||
      preft_json_int(root, path, "num_hidden_layers", true, 1, 1024, 0, &v[4], err) != 0 ||
      preft_json_int(root, path, "max_position_embeddings", false, 1, 1 << 20, 512, &v[5], err) != 0 ||
      preft_json_int(root, path, "type_vocab_size", false, 1, 1 << 16, 2, &v[6], err) != 0 ||
      preft_json_int(root, path, "pad_token_id", false, 0, 1 << 24, 0, &v[7], err) != 0 ||
      preft_json_num(root, path, "layer_norm_eps", false, 1e-12, &eps, err) != 0 ||
      preft_json_str(root, path, "hidden_act", false, &act, err) != 0 ||
      preft_json_str(root, path, "position_embedding_type", false, &pos_type, err) != 0 ||
      preft_json_str(root, path, "torch_dtype", false, &dt, err) != 0)
    goto done;
  c.vocab = (int)v[0];
  c.dim = (int)v[1];
  c.n_heads = (int)v[2];
  c.ffn = (int)v[3];
  c.n_layers = (int)v[4];
  c.max_pos = (int)v[5];
  c.type_vocab = (int)v[6];
  c.pad_id = (int)v[7];
  if (c.dim % c.n_heads != 0) {
    preft_fail(err, "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d)", path, c.dim,
               c.n_heads);
    goto done;
  }
  c.head_dim = c.dim / c.n_heads;
  if (!(eps > 0) || eps > 1.0) {
    preft_fail(err, "%s: field \"layer_norm_eps\" must be in (0, 1]", path);
    goto done;
  }
  c.ln_eps = (float)eps;
  if (act && strcmp(act, "gelu") != 0) {
    preft_fail(err, "%s: field \"hidden_act\" is \"%s\"; only \"gelu\" (the exact erf GELU) is supported",
               path, act);
    goto done;
  }
  if (pos_type && strcmp(pos_type, "absolute") != 0) {
    preft_fail(err, "%s: field \"position_embedding_type\" is \"%s\"; only \"absolute\" is supported", path,
               pos_type);
    goto done;
  }
  c.torch_dtype = preft_dtype_from_torch(dt);
  *cfg = c;
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

int preft_bert_config_load(preft_bert_config *cfg, const char *dir, preft_error *err) {
  char *path = preft_path_join(dir, "config.json");
  char *text;
  int rc = preft_read_file(path, &text, NULL, err);
  if (rc == 0) {
    rc = preft_bert_config_parse(cfg, text, path, err);
    free(text);
  }
  free(path);
  return rc;
}
