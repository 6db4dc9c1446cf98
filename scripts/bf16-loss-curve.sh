#!/usr/bin/env bash
# BF16 training against FP32 on the embedded default model's shape (the
# config of scripts/train-default-model.sh, its tokenizer, the training side
# of the State of the Union split): a short pretraining from a fresh init,
# four runs side by side, to show that `--matmul-precision bf16` follows the
# FP32 loss curve within FP32's own run-to-run noise:
#   f32        seed S, THREADS threads (the reference)
#   bf16       seed S, THREADS threads (same init, same batches)
#   f32-order  seed S, 2 x THREADS threads (FP32 again: only the order of the
#              sums differs, the smallest noise an FP32 run has)
#   f32-seed   seed S+1, THREADS threads (another init and data order)
# Writes OUT/<run>/train_log.csv, OUT/loss.svg (the four training-loss
# curves), OUT/loss-diff.svg (each run's loss minus the reference's, per
# step) and OUT/summary.md (mean and largest |difference| over the steps,
# final train and eval losses), and prints the summary.
# Usage: scripts/bf16-loss-curve.sh [BUILD_DIR]
#   env: STEPS (60), BATCH (4), SEQ (256), THREADS (1), SEED (1), OUT (a new
#        temporary folder, kept), TOKENIZER (assets/default-model/tokenizer.json),
#        REPORT_ONLY=1 (no training: the plots and summary of the runs in OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${STEPS:-60}
batch=${BATCH:-4}
seq=${SEQ:-256}
threads=${THREADS:-1}
seed=${SEED:-1}
tok=${TOKENIZER:-assets/default-model/tokenizer.json}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

[ -n "${REPORT_ONLY:-}" ] || bash scripts/sotu-extract.sh train "$out/train" >/dev/null
files=("$out/train"/*.txt)
# the default model's config (scripts/train-default-model.sh), unchanged
jq 'del(.chat_template)' assets/default-model/config.json >"$out/config.json"

run() { # NAME PRECISION SEED THREADS
  "$build/preft" train pretrain --config "$out/config.json" --tokenizer "$tok" --data "${files[@]}" \
    -o "$out/$1" --steps "$steps" --batch "$batch" --seq "$seq" --lr 2e-3 --warmup $((steps / 10)) \
    --eval-frac 0.01 --eval-every $((steps / 3)) --seed "$3" --threads "$4" --matmul-precision "$2" \
    --json "$out/$1.json" -q >"$out/$1.log" 2>&1
}
if [ -z "${REPORT_ONLY:-}" ]; then
  echo "bf16-loss-curve: 4 runs of $steps steps (batch $batch x $seq tokens) in $out" >&2
  run f32 f32 "$seed" "$threads" &
  run bf16 bf16 "$seed" "$threads" &
  run f32-order f32 "$seed" $((threads * 2)) &
  run f32-seed f32 $((seed + 1)) "$threads" &
  wait
fi

# step and train_loss of each run (train_log.csv: step,epoch,lr,train_loss,...)
curve() { awk -F, -v n="$1" 'NR > 1 { print n, $1, $4 }' "$out/$1/train_log.csv"; }
for r in f32 bf16 f32-order f32-seed; do curve "$r"; done >"$out/curves.txt"
awk -v title="default-model shape, fresh init: training loss" -v xlab=step -v ylab="train loss (nats)" \
  -f scripts/plot-lines.awk <"$out/curves.txt" >"$out/loss.svg"
awk '$1 == "f32" { ref[$2] = $3 } $1 != "f32" && ($2 in ref) { print $1 "-minus-f32", $2, $3 - ref[$2] }' \
  "$out/curves.txt" >"$out/diff.txt"
awk -v title="training loss minus the f32 run's" -v xlab=step -v ylab="difference (nats)" \
  -f scripts/plot-lines.awk <"$out/diff.txt" >"$out/loss-diff.svg"
{
  echo "| run | mean abs difference from f32 (nats) | largest | final train loss | final eval loss |"
  echo "|---|---|---|---|---|"
  echo "| f32 | 0 | 0 | $(jq -r '.train_loss' "$out/f32.json") | $(jq -r '.eval_loss' "$out/f32.json") |"
  for r in bf16 f32-order f32-seed; do
    awk -v r="$r-minus-f32" '$1 == r { d = $3 < 0 ? -$3 : $3; s += d; n++; if (d > m) m = d }
      END { printf "%.4f | %.4f\n", s / n, m }' "$out/diff.txt" |
      { read -r stats; echo "| $r | $stats | $(jq -r '.train_loss' "$out/$r.json") | $(jq -r '.eval_loss' "$out/$r.json") |"; }
  done
  for r in f32 bf16 f32-order f32-seed; do echo "$r: $(jq -r '.tokens_per_s' "$out/$r.json") tokens/s"; done
} | tee "$out/summary.md"
