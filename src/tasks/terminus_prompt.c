/* terminus_prompt.c - what the terminus agent says to the model: the system
 * prompt (role, reply format, rules), the first message (task + screen), the
 * observation after each turn, the request to confirm completion, and the
 * message that feeds a malformed reply's errors back. Terminus-2 style: the
 * model sees the terminal only as text and acts only through keystrokes. */
#include <string.h>

#include "server/sse.h" /* srv_buf */
#include "tasks/terminus_int.h"

static const char system_prompt[] =
    "You are an AI assistant solving a command-line task in a Linux terminal. You are root in a "
    "bash shell inside a tmux session of 160x40 characters. You see the terminal only as text "
    "and act only by sending keystrokes.\n"
    "\n"
    "Each turn, read the task and the terminal output, then answer with ONE JSON object and "
    "nothing else:\n"
    "\n"
    "{\n"
    "  \"analysis\": \"What the output shows: what is done, what is left, what went wrong.\",\n"
    "  \"plan\": \"What the commands below will do, and why.\",\n"
    "  \"commands\": [\n"
    "    {\"keystrokes\": \"ls -la\\n\", \"duration\": 0.1},\n"
    "    {\"keystrokes\": \"cd project\\n\", \"duration\": 0.1}\n"
    "  ],\n"
    "  \"task_complete\": false\n"
    "}\n"
    "\n"
    "Fields:\n"
    "- analysis (string): your reading of the current state.\n"
    "- plan (string): your next steps.\n"
    "- commands (array): keystroke batches, sent in order. Each has\n"
    "  - keystrokes (string): exactly what to type. End a command with \\n to run it. A string "
    "that is only a tmux key name is sent as that key: C-c (interrupt), C-d (end of input), "
    "Escape, Tab, Up, Down, Left, Right, BSpace.\n"
    "  - duration (number, seconds, default 1, at most 60): how long to wait for the output "
    "before the next command. Use 0.1 for instant commands (cd, ls, echo, cat), 1 for quick "
    "programs, longer for compilers, installs and downloads. Prefer a short wait and checking "
    "again over a long one.\n"
    "- task_complete (boolean): true when the task is done. You will be asked to confirm once; "
    "answer true again to finish. After that no more commands can run.\n"
    "\n"
    "Rules:\n"
    "- Answer with the JSON object only: no text before or after it.\n"
    "- Escape newlines and quotes inside strings as JSON requires (\\n, \\\").\n"
    "- Interactive programs (editors, pagers, prompts) receive your keystrokes as typed; prefer "
    "non-interactive commands (sed, cat <<'EOF', apt-get -y, git --no-pager).\n"
    "- Do not leave a command running that waits for input you will not send.\n"
    "- Use \"commands\": [] to only wait and look again.\n";

/* The same contract in few words, for models with a small context. */
static const char brief_system_prompt[] =
    "You are root at a bash prompt in a 160x40 tmux terminal. Solve the task by sending keystrokes. "
    "Answer only with JSON: {\"analysis\": \"...\", \"plan\": \"...\", \"commands\": "
    "[{\"keystrokes\": \"ls\\n\", \"duration\": 0.1}], \"task_complete\": false}. "
    "End commands with \\n; C-c interrupts; duration is seconds to wait (at most 60). Set "
    "task_complete to true when done; you will be asked once to confirm.";

char *preft_term_system_prompt(bool brief) {
  return preft_xstrdup(brief ? brief_system_prompt : system_prompt);
}

char *preft_term_first_message(const char *instruction, const char *screen) {
  srv_buf b = {0};
  preft_srv_buf_printf(&b,
                       "Task:\n%s\n\nCurrent terminal state:\n%s\n\n"
                       "Answer with the JSON object described in the instructions.",
                       instruction, screen);
  return b.p;
}

char *preft_term_observation(const char *warnings, const char *output) {
  srv_buf b = {0};
  if (warnings && warnings[0])
    preft_srv_buf_printf(&b, "Your previous response had warnings (it was still used): %s\n\n", warnings);
  preft_srv_buf_printf(&b, "New terminal output:\n%s\n", output);
  return b.p;
}

char *preft_term_parse_error_message(const char *errors) {
  srv_buf b = {0};
  preft_srv_buf_printf(&b,
                       "Your previous response could not be used: %s\n\n"
                       "No commands were run. Answer again with one valid JSON object with the fields "
                       "analysis, plan, commands and task_complete, and nothing else.",
                       errors);
  return b.p;
}

char *preft_term_confirm_message(const char *screen) {
  srv_buf b = {0};
  preft_srv_buf_printf(&b,
                       "Current terminal state:\n%s\n\n"
                       "Are you sure the task is complete? If you answer \"task_complete\": true again, "
                       "your work will be graded and you cannot change anything afterwards. If something "
                       "is left to do, answer with \"task_complete\": false and the commands to do it.",
                       screen);
  return b.p;
}
