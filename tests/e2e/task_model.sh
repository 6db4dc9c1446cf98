#!/usr/bin/env bash
# End-to-end: the task model (assets/task-model) is what RL on the built-in
# tasks needs: on held-out problems of each default task its greedy accuracy
# is neither zero (GRPO would get no reward to learn from) nor near one
# (nothing left to learn). Measured by scripts/task-model-accuracy.sh on 200
# prompts per task, as in the model card.
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$data/../.." && pwd)
in_band() { require_numbers "$1" && awk -v a="$1" 'BEGIN { exit !(a >= 0.05 && a <= 0.8) }'; }

check "the task model loads and answers" bash -c \
  "'$bin' generate -m '$root/assets/task-model' -p 'Q: 2+3= A:' -n 4 --temperature 0 --stop $'\n' | grep -q '[0-9]'"
N=200 PREFT="$bin" bash "$root/scripts/task-model-accuracy.sh" "$root/assets/task-model" >"$tmp/acc"
cat "$tmp/acc"
for task in addition reverse count; do
  acc=$(awk -v t="$task" '$1 == t { print $2 }' "$tmp/acc")
  check "$task: held-out greedy accuracy $acc in [0.05, 0.8]" in_band "$acc"
done
e2e_exit
