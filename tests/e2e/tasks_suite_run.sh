#!/usr/bin/env bash
# The task suite in tasks/ run for real (issue 19, "Numbers"): `preft tasks
# run` with the oracle agent must score 1 on every task and the nop agent 0
# on every task, two trials at a time, with no trial error. Layers are
# built into a cache of this test's own (nothing from earlier runs is
# reused). Needs what `preft tasks run` needs (root, bubblewrap, overlayfs);
# a missing command or a harness error is a failure, never a skip.
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$(dirname "$0")/../.." && pwd)
tasks=$root/tasks
if ! "$bin" tasks run --help >/dev/null 2>&1; then
  echo "FAIL $bin has no working 'tasks run' command"
  exit 1
fi
n=0
for d in "$tasks"/*/; do [ -f "$d/task.toml" ] && n=$((n + 1)); done
check "the suite has tasks ($n)" test "$n" -ge 20

run_agent() { # run_agent AGENT: the whole suite, summary in $tmp/AGENT.json
  local start=$SECONDS rc
  "$bin" tasks run --path "$tasks" --agent "$1" --n-concurrent 2 -o "$tmp/jobs" --job-name "$1" \
    --cache "$tmp/cache" --quiet --json "$tmp/$1.json" >"$tmp/$1.log" 2>&1
  rc=$?
  echo "  $1: exit $rc, $((SECONDS - start)) s for $n tasks"
  [ $rc -eq 0 ] || { tail -20 "$tmp/$1.log"; return 1; }
}
summary_is() { jq -e --argjson n "$n" "$2" "$tmp/$1.json" >/dev/null; } # summary_is AGENT JQ_TEST
# trials whose reward is not $2, with their error (printed on failure)
off() { jq -r --argjson want "$2" '.trials[] | select(.reward != $want) | "  \(.task): reward \(.reward) \(.error // "")"' "$tmp/$1.json" 2>/dev/null; }

check "oracle: preft tasks run exits 0" run_agent oracle
check "oracle: $n trials, no errors, every reward 1 (mean_reward 1)" \
  summary_is oracle '.n_trials == $n and .n_errors == 0 and .mean_reward == 1 and all(.trials[]; .reward == 1)'
off oracle 1
check "nop: preft tasks run exits 0" run_agent nop
check "nop: $n trials, no errors, every reward 0 (mean_reward 0)" \
  summary_is nop '.n_trials == $n and .n_errors == 0 and .mean_reward == 0 and all(.trials[]; .reward == 0)'
off nop 0
e2e_exit
