#!/usr/bin/env bash
# End-to-end: the task model (assets/task-model) is what RL on the built-in
# tasks needs: on held-out problems of each default task its greedy accuracy
# is neither zero (GRPO would get no reward to learn from) nor near one
# (nothing left to learn). Measured by scripts/task-model-accuracy.sh on 200
# prompts per task, as in the model card. `eval rl --partial-credit` keeps
# the accuracy (exact match) and gives wrong sums some reward.
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$data/../.." && pwd)
in_band() { require_numbers "$1" && awk -v a="$1" 'BEGIN { exit !(a >= 0.05 && a <= 0.8) }'; }

check "the task model loads and answers" bash -c \
  "'$bin' generate -m '$root/assets/task-model' -p 'Q: 2+3= A:' -n 4 --temperature 0 --stop $'\n' | grep -q '[0-9]'"
# The prompts of addition and count end where the answer's first token
# starts (after "A: "): the text "PROMPT ANSWER" the model learnt from
# tokenizes as the prompt's tokens followed by the answer's, the first a
# digit. Then the row that picks the first digit is a prompt row, where a
# prefill-only adapter acts (when the prompt ended at "A:" the first
# completion token was always the space, and the adapter reached the digits
# only through the prompt's keys and values).
for task in addition count; do
  "$bin" rl-data --task "$task" --n 20 --seed 1 --jsonl >"$tmp/$task.jsonl"
  jq -c .prompt "$tmp/$task.jsonl" | "$bin" tokenize --tokenizer "$root/assets/task-model" --no-special \
    --jsonl - >"$tmp/p.ids"
  jq -c '.prompt + .answer' "$tmp/$task.jsonl" | "$bin" tokenize --tokenizer "$root/assets/task-model" \
    --no-special --jsonl - >"$tmp/pa.ids"
  digit_ids=$(for d in 0 1 2 3 4 5 6 7 8 9; do "$bin" tokenize --tokenizer "$root/assets/task-model" --no-special \
    --text "$d"; done | jq -s -c 'map(.[0])')
  check "$task: the prompt's tokens, then the answer's, the first a digit" test "$(paste -d ' ' "$tmp/p.ids" \
    "$tmp/pa.ids" | jq -s --argjson d "$digit_ids" '[range(0; length; 2) as $i | .[$i] as $p | .[$i + 1] as $pa
      | ($pa[:($p | length)] == $p) and ($d | index($pa[$p | length])) != null] | all')" = true
done

N=200 PREFT="$bin" bash "$root/scripts/task-model-accuracy.sh" "$root/assets/task-model" >"$tmp/acc"
cat "$tmp/acc"
for task in addition reverse count; do
  acc=$(awk -v t="$task" '$1 == t { print $2 }' "$tmp/acc")
  check "$task: held-out greedy accuracy $acc in [0.05, 0.8]" in_band "$acc"
done
# --partial-credit: addition scored digit by digit; accuracy stays exact match
"$bin" eval rl -m "$root/assets/task-model" --task addition --n 100 --threads 1 --json "$tmp/exact.json" >/dev/null
"$bin" eval rl -m "$root/assets/task-model" --task addition --n 100 --threads 1 --partial-credit \
  --json "$tmp/partial.json" >/dev/null
check "--partial-credit: the same accuracy" test "$(jq .accuracy "$tmp/exact.json")" = "$(jq .accuracy "$tmp/partial.json")"
check "  and a mean reward above it (wrong sums get some credit)" below "$(jq .accuracy "$tmp/partial.json")" \
  "$(jq .mean_reward "$tmp/partial.json")"
check "  without it, the mean reward is the accuracy" close_to "$(jq .mean_reward "$tmp/exact.json")" \
  "$(jq .accuracy "$tmp/exact.json")"
e2e_exit
