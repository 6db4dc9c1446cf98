/* trial.h - one trial: a task, an agent, a sandbox, a reward.
 *
 * The steps: build the task's environment (or find it cached); start a
 * sandbox over it with /logs/agent and /logs/verifier bound to the trial's
 * agent/ and verifier/ folders (and /solution for the oracle only); run the
 * agent until it is done or its timeout; copy the tests to /tests; run them
 * with the verifier's timeout; read the reward; stop the sandbox (always:
 * success, error, timeout). The trial folder then holds
 *
 *   env-build.log      the environment build's output
 *   agent/             the agent's log (oracle.txt, commands.txt, terminus logs)
 *   verifier/          test-stdout.txt and the reward files
 *   result.json        timings, tokens, reward, error (written atomically)
 *
 *   preft_trial_opts o = {.task = t, .agent = PREFT_AGENT_ORACLE, .trial_dir = "jobs/j/hello__1",
 *                         .cache_dir = cache, .timeout_multiplier = 1};
 *   preft_trial_result r;
 *   preft_trial_run(&o, &r);   // r.reward, r.error
 */
#ifndef PREFT_TASKS_TRIAL_H
#define PREFT_TASKS_TRIAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "tasks/agent.h"
#include "tasks/task.h"

typedef enum {
  PREFT_AGENT_ORACLE = 0, /* bash /solution/solve.sh */
  PREFT_AGENT_NOP,        /* nothing */
  PREFT_AGENT_TERMINUS,   /* the LLM agent (agent.h) */
  PREFT_AGENT_COMMANDS,   /* a given shell script (`preft tasks reward`) */
} preft_agent_kind;

const char *preft_agent_name(preft_agent_kind k);
/* "oracle", "nop", "terminus" (not "commands"); -1 for anything else */
int preft_agent_parse(const char *s);

typedef struct preft_trial_opts {
  const preft_task *task;
  preft_agent_kind agent;
  const preft_terminus_opts *terminus; /* TERMINUS: endpoint and model (log_dir is set per trial) */
  const char *commands;                /* COMMANDS: the shell text, run with bash */
  const char *trial_dir;               /* created if missing */
  const char *cache_dir;               /* environment layers */
  const char *base_dir;                /* NULL: the host's root */
  double timeout_multiplier;           /* <= 0: 1 */
  int attempt;                         /* 1-based, for result.json */
  int64_t max_pids;                    /* processes per trial; 0: 1024 */
  volatile sig_atomic_t *cancel;       /* when set, the trial stops at its next step (NULL: never) */
} preft_trial_opts;

typedef struct preft_trial_result {
  double reward;
  bool reward_ok;         /* false: reward 0 because of reward_reason */
  char reward_source[16]; /* "reward.txt", "reward.json", "exit status" (TB 1.0) */
  char reward_reason[256];
  char error[512]; /* empty when every step ran to its end */
  bool agent_timed_out, verifier_timed_out, env_cached;
  int verifier_exit; /* -1: did not run */
  char limits[128];  /* the limits that applied */
  int64_t prompt_tokens, completion_tokens;
  int episodes;
  /* seconds */
  double t_env, t_start, t_agent, t_copy, t_verifier, t_stop, t_total;
  double overhead; /* t_total - t_agent - t_verifier: everything but the agent and the tests */
} preft_trial_result;

/* Runs the trial and writes result.json. Returns 0 when result.json was
 * written (whatever happened: res->error says), -1 (err) when the trial
 * folder could not be made or the result not written. */
int preft_trial_run(const preft_trial_opts *o, preft_trial_result *res, preft_error *err);

/* For Ctrl-C: kills every process in the sandboxes of running trials (and
 * in any a trial starts afterwards), so that their commands return at once;
 * each trial then skips its remaining steps (given its `cancel` is set),
 * stops its own sandbox and writes its result. */
void preft_trial_kill_all(void);

/* The text to run for a completion of `tasks reward`: the contents of its
 * fenced code blocks (```...```) when it has any, else the whole text
 * (heap). */
char *preft_trial_commands_from_completion(const char *completion);

#endif
