#!/usr/bin/env bash
# Greedy accuracy of a model on RL tasks, the way the built-in verifier
# scores it (the first line of the completion, trimmed, equals the answer),
# on held-out problems (seed 1000000: never in the task model's training
# text, nor in `train rl` with a seed below 1000000). Prints one line per
# task: "TASK  correct/N  accuracy".
# Usage: scripts/task-model-accuracy.sh [MODEL_DIR] [TASK...]
#   env: N (prompts per task, default 200), SEED (default 1000000),
#        PREFT (the preft binary, default build/preft), ADAPTER (a LoRA/ReFT
#        adapter directory to apply), MAX_TOKENS (default 24)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-assets/task-model}
shift || true
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(addition reverse count)
preft=${PREFT:-build/preft}
n=${N:-200}
seed=${SEED:-1000000}
max_tokens=${MAX_TOKENS:-24}
adapter=()
[ -n "${ADAPTER:-}" ] && adapter=(-a "$ADAPTER")
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }
for task in "${tasks[@]}"; do
  mapfile -t prompts < <("$preft" rl-data --task "$task" --n "$n" --seed "$seed")
  mapfile -t lines < <("$preft" rl-data --task "$task" --n "$n" --seed "$seed" --with-answers)
  correct=0
  for i in "${!prompts[@]}"; do
    p=${prompts[$i]}
    want=${lines[$i]#"$p "}
    got=$("$preft" generate -m "$model" "${adapter[@]}" -p "$p" -n "$max_tokens" --temperature 0 \
      --stop $'\n' --threads 1 | head -n 1)
    [ "$(trim "$got")" = "$want" ] && correct=$((correct + 1))
    [ -n "${VERBOSE:-}" ] && printf '%s | want %s | got %s\n' "$p" "$want" "$got" >&2
  done
  awk -v t="$task" -v c="$correct" -v n="${#prompts[@]}" 'BEGIN { printf "%-12s %4d/%-4d %.3f\n", t, c, n, c / n }'
done
