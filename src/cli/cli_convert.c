/* cli_convert.c - `preft convert`: a Hugging Face model directory or a PEFT
 * LoRA adapter to the GGUF files llama.cpp loads (src/model/gguf_export.h
 * says what is written). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "io/gguf.h"
#include "cli/cli.h"
#include "model/adapter.h"
#include "model/gguf_export.h"
#include "model/llama.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft convert -m MODEL_DIR --to gguf -o FILE [options]\n"
          "       preft convert -a ADAPTER_DIR [-m BASE_DIR] --to gguf -o FILE [options]\n\n"
          "Writes a model (with its tokenizer) or a LoRA adapter as a GGUF file for\n"
          "llama.cpp (architectures llama and qwen2), atomically.\n\n"
          "  -m DIR             the model (with -a: the base model; only its config.json is read);\n"
          "                     a GGUF file too (re-typed, e.g. F16 to q4_k, with its own tokenizer)\n"
          "  -a DIR             a PEFT LoRA adapter directory (ReFT adapters have no llama.cpp form)\n"
          "  --to gguf          the output format (only gguf)\n"
          "  -o FILE            output file\n"
          "  --type T           auto (each matrix as stored, default), f32, f16, bf16, or quantized:\n"
          "                     q8_0, q4_0, q5_0, q4_k, q6_k (ggml's reference quantizers; rows that\n"
          "                     are not whole 256-blocks fall back as llama.cpp does: q4_k to q5_0,\n"
          "                     q6_k to q8_0); --outtype is the same option\n"
          "  --tokenizer PATH   take the tokenizer from PATH (a directory or tokenizer.json);\n"
          "                     default: the model directory's, when it has one\n"
          "  --no-tokenizer     write no vocabulary (enough for llama-bench, not for text)\n"
          "  --tokenizer-pre N  llama.cpp pre-tokenizer name (default: recognised from tokenizer.json)\n"
          "  --name NAME        general.name (default: the directory's name)\n\n"
          "Without -m, an adapter's base is looked up at the path its adapter_config.json\n"
          "gives as base_model_name_or_path.\n");
}

static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The last path component of dir (without trailing slashes), into buf. */
static const char *base_name(const char *dir, char *buf, size_t n) {
  size_t len = strlen(dir);
  while (len > 1 && dir[len - 1] == '/') len--;
  size_t start = len;
  while (start > 0 && dir[start - 1] != '/') start--;
  snprintf(buf, n, "%.*s", (int)(len - start), dir + start);
  return buf;
}

/* base_model_name_or_path of a PEFT adapter when it names a directory with
 * a config.json; NULL otherwise (heap string). */
static char *adapter_base_dir(const char *adapter_dir) {
  char *cfg_path = preft_path_join(adapter_dir, "adapter_config.json"), *text = NULL, *out = NULL;
  size_t len;
  preft_error e;
  if (preft_read_file(cfg_path, &text, &len, &e) == 0) {
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "base_model_name_or_path");
    if (cJSON_IsString(b) && b->valuestring[0]) {
      char *c = preft_path_join(b->valuestring, "config.json");
      if (preft_file_exists(c)) out = preft_xstrdup(b->valuestring);
      free(c);
    }
    cJSON_Delete(root);
  }
  free(text);
  free(cfg_path);
  return out;
}

static int convert_adapter(const char *adapter_dir, const char *base_dir, const char *out,
                           const preft_gguf_export_opts *o) {
  preft_error err;
  char *reft = preft_path_join(adapter_dir, "reft_config.json");
  bool is_reft = preft_file_exists(reft);
  free(reft);
  if (is_reft) {
    fprintf(stderr, "preft convert: %s: llama.cpp has no ReFT; only LoRA adapters export to GGUF\n",
            adapter_dir);
    return CLI_EXIT_ERROR;
  }
  char *found = base_dir ? NULL : adapter_base_dir(adapter_dir);
  if (!base_dir && !found) {
    fprintf(
        stderr,
        "preft convert: %s: give the base model with -m DIR (its config.json says the architecture and the "
        "head layout the export needs)\n",
        adapter_dir);
    return CLI_EXIT_USAGE;
  }
  preft_model_config cfg;
  preft_adapter *a = NULL;
  int rc = preft_config_load(&cfg, base_dir ? base_dir : found, &err);
  if (rc == 0) rc = preft_adapter_load(&a, adapter_dir, adapter_dir, &cfg, &err);
  if (rc == 0) rc = preft_gguf_export_lora(a, &cfg, o, out, &err);
  if (rc != 0)
    fprintf(stderr, "preft convert: %s\n", err.msg);
  else
    fprintf(stderr, "preft convert: wrote %s (LoRA, %s)\n", out, preft_gguf_arch_name(cfg.arch));
  preft_adapter_free(a);
  free(found);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

static int convert_model(const char *dir, const char *tok_path, bool no_tok, const char *out,
                         const preft_gguf_export_opts *o) {
  preft_error err;
  preft_tokenizer *tok = NULL;
  if (!no_tok) {
    /* explicitly asked: must load; otherwise only when the model has one */
    char *own = preft_path_join(dir, "tokenizer.json");
    bool has_own = is_dir(dir) ? preft_file_exists(own) : cli_has_tokenizer(dir);
    free(own);
    if (tok_path || has_own) {
      if (preft_tokenizer_load(&tok, tok_path ? tok_path : dir, &err) != 0) {
        fprintf(stderr, "preft convert: tokenizer: %s\n", err.msg);
        return CLI_EXIT_ERROR;
      }
    } else {
      fprintf(stderr,
              "preft convert: %s has no tokenizer.json: writing no vocabulary (--tokenizer PATH adds one)\n",
              dir);
    }
  }
  preft_model *m = NULL;
  int rc = preft_model_load(&m, dir, &err);
  if (rc == 0) rc = preft_gguf_export_model(m, tok, o, out, &err);
  if (rc != 0)
    fprintf(stderr, "preft convert: %s\n", err.msg);
  else
    fprintf(stderr, "preft convert: wrote %s (%s, %d layers, %s)\n", out, preft_gguf_arch_name(m->cfg.arch),
            m->cfg.n_layers, tok ? "with tokenizer" : "no tokenizer");
  preft_model_free(m);
  preft_tokenizer_free(tok);
  return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

int cli_convert(int argc, char **argv) {
  const char *model = NULL, *adapter = NULL, *to = NULL, *out = NULL, *tok_path = NULL, *outtype = NULL;
  bool no_tok = false;
  preft_gguf_export_opts o = {.outtype = -1};
  const cli_opt opts[] = {
      {"--model", "-m", CLI_STR, &model},
      {"--adapter", "-a", CLI_STR, &adapter},
      {"--to", NULL, CLI_STR, &to},
      {"--output", "-o", CLI_STR, &out},
      {"--outtype", NULL, CLI_STR, &outtype},
      {"--type", NULL, CLI_STR, &outtype},
      {"--tokenizer", NULL, CLI_STR, &tok_path},
      {"--no-tokenizer", NULL, CLI_FLAG, &no_tok},
      {"--tokenizer-pre", NULL, CLI_STR, &o.tokenizer_pre},
      {"--name", NULL, CLI_STR, &o.name},
      {NULL},
  };
  int r = cli_parse("convert", argc, argv, opts, usage);
  if (r != 0) return cli_parse_exit(r);
  if (outtype && strcmp(outtype, "auto") != 0) {
    int dt = preft_dtype_parse(outtype);
    if (dt < 0) {
      fprintf(
          stderr,
          "preft convert: --type expects auto, f32, f16, bf16, q8_0, q4_0, q5_0, q4_k or q6_k, got '%s'\n",
          outtype);
      return CLI_EXIT_USAGE;
    }
    o.outtype = dt;
  }
  if (!to || !out || (!model && !adapter)) {
    fprintf(stderr, "preft convert: -m or -a, --to and -o are required (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (strcmp(to, "gguf") != 0) {
    fprintf(stderr, "preft convert: --to '%s' is not supported (only gguf)\n", to);
    return CLI_EXIT_USAGE;
  }
  if (no_tok && tok_path) {
    fprintf(stderr, "preft convert: --tokenizer and --no-tokenizer contradict each other\n");
    return CLI_EXIT_USAGE;
  }
  const char *dir = adapter ? adapter : model;
  if (!is_dir(dir) && (adapter || !preft_gguf_is_file(dir))) {
    fprintf(stderr, "preft convert: %s is not a directory\n", dir);
    return CLI_EXIT_ERROR;
  }
  char name[256];
  if (!o.name) o.name = base_name(dir, name, sizeof name);
  if (adapter) return convert_adapter(adapter, model, out, &o);
  return convert_model(model, tok_path, no_tok, out, &o);
}
