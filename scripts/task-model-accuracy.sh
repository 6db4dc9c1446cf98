#!/usr/bin/env bash
# Greedy accuracy of a model on RL tasks with `preft eval rl`: the built-in
# verifier (the first line of the completion, trimmed, equals the answer) on
# held-out problems (seed 1000000: never in the task model's training text,
# nor in `train rl` with a seed below 1000000). Prints one line per task:
# "TASK  accuracy  N".
# Usage: scripts/task-model-accuracy.sh [MODEL_DIR] [TASK...]
#   env: N (prompts per task, default 200), SEED (default 1000000),
#        PREFT (the preft binary, default build/preft), ADAPTER (a LoRA/ReFT
#        adapter directory to apply), THREADS (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-assets/task-model}
shift || true
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(addition reverse count)
preft=${PREFT:-build/preft}
adapter=()
[ -n "${ADAPTER:-}" ] && adapter=(-a "$ADAPTER")
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for task in "${tasks[@]}"; do
  "$preft" eval rl -m "$model" "${adapter[@]}" --task "$task" --n "${N:-200}" --seed "${SEED:-1000000}" \
    --threads "${THREADS:-1}" --json "$out" >/dev/null
  acc=$(sed -n 's/.*"accuracy":[[:space:]]*\([0-9.e+-]*\).*/\1/p' "$out")
  n=$(sed -n 's/.*"n":[[:space:]]*\([0-9]*\).*/\1/p' "$out")
  printf '%-12s %s %s\n' "$task" "$acc" "$n"
done
