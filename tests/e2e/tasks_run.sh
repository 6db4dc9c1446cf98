#!/usr/bin/env bash
# End-to-end: `preft tasks` on the fixture tasks of tests/data/tasks in real
# sandboxes: the oracle passes (TB 2.x with reward.json, TB 1.0 by exit
# status), nop fails, a reward file that is not a number is reward 0 with
# the reason, an agent past its timeout is killed with its children (none
# left), attempts give pass@k, two trials run at once (worker threads), `tasks
# check` tells a good task from a bad one, `tasks reward` scores completions
# line by line, Ctrl-C stops every sandbox and exits 130, and malformed
# tasks or command lines fail with their reasons. Needs root and bubblewrap
# (the sandboxes); without them it says so and checks only the command line.
source "$(dirname "$0")/e2e_lib.bash"
tasks=$data/tasks
cache=$tmp/cache
rc() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
json() { jq -c "$2" "$1"; }   # json FILE FILTER

check "tasks --help exits 0" bash -c "'$bin' tasks --help | grep -q 'tasks COMMAND'"
for sub in run check list reward base; do
  check "tasks $sub --help exits 0" bash -c "'$bin' tasks $sub --help | grep -q usage"
done
check "unknown subcommand exits 2" test "$(rc "$bin" tasks frobnicate)" -eq 2
check "run without --agent exits 2" test "$(rc "$bin" tasks run --path "$tasks" -o "$tmp/j")" -eq 2
check "run with a bad agent exits 2" test "$(rc "$bin" tasks run --path "$tasks" --agent claude -o "$tmp/j")" -eq 2
check "  naming it" grep -q "oracle, nop or terminus, got 'claude'" "$tmp/err"
check "terminus with no server to ask for a model exits 1" \
  test "$(rc "$bin" tasks run --path "$tasks" --agent terminus --url http://127.0.0.1:1/v1 -o "$tmp/j")" -eq 1
check "  saying so" grep -q "Couldn't connect to server (is the server up?" "$tmp/err"
check "--url without terminus exits 2" test "$(rc "$bin" tasks run --path "$tasks" --agent nop --url x -o "$tmp/j")" -eq 2

# list: every fixture; a malformed task names its file and field
check "list exits 0" test "$(rc "$bin" tasks list --path "$tasks")" -eq 0
check "  with the four tasks" grep -q "^4 tasks" "$tmp/out"
check "  and the TB 1.0 one" grep -qE "^legacy +tb1" "$tmp/out"
check "list --json: one object per task" test "$("$bin" tasks list --path "$tasks" --json | wc -l)" -eq 4
mkdir -p "$tmp/bad"
cp -r "$tasks/hello" "$tmp/bad/broken"
printf '[environment]\nmemory = "lots"\n' >"$tmp/bad/broken/task.toml"
check "malformed task: list exits 1" test "$(rc "$bin" tasks list --path "$tmp/bad")" -eq 1
check "  naming file, line and field" grep -q "broken/task.toml:2: \[environment\] memory: 'lots' is not a size" "$tmp/err"
check "unknown -t exits 1" test "$(rc "$bin" tasks run --path "$tasks" -t nope --agent nop -o "$tmp/j")" -eq 1
check "  naming it" grep -q "no task matches 'nope'" "$tmp/err"

if [ "$(id -u)" != 0 ] || ! command -v bwrap >/dev/null; then
  echo "skip the sandbox checks: they need root and bubblewrap"
  e2e_exit
fi

# the oracle on every fixture, two at a time
code=$(rc "$bin" tasks run --path "$tasks" --agent oracle --n-concurrent 2 -o "$tmp/jobs" --job-name oracle \
  --cache "$cache" --json "$tmp/oracle.json" --quiet)
check "oracle run exits 0" test "$code" -eq 0
[ "$code" = 0 ] || cat "$tmp/err"
j=$tmp/jobs/oracle
check "  4 trials" test "$(json "$tmp/oracle.json" .n_trials)" = 4
reward() { json "$j/$1__1/result.json" .reward; }
check "  hello (reward.json) 1" test "$(reward hello)" = 1
check "  legacy (TB 1.0, exit status) 1" test "$(reward legacy)" = 1
check "  badreward 0" test "$(reward badreward)" = 0
check "    with the reason" test "$(json "$j/badreward__1/result.json" .reward_error)" = "\"reward.txt is not one number: 'passed! '\""
check "  slow 0" test "$(reward slow)" = 0
check "    the agent timed out" test "$(json "$j/slow__1/result.json" .agent_timed_out)" = true
check "    as its error" test "$(json "$j/slow__1/result.json" .error)" = '"agent timed out after 1.5 s"'
check "  no process of the trials left" bash -c "! pgrep -f '[s]leep 60.123' >/dev/null"
check "  1 error (slow)" test "$(json "$tmp/oracle.json" .n_errors)" = 1
check "  mean reward 0.5" close_to "$(json "$tmp/oracle.json" .mean_reward)" 0.5
check "  summary trials name task, attempt, reward, error" \
  test "$(json "$tmp/oracle.json" ".trials[0] | keys")" = '["attempt","error","reward","task"]'
check "  job result.json" test "$(json "$j/result.json" .interrupted)" = false
check "  reward.json values kept" test "$(json "$j/hello__1/result.json" .rewards.exists)" = 1
check "  oracle output in agent/" test -f "$j/hello__1/agent/oracle.txt"
check "  verifier output in verifier/" test -f "$j/hello__1/verifier/test-stdout.txt"
check "  timings" test "$(json "$j/hello__1/result.json" ".timings | keys")" = \
  '["agent","copy_tests","env_build","overhead","sandbox_start","sandbox_stop","total","verifier"]'

# nop fails; the layers are cached now
code=$(rc "$bin" tasks run --path "$tasks" -t hello -t legacy --agent nop -o "$tmp/jobs" --job-name nop \
  --cache "$cache" --json "$tmp/nop.json" --quiet)
check "nop run exits 0" test "$code" -eq 0
check "  rewards 0" test "$(json "$tmp/nop.json" "[.trials[].reward]")" = "[0,0]"
check "  layers cached" test "$(json "$tmp/jobs/nop/hello__1/result.json" .env_cached)" = true

# attempts and pass@k; the summary on stdout
"$bin" tasks run --path "$tasks/hello" --agent oracle --n-attempts 3 --n-concurrent 2 -o "$tmp/jobs" \
  --cache "$cache" --quiet >"$tmp/att.json" 2>"$tmp/err"
check "3 attempts: 3 trials" test "$(json "$tmp/att.json" .n_trials)" = 3
check "  pass@1..3 = 1" test "$(json "$tmp/att.json" .pass_at_k)" = '{"1":1,"2":1,"3":1}'

# check: a task that checks out, and one that does not
check "check hello exits 0" test "$(rc "$bin" tasks check "$tasks/hello" --cache "$cache")" -eq 0
check "  oracle passes" grep -q "oracle  reward 1: passes" "$tmp/out"
check "  nop fails" grep -q "nop     reward 0: fails, as it should" "$tmp/out"
check "check badreward exits 1" test "$(rc "$bin" tasks check "$tasks/badreward" --cache "$cache")" -eq 1
check "  the oracle fails" grep -q "oracle  reward 0: FAILS" "$tmp/out"

# reward: completions as commands, one line out per line in
printf '%s\n' '{"prompt": "p", "completion": "Sure:\n```bash\necho hello > /app/hello.txt\n```\n", "answer": "hello"}' \
  '{"prompt": "p", "completion": "true", "answer": "hello"}' \
  '{"prompt": "p", "completion": "echo legacy > /app/out.txt", "answer": "legacy"}' \
  '{"prompt": "p", "completion": "if [ -e /tests/test.sh ] || [ -e /solution ]; then echo hello > /app/hello.txt; fi", "answer": "hello"}' \
  "{\"prompt\": \"p\", \"completion\": \"bash $tasks/hello/solution/solve.sh; bash $tasks/legacy/solution.sh\", \"answer\": \"hello\"}" \
  >"$tmp/lines"
check "reward exits 0" test "$(rc "$bin" tasks reward --path "$tasks" --cache "$cache" <"$tmp/lines")" -eq 0
check "  one reward per line (the agent sees neither /tests, /solution nor the task folders)" \
  test "$(tr '\n' ' ' <"$tmp/out")" = "1 0 1 0 0 "
echo '{"prompt": "p", "completion": "true", "answer": "nope"}' >"$tmp/badline"
check "reward for an unknown task exits 1" test "$(rc "$bin" tasks reward --path "$tasks" --cache "$cache" <"$tmp/badline")" -eq 1
check "  naming it" grep -q "stdin:1: answer 'nope' names no task" "$tmp/err"

# Ctrl-C: every sandbox stopped, the job result says so, exit 130
"$bin" tasks run --path "$tasks" -t slow --agent oracle --timeout-multiplier 100 -o "$tmp/jobs" --job-name int \
  --cache "$cache" --quiet >"$tmp/int.out" 2>"$tmp/int.err" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/jobs/int/slow__1/agent/oracle.txt" ] || pgrep -f '[s]leep 60.123' >/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid
check "Ctrl-C exits 130" test $? -eq 130
check "  the job result says interrupted" test "$(json "$tmp/jobs/int/result.json" .interrupted)" = true
check "  with no finished trial" test "$(json "$tmp/jobs/int/result.json" .n_trials)" = 0
check "  the trial's result says interrupted" test "$(json "$tmp/jobs/int/slow__1/result.json" .error)" = '"interrupted"'
check "  no process of the trial left" bash -c "! pgrep -f '[s]leep 60.123' >/dev/null"
check "  its sandbox removed" test -z "$(ls -A "$tmp/jobs/int/slow__1" | grep -vE '^(agent|verifier|env-build.log|sandbox.log|result.json)$')"
e2e_exit
