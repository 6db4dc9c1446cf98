#!/usr/bin/env bash
# The RL study of issue 12 (docs/RESULTS.md): GRPO on assets/task-model with
# LoRA and DiReFT, each all-token and prefill-only ("-P"), at equal rank, on
# two tasks (addition, reverse: count is at guessing level on the task
# model, where GRPO can only move it to the commonest answer) and several
# seeds. Every run measures greedy accuracy on
# held-out problems (seed 1000000 + run seed) every EVAL_EVERY steps and
# records rollout and update throughput. Writes OUT/runs/*.json (the --json
# metrics of each run) and OUT/summary.md: held-out accuracy against step
# (mean over seeds), final accuracy (mean ± sd), the step-0 accuracy of the
# model alone, rollout tokens/s per method and mode, and the share of a step
# spent in rollout, reward and update; and OUT/accuracy-TASK.svg (mean
# held-out accuracy against step, step 0 the model alone) and
# OUT/reward-TASK.svg (mean rollout reward against step) per task.
# DiReFT intervenes at every position (--positions all), so that its modes differ.
# Usage: scripts/study-rl.sh [--quick] [OUT_DIR]   (env: BUILD, MODEL, THREADS,
#        JOBS, STEPS, SEEDS, TASKS, RANK, EVAL_N, EVAL_EVERY)
#   --quick: one task, one seed, 10 steps, 32 eval prompts (minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
fi
out=${1:-study-rl}
build=${BUILD:-build}
model=${MODEL:-assets/task-model}
threads=${THREADS:-$(nproc)}
jobs=${JOBS:-1} # runs at once (on a loaded machine: several one-thread runs)
rank=${RANK:-8}
if [ $quick = 1 ]; then
  steps=${STEPS:-10} seeds=${SEEDS:-11} tasks=${TASKS:-addition} eval_n=${EVAL_N:-32} eval_every=${EVAL_EVERY:-5}
else
  steps=${STEPS:-30} seeds=${SEEDS:-"11 12 13"} tasks=${TASKS:-"addition reverse"} eval_n=${EVAL_N:-100}
  eval_every=${EVAL_EVERY:-10}
fi
preft="$build/preft"
[ -x "$preft" ] || { echo "study-rl: $preft not built (scripts/build.sh)" >&2; exit 1; }
[ -d "$model" ] || { echo "study-rl: no model at $model" >&2; exit 1; }
command -v jq >/dev/null || { echo "study-rl: jq not found (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$out/runs"
# DiReFT at every position ("all"): all-token intervenes on every row,
# prefill-only on the prompt's rows (with fA+lB positions both modes would be
# the same adapter)
methods=("lora all LoRA" "lora prefill LoRA-P" "direft all DiReFT" "direft prefill DiReFT-P")

# the model alone: held-out accuracy before any step
for task in $tasks; do
  for seed in $seeds; do
    f="$out/runs/$task-base-$seed.json"
    [ -s "$f" ] || "$preft" eval rl -m "$model" --task "$task" --n "$eval_n" --seed $((1000000 + seed)) \
      --threads "$threads" --json "$f" >/dev/null
  done
done
# one GRPO run (skipped when its metrics exist)
run_one() {
  local task=$1 method=$2 mode=$3 label=$4 seed=$5 f="$out/runs/$1-$4-$5.json" pos=()
  [ -s "$f" ] && return 0
  echo "study-rl: $task $label seed $seed" >&2
  [ "$method" = direft ] && pos=(--positions all)
  "$preft" train rl -m "$model" --task "$task" --method "$method" --mode "$mode" --rank "$rank" "${pos[@]}" \
    --steps "$steps" --seed "$seed" --eval-every "$eval_every" --eval-n "$eval_n" --threads "$threads" \
    -o "$out/adapters/$task-$label-$seed" --json "$f.tmp" -q >/dev/null
  mv "$f.tmp" "$f"
}
export -f run_one
export preft model rank steps eval_every eval_n threads out
# seed by seed, so that a study stopped early has every method of the first seeds
for seed in $seeds; do
  for task in $tasks; do
    for m in "${methods[@]}"; do
      read -r method mode label <<<"$m"
      echo "$task $method $mode $label $seed"
    done
  done
done | xargs -P "$jobs" -L 1 bash -c 'run_one "$@"' _

# ---- summary -----------------------------------------------------------------
mean_sd() { awk '{ s += $1; q += $1 * $1; n++ } END { if (n == 0) { print "-"; exit } m = s / n; v = n > 1 ? (q - n * m * m) / (n - 1) : 0; if (v < 0) v = 0; printf "%.3f ± %.3f", m, sqrt(v) }'; }
mean() { awk '{ s += $1; n++ } END { if (n) printf "%.3f", s / n; else print "-" }'; }
# the metrics files of a task and method that exist (a study stopped early
# reports what finished)
runs_of() { for seed in $seeds; do [ -s "$out/runs/$1-$2-$seed.json" ] && echo "$out/runs/$1-$2-$seed.json"; done; true; }
{
  echo "# RL study: GRPO on $model"
  echo
  echo "rank $rank, $steps steps, seeds: $seeds; held-out greedy accuracy on $eval_n problems"
  echo "(seed 1000000 + run seed) every $eval_every steps; threads $threads; $(date -u +%Y-%m-%d)."
  echo
  for task in $tasks; do
    echo "## $task"
    echo
    evsteps=$(jq -r '[.steps[] | select(.eval_accuracy != null) | .step] | map(tostring) | join(" ")' \
      "$(ls "$out"/runs/"$task"-*-[0-9]*.json | grep -v -- -base- | head -1)")
    printf "| method (runs) | step 0 |"
    for s in $evsteps; do printf ' step %s |' "$s"; done
    printf ' final (mean ± sd) | reward first 10 steps | reward last 10 steps |\n|---|---|'
    for s in $evsteps; do printf -- '---|'; done
    printf -- '---|---|---|\n'
    base=$(for seed in $seeds; do jq .accuracy "$out/runs/$task-base-$seed.json"; done | mean)
    for m in "${methods[@]}"; do
      read -r method mode label <<<"$m"
      files=$(runs_of "$task" "$label")
      [ -n "$files" ] || continue
      printf '| %s (%d) | %s |' "$label" "$(echo "$files" | wc -l)" "$base"
      for s in $evsteps; do
        printf ' %s |' "$(for f in $files; do jq ".steps[] | select(.step == $s) | .eval_accuracy" "$f"; done | mean)"
      done
      printf ' %s |' "$(for f in $files; do jq '[.steps[] | select(.eval_accuracy != null)] | last | .eval_accuracy' "$f"; done | mean_sd)"
      printf ' %s |' "$(for f in $files; do jq '[.steps[:10][].reward_mean] | add / length' "$f"; done | mean)"
      printf ' %s |\n' "$(for f in $files; do jq '[.steps[-10:][].reward_mean] | add / length' "$f"; done | mean)"
    done
    echo
  done
  echo "## Throughput and where a step goes (all runs of a method, all tasks)"
  echo
  echo "| method | rollout tokens/s | rollout tokens/CPU-s | update tokens/s | rollout share | reward share | update share | s/step |"
  echo "|---|---|---|---|---|---|---|---|"
  for m in "${methods[@]}"; do
    read -r method mode label <<<"$m"
    files=$(ls "$out"/runs/*-"$label"-[0-9]*.json 2>/dev/null || true)
    [ -n "$files" ] || continue
    row=$(jq -s '[.[].steps[]] | {r: (map(.rollout_tokens_per_s) | add / length),
      u: (map(.update_tokens_per_s) | add / length), ro: (map(.rollout_s) | add), rw: (map(.reward_s) | add),
      up: (map(.update_s) | add), n: length,
      c: ((map(.rollout_tokens_per_s * .rollout_s) | add) / (map(.rollout_cpu_s) | add))}
      | "\(.r) \(.u) \(.ro) \(.rw) \(.up) \(.n) \(.c)"' -r $files)
    read -r r u ro rw up n c <<<"$row"
    awk -v l="$label" -v r="$r" -v u="$u" -v ro="$ro" -v rw="$rw" -v up="$up" -v n="$n" -v c="$c" 'BEGIN {
      t = ro + rw + up; printf "| %s | %.0f | %.0f | %.0f | %.0f%% | %.1f%% | %.0f%% | %.2f |\n", l, r, c, u, 100 * ro / t, 100 * rw / t, 100 * up / t, t / n }'
  done
} >"$out/summary.md"

# ---- plots: the mean over seeds of each method, per task -----------------------
for task in $tasks; do
  base=$(for seed in $seeds; do jq .accuracy "$out/runs/$task-base-$seed.json"; done | mean)
  for m in "${methods[@]}"; do
    read -r method mode label <<<"$m"
    files=$(runs_of "$task" "$label")
    [ -n "$files" ] || continue
    echo "$label 0 $base"
    for f in $files; do
      jq -r '.steps[] | select(.eval_accuracy != null) | "\(.step) \(.eval_accuracy)"' "$f"
    done | awk -v l="$label" '{ s[$1] += $2; n[$1]++ } END { for (k in s) print l, k, s[k] / n[k] }' | sort -k2,2n
  done | awk -v title="GRPO on $task: held-out greedy accuracy (mean of seeds $seeds)" -v xlab=step \
    -v ylab=accuracy -f scripts/plot-lines.awk >"$out/accuracy-$task.svg"
  for m in "${methods[@]}"; do
    read -r method mode label <<<"$m"
    for f in $(runs_of "$task" "$label"); do
      jq -r '.steps[] | "\(.step) \(.reward_mean)"' "$f"
    done | awk -v l="$label" '{ s[$1] += $2; n[$1]++ } END { for (k in s) print l, k, s[k] / n[k] }' | sort -k2,2n
  done | awk -v title="GRPO on $task: mean rollout reward (mean of seeds $seeds)" -v xlab=step \
    -v ylab="mean reward" -f scripts/plot-lines.awk >"$out/reward-$task.svg"
done
cat "$out/summary.md"
