#!/usr/bin/env bash
# Rollout throughput of `preft train rl` against `preft bench serve` on the
# same model, adapter and load shape (docs/PERFORMANCE.md, "RL rollouts").
# For each mode (prefill, all): a short GRPO run with fixed-length
# completions (no newline stop, --max-new-tokens O) measures generated
# tokens per second of its rollouts, wall clock and per CPU-second of the
# process; then `preft serve` with that run's adapter answers `bench serve`
# with P*G concurrent clients, prompts of the task's length and O output
# tokens, measured the same two ways (the server's CPU time from /proc).
# Per CPU-second is the number to compare on a shared machine: wall-clock
# rates there depend on what else runs. Last, the done-when command's step
# split into rollout, reward and update.
# Usage: scripts/bench-rl.sh [MODEL]   (env: BUILD, THREADS, P, G, O, STEPS)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-assets/task-model}
preft=${BUILD:-build}/preft
threads=${THREADS:-1}
P=${P:-8} G=${G:-8} O=${O:-32} steps=${STEPS:-6}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
tck=$(getconf CLK_TCK)
prompt=$("$preft" rl-data --task count --n 1 --seed 1)
plen=$("$preft" tokenize --tokenizer "$model" --text "$prompt" | jq length)

echo "model $model, threads $threads, P=$P prompts x G=$G samples, $O tokens per completion, prompt ~$plen tokens"
echo
echo "| mode | rollout tok/s (wall) | rollout tok/CPU-s | serve tok/s (wall) | serve tok/CPU-s | rollout / serve (per CPU-s) |"
echo "|---|---|---|---|---|---|"
port=$((18000 + RANDOM % 2000))
for mode in prefill all; do
  "$preft" train rl -m "$model" --task count --method lora --mode "$mode" --rank 8 --group "$G" \
    --prompts-per-step "$P" --steps "$steps" --seed 3 --no-stop-newline --max-new-tokens "$O" \
    --threads "$threads" -q -o "$tmp/ad-$mode" --json "$tmp/rl-$mode.json" >/dev/null
  # the first step is left out (warm-up)
  read -r rw rc <<<"$(jq -r '[.steps[1:][]] | "\((map(.rollout_tokens_per_s) | add / length))
    \((map(.completion_tokens) | add) * '"$P * $G"' / (map(.rollout_cpu_s) | add))"' "$tmp/rl-$mode.json" | tr '\n' ' ')"
  "$preft" serve -m "$model" --adapter "a=$tmp/ad-$mode" --port "$port" --threads "$threads" >"$tmp/serve.log" 2>&1 &
  sp=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 0.1; done
  t0=$(awk '{print $14 + $15}' "/proc/$sp/stat")
  "$preft" bench serve --url "http://127.0.0.1:$port" --adapters a --adapter-mode "$mode" \
    --concurrency $((P * G)) --requests $((P * G * (steps - 1))) --prompt-len "$plen" --output-len "$O" \
    --vocab 200 --json "$tmp/bench.json" >/dev/null
  t1=$(awk '{print $14 + $15}' "/proc/$sp/stat")
  kill "$sp"
  wait "$sp" 2>/dev/null || true
  sw=$(jq -r .output_tokens_per_s "$tmp/bench.json")
  stoks=$((P * G * (steps - 1) * O))
  awk -v m="$mode" -v rw="$rw" -v rc="$rc" -v sw="$sw" -v st="$stoks" -v c=$((t1 - t0)) -v tck="$tck" 'BEGIN {
    sc = st / (c / tck); printf "| %s | %.0f | %.0f | %.0f | %.0f | %.2f |\n", m, rw, rc, sw, sc, rc / sc }'
  port=$((port + 1))
done
echo
echo "Where a step goes: \`train rl --task addition --method lora --rank 8 --group 8 --steps 30 --seed 11\`"
echo
echo "| mode | s/step | rollout | reward | update | rollout tok/s | update tok/s |"
echo "|---|---|---|---|---|---|---|"
for mode in prefill all; do
  "$preft" train rl -m "$model" --task addition --method lora --mode "$mode" --rank 8 --group 8 --steps 30 \
    --seed 11 --threads "$threads" -q -o "$tmp/dw-$mode" --json "$tmp/dw-$mode.json" >/dev/null
  jq -r --arg m "$mode" '[.steps[]] | (map(.rollout_s) | add) as $r | (map(.reward_s) | add) as $w |
    (map(.update_s) | add) as $u | ($r + $w + $u) as $t |
    "| \($m) | \($t / length * 1000 | round / 1000) | \($r / $t * 1000 | round / 10)% | \($w / $t * 1000 | round / 10)% | \($u / $t * 1000 | round / 10)% | \(map(.rollout_tokens_per_s) | add / length | round) | \(map(.update_tokens_per_s) | add / length | round) |"' "$tmp/dw-$mode.json"
done
