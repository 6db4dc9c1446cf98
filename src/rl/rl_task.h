/* rl_task.h - where the prompts and the rewards of reinforcement learning
 * come from (`preft train rl`, `preft eval rl`).
 *
 * A task is a stream of prompts, each with the answer its verifier expects:
 * a built-in generator (addition, reverse, count), seeded, or the lines of a
 * JSONL file ({"prompt", "answer", "match"}). A reward source scores
 * completions: the task's own deterministic verifier, or a reward command
 * (`--reward-cmd`) that reads {"prompt", "completion", "answer"} lines on
 * stdin and writes one number per line on stdout.
 *
 *   preft_rl_task *t;
 *   if (preft_rl_task_open("addition", NULL, &t, &err) != 0) ...
 *   preft_rl_prompt p;
 *   preft_rl_task_draw(t, seed, i, &p);            // prompt i of the stream
 *   preft_rl_rewarder *rw;
 *   preft_rl_rewarder_open(NULL, 10.0, &rw, &err);  // NULL: the task's verifier
 *   preft_rl_rewarder_score(rw, &p, completions, n, rewards, &err);
 */
#ifndef PREFT_RL_TASK_H
#define PREFT_RL_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "preft/base.h"

/* How a completion is checked against the answer. */
typedef enum {
  PREFT_RL_MATCH_EXACT = 0,    /* completion (trimmed of surrounding whitespace) == answer */
  PREFT_RL_MATCH_CONTAINS,     /* answer occurs in the completion */
  PREFT_RL_MATCH_REGEX,        /* answer is a PCRE2 pattern that matches somewhere */
  PREFT_RL_MATCH_NUMBER,       /* the last number in the completion equals the answer */
  PREFT_RL_MATCH_FIRST_LINE,   /* the completion's first line (trimmed) == answer: the built-in
                                  tasks, whose models go on with the next "Q: ..." line */
  PREFT_RL_MATCH_FIRST_NUMBER, /* the first number in the completion equals the answer */
  PREFT_RL_MATCH_DIGITS,       /* partial credit on the completion's first line (trimmed): the share
                                  of places i where line[i] == answer[i], over the longer of the
                                  two; 1 only when they are equal (`addition` with
                                  --partial-credit) */
} preft_rl_match;

/* The name of a match kind as task files spell it ("exact", "first_line",
 * ...), and back (-1 for an unknown name). */
const char *preft_rl_match_name(preft_rl_match m);
int preft_rl_match_parse(const char *name);

/* Training and held-out problems of the built-in tasks. Every problem
 * belongs to one side by a hash of its prompt (one problem in
 * PREFT_RL_HELDOUT_EVERY is held out); a stream whose seed is below
 * PREFT_RL_HELDOUT_SEED draws only training problems, a stream whose seed is
 * at least PREFT_RL_HELDOUT_SEED only held-out ones. So `train rl --seed 11`
 * and a pretraining text from `rl-data --seed 1` never show a problem that
 * `eval rl --seed 1000000` asks. File tasks have no split: give them
 * separate files. */
#define PREFT_RL_HELDOUT_SEED 1000000ull
#define PREFT_RL_HELDOUT_EVERY 8

typedef struct preft_rl_prompt {
  char *prompt; /* the text given to the model */
  char *answer; /* what the verifier expects */
  preft_rl_match match;
} preft_rl_prompt;

typedef struct preft_rl_task preft_rl_task;

/* Opens a built-in task by name (file == NULL) or a JSONL task file (name ==
 * NULL). Fails naming the unknown task, or FILE:LINE and the field of a bad
 * line. */
int preft_rl_task_open(const char *name, const char *file, preft_rl_task **out, preft_error *err);
void preft_rl_task_free(preft_rl_task *t);
/* Prompt number `index` of the stream seeded by `seed`: the same (seed,
 * index) always gives the same prompt (a file task: line (seed-permuted
 * index) mod lines). *out is owned by the caller (preft_rl_prompt_clear). */
void preft_rl_task_draw(const preft_rl_task *t, uint64_t seed, int64_t index, preft_rl_prompt *out);
/* partial: `addition` is scored digit by digit (match "digits": partial
 * credit, fewer all-equal groups); else (the default), like every other
 * built-in task, by exact match of the first line ("first_line"). */
void preft_rl_task_set_partial(preft_rl_task *t, bool partial);
void preft_rl_prompt_clear(preft_rl_prompt *p);
/* Names of the built-in tasks, NULL-terminated. */
const char *const *preft_rl_task_names(void);
/* One line per built-in task for --help: its name, difficulty parameter,
 * default, and a sample prompt and answer. Static storage. */
const char *preft_rl_task_help(void);
/* The task's canonical name: "addition:2" (the default level filled in) or
 * the file's path. */
const char *preft_rl_task_name(const preft_rl_task *t);
/* Prompts a file task holds (0 for a generator). */
int64_t preft_rl_task_size(const preft_rl_task *t);

/* The deterministic verifier: 1.0 when the completion matches, else 0.0
 * (match "digits": a share in [0, 1], 1.0 only for an exact match, so that
 * accuracy, the share of rewards >= 1, stays exact match). */
double preft_rl_verify(const preft_rl_prompt *p, const char *completion);

typedef struct preft_rl_rewarder preft_rl_rewarder;

/* cmd == NULL: rewards from preft_rl_verify. Otherwise cmd is run with
 * /bin/sh -c once, kept running, and fed one JSON line per completion;
 * timeout_s bounds the wait for each answer. */
int preft_rl_rewarder_open(const char *cmd, double timeout_s, preft_rl_rewarder **out, preft_error *err);
/* rewards[i] for completions[i] of prompts[i] (i < n). A reward command that
 * exits, hangs past the timeout or prints something that is not one finite
 * number fails with an error naming the line; the rewarder is unusable
 * after a failure. */
int preft_rl_rewarder_score(preft_rl_rewarder *rw, const preft_rl_prompt *prompts,
                            const char *const *completions, int n, double *rewards, preft_error *err);
void preft_rl_rewarder_free(preft_rl_rewarder *rw);

#endif
