#!/usr/bin/env bash
# End-to-end: the GRPO learning signal reaches the adapter in both modes. On
# assets/task-model, prompts of the built-in `count` task with the reward
# "the answer starts with 2" (a task file, match regex): a preference for
# one first token, which a correct update learns in a few steps. LoRA rank 8,
# 8 prompts x 8 samples, 10 steps, in all-token and in prefill-only mode: the
# mean reward of steps 6-10 is at least 0.25 above that of step 1 (0.19 ->
# 0.93 in both modes when this was written). The prompt ends after "A: ",
# so the first digit is picked at the prompt's last row, where the
# prefill-only adapter acts; with the prompt ending at "A:" (the first
# completion token a space) this test failed in prefill-only mode (0.25 ->
# 0.33 on the previous task model, all-token 0.25 -> 0.56).
source "$(dirname "$0")/e2e_lib.bash"
model=${PREFT_TASK_MODEL:-$data/../../assets/task-model}
check "the task model is there" test -s "$model/model.safetensors"
"$bin" rl-data --task count:4 --n 200 --seed 5 --jsonl | jq -c '{prompt, answer: "^2", match: "regex"}' \
  >"$tmp/starts2.jsonl"
for mode in all prefill; do
  "$bin" train rl -m "$model" --task-file "$tmp/starts2.jsonl" --stop-newline --method lora --mode "$mode" \
    --rank 8 --group 8 --prompts-per-step 8 --steps 10 --seed 11 --threads 1 -q -o "$tmp/$mode" \
    --json "$tmp/$mode.json" >/dev/null
  first=$(jq '.steps[0].reward_mean' "$tmp/$mode.json")
  last=$(jq '[.steps[5:][].reward_mean] | add / length' "$tmp/$mode.json")
  echo "  $mode: mean reward step 1 $first, steps 6-10 $last"
  check "$mode: 'starts with 2' is learnt in a few steps" below "$first" "$(awk -v l="$last" 'BEGIN { print l - 0.25 }')"
done
e2e_exit
