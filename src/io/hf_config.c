/* hf_config.c - parsing config.json / generation_config.json (see hf_config.h). */
#include "io/hf_config.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "io/json_util.h"
#include "tensor/dtype.h"

const char *preft_arch_name(preft_arch arch) {
  switch (arch) {
    case PREFT_ARCH_QWEN2:
      return "Qwen2ForCausalLM";
    case PREFT_ARCH_MISTRAL:
      return "MistralForCausalLM";
    default:
      return "LlamaForCausalLM";
  }
}

static int parse_arch(const cJSON *root, const char *path, preft_arch *arch, preft_error *err) {
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  const char *name = NULL;
  if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0) {
    const cJSON *a = cJSON_GetArrayItem(archs, 0);
    if (!cJSON_IsString(a)) return preft_fail(err, "%s: field \"architectures\" must hold strings", path);
    name = a->valuestring;
    if (!strcmp(name, "LlamaForCausalLM"))
      *arch = PREFT_ARCH_LLAMA;
    else if (!strcmp(name, "Qwen2ForCausalLM"))
      *arch = PREFT_ARCH_QWEN2;
    else if (!strcmp(name, "MistralForCausalLM"))
      *arch = PREFT_ARCH_MISTRAL;
    else
      return preft_fail(err,
                        "%s: unsupported architecture \"%s\" (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
                        "MistralForCausalLM)",
                        path, name);
    return 0;
  }
  if (preft_json_str(root, path, "model_type", false, &name, err) != 0) return -1;
  if (!name)
    return preft_fail(err, "%s: neither \"architectures\" nor \"model_type\" says what model this is", path);
  if (!strcmp(name, "llama"))
    *arch = PREFT_ARCH_LLAMA;
  else if (!strcmp(name, "qwen2"))
    *arch = PREFT_ARCH_QWEN2;
  else if (!strcmp(name, "mistral"))
    *arch = PREFT_ARCH_MISTRAL;
  else
    return preft_fail(err, "%s: unsupported model_type \"%s\" (supported: llama, qwen2, mistral)", path,
                      name);
  return 0;
}

/* eos_token_id may be an integer or a list of integers. */
static int parse_eos(const cJSON *root, const char *path, int *ids, int *n, preft_error *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
  *n = 0;
  if (!v || cJSON_IsNull(v)) return 0;
  if (cJSON_IsNumber(v)) {
    long id;
    if (preft_json_int(root, path, "eos_token_id", true, 0, INT_MAX, 0, &id, err) != 0) return -1;
    ids[(*n)++] = (int)id;
    return 0;
  }
  if (!cJSON_IsArray(v))
    return preft_fail(err, "%s: field \"eos_token_id\" must be an integer or a list", path);
  const cJSON *e;
  cJSON_ArrayForEach(e, v) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT_MAX ||
        e->valuedouble != floor(e->valuedouble))
      return preft_fail(err, "%s: field \"eos_token_id\" holds a value that is not a token id", path);
    if (*n == PREFT_MAX_EOS)
      return preft_fail(err, "%s: field \"eos_token_id\" lists more than %d ids", path, PREFT_MAX_EOS);
    ids[(*n)++] = (int)e->valuedouble;
  }
  return 0;
}

static int parse_rope_scaling(const cJSON *root, const char *path, preft_model_config *c, preft_error *err) {
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  c->rope_type = PREFT_ROPE_DEFAULT;
  if (!rs || cJSON_IsNull(rs)) return 0;
  if (!cJSON_IsObject(rs))
    return preft_fail(err, "%s: field \"rope_scaling\" must be an object or null", path);
  const char *type = NULL;
  if (preft_json_str(rs, path, "rope_type", false, &type, err) != 0) return -1;
  if (!type && preft_json_str(rs, path, "type", false, &type, err) != 0) return -1;
  if (!type) return preft_fail(err, "%s: field \"rope_scaling\" has no \"rope_type\"", path);
  if (!strcmp(type, "default")) return 0;
  if (preft_json_num(rs, path, "factor", true, 1, &c->rope_factor, err) != 0) return -1;
  if (!(c->rope_factor > 0))
    return preft_fail(err, "%s: field \"rope_scaling.factor\" must be positive", path);
  if (!strcmp(type, "linear")) {
    c->rope_type = PREFT_ROPE_LINEAR;
    return 0;
  }
  if (strcmp(type, "llama3") != 0)
    return preft_fail(err, "%s: unsupported rope_scaling type \"%s\" (supported: default, linear, llama3)",
                      path, type);
  c->rope_type = PREFT_ROPE_LLAMA3;
  long orig;
  if (preft_json_num(rs, path, "low_freq_factor", true, 1, &c->rope_low_freq_factor, err) != 0 ||
      preft_json_num(rs, path, "high_freq_factor", true, 4, &c->rope_high_freq_factor, err) != 0 ||
      preft_json_int(rs, path, "original_max_position_embeddings", true, 1, INT_MAX, 8192, &orig, err) != 0)
    return preft_fail_prefix(err, "in rope_scaling");
  if (!(c->rope_high_freq_factor > c->rope_low_freq_factor) || !(c->rope_low_freq_factor > 0))
    return preft_fail(err, "%s: rope_scaling needs high_freq_factor > low_freq_factor > 0", path);
  c->rope_original_max_pos = (int)orig;
  return 0;
}

int preft_config_parse(preft_model_config *cfg, const char *json, const char *path, preft_error *err) {
  preft_model_config c;
  memset(&c, 0, sizeof c);
  cJSON *root = cJSON_Parse(json);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return preft_fail(err, "%s: malformed JSON (expected an object)", path);
  }
  int rc = -1;
  long v[8];
  double eps, theta;
  bool tie, attn_bias;
  if (parse_arch(root, path, &c.arch, err) != 0) goto done;
  if (preft_json_int(root, path, "vocab_size", true, 1, 1 << 24, 0, &v[0], err) != 0 ||
      preft_json_int(root, path, "hidden_size", true, 1, 1 << 16, 0, &v[1], err) != 0 ||
      preft_json_int(root, path, "intermediate_size", true, 1, 1 << 18, 0, &v[2], err) != 0 ||
      preft_json_int(root, path, "num_hidden_layers", true, 1, 1024, 0, &v[3], err) != 0 ||
      preft_json_int(root, path, "num_attention_heads", true, 1, 1024, 0, &v[4], err) != 0)
    goto done;
  if (preft_json_int(root, path, "num_key_value_heads", false, 1, 1024, v[4], &v[5], err) != 0) goto done;
  if (preft_json_int(root, path, "max_position_embeddings", false, 1, 1 << 24, 2048, &v[6], err) != 0)
    goto done;
  if (preft_json_int(root, path, "head_dim", false, 2, 1024, 0, &v[7], err) != 0) goto done;
  c.vocab = (int)v[0];
  c.dim = (int)v[1];
  c.ffn = (int)v[2];
  c.n_layers = (int)v[3];
  c.n_heads = (int)v[4];
  c.n_kv_heads = (int)v[5];
  c.max_pos = (int)v[6];
  if (c.n_heads % c.n_kv_heads != 0) {
    preft_fail(err, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", path,
               c.n_heads, c.n_kv_heads);
    goto done;
  }
  if (v[7] == 0) {
    if (c.dim % c.n_heads != 0) {
      preft_fail(
          err, "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d) and no head_dim is given",
          path, c.dim, c.n_heads);
      goto done;
    }
    v[7] = c.dim / c.n_heads;
  }
  c.head_dim = (int)v[7];
  if (c.head_dim % 2 != 0) {
    preft_fail(err, "%s: head_dim %d must be even for rotary embeddings", path, c.head_dim);
    goto done;
  }
  if (preft_json_num(root, path, "rms_norm_eps", false, 1e-6, &eps, err) != 0 ||
      preft_json_num(root, path, "rope_theta", false, 10000.0, &theta, err) != 0)
    goto done;
  if (!(eps > 0) || !(theta > 0)) {
    preft_fail(err, "%s: rms_norm_eps and rope_theta must be positive", path);
    goto done;
  }
  c.norm_eps = (float)eps;
  c.rope_theta = theta;
  if (parse_rope_scaling(root, path, &c, err) != 0) goto done;
  if (preft_json_bool(root, path, "tie_word_embeddings", false, &tie, err) != 0) goto done;
  c.tie_embeddings = tie;
  if (preft_json_bool(root, path, "attention_bias", false, &attn_bias, err) != 0) goto done;
  if (c.arch == PREFT_ARCH_QWEN2) {
    c.qkv_bias = true; /* Qwen2 always has q/k/v biases and no o bias */
    bool sliding;
    if (preft_json_bool(root, path, "use_sliding_window", false, &sliding, err) != 0) goto done;
    if (sliding) {
      preft_fail(err, "%s: field \"use_sliding_window\": Qwen2 sliding-window layers are not supported",
                 path);
      goto done;
    }
  } else if (c.arch == PREFT_ARCH_LLAMA) {
    c.qkv_bias = c.o_bias = attn_bias;
  } else {
    long w;
    if (preft_json_int(root, path, "sliding_window", false, 1, INT_MAX, 0, &w, err) != 0) goto done;
    c.sliding_window = (int)w;
  }
  long bos;
  if (preft_json_int(root, path, "bos_token_id", false, 0, INT_MAX, -1, &bos, err) != 0) goto done;
  c.bos_id = (int)bos;
  if (parse_eos(root, path, c.eos_ids, &c.n_eos, err) != 0) goto done;
  const char *dt = NULL;
  if (preft_json_str(root, path, "torch_dtype", false, &dt, err) != 0) goto done;
  c.torch_dtype = preft_dtype_from_torch(dt);
  *cfg = c;
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

int preft_config_load(preft_model_config *cfg, const char *dir, preft_error *err) {
  char *path = preft_path_join(dir, "config.json");
  char *text;
  int rc = preft_read_file(path, &text, NULL, err);
  if (rc == 0) {
    rc = preft_config_parse(cfg, text, path, err);
    free(text);
  }
  free(path);
  return rc;
}

/* The shortest decimal that reads back as the same float (1e-05, not
 * 9.99999974737875e-06), as a double for cJSON. */
static double float_for_json(float f) {
  char buf[32];
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)f);
    if (strtof(buf, NULL) == f) return strtod(buf, NULL);
  }
  return (double)f;
}

int preft_config_write(const preft_model_config *c, const char *path, preft_error *err) {
  static const char *types[] = {"llama", "qwen2", "mistral"};
  cJSON *root = cJSON_CreateObject();
  cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
  cJSON_AddItemToArray(archs, cJSON_CreateString(preft_arch_name(c->arch)));
  cJSON_AddStringToObject(root, "model_type", types[c->arch]);
  cJSON_AddNumberToObject(root, "vocab_size", c->vocab);
  cJSON_AddNumberToObject(root, "hidden_size", c->dim);
  cJSON_AddNumberToObject(root, "intermediate_size", c->ffn);
  cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
  cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
  cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
  cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
  cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_pos);
  cJSON_AddNumberToObject(root, "rms_norm_eps", float_for_json(c->norm_eps));
  cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
  cJSON_AddStringToObject(root, "hidden_act", "silu");
  cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_embeddings);
  if (c->arch == PREFT_ARCH_LLAMA) cJSON_AddBoolToObject(root, "attention_bias", c->qkv_bias);
  if (c->rope_type == PREFT_ROPE_DEFAULT) {
    cJSON_AddNullToObject(root, "rope_scaling");
  } else {
    cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
    cJSON_AddStringToObject(rs, "rope_type", c->rope_type == PREFT_ROPE_LLAMA3 ? "llama3" : "linear");
    cJSON_AddNumberToObject(rs, "factor", c->rope_factor);
    if (c->rope_type == PREFT_ROPE_LLAMA3) {
      cJSON_AddNumberToObject(rs, "low_freq_factor", c->rope_low_freq_factor);
      cJSON_AddNumberToObject(rs, "high_freq_factor", c->rope_high_freq_factor);
      cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_original_max_pos);
    }
  }
  if (c->bos_id >= 0) cJSON_AddNumberToObject(root, "bos_token_id", c->bos_id);
  if (c->n_eos == 1)
    cJSON_AddNumberToObject(root, "eos_token_id", c->eos_ids[0]);
  else if (c->n_eos > 1)
    cJSON_AddItemToObject(root, "eos_token_id", cJSON_CreateIntArray(c->eos_ids, c->n_eos));
  cJSON_AddStringToObject(root, "torch_dtype", preft_dtype_torch_name(c->torch_dtype));
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  int rc = preft_write_atomic(path, text, strlen(text), err);
  free(text);
  return rc;
}

int preft_generation_config_load(preft_generation_config *gen, const char *dir, preft_error *err) {
  preft_generation_config g = {
      .do_sample = false, .temperature = 1.0, .top_p = 1.0, .min_p = 0.0, .top_k = 50};
  char *path = preft_path_join(dir, "generation_config.json");
  int rc = 0;
  if (preft_file_exists(path)) {
    cJSON *root = NULL;
    long topk, maxnew;
    rc = preft_json_load(path, &root, err);
    if (rc == 0)
      rc = (preft_json_bool(root, path, "do_sample", false, &g.do_sample, err) != 0 ||
            preft_json_num(root, path, "temperature", false, 1.0, &g.temperature, err) != 0 ||
            preft_json_num(root, path, "top_p", false, 1.0, &g.top_p, err) != 0 ||
            preft_json_num(root, path, "min_p", false, 0.0, &g.min_p, err) != 0 ||
            preft_json_int(root, path, "top_k", false, 0, INT_MAX, 50, &topk, err) != 0 ||
            preft_json_int(root, path, "max_new_tokens", false, 0, INT_MAX, 0, &maxnew, err) != 0 ||
            parse_eos(root, path, g.eos_ids, &g.n_eos, err) != 0)
               ? -1
               : 0;
    if (rc == 0) {
      g.top_k = (int)topk;
      g.max_new_tokens = (int)maxnew;
    }
    cJSON_Delete(root);
  }
  free(path);
  if (rc == 0) *gen = g;
  return rc;
}
