#!/usr/bin/env bash
# End-to-end: GRPO on the default task. On assets/task-model (the model the
# README names for the RL tasks), the done-when command of issue 12 with one
# thread: `preft train rl --task addition` (the default level, two-digit
# sums, the built-in verifier), LoRA rank 8 prefill-only, 30 steps of the
# default 16 prompts x 8 samples, seed 11. The mean reward of the last ten
# steps is above that of the first ten by at least 0.1 (0.393 -> 0.582 when
# this was written, on the step-1500 task model; the step-1200 one, whose
# two-digit sums were a quarter right, rose 0.155 -> 0.190, too little to
# tell from the spread of single steps: docs/RESULTS.md), and the adapter
# answers more held-out sums greedily than the model alone (0.535 -> 0.805),
# in under a minute. One thread: deterministic. That the update learns what
# it has a clear signal for is tests/e2e/rl_sanity.sh.
source "$(dirname "$0")/e2e_lib.bash"
model=${PREFT_TASK_MODEL:-$data/../../assets/task-model}
check "the task model is there" test -s "$model/model.safetensors"
start=$(date +%s)
"$bin" train rl -m "$model" --task addition --method lora --mode prefill --rank 8 --group 8 --steps 30 \
  --seed 11 --threads 1 -q -o "$tmp/out" --json "$tmp/m.json" >/dev/null
took=$(($(date +%s) - start))
first=$(jq '[.steps[:10][].reward_mean] | add / 10' "$tmp/m.json")
last=$(jq '[.steps[-10:][].reward_mean] | add / 10' "$tmp/m.json")
echo "  mean reward: first ten steps $first, last ten $last; ${took}s"
check "30 steps ran" test "$(jq '.steps | length' "$tmp/m.json")" -eq 30
check "the reward rose clearly above its start" below "$first" "$(awk -v l="$last" 'BEGIN { print l - 0.1 }')"
"$bin" eval rl -m "$model" --task addition --n 200 --threads 1 --json "$tmp/base.json" >/dev/null
"$bin" eval rl -m "$model" -a "$tmp/out" --task addition --n 200 --threads 1 --json "$tmp/after.json" >/dev/null
base=$(jq .accuracy "$tmp/base.json")
after=$(jq .accuracy "$tmp/after.json")
echo "  held-out greedy accuracy: model $base, with the adapter $after"
check "held-out accuracy rose" below "$base" "$(awk -v a="$after" 'BEGIN { print a - 0.1 }')"
# the minute is the issue's figure for a plain build; under a sanitizer (time
# scale above 1) the run is 10-25x slower and its time says nothing
if [ "${PREFT_TEST_TIME_SCALE:-1}" = 1 ]; then
  check "in under a minute" test "$took" -lt 60
fi
e2e_exit
