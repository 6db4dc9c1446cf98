/* cli_rl_data.c - `preft rl-data`: prompts of an RL task as text (for
 * pretraining a model on the task format) or as a JSONL task file (an eval
 * set that --task-file reads back). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "rl/rl_task.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: preft rl-data (--task NAME | --task-file FILE.jsonl) --n N [--seed S] [--start I]\n"
          "                     [--with-answers | --jsonl]\n\n"
          "Prints N prompts of an RL task, numbers I, I+1, ... of the stream seeded by S:\n"
          "  (default)        the prompt\n"
          "  --with-answers   \"PROMPT ANSWER\": text to pretrain a model on the task format\n"
          "  --jsonl          {\"prompt\", \"answer\", \"match\"}: a task file for --task-file\n\n"
          "  --task NAME      a built-in task, NAME or NAME:LEVEL:\n%s"
          "  --task-file F    a JSONL task file (lines {\"prompt\", \"answer\", \"match\"})\n"
          "  --n N            how many prompts\n"
          "  --seed S         the stream (default 1)\n"
          "  --start I        index of the first prompt (default 0)\n\n"
          "Training and held-out problems: every problem of a built-in task is on one side\n"
          "by a hash of its prompt (1 in %d is held out). Seeds below %llu draw only\n"
          "training problems, seeds from %llu up only held-out ones, so pretraining text\n"
          "and `train rl` (seeds < %llu) never see a problem of an eval set made with\n"
          "--seed %llu or more. Task files have no split.\n",
          preft_rl_task_help(), PREFT_RL_HELDOUT_EVERY, PREFT_RL_HELDOUT_SEED, PREFT_RL_HELDOUT_SEED,
          PREFT_RL_HELDOUT_SEED, PREFT_RL_HELDOUT_SEED);
}

int cli_rl_data(int argc, char **argv) {
  const char *task = NULL, *file = NULL;
  long n = -1, seed = 1, start = 0;
  bool with_answers = false, jsonl = false;
  const cli_opt opts[] = {
      {"--task", NULL, CLI_STR, &task},
      {"--task-file", NULL, CLI_STR, &file},
      {"--n", "-n", CLI_INT, &n, 0, 1e12},
      {"--seed", NULL, CLI_INT, &seed, 0, 9007199254740992.0},
      {"--start", NULL, CLI_INT, &start, 0, 9007199254740992.0},
      {"--with-answers", NULL, CLI_FLAG, &with_answers},
      {"--jsonl", NULL, CLI_FLAG, &jsonl},
      {NULL},
  };
  int pr = cli_parse("rl-data", argc, argv, opts, usage);
  if (pr != 0) return cli_parse_exit(pr);
  if ((task == NULL) == (file == NULL) || n < 0) {
    fprintf(stderr, "preft rl-data: needs --n and one of --task or --task-file (see --help)\n");
    return CLI_EXIT_USAGE;
  }
  if (with_answers && jsonl) {
    fprintf(stderr,
            "preft rl-data: --with-answers and --jsonl exclude each other (JSONL holds the answers)\n");
    return CLI_EXIT_USAGE;
  }
  preft_rl_task *t;
  preft_error err;
  if (preft_rl_task_open(task, file, &t, &err) != 0) {
    fprintf(stderr, "preft rl-data: %s\n", err.msg);
    return task ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
  }
  for (long i = 0; i < n; i++) {
    preft_rl_prompt p;
    preft_rl_task_draw(t, (uint64_t)seed, start + i, &p);
    if (jsonl) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "prompt", p.prompt);
      cJSON_AddStringToObject(o, "answer", p.answer);
      cJSON_AddStringToObject(o, "match", preft_rl_match_name(p.match));
      char *s = cJSON_PrintUnformatted(o);
      puts(s);
      cJSON_free(s);
      cJSON_Delete(o);
    } else if (with_answers) {
      /* one space between them, unless the prompt ends with it */
      size_t pl = strlen(p.prompt);
      printf("%s%s%s\n", p.prompt, pl && p.prompt[pl - 1] == ' ' ? "" : " ", p.answer);
    } else {
      puts(p.prompt);
    }
    preft_rl_prompt_clear(&p);
  }
  preft_rl_task_free(t);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "preft rl-data: writing the output failed\n");
    return CLI_EXIT_ERROR;
  }
  return CLI_EXIT_OK;
}
