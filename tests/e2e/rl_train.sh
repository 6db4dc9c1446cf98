#!/usr/bin/env bash
# End-to-end: `preft train rl` and `preft eval rl`. A short GRPO run writes
# the adapter (loadable by eval rl), checkpoint, log, plot and the --json
# metrics with every step's fields; a run stopped after step 2 and resumed
# ends with the same adapter, bit for bit, and the same rewards as the
# uninterrupted one; bad flags and tasks exit with a reason.
source "$(dirname "$0")/e2e_lib.bash"
rc() { "$@" >"$tmp/out" 2>"$tmp/err"; echo $?; }
model="$data/../../assets/default-model"
# a preference any model can learn: completions holding "the"
reward='jq --unbuffered "if (.completion | test(\"the\")) then 1 else 0 end"'
args=(-m "$model" --task addition --reward-cmd "$reward" --method lora --mode prefill --rank 4
  --group 4 --prompts-per-step 2 --max-new-tokens 8 --no-stop-newline --seed 5 --threads 1 -q)

check "train rl --help exits 0 and lists the tasks" bash -c "'$bin' train rl --help | grep -q 'reverse:N'"
check "eval rl --help exits 0" bash -c "'$bin' eval rl --help | grep -q 'held-out'"
check "no --method exits 2" test "$(rc "$bin" train rl -m "$model" --task addition -o "$tmp/x")" -eq 2
check "bad --method exits 2" test "$(rc "$bin" train rl -m "$model" --task addition --method dora -o "$tmp/x")" -eq 2
check "no task exits 2" test "$(rc "$bin" train rl -m "$model" --method lora -o "$tmp/x")" -eq 2
check "--group 1 exits 2" test "$(rc "$bin" train rl -m "$model" --task addition --method lora --group 1 -o "$tmp/x")" -eq 2
check "unknown task exits 1" test "$(rc "$bin" train rl -m "$model" --task subtraction --method lora -o "$tmp/x")" -eq 1
check "  naming it" grep -q "subtraction" "$tmp/err"

"$bin" train rl "${args[@]}" --steps 3 --save-every 2 -o "$tmp/full" --json "$tmp/m.json" --plot "$tmp/r.svg" >/dev/null
check "full run: adapter written" test -s "$tmp/full/adapter_model.safetensors"
check "  prefill mode recorded" grep -Eq '"preft_mode":[[:space:]]*"prefill"' "$tmp/full/adapter_config.json"
check "  checkpoint, log, plot" test -s "$tmp/full/checkpoint.bin" -a -s "$tmp/full/rl_log.csv" -a -s "$tmp/full/reward.svg" -a -s "$tmp/r.svg"
check "  no rollout adapter left behind" test ! -e "$tmp/full/rollout-policy"
check "  --json has 3 steps" test "$(jq '.steps | length' "$tmp/m.json")" -eq 3
for f in step reward_mean reward_std kl rollout_tokens_per_s update_tokens_per_s; do
  check "  every step has $f" test "$(jq "[.steps[] | has(\"$f\")] | all" "$tmp/m.json")" = true
done
check "  rewards are in [0, 1]" test "$(jq '[.steps[].reward_mean | . >= 0 and . <= 1] | all' "$tmp/m.json")" = true
check "  rollouts ran" test "$(jq '[.steps[].rollout_tokens_per_s > 0] | all' "$tmp/m.json")" = true

"$bin" train rl "${args[@]}" --steps 3 --save-every 2 --stop-after 2 -o "$tmp/part" >/dev/null
check "stopped run: 2 steps logged" test "$(($(wc -l <"$tmp/part/rl_log.csv") - 1))" -eq 2
"$bin" train rl "${args[@]}" --steps 3 --save-every 2 --resume -o "$tmp/part" >/dev/null
check "resumed run: the same adapter, bit for bit" cmp -s "$tmp/full/adapter_model.safetensors" "$tmp/part/adapter_model.safetensors"
check "  the whole RL history survived (3 rows, the same rewards and losses)" \
  bash -c "diff <(cut -d, -f1-7 '$tmp/full/rl_log.csv') <(cut -d, -f1-7 '$tmp/part/rl_log.csv')"
check "resuming another run's checkpoint is refused" \
  test "$(rc "$bin" train rl "${args[@]}" --group 8 --steps 3 --resume -o "$tmp/part")" -eq 1

"$bin" eval rl -m "$model" -a "$tmp/full" --task addition --n 8 --json "$tmp/e.json" >/dev/null
check "eval rl writes accuracy, n and mean_reward" \
  test "$(jq '(.accuracy >= 0) and (.accuracy <= 1) and (.n == 8) and has("mean_reward")' "$tmp/e.json")" = true
e2e_exit
