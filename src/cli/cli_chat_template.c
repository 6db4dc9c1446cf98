/* cli_chat_template.c - `preft chat-template`: renders a tokenizer's chat
 * template with a conversation, as apply_chat_template(tokenize=False). */
#include <stdio.h>
#include <string.h>

#include "base/file.h"
#include "cli/cli.h"
#include "text/jinja.h"
#include "text/tokenizer.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft chat-template --tokenizer PATH --messages FILE.json [--add-generation-prompt]\n"
          "                           [--template FILE.jinja]\n\n"
          "Prints the prompt the model directory's chat_template renders (no newline added).\n\n"
          "  --tokenizer PATH         model directory (tokenizer_config.json holds chat_template, bos/eos)\n"
          "  --messages FILE.json     [{\"role\": ..., \"content\": ...}, ...] or {\"messages\": [...], "
          "other variables}\n"
          "  --add-generation-prompt  end with the assistant header, ready for generation\n"
          "  --template FILE.jinja    use this template instead of the tokenizer's\n");
}

int cli_chat_template(int argc, char **argv) {
  const char *path = NULL, *messages = NULL, *tmpl_path = NULL;
  bool agp = false;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(argv[i], "--tokenizer")) {
      if (!(path = cli_value("chat-template", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--messages")) {
      if (!(messages = cli_value("chat-template", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--template")) {
      if (!(tmpl_path = cli_value("chat-template", argc, argv, &i))) return CLI_EXIT_USAGE;
    } else if (!strcmp(argv[i], "--add-generation-prompt")) {
      agp = true;
    } else {
      fprintf(stderr, "preft chat-template: unknown option '%s' (see --help)\n", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (!path || !messages) {
    fprintf(stderr, "preft chat-template: needs --tokenizer and --messages (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  preft_error err;
  char *json = NULL, *tmpl = NULL, *out = NULL;
  size_t size;
  preft_tokenizer *tok = NULL;
  int rc = CLI_EXIT_ERROR;
  if (preft_read_file(messages, &json, &size, &err) ||
      (tmpl_path && preft_read_file(tmpl_path, &tmpl, &size, &err)) ||
      preft_tokenizer_load(&tok, path, &err)) {
    fprintf(stderr, "preft chat-template: %s\n", err.msg);
    goto done;
  }
  if (tmpl) {
    cJSON *in = cJSON_Parse(json);
    cJSON *ctx = in;
    if (cJSON_IsArray(in)) {
      ctx = cJSON_CreateObject();
      cJSON_AddItemToObject(ctx, "messages", in);
    }
    if (!cJSON_IsObject(ctx)) {
      fprintf(stderr, "preft chat-template: %s: expected a JSON array or object\n", messages);
      cJSON_Delete(ctx);
      goto done;
    }
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", agp);
    const char *bos = preft_tokenizer_bos_token(tok), *eos = preft_tokenizer_eos_token(tok);
    cJSON_AddStringToObject(ctx, "bos_token", bos ? bos : "");
    cJSON_AddStringToObject(ctx, "eos_token", eos ? eos : "");
    int r = preft_jinja_render(tmpl, tmpl_path, ctx, &out, &err);
    cJSON_Delete(ctx);
    if (r) {
      fprintf(stderr, "preft chat-template: %s\n", err.msg);
      goto done;
    }
  } else if (preft_chat_template_render(tok, json, agp, &out, &err)) {
    fprintf(stderr, "preft chat-template: %s\n", err.msg);
    goto done;
  }
  fputs(out, stdout);
  rc = fflush(stdout) ? CLI_EXIT_ERROR : CLI_EXIT_OK;
done:
  free(out);
  free(json);
  free(tmpl);
  preft_tokenizer_free(tok);
  return rc;
}
